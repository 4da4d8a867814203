#!/usr/bin/env bash
# Installs what slyfs needs on a fresh Debian/Ubuntu machine (run as root): the FUSE
# packages (fuse3 for fusermount3 and libfuse 3, libfuse2 for the fusepy fallback) and slyfs itself, editable.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || missing+=(libfuse2)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian 13 renamed libfuse2 to libfuse2t64
  apt-get install -y -qq "${missing[@]}" >/dev/null \
    || apt-get install -y -qq "${missing[@]/libfuse2/libfuse2t64}" >/dev/null
fi
[ -e /dev/fuse ] || echo "setup: warning: /dev/fuse is missing; mounting will not work here" >&2

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "setup: installing python3-pip with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
fi
# A Debian system Python refuses pip installs (PEP 668) unless told; this script runs as root on a
# machine set up for slyfs, so it says so. Python from pyenv or a venv ignores the variable.
export PIP_BREAK_SYSTEM_PACKAGES=1
log=$(mktemp)
if ! python3 -m pip install --disable-pip-version-check -e ".${SLYFS_EXTRAS:-}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: pip could not install slyfs (output above)" >&2
  exit 1
fi
rm -f "$log"
(cd / && command -v slyfs >/dev/null && python3 -c "import slyfs.vfs.cli, fuse") \
  || { echo "setup: slyfs is not usable after installing (is pip's bin directory on PATH?)" >&2; exit 1; }
