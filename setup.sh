#!/usr/bin/env bash
# One-time setup: a virtualenv in .venv with requirements.txt and lpta (editable) and, on
# Debian/Ubuntu, the Fashion-MNIST and tcmalloc packages.
# Then: source .venv/bin/activate
set -euo pipefail
cd "$(dirname "$0")"

"${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
# lpta itself, editable, so `import lpta` works from any folder (the pins above are its deps).
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .

# On Debian/Ubuntu, two system packages: Fashion-MNIST (offline data for the quickstart) and
# tcmalloc, under which main.py and lpta.benchmark run (lpta/allocator.py says why).
packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
ldconfig -p 2> /dev/null | grep -q libtcmalloc_minimal || packages+=(libtcmalloc-minimal4)
if [ "${#packages[@]}" -gt 0 ] && command -v apt-get > /dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq "${packages[@]}"; } \
      > /dev/null; then
    echo "warning: could not install ${packages[*]}; without dataset-fashion-mnist the" \
         "quickstart downloads Fashion-MNIST through TFDS, without tcmalloc training on the" \
         "CPU is slower." >&2
  fi
fi
echo "lpta is set up. Activate it with: source .venv/bin/activate"
