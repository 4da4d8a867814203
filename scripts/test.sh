#!/usr/bin/env bash
# The whole test suite, from nothing: install slyfs with its test extras and the real
# third-party readers (Ultralytics, datumaro, pycocotools), lint (ruff, mypy), then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
SLYFS_EXTRAS="[test]" bash scripts/setup.sh
bash scripts/install_test_readers.sh
bash scripts/lint.sh             # a finding fails the run
export SLYFS_REQUIRE_READERS=1   # a missing reader fails the run instead of skipping
exec python3 -m pytest -q -n "${SLYFS_TEST_PROCESSES:-2}" tests "$@"
