"""DeepDream on photos: amplify what a layer sees in a photo, at several scales (octaves), optionally guided by
another image, and the endless zoom (dream, zoom in a little, dream again).

The method follows google/deepdream's notebook: gradient ascent on the objective (by default the L2 of a whole
layer's activations), each step divided by the mean absolute gradient, a random roll of the image per step,
octaves dreamed from the smallest up with the detail of each added to the next; a guide replaces the L2 by the
dot product of each position's features with the best-matching feature of the guide.

>>> result = dream("lenet-digits", torch.rand(1, 96, 128), weights="none", octaves=2, steps=4, device="cpu")
>>> result.image.shape
torch.Size([1, 96, 128])
"""
from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from dreamlab import __version__
from dreamlab.devices import out_of_memory, resolve_device
from dreamlab.errors import DreamlabError, checked_keywords, first_line, takes_positional, unknown
from dreamlab.io import (check_output_file, match_channels, photo_record, png_bytes, read_photo, save_png, shape_hint,
                         to_pil)
from dreamlab.models.loading import LoadedModel, module_names
from dreamlab.models.recipe import Recipe, shipped_recipe_names
from dreamlab.optvis.capture import OUTPUT, Capture
from dreamlab.optvis.dream_settings import (LR, ROTATE_DEFAULT, ZOOM_DEFAULT, check_arguments, check_callbacks,
                                            counted)
from dreamlab.optvis.dream_tiles import (AUTO_TILE, Tile, aligned, layout, smallest_tile, tiled_gradient,
                                        tiled_score, tiles, zoom_rotate)
from dreamlab.models.prepare import (FORWARD_ERRORS, prepared_model, raw_size_errors, resolve_model, takes_size,
                                     unsized_module_error)
from dreamlab.optvis.engine import derived_seed
from dreamlab.optvis.grammar import parse_objective
from dreamlab.optvis.objectives import IMAGE, Objective, deepdream
from dreamlab.optvis.progress import progress_bar
from dreamlab.optvis.score_checks import no_gradient, non_finite_error

MIN_SIDE = 16  # the smallest octave side dreamed; smaller ones carry no pattern a layer could amplify
GUIDE_SIDE = 512  # the guide's longer side is shrunk to this: its features only need to be representative
# the guide positions matched, at most: an early layer's map of a 512 px guide has 175,000 (hed-vgg16's features.3),
# and matching every photo position against each asked 12 GB for a 160x107 photo. A map with more is sampled on an
# even grid (every k-th row and column), which keeps the features' scale; features.22 of a 512 px guide (2,752) is
# whole
GUIDE_POSITIONS = 16384
MATCH_CHUNK = 2 ** 24  # the match's dot products computed at once (64 MB of float32), whatever the photo's size
# the least context around a tile; the default is the objective layer's receptive field when that is wider: a
# pixel's gradient reads every position whose field holds it, and their fields, so it reaches one field's side
OVERLAP = 64


@dataclass(frozen=True)
class DreamStep:
    """What `on_step` receives after every step: where the loop is and the step's score (a 0-dim tensor)."""

    frame: int
    octave: int  # 0 is the smallest
    step: int
    score: Tensor
    image: Tensor  # the current octave's image [1, C, h, w] (not a copy: read, do not modify)


@dataclass
class DreamResult:
    """The dreamed image [C, H, W] in [0, 1] (CPU, the photo's size), the zoom frames, and their provenance."""

    image: Tensor
    frames: list[Tensor]  # every frame made by this call (the image alone without zoom)
    initial_score: float  # the objective on the photo (on the first frame's start for a zoom)
    final_score: float  # the objective on the last image
    provenance: dict[str, str]
    interrupted: bool = False  # Ctrl-C: the last image holds the octaves finished so far
    frame_numbers: list[int] = field(default_factory=list)
    frame_scores: list[float] = field(default_factory=list)  # each zoom frame's objective (empty without zoom)

    def pil(self) -> Image.Image:
        """The dreamed image as a PIL image (RGB, or L for a 1-channel model)."""
        return to_pil(self.image)

    def numpy(self) -> np.ndarray:
        """The dreamed image as a float32 array [H, W, C] in [0, 1] (channels last, as NumPy and PIL lay it out)."""
        return self.image.detach().float().clamp(0, 1).permute(1, 2, 0).contiguous().cpu().numpy()

    def save(self, path: str | Path) -> Path:
        """Write the dreamed image as a PNG carrying the provenance and the final score, as `dreamlab dream` does.

        >>> dreamlab.dream("lenet-digits", "china", "conv2", octaves=1).save("china_dream.png")  # doctest: +SKIP
        """
        path = check_output_file(path)  # a name not ending in .png would hold PNG bytes under another format's name
        return save_png(self.image, path, {**self.provenance, "dreamlab:score": f"{self.final_score:.6g}"})

    def _repr_png_(self) -> bytes:
        """How Jupyter shows a result: the dreamed image."""
        return png_bytes(self.image)


