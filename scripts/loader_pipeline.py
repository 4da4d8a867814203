"""The input pipeline that ``bench.py --loader`` times: a torch Dataset over image paths, each file
opened with plain ``open()`` as training code opens it, batched by a shuffling DataLoader.

Its own module so that torch (a bench extra, never a dependency of slyfs) is imported only by
``--loader``, and so that the datasets are importable by name in DataLoader worker processes
whatever their start method.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

PIPELINES = ("decode", "raw")
BATCH = 64
SIDE = 64  # decode: every image resized to SIDE x SIDE, a typical small training input
SEED = 0


class ImageFiles(Dataset):
    """A map-style dataset over image files, one item per path."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)


class RawImages(ImageFiles):
    """Each item is one file read whole; its length is returned, so the pass costs the reads alone."""

    def __getitem__(self, index: int) -> int:
        with open(self.paths[index], "rb") as f:
            return len(f.read())


class DecodedImages(ImageFiles):
    """Each item is decoded to RGB and resized, as a uint8 CxHxW tensor: the work a training job's
    workers do between reads, which the daemon's CPU competes with."""

    def __getitem__(self, index: int) -> torch.Tensor:
        with open(self.paths[index], "rb") as f:
            image = Image.open(f).convert("RGB").resize((SIDE, SIDE))
        return torch.from_numpy(np.array(image)).permute(2, 0, 1)


def epoch(paths: list[str], pipeline: str, workers: int, number: int) -> tuple[int, int]:
    """One pass of ``pipeline`` over ``paths`` with ``workers`` worker processes, in the shuffled
    order of epoch ``number`` (the same order for every system). Returns the images served and a
    checksum of what they were: the total bytes (raw), the sum of every pixel value (decode)."""
    dataset: ImageFiles = DecodedImages(paths) if pipeline == "decode" else RawImages(paths)
    order = torch.Generator().manual_seed(SEED + number)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, generator=order)
    images = checksum = 0
    for batch in loader:
        images += len(batch)
        checksum += int(batch.sum(dtype=torch.int64))
    return images, checksum
