"""Image files to uint8 samples: the one decoder of image folders (in memory or streamed)
and of `dlcli predict`'s image inputs, so a sample is the same bits either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlcli.errors import DataError, shorten
from dlcli.file_access import refusal

IMAGE_MODES = {1: "L", 3: "RGB"}  # channels: PIL mode


def read_image_files(files: list[str | Path], shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W): each image file decoded to the model's channels and size."""
    channels, height, width = shape
    x = np.empty((len(files), height, width, channels), dtype=np.uint8)  # (N, H, W, C), as PIL gives it
    for i, file in enumerate(files):
        x[i] = decode_image(file, shape)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def decode_recipe(shape: tuple[int, int, int]) -> str | None:
    """decode_image in words, for an export's sidecar: how to read an image file as dlcli does."""
    channels, height, width = shape
    if channels not in IMAGE_MODES:
        return None
    return (f"PIL.Image.open(path).convert('{IMAGE_MODES[channels]}'), then .resize(({width}, {height}), "
            f"PIL.Image.Resampling.BILINEAR) if its size differs, then numpy.asarray(image, dtype=uint8)"
            f".reshape({height}, {width}, {channels}).transpose(2, 0, 1): one ({channels}, {height}, {width}) "
            f"sample of pixels 0-255, as dlcli predict reads image files")


def decode_image(file: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file -> uint8 (H, W, C) in the model's channels and size."""
    from PIL import Image, UnidentifiedImageError  # lazy: only image data needs PIL

    channels, height, width = shape
    try:
        with Image.open(file) as image:
            image = image.convert(IMAGE_MODES[channels])
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        if isinstance(err, OSError) and err.errno is not None:  # the system's refusal, not PIL's (which has no errno)
            raise DataError(f"{file}: cannot read the image: {refusal(err)}") from None
        raise DataError(f"{file}: expected a readable image, cannot decode it: {shorten(str(err), 300)}") from None
