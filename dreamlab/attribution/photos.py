"""Photos in and maps out, for the `cam` and `attribute` commands.

A photo is resized to the model's input size for the attribution; maps go back to the photo's own size for
the pictures, so an overlay lines up with the original.
"""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dreamlab.attribution.target import Subject
from dreamlab.errors import DreamlabError
from dreamlab.io import atomic_write_bytes, load_image, match_channels, safe_name, save_png


def fit_photo(photo: Tensor, channels: int, size: int) -> Tensor:
    """A photo [C, H, W] in [0, 1] as the model's input [1, channels, size, size]."""
    x = match_channels(photo[None].float(), channels)
    if x.shape[1] != channels:
        raise DreamlabError(f"the photo has {x.shape[1]} channels and this model takes {channels}; give a "
                            f"{'greyscale or RGB' if channels in (1, 3) else f'{channels}-channel'} image")
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def read_photo(path: Path, subj: Subject, size: int | None = None) -> tuple[Tensor, Tensor]:
    """(the photo as read [C, H, W], the model's input [1, C, S, S]); an unreadable file is a DreamlabError."""
    photo = load_image(path)
    return photo, fit_photo(photo, subj.recipe.channels, size or subj.recipe.input_size)


def predicted_class(subj: Subject, x: Tensor) -> str:
    """The target `logit:N` of the model's top class for `x`."""
    with torch.no_grad():
        return f"logit:{int(subj.model(subj.normalize(x)).argmax(1)[0])}"


def to_photo_size(values: Tensor, photo: Tensor) -> Tensor:
    """A map [k, S, S] resized to the photo's [k, H, W] (bilinear)."""
    return F.interpolate(values[None].float(), size=photo.shape[-2:], mode="bilinear", align_corners=False)[0]


def default_output(model: str, target: str, kind: str) -> Path:
    return Path(f"{safe_name(model)}_{safe_name(target)}_{kind}.png")


def save_outputs(picture: Tensor, raw: Tensor, path: Path, provenance: dict[str, str]) -> tuple[Path, Path]:
    """The picture as PNG (with provenance) and the raw map as .npy beside it."""
    png = save_png(picture, path, provenance)
    buffer = _npy_bytes(raw.detach().float().cpu().numpy())
    return png, atomic_write_bytes(path.with_suffix(".npy"), buffer)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
