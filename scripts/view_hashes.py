#!/usr/bin/env python3
"""Hash every file of every view of some projects, to prove a refactoring changed no output byte.

    python scripts/view_hashes.py --sample 5000 -o before.json      # SDK fixtures + a 5,000-image sample
    ... change the code ...
    python scripts/view_hashes.py --sample 5000 --compare before.json

Each view is built in-process (no FUSE) for each project in blob and plain form, and every file is
read through the same tree the mount serves. ``--compare`` prints every path whose bytes differ,
appeared or disappeared, and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.registry import FORMATS, build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.tree import VirtualTree

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
# The option sets every view is hashed under: the default, and each view option once.
OPTION_SETS = {
    "default": ViewOptions(),
    "no-empty": ViewOptions(include_empty=False),
    "split-tags": ViewOptions(split="tags"),
    "split-ratio": ViewOptions(split="ratio:0.7,0.2"),
}


def view_digests(project_dir: Path, formats: list[str], options: ViewOptions) -> dict[str, str]:
    """sha256 of every file of the view (``EIO`` for a file that cannot be read), by path."""
    tree = VirtualTree(build_view(read_project(str(project_dir), report=ProblemLog()), formats, options))
    out = {}
    for path in tree.walk_files():
        try:
            out[path] = hashlib.sha256(tree.read_file(path)).hexdigest()
        except Unreadable:
            out[path] = "EIO"
    tree.close()
    return out


def all_digests(projects: dict[str, Path]) -> dict[str, str]:
    """``<project>:<options>:<format>:<path>`` → digest, for every project, option set and view
    (each format alone, and all of them together)."""
    out = {}
    for project, root in projects.items():
        for opt_name, options in OPTION_SETS.items():
            for formats in [[f] for f in FORMATS] + [list(FORMATS)]:
                label = ",".join(formats) if len(formats) > 1 else formats[0]
                for path, digest in view_digests(root, formats, options).items():
                    out[f"{project}:{opt_name}:{label}:{path}"] = digest
                print(f"{project} {opt_name} {label}: done", file=sys.stderr)
    return out


def sample_projects(images: int, workdir: Path) -> dict[str, Path]:
    """The sample generator's project of ``images`` images, in both forms."""
    out = {}
    for form in ("blob", "plain"):
        target = workdir / f"sample-{form}"
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_sample_project.py"), str(target),
                        "--images", str(images), "--form", form, "--seed", "0"], check=True,
                       stdout=subprocess.DEVNULL)
        out[f"sample{images}-{form}"] = target
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=int, default=0, help="also hash a generated project of this many images")
    ap.add_argument("-o", "--output", type=Path, help="write the digests as JSON here")
    ap.add_argument("--compare", type=Path, help="compare with digests written earlier; exit 1 on any difference")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the views' problem log is not what this compares
    projects = {"sdk-plain": FIXTURES / "sdk_project_plain", "sdk-blob": FIXTURES / "sdk_project_blob"}
    with tempfile.TemporaryDirectory(prefix="slyfs-hashes-") as tmp:
        if args.sample:
            projects.update(sample_projects(args.sample, Path(tmp)))
        digests = all_digests(projects)
    print(f"{len(digests)} files hashed", file=sys.stderr)
    if args.output:
        args.output.write_text(json.dumps(digests, indent=0, sort_keys=True))
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = sorted(k for k in before.keys() | digests.keys() if before.get(k) != digests.get(k))
        for key in differ:
            how = "changed" if key in before and key in digests else "only before" if key in before else "new"
            print(f"{how}: {key}")
        print(f"{len(differ)} of {len(before.keys() | digests.keys())} files differ", file=sys.stderr)
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
