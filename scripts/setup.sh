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

python3 -m pip install -q --disable-pip-version-check -e ".${SLYFS_EXTRAS:-}" 2>&1 | grep -v -E '^WARNING: (Running pip as|Location)' || true
python3 -c "import vfs.cli" || { echo "setup: slyfs did not install" >&2; exit 1; }
