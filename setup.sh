#!/usr/bin/env bash
# One-time setup, one command, on a bare Debian/Ubuntu machine too: a virtualenv in .venv with
# the locked environment (requirements.txt, requirements-torch.txt, requirements-captum.txt) and
# lpta (editable) and, on Debian/Ubuntu, the Fashion-MNIST and tcmalloc packages. A second run
# changes nothing and is fast. PYTHON=python3.x picks the interpreter (default python3); the
# lock is for Python 3.11.
# Then: source .venv/bin/activate
set -euo pipefail
cd "$(dirname "$0")"

python="${PYTHON:-python3}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
apt_updated=""
# apt_install PACKAGE...: apt-get update (the first time only), then apt-get install. Fails where
# there is no apt-get, or no root and no sudo. --no-upgrade: a package that is already installed
# is left as it is (only what is missing is installed).
apt_install() {
  command -v apt-get > /dev/null || return 1
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq > /dev/null || return 1
    apt_updated=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade "$@" > /dev/null
}
# The venv packages of $python: ensurepip, which `python -m venv` needs, is in python3.X-venv
# on Debian/Ubuntu (python3-venv depends on the default one).
install_venv_packages() {
  local version
  version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  echo "setup.sh: $python has no ensurepip (python -m venv needs it): installing" \
       "python3-venv / python$version-venv with apt-get." >&2
  apt_install python3-venv || true
  "$python" -c 'import ensurepip' 2> /dev/null || apt_install "python$version-venv" || true
}

# 1. The virtualenv. Kept if it works; made again (--clear) if an earlier try left it without pip.
if ! { [ -x .venv/bin/python ] && .venv/bin/python -m pip --version > /dev/null 2>&1; }; then
  if ! command -v "$python" > /dev/null; then
    # A bare Debian/Ubuntu image has no Python at all.
    if [ "$python" != python3 ] || ! apt_install python3 python3-venv; then
      echo "setup.sh: error: no $python, and it could not be installed with apt-get." >&2
      exit 1
    fi
  fi
  "$python" -c 'import ensurepip' 2> /dev/null || install_venv_packages
  if ! log="$("$python" -m venv --clear .venv 2>&1)"; then
    # ensurepip is there but venv still fails (e.g. its wheels are missing): once more after
    # installing the venv packages, unless that was just done.
    [ -n "$apt_updated" ] || install_venv_packages
    if ! log="$("$python" -m venv --clear .venv 2>&1)"; then
      echo "$log" >&2
      echo "setup.sh: error: $python -m venv failed; on Debian/Ubuntu install python3-venv" \
           "(sudo apt-get install python3-venv) and run setup.sh again." >&2
      exit 1
    fi
  fi
fi
.venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || echo "setup.sh: warning: requirements.txt is locked on Python 3.11; on another Python," \
          "if it does not install, use: pip install '.[test]' (fresh versions)." >&2

# 2. The locked environment. pip is upgraded only where it is older than 24 (Debian 12's venv
# has 23.0.1); a pip that is new enough is left as it is, so a second run changes nothing. The
# lock was made with pip 26.3.
.venv/bin/python -m pip install --quiet "pip>=24" \
  || echo "setup.sh: warning: could not upgrade pip; going on with" \
          "$(.venv/bin/python -m pip --version)." >&2
.venv/bin/python -m pip install --quiet -r requirements.txt
# PyTorch, CPU build, for the tests and `lpta.benchmark --against=pytorch` only (lpta never
# imports it). A plain `pip install torch==2.13.0` takes the CUDA build from PyPI on Linux,
# several GB of nvidia-* wheels, so the pin is torch==2.13.0+cpu (requirements-torch.txt) and
# it comes from PyTorch's CPU index, without dependencies (they are in requirements.txt).
# --timeout/--retries: where that index cannot be reached, pip gives up on it soon (measured:
# 1 s where its name does not resolve, 41 s where a server accepts and never answers) instead
# of 6 tries of the default timeout (15 s; 180 s on our machines, PIP_DEFAULT_TIMEOUT). pip's
# --find-links and extra indexes still apply, so a local wheel of torch 2.13.0+cpu (as on our
# machines, where download.pytorch.org is unreachable) is taken even then. If the CPU index
# failed, a second try uses pip's configured indexes (e.g. a mirror), where only a +cpu wheel
# can match the pin: PyPI has none, so that fails at once rather than fetching CUDA wheels.
# The first try's output (pip's retry warnings where the index is unreachable) is shown only
# when both tries fail.
torch_index=https://download.pytorch.org/whl/cpu
if ! log="$(.venv/bin/python -m pip install --quiet --no-deps --timeout 20 --retries 1 \
    --index-url "$torch_index" -r requirements-torch.txt 2>&1)"; then
  echo "setup.sh: torch not found on $torch_index; trying pip's configured indexes." >&2
  if ! .venv/bin/python -m pip install --quiet --no-deps -r requirements-torch.txt; then
    echo "$log" >&2
    echo "setup.sh: error: could not install $(grep -v '^#' requirements-torch.txt)" \
         "(PyTorch's CPU build, which the tests need) from $torch_index or pip's indexes." >&2
    exit 1
  fi
fi
.venv/bin/python -m pip install --quiet --no-deps -r requirements-captum.txt
# lpta itself, editable, so `import lpta` works from any folder (the pins above are its deps).
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .

# 3. On Debian/Ubuntu, two system packages: Fashion-MNIST (offline data for the quickstart) and
# tcmalloc, under which main.py and lpta.benchmark run (lpta/allocator.py says why).
packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
ldconfig -p 2> /dev/null | grep -q libtcmalloc_minimal || packages+=(libtcmalloc-minimal4)
if [ "${#packages[@]}" -gt 0 ] && command -v apt-get > /dev/null; then
  if ! apt_install "${packages[@]}"; then
    echo "warning: could not install ${packages[*]}; without dataset-fashion-mnist the" \
         "quickstart downloads Fashion-MNIST through TFDS, without tcmalloc training on the" \
         "CPU is slower." >&2
  fi
fi
echo "lpta is set up. Activate it with: source .venv/bin/activate"