def guided(layer: str, guide_features: Tensor, chunk: int = MATCH_CHUNK) -> Objective:
    """The guide objective: each position's features dotted with the guide feature it matches best.

    `guide_features` [C, M] are the guide's activations at `layer`, one column per position (google/deepdream's
    `objective_guide`). The match is chosen without gradient; the dot product is then maximized. The match scores
    positions x guide positions `chunk` numbers at a time (each row whole, so the best match is the same), which
    keeps memory bounded whatever the photo's size.
    """
    def scorer(acts, index: Tensor) -> Tensor:
        a = acts[layer].float().flatten(2)  # [B, C, N]
        g = guide_features.to(a.device)
        best = _best_matches(a.detach(), g, chunk)  # [B, N]
        matched = g.t()[best]  # [B, N, C]
        return (a.transpose(1, 2) * matched).sum(-1).mean(-1)

    return Objective(scorer, frozenset({layer}), f"guide@{layer}", (f"guide@{layer}",), per_position=True)


def _best_matches(features: Tensor, guide: Tensor, chunk: int) -> Tensor:
    """For features [B, C, N] and guide features [C, M]: the index of the guide column with the largest dot
    product, per position [B, N], computed on at most `chunk` scores at a time (at least one position's row)."""
    rows = max(1, chunk // max(1, guide.shape[1]))
    flat = features.transpose(1, 2)  # [B, N, C]
    return torch.cat([(flat[:, start:start + rows] @ guide).argmax(-1)
                      for start in range(0, flat.shape[1], rows)], dim=1)


def fit_photo(image: object, channels: int, name: str = "image") -> Tensor:
    """A photo [C,H,W] or [H,W] in [0,1], a PNG/JPEG path or a sample name (china, flower), as [1, channels, H, W]
    (RGB photos are greyed for 1-channel models)."""
    image = read_photo(image, name).detach().cpu()
    image = image[None] if image.dim() == 2 else image
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise DreamlabError(f"{name} must be [C,H,W] with 1 or 3 channels, got shape {list(image.shape)}"
                            f"{shape_hint(list(image.shape), name)}")
    return match_channels(image, channels).clamp(0, 1)[None].contiguous()


def octave_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """The size of each octave, the photo's first; a one-line error when the smallest gets too small."""
    if min(height, width) < MIN_SIDE:  # no number of octaves helps: the photo itself is too small
        raise DreamlabError(f"the photo is {width}x{height} px; DeepDream needs at least {MIN_SIDE} px a side: give a "
                            f"larger photo (or enlarge this one)")
    smallest = _shrunk(height, scale, octaves - 1), _shrunk(width, scale, octaves - 1)
    if min(smallest) < MIN_SIDE:  # checked before the list is made: octaves=10**9 is told, not built
        fit = 1 + int(math.log(min(height, width) / MIN_SIDE) / math.log(scale))
        raise DreamlabError(f"{octaves} octaves at scale {scale:.12g} shrink the {width}x{height} photo to "
                            f"{smallest[1]}x{smallest[0]}, below {MIN_SIDE} px a side; use octaves={fit} "
                            f"(--octaves {fit}){' or fewer' if fit > 1 else ''}, or a smaller octave_scale "
                            f"(--octave-scale)")
    return [(_shrunk(height, scale, k), _shrunk(width, scale, k)) for k in range(octaves)]


def _shrunk(side: int, scale: float, k: int) -> int:
    """`side` at octave k (divided by scale**k), rounded; 0 where scale**k is past a float's range."""
    try:
        return round(side / scale ** k)
    except OverflowError:
        return 0


def _resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    shrink = size[0] < image.shape[-2]
    return F.interpolate(image, size=size, mode="bilinear", antialias=shrink, align_corners=False)


class _Dreamer:
    """The model, objective and settings of one dream() call; `octaves(image)` dreams one image."""

    def __init__(self, model: nn.Module, objective: Objective, recipe: Recipe, device: torch.device, *,
                 octaves: int, octave_scale: float, steps: int, lr: float, jitter: int, tile: int | None,
                 overlap: int, on_step: Callable[[DreamStep], None] | None, progress: bool):
        self.model, self.objective, self.device = model, objective, device
        self.octaves, self.octave_scale, self.steps, self.lr, self.jitter = octaves, octave_scale, steps, lr, jitter
        self.tile, self.overlap, self.on_step, self.progress = tile, overlap, on_step, progress
        self.layers = sorted(objective.layers - {IMAGE})
        self.mean = torch.tensor(recipe.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(recipe.std, device=device).view(1, -1, 1, 1)
        self.recipe = recipe
        self.capture: Capture | None = None

    def score(self, crop: Tensor) -> tuple[Tensor, int]:
        """The objective of a crop and the positions of its first layer (see dream_tiles.tiled_gradient)."""
        acts = dict(self.capture.run((crop - self.mean) / self.std)) if self.layers else {}
        acts[IMAGE] = crop
        first = acts[self.layers[0]] if self.layers else crop
        value = self.objective(acts)
        if torch.is_grad_enabled() and not value.requires_grad:  # a dream step; else torch's raw RuntimeError
            raise no_gradient(self.objective.name)
        return value, math.prod(first.shape[2:]) if first.dim() > 2 else 1

    def check(self, image: Tensor, photo: Tensor, side: int | None = None) -> None:
        """Before dreaming: reused modules and missing units (one whole forward at the recipe's input size, which
        every model takes), the objective's checks of the image (the smallest octave, `image`), whether `photo` [1, C, H, W] needs tiles the objective cannot be split into, then
        whether the model takes the smallest octave's size (`image`) up to the objective's layers. `side`: check
        as if the recipe's input size were `side` (what the first error tells the user to set)."""
        with torch.no_grad():
            acts = self._whole_forward(image, photo, side)
            shapes = {name: act.shape for name, act in acts.items()}
            self.objective.check(shapes)
            try:  # and the image, as render passes it: the smallest octave is the smallest image scored
                self.objective.check({**shapes, IMAGE: image.shape})
            except DreamlabError as exc:
                if self.octaves == 1:
                    raise
                raise DreamlabError(f"{exc}; a dream scores the photo's smallest octave, that image, first: fewer "
                                    f"octaves (octaves=, --octaves) make it larger") from None
            self._check_tiles(acts, tuple(photo.shape[-2:]))
            self._check_octave(image, photo, side or self.recipe.input_size)

    def _whole_forward(self, image: Tensor, photo: Tensor, side: int | None) -> dict[str, Tensor]:
        """The objective's layers for `image` resized to `side` (None: the recipe's input size, where a model that
        rejects it is told the input_size it takes, with what check would refuse next at that size)."""
        size = side or self.recipe.input_size
        model_input = (_resize(image, (size, size)) - self.mean) / self.std
        try:
            return self.capture.run(model_input) if self.layers else {}
        except FORWARD_ERRORS as exc:
            if side is not None:
                raise
            unsized = unsized_module_error(self.recipe, model_input.shape, exc, self._takes, rendering=False,
                                           then=lambda fixed: self._next_refusal(image, photo, fixed))
            if unsized is None:
                raise
            raise unsized from None

    def _takes(self, size: int | tuple[int, int]) -> bool:
        """Whether the model runs the objective's layers on a grey input of `size`."""
        return takes_size(lambda grey: self.capture.run((grey - self.mean) / self.std), self.recipe.channels, size,
                          self.device)

    def _next_refusal(self, image: Tensor, photo: Tensor, side: int) -> str | None:
        """What check would refuse with the recipe's input size set to `side`, or None: the first error then gives
        every fix at once (ViT: its input_size, then the photo's size)."""
        try:
            self.check(image, photo, side)
        except DreamlabError as exc:
            return str(exc)
        except FORWARD_ERRORS:  # not a refusal that can be worded (memory): the first fix alone
            return None
        return None

    def _check_tiles(self, acts: dict[str, Tensor], photo_size: tuple[int, int]) -> None:
        """A photo dreamed in tiles needs an objective whose tiles' scores add up."""
        splits = self.objective.per_position and all(act.dim() == 4 for act in acts.values())
        if len(tiles(*photo_size, self.tile, self.overlap)) > 1 and not splits:
            height, width = photo_size
            raise DreamlabError(
                f"the {width}x{height} photo is larger than tile={self.tile} (--tile), so it is dreamed in tiles, whose "
                f"scores add up only for means over one layer's positions (a layer, a channel, --guide, sums "
                f"of these); {self.objective.name!r} is not one: pick such an objective, or dream in one piece "
                f"with tile={max(height, width)} (--tile {max(height, width)})")

    def _check_octave(self, image: Tensor, photo: Tensor, side: int) -> None:
        """The model must take the smallest octave (`image`); if not, say whether fewer octaves help, for a model
        whose input size is `side`."""
        try:
            self.score(image)
        except FORWARD_ERRORS as exc:  # torchvision's ViT asserts its input size
            if out_of_memory(exc):  # not a size the model rejects: said by dream()
                raise
            reason = first_line(exc)
            refused = self._refusal(photo, side)
            # past a logit a layer objective helps; a model that takes one size only (ViT) takes it everywhere
            needs = (f"objectives past a fixed-size layer (logit) need the model's {side}x{side} input: use a "
                     f"layer objective, or" if OUTPUT in self.objective.layers else
                     f"the model takes its {side}x{side} input only, for any layer:")
            if refused is not None:  # the photo's own size: no number of octaves helps
                height, width = photo.shape[-2:]
                raise DreamlabError(
                    f"{self.recipe.name} rejected the {width}x{height} photo itself ({refused}), so no number "
                    f"of octaves helps; {needs} resize the photo to {side}x{side} and dream it with "
                    f"octaves=1 (--octaves 1)") from None
            raise DreamlabError(f"{self.recipe.name} rejected a {image.shape[-1]}x{image.shape[-2]} octave "
                                f"({reason}) though it takes the photo's size; {needs} "
                                f"{'' if OUTPUT in self.objective.layers else 'use '}fewer octaves "
                                f"(octaves=1, --octaves 1, dreams the photo at its size only)") from None

    def _refusal(self, photo: Tensor, side: int) -> str | None:
        """Why the model cannot run the objective on the photo at its own size, or None where it can (the input
        size `side`, which `check` ran; a photo dreamed in tiles is assumed fine: past the tile check, its objective
        is a mean over a spatial layer's positions)."""
        if tuple(photo.shape[-2:]) == (side, side):
            return None
        if len(tiles(*photo.shape[-2:], self.tile, self.overlap)) > 1:
            return None
        try:
            self.score(photo.to(self.device))
        except FORWARD_ERRORS as exc:
            if out_of_memory(exc):
                raise
            return first_line(exc)
        return None

    def measure(self, image: Tensor) -> float:
        return float(tiled_score(self.score, image.to(self.device), tiles(*image.shape[-2:], self.tile, self.overlap)))

    def octaves_of(self, photo: Tensor, seed: int, frame: int,
                   frames: int) -> tuple[Tensor, tuple[int, int] | None]:
        """(the dreamed photo [1, C, H, W] on the CPU, None when it finished, or where Ctrl-C stopped it: (the
        octaves finished, the steps done in the next one)); `frames`: the zoom's frame count, 0 without zoom."""
        generator = torch.Generator().manual_seed(seed)  # on the CPU: the jitter is a pair of ints per step
        base = photo.to(self.device)
        sizes = octave_sizes(*base.shape[-2:], self.octaves, self.octave_scale)
        bases = [_resize(base, size) for size in sizes]
        state = _Octaves(image=bases[-1], detail=torch.zeros_like(bases[-1]))
        bar = self._octaves_bar(base, frame, frames)
        try:
            for octave, size in enumerate(reversed(sizes)):
                self._dream_octave(state, octave, bases[len(sizes) - 1 - octave], size, generator, frame, frames,
                                   bar)
        except KeyboardInterrupt:
            return (base + _resize(state.detail, sizes[0])).clamp(0, 1).cpu(), self._stopped_at(state)
        finally:
            if bar is not None:
                bar.close()
        return state.image.cpu(), None

    def _octaves_bar(self, base: Tensor, frame: int, frames: int):
        """The progress bar of one photo's (or zoom frame's) octaves, or None without progress."""
        size = f"{base.shape[-1]}x{base.shape[-2]}"
        what = f"dreaming frame {frame} of {frames} (0-based) at {size}" if frames else f"dreaming the photo at {size}"
        return progress_bar(self.octaves * self.steps, f"{what}: {counted(self.octaves, 'octave')} of "
                            f"{counted(self.steps, 'step')}") if self.progress else None

    def _dream_octave(self, state: _Octaves, octave: int, start: Tensor, size: tuple[int, int],
                      generator: torch.Generator, frame: int, frames: int, bar) -> None:
        """Dream one octave: its photo `start` plus the detail dreamed so far, then `steps` steps, into `state`."""
        state.octave, state.steps = octave, 0
        state.detail = _resize(state.detail, size)
        state.image = (start + state.detail).clamp(0, 1)
        parts = tiles(*size, self.tile, self.overlap)
        if bar is not None:
            where = f"frame {frame}, " if frames else ""
            bar.set_description(f"{where}octave {octave + 1}/{self.octaves}")
        for step in range(self.steps):
            state.image, score = self._dream_step(state.image, parts, generator)
            state.detail = state.image - start
            state.steps = step + 1
            if self.on_step is not None:
                self.on_step(DreamStep(frame, octave, step, score, state.image))
            if bar is not None:
                bar.update(1)
        if not bool(torch.isfinite(state.image).all()):  # one check per octave: no host sync per step
            kept = f" in frame {frame} (the frames before it are kept)" if frame else " and nothing saved"
            raise non_finite_error(f"the gradient of {self.objective.name!r}",
                                   f"in octave {octave + 1} of {self.octaves}", f"the dream was stopped{kept}")

    def _dream_step(self, image: Tensor, parts: list[Tile], generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One gradient-ascent step on the randomly rolled image: the new image and the step's score."""
        dy, dx = torch.randint(-self.jitter, self.jitter + 1, (2,), generator=generator).tolist()
        shifted = image.roll((dy, dx), (-2, -1))
        grad, score = tiled_gradient(self.score, shifted, parts)
        grad = grad.roll((-dy, -dx), (-2, -1))
        # google/deepdream's normalized step: the mean absolute change per step is lr. Its epsilon
        # (1e-8) swallowed whole steps of random-weight models (mean |grad| ~5e-10), so the floor
        # here only keeps an all-zero gradient from dividing by zero
        scale = grad.abs().mean().clamp_min(torch.finfo(grad.dtype).tiny)
        return (image + self.lr * (grad / scale)).clamp(0, 1), score

    def _stopped_at(self, state: _Octaves) -> tuple[int, int]:
        """Where Ctrl-C stopped the octaves: (the octaves finished, the steps done in the next one)."""
        if state.steps == self.steps:  # stopped after an octave's last step: that octave is finished
            return state.octave + 1, 0
        return state.octave, state.steps


@dataclass
class _Octaves:
    """Where a photo's octaves stand: the image, its detail over the octave's photo, and the steps done so far."""

    image: Tensor
    detail: Tensor
    octave: int = 0  # the octave under way, 0 the smallest
    steps: int = 0  # the steps done in it


def _memory_error(exc: BaseException, photo: Tensor, obj: Objective, recipe: Recipe, device: torch.device,
                  tile: int | None) -> DreamlabError:
    """The one line for a dream that ran out of memory: what ran out, how much was asked, and what uses less."""
    found = re.search(r"allocate ([0-9.]+) (bytes|[KMGT]iB)", str(exc))
    asked = ""
    if found:
        factor = {"bytes": 1, "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30, "TiB": 2 ** 40}[found[2]]
        asked = f" (one allocation of {float(found[1]) * factor / 1e9:.3g} GB)"
    where = "GPU memory" if device.type == "cuda" else f"{device.type} memory"
    height, width = photo.shape[-2:]
    later = (f"a later layer (the recipe's default, {recipe.default_layer}), "
             if recipe.default_layer and recipe.default_layer not in obj.layers else "a later layer, ")
    smaller = (f"a smaller tile (--tile N, tile=N in Python: below the photo's longer side, {max(height, width)} "
               f"px, it is dreamed in pieces)" if tile is None or tile >= max(height, width) else
               f"a smaller tile than {tile} (--tile N, tile=N in Python)")
    return DreamlabError(f"ran out of {where}{asked} dreaming {obj.name!r} on the {width}x{height} photo; try "
                         f"{later}{smaller}, or a smaller photo")


def _quantized(image: Tensor) -> Tensor:
    """The 8-bit image a PNG holds, so a frame read back from disk is exactly the frame that was made."""
    return (image * 255).round() / 255


@checked_keywords
def dream(model: nn.Module | str | LoadedModel, image: Tensor | str | Path, objective: Objective | str | None = None, *,
          recipe: Recipe | str | None = None, weights: str | Path | None = "default", octaves: int = 4,
          octave_scale: float = 1.4, steps: int = 10, lr: float = LR, jitter: int = 32,
          guide: Tensor | str | Path | None = None, tile: int | str | None = "auto", overlap: int | None = None,
          seed: int = 0,
          device: str | torch.device | None = None, zoom_frames: int = 0, zoom: float = ZOOM_DEFAULT,
          rotate: float = ROTATE_DEFAULT,
          start_frame: int = 0, on_step: Callable[[DreamStep], None] | None = None,
          on_frame: Callable[..., None] | None = None,
          on_start: Callable[[dict[str, str]], None] | None = None, progress: bool = False) -> DreamResult:
    """Dream on a photo [C,H,W] in [0,1] (or a PNG/JPEG path, or `china`/`flower`, scikit-learn's sample photos)
    at its own size and return it with its provenance.

    `objective`: a string (`inception4c`, `inception4c:97`, any objective of the grammar) or an Objective;
    default: the recipe's `default_layer` as a whole layer. `octaves` sizes, each `octave_scale` times smaller,
    get `steps` steps of size `lr` (mean absolute change in [0,1] units, at most 1; above 0.1 a DreamlabNote says
    the photo will soon be lost) with a random roll of up to `jitter`
    pixels. `guide`: an image [C,H,W] (or a path or sample name) whose features at the objective's layer the photo
    takes on (the objective must then be a whole layer). Photos whose longer side exceeds `tile` pixels are dreamed
    in tiles with `overlap` pixels of context (overlap None: the objective layer's receptive field, at least 64;
    rounded up to 32); tile 'auto' is 1024, or the smallest tile that keeps 128 px beside that context; a smaller
    tile than that is refused; None never tiles. `zoom_frames` N > 0 makes the endless zoom: frame 0 dreams the
    photo, frame i dreams frame i-1 magnified by `zoom` and turned by `rotate` degrees (either given without
    `zoom_frames` is refused); `start_frame` k resumes a zoom whose frame k-1 is `image`. `on_start(provenance)`
    gets the provenance before the first step (without the fields an interruption adds), `on_step` a DreamStep
    after every step, `on_frame(i, image)` every finished frame (with a third parameter, `on_frame(i, image,
    score)`: a zoom frame's objective as well). Ctrl-C returns what is done with `interrupted=True`. Same seed,
    same device: same pixels. The provenance names the photo and the guide (`photo_record`: the path as given,
    the sample name or 'tensor', and a sha256 of the file or of the pixels).
    """
    check_arguments(octaves=octaves, octave_scale=octave_scale, steps=steps, lr=lr, jitter=jitter,
                    zoom_frames=zoom_frames, start_frame=start_frame, seed=seed, zoom=zoom, rotate=rotate, tile=tile,
                    overlap=overlap)
    check_callbacks(on_start, on_step, on_frame, zoom_frames)
    pixels, guide_pixels, records = _read_photos(image, guide)
    module, recipe_obj, weights_desc, categories, owned = resolve_model(model, recipe, weights)
    obj = _objective(objective, recipe_obj, categories, module_names(module))
    _check_layers(obj, module, recipe_obj)
    photo = fit_photo(pixels, recipe_obj.channels)
    if guide is not None:  # checked before any work, as the photo is
        guide = fit_photo(guide_pixels, recipe_obj.channels, "guide")[0]
    dev = resolve_device(device)
    try:  # memory runs out in the match of a guide, or in a large photo's forward: said as such
        with prepared_model(module, dev, channels_last=False, owned=owned) as ready:
            obj, guide_name = _with_guide(ready, obj, guide, recipe_obj, dev)
            tile, overlap, tiled = _tiling(tile, overlap, max(photo.shape[-2:]),
                                           lambda: _context(ready, obj, recipe_obj))
            settings = _settings(octaves=octaves, octave_scale=octave_scale, steps=steps, lr=lr, jitter=jitter,
                                 tile=tile, overlap=overlap, tiled=tiled, guide_name=guide_name,
                                 zoom_frames=zoom_frames, zoom=zoom, rotate=rotate)
            provenance = {**_provenance(obj, recipe_obj, weights_desc, seed, photo, settings, dev), **records}
            if on_start is not None:
                on_start(dict(provenance))
            dreamer = _Dreamer(ready, obj, recipe_obj, dev, octaves=octaves, octave_scale=octave_scale,
                               steps=steps, lr=lr, jitter=jitter, tile=tile, overlap=overlap, on_step=on_step,
                               progress=progress)
            run = _checked_frames(dreamer, photo, seed=seed, zoom_frames=zoom_frames, zoom=zoom, rotate=rotate,
                                  start_frame=start_frame, on_frame=on_frame)
    except FORWARD_ERRORS as exc:
        if isinstance(exc, DreamlabError) or not out_of_memory(exc):
            raise
        raise _memory_error(exc, photo, obj, recipe_obj, dev, AUTO_TILE if tile == "auto" else tile) from None
    return _result(run, provenance, octaves=octaves, steps=steps, zoom_frames=zoom_frames, start_frame=start_frame)


def _with_guide(model: nn.Module, obj: Objective, guide: Tensor | None, recipe: Recipe,
                device: torch.device) -> tuple[Objective, str]:
    """(the objective, guided by `guide`'s features where one is given; the guide as the provenance names it)."""
    if guide is None:
        return obj, "none"
    if obj.name not in obj.layers:
        raise DreamlabError(f"a guide works with a whole-layer objective (e.g. "
                            f"{recipe.default_layer}), got {obj.name!r}")
    return _guide_objective(model, obj.name, guide, recipe, device), f"{obj.name} features"


def _settings(*, octaves: int, octave_scale: float, steps: int, lr: float, jitter: int, tile: int | None,
              overlap: int, tiled: bool, guide_name: str, zoom_frames: int, zoom: float,
              rotate: float) -> dict[str, object]:
    """The dream's settings as its provenance records them."""
    settings = {"octaves": octaves, "octave_scale": f"{octave_scale:g}", "steps": steps, "lr": f"{lr:g}",
                "jitter": jitter, "tile": tile or "none", "overlap": overlap if tiled else "none (one piece)",
                "guide": guide_name}
    if zoom_frames:
        settings.update(zoom_frames=zoom_frames, zoom=f"{zoom:g}", rotate=f"{rotate:g}")
    return settings


def _checked_frames(dreamer: _Dreamer, photo: Tensor, *, seed: int, zoom_frames: int, zoom: float, rotate: float,
                    start_frame: int, on_frame: Callable[..., None] | None) -> _Frames:
    """Check that the model takes the photo and its smallest octave (`_Dreamer.check`), then dream the frames."""
    with raw_size_errors(), Capture(dreamer.model, dreamer.layers) as dreamer.capture:  # sizes told in dream's words
        smallest = octave_sizes(*photo.shape[-2:], dreamer.octaves, dreamer.octave_scale)[-1]
        dreamer.check(_resize(photo, smallest).to(dreamer.device), photo)
        return _dream_frames(dreamer, photo, seed=seed, zoom_frames=zoom_frames, zoom=zoom, rotate=rotate,
                             start_frame=start_frame, on_frame=on_frame)


def _result(run: _Frames, provenance: dict[str, str], *, octaves: int, steps: int, zoom_frames: int,
            start_frame: int) -> DreamResult:
    """The DreamResult of the frames made; an interrupted one's provenance says how far it got."""
    if run.interrupted:  # what the image holds, beside the settings asked for (render records the steps run)
        provenance.update({f"dreamlab:{k}": str(v) for k, v in _stopped(
            run.stopped or (octaves, 0), octaves, steps, zoom_frames, start_frame, len(run.frames)).items()})
    last = run.frames[-1] if run.frames else run.current[0]
    return DreamResult(last, run.frames, run.initial, run.final, provenance, run.interrupted, run.numbers,
                       run.scores)


def _read_photos(image: Tensor | str | Path, guide: Tensor | str | Path | None
                 ) -> tuple[Tensor, Tensor | None, dict[str, str]]:
    """The photo's pixels, the guide's (None without one) and their provenance records, read before the model
    loads: a wrong path is told at once."""
    pixels = read_photo(image)
    records = photo_record(image, pixels)
    guide_pixels = None
    if guide is not None:
        guide_pixels = read_photo(guide, "guide")
        records.update(photo_record(guide, guide_pixels, "guide"))
    return pixels, guide_pixels, records


@dataclass
class _Frames:
    """What the frames of one dream() made (see _dream_frames)."""

    initial: float  # the objective on the first frame's start image
    final: float  # on the last image kept (nan where Ctrl-C cut off measuring it)
    current: Tensor  # the last image [1, C, H, W] dreamed, kept or not
    frames: list[Tensor]  # the finished frames [C, H, W]
    numbers: list[int]  # their frame numbers
    scores: list[float]  # a zoom's frame scores (empty without zoom)
    interrupted: bool
    stopped: tuple[int, int] | None  # where Ctrl-C stopped the octaves (see _Dreamer.octaves_of)


def _dream_frames(dreamer: _Dreamer, photo: Tensor, *, seed: int, zoom_frames: int, zoom: float, rotate: float,
                  start_frame: int, on_frame: Callable[..., None] | None) -> _Frames:
    """Dream the photo, or the zoom's frames from `start_frame` on (each the last one magnified and turned),
    measuring the objective before and after; Ctrl-C ends it with what is finished."""
    first = photo if start_frame == 0 else _quantized(zoom_rotate(photo, zoom, rotate))
    initial = dreamer.measure(first)
    if not math.isfinite(initial):
        raise non_finite_error(f"the score of {dreamer.objective.name!r}", "on the photo, before any step",
                               "the dream was stopped and nothing saved")
    frames, numbers_done, interrupted, current = [], [], False, first
    frame_scores: list[float] = []
    # a builtin without a signature is called as documented first, on_frame(i, image)
    scored = zoom_frames > 0 and on_frame is not None and takes_positional(on_frame, 3) is True
    stopped: tuple[int, int] | None = None
    for frame in range(start_frame, max(zoom_frames, 1)):
        if frame > start_frame:
            current = _quantized(zoom_rotate(current, zoom, rotate))
        out, stopped = dreamer.octaves_of(current, derived_seed(seed, frame), frame, zoom_frames)
        interrupted = stopped is not None
        current = _quantized(out)
        if interrupted and zoom_frames:
            break  # an unfinished zoom frame is not kept: a resumed run redoes it
        frames.append(current[0])
        numbers_done.append(frame)
        if zoom_frames:  # each frame's score, for its PNG as a plain dream's (the last: the final)
            try:
                frame_scores.append(dreamer.measure(current))
            except KeyboardInterrupt:  # the frame is done: keep it, without its score
                frame_scores.append(math.nan)
                interrupted = True
        if on_frame is not None:
            on_frame(frame, current[0], *(frame_scores[-1:] if scored else []))
        if interrupted:
            break
    try:
        final = frame_scores[-1] if frame_scores else dreamer.measure(current) if frames else initial
    except KeyboardInterrupt:  # the image is done: keep it, without its score
        final, interrupted = math.nan, True
        stopped = stopped or (dreamer.octaves, 0)
    return _Frames(initial, final, current, frames, numbers_done, frame_scores, interrupted, stopped)


def _provenance(obj: Objective, recipe: Recipe, weights: str, seed: int, photo: Tensor, settings: dict[str, object],
                device: torch.device) -> dict[str, str]:
    import torchvision

    from dreamlab.models.loading import weights_provenance

    return {"dreamlab:mode": "dream", "dreamlab:objective": obj.name, "dreamlab:model": recipe.name,
            **weights_provenance(weights),  # with random init's seed
            "dreamlab:recipe": recipe.name, "dreamlab:recipe_hash": recipe.hash(), "dreamlab:seed": str(seed),
            "dreamlab:size": f"{photo.shape[-2]}x{photo.shape[-1]}",
            **{f"dreamlab:{k}": str(v) for k, v in settings.items()},
            "dreamlab:device": device.type, "dreamlab:version": __version__, "torch:version": torch.__version__,
            "torchvision:version": torchvision.__version__}


def _tiling(tile: int | str | None, overlap: int | None, longer: int,
            context: Callable[[], int]) -> tuple[int | None, int, bool]:
    """(the tile, the overlap used, whether the photo is tiled) for a photo whose longer side is `longer` (the
    largest octave). `context()` measures the objective's receptive field, only where a photo is tiled."""
    limit = AUTO_TILE if tile == "auto" else tile
    if limit is None or longer <= limit:
        return limit, OVERLAP, False
    overlap = aligned(context() if overlap is None else overlap)
    needed = smallest_tile(overlap)
    if tile == "auto":
        limit = max(AUTO_TILE, needed)
        return limit, overlap, longer > limit
    if limit < needed:
        raise DreamlabError(
            f"tile={limit} (--tile {limit}) is too small for the {overlap} px of context each tile takes on every "
            f"side: a tile must keep {needed - 2 * overlap} px of its own beside "
            f"it, or the pieces multiply; give tile={needed} (--tile {needed}) or more, a smaller overlap "
            f"(--overlap N: seams then differ from one piece), or tile='auto' (--tile auto)")
    return limit, overlap, True


@dataclass(frozen=True)
class DreamTiling:
    """How dream() cuts a photo into tiles: the tile and context it uses (`_tiling`), whether the photo itself is
    tiled, and each octave's `dream_tiles.layout` (None: one piece) and size, the photo's first. The layouts, beside
    the other settings, decide the pixels: settings with the same layouts dream the same image."""

    tile: int | None
    overlap: int
    tiled: bool
    layouts: tuple[tuple[int, int] | None, ...]
    sizes: tuple[tuple[int, int], ...]  # (height, width) of each octave

    def described(self) -> str:
        """'one piece', or 'tiles of 320 px with 96 px of context'."""
        return f"tiles of {self.tile} px with {self.overlap} px of context" if self.tiled else "one piece"


def dream_tiling(model: nn.Module | str | LoadedModel, photo_size: tuple[int, int],
                 objective: Objective | str | None = None, *, octaves: int = 4, octave_scale: float = 1.4,
                 tile: int | str | None = "auto", overlap: int | None = None,
                 device: str | torch.device | None = None) -> DreamTiling:
    """The tiling dream() gives a photo of `photo_size` (height, width) with these settings. The objective's
    receptive field is measured (on `device`, as dream() measures it) only where the photo is tiled and
    `overlap` is None."""
    module, recipe, _, categories, owned = resolve_model(model, None)

    def context() -> int:
        obj = _objective(objective, recipe, categories, module_names(module))
        _check_layers(obj, module, recipe)
        with prepared_model(module, resolve_device(device), channels_last=False, owned=owned) as ready:
            return _context(ready, obj, recipe)

    limit, used, tiled = _tiling(tile, overlap, max(photo_size), context)
    sizes = tuple(octave_sizes(*photo_size, octaves, octave_scale))
    return DreamTiling(limit, used, tiled, tuple(layout(*size, limit, used) for size in sizes), sizes)


def _context(model: nn.Module, obj: Objective, recipe: Recipe) -> int:
    """The overlap a tile needs for the one-piece gradient: the widest receptive field among the objective's
    layers (see OVERLAP), at least OVERLAP."""
    from dreamlab.inspect.receptive import receptive_field

    # the output too: a map (hed-vgg16's edge map, whose logit:0 is edges:0) has a field; a class logit has none
    fields = (receptive_field(model, layer, recipe) for layer in sorted(obj.layers - {IMAGE}))
    return max([OVERLAP, *(field.side for field in fields if field is not None)])


def _stopped(stopped: tuple[int, int], octaves: int, steps: int, zoom_frames: int, start_frame: int,
             frames_done: int) -> dict[str, object]:
    """The provenance of an interrupted dream: how far it got. A zoom keeps finished frames only; a photo keeps
    the octaves finished and the steps of the octave that was stopped (whose detail it holds)."""
    if zoom_frames:
        frame = start_frame + frames_done
        where = (f"after {_all(zoom_frames, 'frame')}" if frame >= zoom_frames else
                 f"during frame {frame} of {zoom_frames} (0-based), which is not kept")
        return {"interrupted": where, "frames_done": frame}
    octave, done = stopped
    where = (f"after {_all(octaves, 'octave')}" if octave >= octaves else
             f"during octave {octave + 1} of {octaves}, after {done} of its {counted(steps, 'step')}")
    return {"interrupted": where, "octaves_done": min(octave, octaves), "last_octave_steps": done}


def _all(count: int, noun: str) -> str:
    """'the one octave', 'all 3 octaves'."""
    return f"the one {noun}" if count == 1 else f"all {counted(count, noun)}"


def _check_layers(obj: Objective, model: nn.Module, recipe: Recipe) -> None:
    """Refuse a layer the model does not have before any work, naming close matches, a layer to dream, and the
    command that lists them all."""
    names = module_names(model)
    for layer in sorted(obj.layers - {IMAGE, OUTPUT}):
        if layer not in names:
            example = f"dream a layer such as {recipe.default_layer} (the recipe's default); " \
                if recipe.default_layer in names else ""
            model_name = recipe.name if recipe.name in shipped_recipe_names() else "MODEL"
            raise unknown("layer", layer, names, hint=f"{example}`dreamlab layers {model_name}` lists them all "
                          f"(in Python: dreamlab.layer_table(model))")


def _objective(objective: Objective | str | None, recipe: Recipe, categories,
               layers: Sequence[str] | None = None) -> Objective:
    if objective is None:
        if not recipe.default_layer:
            # a module of your own, or a Recipe built in Python, has no name that `dreamlab layers` knows
            named = recipe.source or recipe.name in shipped_recipe_names() or recipe.is_torchvision
            where = f"`dreamlab layers {recipe.called}`" if named else "dreamlab.layer_table(model)"
            raise DreamlabError(f"recipe {recipe.called!r} names no default_layer; give an objective, e.g. a layer "
                                f"from {where}")
        return deepdream(recipe.default_layer)
    obj = parse_objective(objective, categories, layers) if isinstance(objective, str) else objective
    if not isinstance(obj, Objective):
        raise DreamlabError(f"objective must be a string or an Objective, got {type(objective).__name__}")
    if obj.batch_size != 1:
        raise DreamlabError(f"a dream takes one objective, and {obj.name!r} has {obj.batch_size} units; pick one "
                            f"unit (e.g. {obj.labels[0]}) or the whole layer")
    if obj.shifted is not None:  # a neuron: its position would not follow the roll and the octaves' rescaling
        raise DreamlabError(f"{obj.name!r} reads a neuron at a fixed position, which the dream's random roll and "
                            f"its octaves move each step; dream a channel or a layer, or optimize the neuron from "
                            f"the photo with `dreamlab render {shlex.quote(obj.name)} --init PHOTO` (API: render(..., "
                            f"init_image=))")
    return obj


def _guide_objective(model: nn.Module, layer: str, guide: Tensor, recipe: Recipe, device: torch.device) -> Objective:
    """The guided objective, with the guide's features at `layer` computed once (longer side <= GUIDE_SIDE)."""
    picture = fit_photo(guide, recipe.channels).to(device)
    height, width = picture.shape[-2:]
    shrink = min(1.0, GUIDE_SIDE / max(height, width))
    picture = _resize(picture, (max(MIN_SIDE, round(height * shrink)), max(MIN_SIDE, round(width * shrink))))
    mean = torch.tensor(recipe.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(recipe.std, device=device).view(1, -1, 1, 1)
    side = recipe.input_size
    with torch.no_grad(), raw_size_errors(), Capture(model, [layer]) as cap:
        # a Capture's first run goes through the whole model, which takes the recipe's size only (a logit layer)
        cap.run((_resize(picture, (side, side)) - mean) / std)
        try:
            features = cap.run((picture - mean) / std)[layer].float()
        except FORWARD_ERRORS:  # a model of one input size (ViT) sees the guide at that size
            features = cap.run((_resize(picture, (side, side)) - mean) / std)[layer].float()
    return guided(layer, guide_columns(features[0]))


def guide_columns(features: Tensor) -> Tensor:
    """A guide's features [C, H, W] (or [C, N]) as columns [C, M] with M <= GUIDE_POSITIONS: a larger map keeps
    every k-th row and column, k as small as that allows."""
    if features.dim() != 3 or features.shape[1] * features.shape[2] <= GUIDE_POSITIONS:
        return features.flatten(1)
    height, width = features.shape[1:]
    step = math.ceil(math.sqrt(height * width / GUIDE_POSITIONS))
    while math.ceil(height / step) * math.ceil(width / step) > GUIDE_POSITIONS:
        step += 1
    return features[:, ::step, ::step].flatten(1)
