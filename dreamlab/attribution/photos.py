"""Photos in and maps out, for the `cam` and `attribute` commands.

A photo becomes the model's input undistorted (`model_input`: its aspect kept, or padded for a fixed-size model);
maps go back to the photo's own size for the pictures, so an overlay lines up with the original.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.attribution.cam import ModuleCall, traced_run
from dreamlab.attribution.target import Subject, accepts_side, evaluating, sized_forward
from dreamlab.errors import DreamlabError
from dreamlab.io import (atomic_write_bytes, file_digest, is_sample_photo, label_name, match_channels, safe_name,
                         save_png)
from dreamlab.io import read_photo as read_image
from dreamlab.models.loading import weights_provenance
from dreamlab.models.summary import MAX_INPUT_SIZE, check_input_size


@dataclass(frozen=True)
class ModelInput:
    """A photo as the model's input: `x` [1, C, h, w], and where the photo lies in it (`region`: top, left,
    height, width; all of `x` unless it was padded)."""

    x: Tensor
    region: tuple[int, int, int, int]
    how: str  # for the provenance: '224x336, aspect kept', '28x28, padded', '224x224'
    note: str = ""  # what the caller should be told (a long strip's longer side capped), else ''

    def crop(self, values: Tensor) -> Tensor:
        """The photo's part of a map [..., h, w] over `x`."""
        top, left, height, width = self.region
        return values[..., top:top + height, left:left + width]


# torchvision's ImageNet classifiers reduce their input 32-fold (ResNet, VGG, GoogLeNet, ConvNeXt, ...): the longer
# side is rounded to a multiple of that, so the last maps' cells cover it exactly as they cover the shorter side
STRIDE = 32


def side_multiple(size: int) -> int:
    """What the longer side is rounded to: the largest power of two up to STRIDE that divides the shorter side
    `size` (224: 32, 28: 4, 299: 1) and is at most a seventh of it, so the rounding changes the aspect by at most
    1/14 (for 224: 16 pixels, well inside the 3/4 to 4/3 aspect jitter torchvision's classifiers train with)."""
    multiple = 1
    while multiple * 2 <= STRIDE and size % (multiple * 2) == 0 and multiple * 2 <= size // 7:
        multiple *= 2
    return multiple


def model_input(photo: Tensor, subj: Subject, size: int, asked: str = "") -> ModelInput:
    """The photo as the model's input, undistorted: its shorter side at `size` and its aspect kept where the model
    takes that size (classifiers with adaptive pooling, as torchvision's are evaluated; the longer side rounded to
    a multiple of `side_multiple(size)`), else the whole photo fitted into a `size` square and padded with the
    recipe's mean colour (0 once normalized) around it.

    A photo so long that its longer side would pass MAX_INPUT_SIZE keeps its aspect with that side capped (the
    shorter side follows, below `size`); should the model not take that either, it is padded. Both are told in
    the ModelInput's `note` (`asked`: how the caller names the size, e.g. '--size 2048')."""
    x = _with_channels(photo, subj.recipe.channels)
    height, width = photo.shape[-2:]
    if height == width:
        return ModelInput(_resized(x, (size, size)), (0, 0, size, size), f"{size}x{size}")
    multiple = side_multiple(size)
    longer = max(size, multiple * math.floor(max(height, width) * size / min(height, width) / multiple + 0.5))
    capped = longer > MAX_INPUT_SIZE
    if capped:  # a long strip: the longer side at the limit, the shorter one follows
        shorter = max(1, round(MAX_INPUT_SIZE * min(height, width) / max(height, width)))
        longer = MAX_INPUT_SIZE
    else:
        shorter = size
    kept = (shorter, longer) if height < width else (longer, shorter)
    asked = asked or f"size {size}"
    too_long = (f"{asked} would make the {height}x{width} photo's longer side "
                f"{round(max(height, width) * size / min(height, width))} px, over the {MAX_INPUT_SIZE}-pixel limit")
    if _takes(subj, kept):
        if not capped:
            return ModelInput(_resized(x, kept), (0, 0, *kept), f"{kept[0]}x{kept[1]}, aspect kept")
        note = (f"{too_long}: the model sees it at {kept[0]}x{kept[1]}, its aspect kept with the longer side capped "
                f"at {MAX_INPUT_SIZE} (the shorter side {shorter} px, not {size})")
        return ModelInput(_resized(x, kept), (0, 0, *kept),
                          f"{kept[0]}x{kept[1]}, aspect kept, the longer side capped at {MAX_INPUT_SIZE}", note)
    scale = size / max(height, width)
    inner = (max(1, round(height * scale)), max(1, round(width * scale)))
    top, left = (size - inner[0]) // 2, (size - inner[1]) // 2
    padded = torch.tensor(subj.recipe.mean, dtype=x.dtype).view(1, -1, 1, 1).repeat(1, 1, size, size)
    padded[..., top:top + inner[0], left:left + inner[1]] = _resized(x, inner)
    how = f"{size}x{size}, padded (the photo {inner[0]}x{inner[1]} at {top},{left})"
    note = ""
    if capped and _takes(subj, (size, size + multiple)):  # a model that takes any size: padded for the cap only
        note = (f"{too_long}, and capped there ({kept[0]}x{kept[1]}) the model does not take it: the photo is "
                f"fitted into a {size}x{size} square at {inner[0]}x{inner[1]} and padded with the recipe's mean "
                f"colour, so the padding can draw attributions; crop the photo to a less elongated part")
    return ModelInput(padded, (top, left, *inner), how, note)


