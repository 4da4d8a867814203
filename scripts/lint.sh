#!/usr/bin/env bash
# ruff over the whole repository, then mypy over the slyfs packages; any finding fails.
# mypy cannot follow the editable install's package-dir mapping (formats/ -> slyfs.formats,
# vfs/ -> slyfs.vfs), so it checks them through a folder of symlinks laid out as installed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
python=${PYTHON:-python3}

"$python" -m ruff check .

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/slyfs"
ln -s "$repo/formats" "$tmp/slyfs/formats"
ln -s "$repo/vfs" "$tmp/slyfs/vfs"
(cd "$tmp" && "$python" -m mypy --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache" -p slyfs)
