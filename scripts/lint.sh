#!/usr/bin/env bash
# ruff over the whole repository, then mypy over the slyfs packages; both always run, and any
# finding of either fails.
# mypy cannot follow the editable install's package-dir mapping (formats/ -> slyfs.formats,
# vfs/ -> slyfs.vfs), so it checks them through a folder of symlinks laid out as installed,
# and its findings are shown with the paths of this checkout.
# tests/ and scripts/ get ruff only: what mypy finds there is Optional results indexed inside
# assertions and the untyped third-party readers the tests drive, not bugs in slyfs.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
python=${PYTHON:-python3}

status=0
"$python" -m ruff check . || status=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/slyfs"
ln -s "$repo/formats" "$tmp/slyfs/formats"
ln -s "$repo/vfs" "$tmp/slyfs/vfs"
(cd "$tmp" && "$python" -m mypy --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache" -p slyfs) \
  | sed -e 's#^slyfs/formats/#formats/#' -e 's#^slyfs/vfs/#vfs/#' || status=1
exit $status
