#!/usr/bin/env bash
# One-time setup: a virtualenv in .venv with requirements.txt and lpta (editable) and, on
# Debian/Ubuntu, the Fashion-MNIST package (offline data for the quickstart).
# Then: source .venv/bin/activate
set -euo pipefail
cd "$(dirname "$0")"

"${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
# lpta itself, editable, so `import lpta` works from any folder (the pins above are its deps).
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get > /dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist; } \
      > /dev/null; then
    echo "warning: could not install dataset-fashion-mnist; the quickstart will then try to" \
         "download Fashion-MNIST through TFDS." >&2
  fi
fi
echo "lpta is set up. Activate it with: source .venv/bin/activate"