def _with_channels(photo: Tensor, channels: int) -> Tensor:
    x = match_channels(photo[None].float(), channels)
    if x.shape[1] != channels:
        raise DreamlabError(f"the photo has {x.shape[1]} channels and this model takes {channels}; give a "
                            f"{'greyscale or RGB' if channels in (1, 3) else f'{channels}-channel'} image")
    return x


def _resized(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _takes(subj: Subject, size: tuple[int, int]) -> bool:
    """Whether the model runs on an input of `size` (height, width), on the device its parameters are on."""
    param = next(subj.model.parameters(), None)
    with evaluating(subj.model):
        return accepts_side(subj, size, param.device if param is not None else None)


class ModelRun(NamedTuple):
    """One forward of a model input without gradients: the model's output, and where asked for, the
    `cam.trace_forward` trace of that forward (else None)."""
    output: object
    trace: list[ModuleCall] | None = None


def check_model_takes(subj: Subject, x: Tensor, trace: bool = False) -> ModelRun:
    """Refuse, before the attribution runs, an input `x` whose size the model rejects, in the command line's words
    (the smallest --size it takes, or its recipe's). The forward that checks it is returned (`trace`: traced), so
    that the top class (`predicted_class`) and the Grad-CAM layer (`api.cam_layer`) need none of their own."""
    with torch.no_grad(), evaluating(subj.model), sized_forward(subj, x, cli=True):
        if trace:
            return ModelRun(*traced_run(subj.model, subj.normalize(x)))
        return ModelRun(subj.model(subj.normalize(x)))


def read_photo(path: str | Path, subj: Subject, size: int | None = None) -> tuple[Tensor, ModelInput]:
    """(the photo as read [C, H, W], the model's input: `model_input`); an unreadable file or a size out of range
    is a DreamlabError. `china` and `flower` (when no such file exists) are scikit-learn's sample photos, as
    `features` and `examples` take them."""
    if size is not None:
        check_input_size(size, name="--size")
    photo = read_image(path)
    asked = f"--size {size}" if size is not None else f"the recipe's size {subj.recipe.input_size}"
    return photo, model_input(photo, subj, size or subj.recipe.input_size, asked)


def photo_provenance(path: str | Path, size: int, fitted: ModelInput | None = None) -> dict[str, str]:
    """The input image by name and sha256 prefix (a sample photo by name and source), the input size, and how
    the photo became the model's input."""
    if is_sample_photo(path):
        text = {"dreamlab:image": str(path), "dreamlab:image_source": "scikit-learn sample photo"}
    else:
        text = {"dreamlab:image": Path(path).name,
                "dreamlab:image_sha256": file_digest(path)}
    return {**text, "dreamlab:photo_size": str(size),
            **({"dreamlab:model_input": fitted.how, "dreamlab:photo_region": ",".join(map(str, fitted.region))}
               if fitted is not None else {})}


def attribution_provenance(subj: Subject, target: str, method: str, weights: object, used: dict[str, object],
                           image: Path, fitted: ModelInput, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The text chunks of a `cam` or `attribute` PNG: model, target, method, weights (random init's seed too),
    the layer and every option the method read (`used`, as JSON in `dreamlab:options`), `extra`, the photo and
    how it became the model's input, and the library versions."""
    return {"dreamlab:model": subj.recipe.name, "dreamlab:target": target, "dreamlab:method": method,
            **weights_provenance(weights), **({"dreamlab:layer": str(used["layer"])} if "layer" in used else {}),
            "dreamlab:options": json.dumps(used), **(extra or {}),
            **photo_provenance(image, min(fitted.x.shape[-2:]), fitted), **versions()}


def versions() -> dict[str, str]:
    """The library versions, under the keys render's PNGs use."""
    import torchvision

    from dreamlab import __version__

    return {"dreamlab:version": __version__, "torch:version": torch.__version__,
            "torchvision:version": torchvision.__version__}


def predicted_class(subj: Subject, x: Tensor, run: ModelRun | None = None) -> str:
    """The target `logit:N` of the model's top class for `x`; a model whose output is not class scores
    [N, classes] (an edge map, say) has no top class, and the caller must name a target. `run`: a forward of `x`
    the caller has (`check_model_takes`), read instead of running one."""
    return f"logit:{predicted_classes(subj, x, run=run)[0]}"


def predicted_classes(subj: Subject, x: Tensor, ask: str = "give --target", run: ModelRun | None = None) -> list[int]:
    """The model's top class for each image of `x`; `ask` says how to name a target instead, where the model's
    output is not class scores. `run`: a forward of `x` the caller has, read instead of running one."""
    if run is not None:
        output = run.output
    else:
        with torch.no_grad(), evaluating(subj.model), sized_forward(subj, x):
            output = subj.model(subj.normalize(x))
    if not isinstance(output, Tensor) or output.dim() != 2 or output.shape[0] != x.shape[0]:
        shape = list(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise DreamlabError(f"{subj.recipe.name}'s output is {shape}, not class scores [N, classes], so there is "
                            f"no top class to pick; {ask}, e.g. {_example_target(subj, x)}")
    return output.argmax(1).tolist()


def _example_target(subj: Subject, x: Tensor) -> str:
    """Channel 0 of the module that returns the model's output (HED's `edges`), found by a forward with hooks."""
    last: list[tuple[str, object]] = []

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            last[:] = [(name, output)]  # the last module to finish; kept alone so activations are not held
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in subj.model.named_modules() if name]
    try:
        with torch.no_grad(), evaluating(subj.model):
            output = subj.model(subj.normalize(x))
    finally:
        for handle in handles:
            handle.remove()
    name = last[0][0] if last and last[0][1] is output else subj.recipe.default_layer or "LAYER"
    return f"{name}:0"


def to_photo_size(values: Tensor, photo: Tensor, fitted: ModelInput | None = None) -> Tensor:
    """A map [k, h, w] over the model's input (its photo region, where `fitted` says it was padded) resized to the
    photo's [k, H, W] (bilinear)."""
    values = fitted.crop(values) if fitted is not None else values
    return F.interpolate(values[None].float(), size=photo.shape[-2:], mode="bilinear", align_corners=False)[0]


def default_output(model: str, target: str, kind: str, layer: str | None = None) -> Path:
    """MODEL_TARGET_KIND.png, or MODEL_TARGET_LAYER_KIND.png for a layer the user gave (--layer), so maps of one
    target at two layers do not overwrite each other; the target reads as render's file names do ('logit:3*logit:4'
    -> logit_3_x_logit_4, 'logit:3/logit:4' -> logit_3_over_logit_4)."""
    at = f"{safe_name(layer)}_" if layer else ""
    return Path(f"{safe_name(model)}_{label_name(target)}_{at}{kind}.png")


def save_outputs(picture: Tensor, raw: Tensor, path: Path, provenance: dict[str, str]) -> tuple[Path, Path]:
    """The picture as PNG (with provenance) and the raw map as .npy beside it."""
    png = save_png(picture, path, provenance)
    buffer = _npy_bytes(raw.detach().float().cpu().numpy())
    return png, atomic_write_bytes(path.with_suffix(".npy"), buffer)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
