#!/usr/bin/env bash
# The main job, from nothing: install, generate a sample blob project, mount it as YOLO, show it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

demo=${SLYFS_DEMO_DIR:-/tmp/slyfs-demo}
project=$demo/project
mnt=$demo/yolo
if grep -qs " $mnt " /proc/mounts; then slyfs umount "$mnt"; fi
if [ ! -f "$project/meta.json" ]; then
  python3 scripts/make_sample_project.py "$project" --images 200 --form blob --seed 0
fi
mkdir -p "$mnt"

echo; echo "== slyfs mount $project $mnt --format yolo"
slyfs mount "$project" "$mnt" --format yolo

echo; echo "== the mounted tree"
find "$mnt" -maxdepth 2 | sort
for d in images/train labels/train; do
  echo "-- $d: $(ls "$mnt/$d" | wc -l) files, e.g."; ls -l "$mnt/$d" | sed -n 2,4p
done
echo "   $(find "$mnt" -type f | wc -l) files, $(du -sh --apparent-size "$mnt" | cut -f1) apparent, 0 bytes copied"

echo; echo "== $mnt/data.yaml"
cat "$mnt/data.yaml"

label=$(find "$mnt/labels" -name '*.txt' -size +0 | sort | head -n 1)
echo; echo "== $label"
cat "$label"

echo; echo "The mount stays up. Point Ultralytics at $mnt/data.yaml, or browse it."
echo "Unmount with:  slyfs umount $mnt"
