#!/usr/bin/env bash
# Install the real third-party dataset readers used as test oracles:
#   ultralytics 8.4.190 (on CPU torch 2.13.0 + torchvision 0.28.0 metadata),
#   datumaro 1.13.12 (+ protobuf), pycocotools, and opencv 4.14.0.94 (headless build active).
#
# Idempotent: when everything is already at the pinned versions it only runs
# a short import smoke test (a few seconds). Safe to run twice.
#
# Usage:  bash scripts/install_test_readers.sh            (uses python3 on PATH)
#         PYTHON=/path/to/venv/bin/python bash scripts/install_test_readers.sh
#         SKIP_SMOKE=1 ...   skip the final import check
#
# Why each step is shaped like this (see shared/READERS.md):
# * A plain `pip install ultralytics` would pull a multi-GB CUDA torch. torch==2.13.0 resolves
#   to the local CPU wheel (torch-2.13.0+cpu in the pip find-links dir); it is installed
#   first and every later pip call is constrained to it, so nothing can replace it.
# * torchvision 0.28.0 from PyPI does not import beside that CPU torch ("operator
#   torchvision::nms does not exist"); ultralytics only needs its *metadata* for
#   detect/segment/pose/obb dataset building, hence --no-deps and we never import it.
# * ultralytics needs opencv-python, datumaro needs opencv-python-headless<5. Both
#   distributions write the same `cv2/` package, and unconstrained they resolve to
#   different versions (5.0 vs 4.14), leaving a mixed cv2/. We pin both to 4.14.0.94
#   and make sure the headless build's files are the ones on disk (no libGL needed).
# * datumaro pins pillow~=12.0 (downgrades pillow 13) and cachetools~=7.0; it does not
#   declare protobuf, but its format detection crashes without it on folders with *.csv.
set -euo pipefail

PY=${PYTHON:-python3}
TORCH_VER=2.13.0
TV_VER=0.28.0
UL_VER=8.4.190
DM_VER=1.13.12
CV_VER=4.14.0.94

t0=$(date +%s)
log() { printf '[install_test_readers] %s\n' "$*" >&2; }
pip_() { "$PY" -m pip install --disable-pip-version-check --no-input -q "$@"; }

# Print "name==installed_version" for each distribution, or "name==" when absent.
installed() {
    "$PY" - "$@" <<'EOF'
import sys
from importlib import metadata
for name in sys.argv[1:]:
    try:
        v = metadata.version(name)
    except metadata.PackageNotFoundError:
        v = ""
    print(f"{name}=={v}")
EOF
}
ver_of() { installed "$1" | sed 's/^[^=]*==//'; }

CONS=$(mktemp)
trap 'rm -f "$CONS"' EXIT
cat >"$CONS" <<EOF
torch==$TORCH_VER
torchvision==$TV_VER
opencv-python==$CV_VER
opencv-python-headless==$CV_VER
EOF

# 1. CPU torch from the local wheel.
tv=$(ver_of torch)
if [[ "$tv" != "$TORCH_VER+cpu" && "$tv" != "$TORCH_VER" ]]; then
    log "installing torch==$TORCH_VER (local CPU wheel)"
    pip_ "torch==$TORCH_VER"
    tv=$(ver_of torch)
fi
if [[ "$tv" != "$TORCH_VER+cpu" ]]; then
    log "ERROR: torch resolved to '$tv', expected $TORCH_VER+cpu (is the local wheel missing?)."
    log "       Refusing to continue: a CUDA torch is several GB."
    exit 1
fi

# 2. torchvision metadata only (not importable beside the CPU torch; never imported).
if [[ "$(ver_of torchvision)" != "$TV_VER" ]]; then
    log "installing torchvision==$TV_VER --no-deps"
    pip_ --no-deps "torchvision==$TV_VER"
fi

# 3. ultralytics, datumaro (+protobuf), pycocotools, opencv: one resolver run, constrained.
need=0
while IFS= read -r line; do
    name=${line%%==*}; v=${line#*==}
    case "$name" in
        ultralytics) [[ "$v" == "$UL_VER" ]] || need=1 ;;
        datumaro) [[ "$v" == "$DM_VER" ]] || need=1 ;;
        opencv-python|opencv-python-headless) [[ "$v" == "$CV_VER" ]] || need=1 ;;
        *) [[ -n "$v" ]] || need=1 ;;
    esac
done < <(installed ultralytics datumaro protobuf pycocotools pyyaml opencv-python opencv-python-headless)
if (( need )); then
    log "installing ultralytics==$UL_VER datumaro==$DM_VER protobuf pycocotools opencv==$CV_VER"
    pip_ -c "$CONS" "ultralytics==$UL_VER" "datumaro==$DM_VER" protobuf pycocotools pyyaml \
        "opencv-python==$CV_VER" "opencv-python-headless==$CV_VER"
fi

# 4. Make the headless build's cv2 files the active ones (both dists share cv2/).
cv_ok=$("$PY" - <<'EOF'
import re
try:
    import cv2
    gui_none = re.search(r"GUI:\s+NONE", cv2.getBuildInformation()) is not None
    print("ok" if gui_none else "gui")
except Exception as e:  # e.g. libGL.so.1 missing for the non-headless build
    print("broken")
EOF
)
if [[ "$cv_ok" != "ok" ]]; then
    log "cv2 is '$cv_ok': reinstalling opencv-python-headless==$CV_VER files over cv2/"
    pip_ --force-reinstall --no-deps "opencv-python-headless==$CV_VER"
fi

if (( need )); then
    tv2=$(ver_of torch)
    if [[ "$tv2" != "$TORCH_VER+cpu" ]]; then
        log "ERROR: torch changed to '$tv2' during the reader install"; exit 1
    fi
    "$PY" -m pip check >&2 || log "WARNING: pip check reports problems (see above)"
fi

# 5. Smoke test: everything imports together, offline, without writing to ~/.config.
if [[ -z "${SKIP_SMOKE:-}" ]]; then
    cfg=$(mktemp -d)
    YOLO_OFFLINE=1 YOLO_CONFIG_DIR="$cfg" "$PY" - <<'EOF'
import cv2, numpy, PIL, torch
import pycocotools.coco, pycocotools.cocoeval
import ultralytics
from ultralytics.data import build_yolo_dataset  # noqa: F401
from ultralytics.data.utils import check_det_dataset  # noqa: F401
import datumaro
from datumaro import Dataset, Environment  # noqa: F401
from importlib import metadata as m
assert torch.version.cuda is None, "CUDA torch installed"
print("readers ok:", ", ".join(f"{k} {v}" for k, v in [
    ("torch", torch.__version__), ("ultralytics", ultralytics.__version__),
    ("datumaro", datumaro.__version__), ("pycocotools", m.version("pycocotools")),
    ("numpy", numpy.__version__), ("pillow", PIL.__version__), ("cv2", cv2.__version__),
    ("protobuf", m.version("protobuf"))]))
EOF
    rm -rf "$cfg"
fi
log "done in $(( $(date +%s) - t0 )) s"
