"""Dataset examples: the images that drive a unit hardest, cropped to what the unit saw, to set beside its render.

Each image is resized so that its shorter side is the recipe's input size (not cropped: a convolutional layer
reads it whole; a model that takes only its own size gets the centre square) and normalized as the recipe
says. A channel's score on an image is its strongest position; the image is cropped to that position's
receptive field (receptive.py). A logit (`layer="logit"`, its units by index or by class name) or a Linear layer
scores the whole image, shown whole. An image given twice (the same file, or the same content under another
name) is read once, so a unit's tiles are distinct images, each labelled with its name; the PNG records each
image's sha256 and each tile's image, map position and box in that image's own pixels. A copy at another size
or format (the same picture after resizing: 8x8 thumbnails within 0.05 everywhere) is left out too.

>>> ex = examples("hed-vgg16", "features.22", [0, 12], ["china", "flower"], top=2)
>>> [(e.image, round(e.score, 1)) for e in ex.units[0]]        # channel 0's two best images, best first
[('china', 24.2), ('flower', 20.6)]
>>> ex.save("features.22_examples.png")                         # a row per unit, each crop labelled
PosixPath('features.22_examples.png')
"""
from __future__ import annotations

import json
import math
import numbers
import re
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.errors import DreamlabError, ObjectiveSyntaxError, check_whole, checked_keywords, permission_denied
from dreamlab.inspect.features import normalize, shorter_side_to, to_channels
from dreamlab.inspect.receptive import Field, receptive_field
from dreamlab.inspect.source import check_layer, forward_error, model_and_recipe, provenance
from dreamlab.inspect.tiles import TileGrid, draw_labels
from dreamlab.io import SAMPLE_PHOTOS, centre_crop, image_record, is_sample_photo, read_photo
from dreamlab.models.recipe import Recipe
from dreamlab.models.summary import MAX_INPUT_SIZE
from dreamlab.optvis.capture import OUTPUT, Capture

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CROP_FILL = 0.5  # where a receptive field reaches past the image: mid-grey, so a crop keeps its scale
TILE = 96  # the side of each shown crop, in pixels
MAX_RESIZED_SIDE = 8192  # an image's longer side once resized: a long strip would hold gigabytes of activations


@dataclass(frozen=True)
class Example:
    """One image's best response of a unit: which image, the score, and the box [top, left, bottom, right) of
    the resized image that the unit saw (the whole image for a logit), with the crop itself [C, s, s]; the map
    `position` (y, x) it was read at (None for a logit), and `photo_box`, the part of the image as read (its own
    pixels) that the crop shows."""

    image: str
    score: float
    box: tuple[int, int, int, int]
    crop: Tensor
    position: tuple[int, int] | None = None
    photo_box: tuple[int, int, int, int] | None = None


@dataclass
class Examples:
    """The top examples of each unit (`units[i]`, best first, for unit `unit_ids[i]`) and their grid."""

    layer: str
    unit_ids: list[int]
    units: list[list[Example]]
    receptive_field: Field | None  # where map positions look in the resized images; None for a logit
    grid: TileGrid
    images: list[dict[str, str]] = dataclass_field(default_factory=list)  # name, sha256 (, same_as) of each input
    duplicates: dict[str, str] = dataclass_field(default_factory=dict)  # an image given again -> the one kept
    never_on: list[int] = dataclass_field(default_factory=list)  # units no image turned on: their rows are empty

    def save(self, path: str | Path) -> Path:
        """Write the grid as a PNG with its provenance; returns the path."""
        return self.grid.save(path)


def image_list(images: str | Path | Sequence[str | Path | Tensor]) -> list[tuple[str, str | Path | Tensor]]:
    """(name, source) of each image: a folder's PNG/JPEG files (sorted), or a list of paths, folders, sample
    names (china, flower) and [C, H, W] tensors in [0, 1]. A file is named by its file name, or by its path
    where two files share a name."""
    if isinstance(images, str) and not images.strip():  # Path('') would be the current folder
        raise DreamlabError("images is an empty path; give a folder of photos, or image paths")
    if isinstance(images, (str, Path, Tensor)):
        images = [images]
    try:
        items = list(images)
    except TypeError:
        raise DreamlabError(f"images must be a folder, or a list of image paths, sample names "
                            f"({', '.join(SAMPLE_PHOTOS)}) or tensors; got {type(images).__name__}") from None
    if not items:
        raise DreamlabError("no images given; give a folder of photos, or image paths")
    found: list[tuple[str, str | Path | Tensor]] = []
    for i, item in enumerate(items):
        if isinstance(item, Tensor):
            found.append((f"tensor {i}", item))
        elif isinstance(item, (str, Path)) and str(item).strip() and Path(item).is_dir():
            found += [(p.name, p) for p in _folder_images(Path(item))]
        else:
            found.append((Path(str(item)).name, item))
    names = [name for name, _ in found]
    return [(str(source) if names.count(name) > 1 and not isinstance(source, Tensor) else name, source)
            for name, source in found]


def _folder_images(folder: Path) -> list[Path]:
    """A folder's PNG and JPEG files, sorted; a folder without any is refused."""
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except PermissionError:
        raise permission_denied("folder", folder, folder=True) from None
    if not files:
        raise DreamlabError(f"no PNG or JPEG images in folder {str(folder)!r}; give a folder of photos, or image "
                            f"paths")
    return files


@checked_keywords
def examples(model: nn.Module | str | Path, layer: str, units: int | str | Sequence[int | str],
             images: str | Path | Sequence[str | Path | Tensor], *, top: int = 8, size: int | None = None,
             recipe: object = None, weights: str | Path | None = "default", out: str | Path | None = None) -> Examples:
    """The `top` images of `images` that drive each of `units` of `layer` hardest (see the module's docstring);
    `size`: the images' shorter side (default: the recipe's input size; a fixed-size model takes only that).
    The units of `layer="logit"` may be class names too ("tabby", "tiger cat"), as `render` reads `logit:tabby`;
    `weights` is as `render` takes it ("default", "none" or None for random init, a weights name or a file)."""
    from dreamlab.models.prepare import model_device, prepared_model, raw_size_errors

    check_layer(layer)
    top = check_whole("top", top, 1, flag="--top", hint=" (how many images per unit)")
    if size is not None:  # the flag in both of check_whole's lines (it names it only for a value below `low`)
        size = check_whole("size (--size)", size, 8, MAX_INPUT_SIZE, hint=" (the images' shorter side)")
    wanted = _wanted_units(units, layer)
    # before the model loads; decoded one at a time below, each distinct image once
    sources, records, duplicates = _distinct(checked_images(images))
    module, rec, described, categories = model_and_recipe(model, recipe, weights)
    unit_ids = [u for unit in wanted for u in (class_units(unit, categories, rec.name) if isinstance(unit, str)
                                                else [unit])]
    device = model_device(module) or torch.device("cpu")
    with prepared_model(module, device, channels_last=False, owned=False) as ready:
        failed = _probe(ready, rec, device)
        field, has_maps = None, False
        # a size the model rejects is told by forward_error below, in the words of examples
        with torch.no_grad(), raw_size_errors(), Capture(ready, [layer]) if failed is None else nullcontext() as cap:
            side, whole = _input_side(cap, rec, size, device, failed)
            best = _Best(len(unit_ids), top)
            if failed is None:
                has_maps, failed = _score_images(cap, best, layer, unit_ids, sources, records, duplicates, rec,
                                                 side, whole, device)
        if failed is not None:  # the hooks are gone: the check runs the model again
            error = forward_error(ready, rec, failed[1], failed[0])
            if error is None:
                raise failed[0]
            raise error from None
        if has_maps:  # a logit or a Linear layer sees the whole image: no gradients to probe
            field = receptive_field(ready, layer, rec)
    chosen = _best_crops(best, sources, rec, side, whole, field, len(unit_ids))
    text = {**provenance(module, rec, described, layer), "dreamlab:units": ",".join(map(str, unit_ids)),
            **_classes(layer, unit_ids, categories), "dreamlab:top": str(top), "dreamlab:size": str(side),
            "dreamlab:crop": "none (shorter side to the size)" if whole else "shorter side to the size, centre square"}
    return _finish(layer, unit_ids, chosen, field, text, records, duplicates, out)


_Failure = tuple[BaseException, torch.Size]  # a forward that failed, and the shape of its input


def _probe(model: nn.Module, rec: Recipe, device: torch.device) -> _Failure | None:
    """One forward of a grey image of the recipe's size: None where it runs, else why it failed. A caller's
    fixed-size module without a recipe fails here: said in one line by examples()."""
    from dreamlab.models.prepare import FORWARD_ERRORS

    grey = torch.full((1, rec.channels, rec.input_size, rec.input_size), 0.5, device=device)
    try:
        with torch.no_grad():
            model(grey)
    except FORWARD_ERRORS as exc:
        return exc, grey.shape
    return None


def _input_side(cap: Capture | None, rec: Recipe, size: int | None, device: torch.device, failed: _Failure | None
                ) -> tuple[int, bool]:
    """The images' shorter side as the model reads them, and whether it reads them whole: a fixed-size model
    (a Linear layer after the convolutions) gets the centre square of each image, at its own size only."""
    from dreamlab.models.prepare import takes_size

    side = rec.input_size
    whole = failed is None and takes_size(cap.run, rec.channels, (side, side + side // 3 + 1), device)
    side = size or rec.input_size
    if failed is None and not whole and side != rec.input_size:
        raise DreamlabError(f"{rec.name} takes {rec.input_size}-pixel images only, not size (--size) {side}; "
                            f"leave size out, or give {rec.input_size}")
    return side, whole


def _score_images(cap: Capture, best: _Best, layer: str, unit_ids: list[int],
                  sources: list[tuple[str, str | Path | Tensor]], records: list[dict[str, str]],
                  duplicates: dict[str, str], rec: Recipe, side: int, whole: bool,
                  device: torch.device) -> tuple[bool, _Failure | None]:
    """Run each image through the model once, adding each unit's score and map position to `best`; a picture
    already seen at another size or format is recorded in `duplicates` and `records` instead. Returns whether
    the layer has maps, and the forward that failed (which ends the scan), or None."""
    from dreamlab.models.prepare import FORWARD_ERRORS

    model_input = lambda name, source: _model_input(read_photo(source), rec, side, whole, name)[0]  # noqa: E731
    has_maps = False
    thumbnails: list[tuple[str, Tensor]] = []
    for i, (name, source) in enumerate(sources):
        resized = model_input(name, source)
        again = _same_picture(name, resized, thumbnails)
        if again is not None:  # a copy at another size or format would fill a second tile of each row
            duplicates[name] = again
            next(r for r in records if r["name"] == name).update(same_as=again, same_picture=ALIKE)
            continue
        x = normalize(resized, rec).to(device)
        try:
            act = cap.run(x)[layer][0].float().cpu()
            if act.dim() == 2:  # tokens [D, N]: a unit's score is its mean over the tokens, as render's
                act = act.mean(1)
        except FORWARD_ERRORS as exc:  # told once the hooks are gone (the check runs the model again)
            return has_maps, (exc, x.shape)
        if i == 0:
            _check_units(act, layer, unit_ids)
            has_maps = act.dim() == 3
        if act.dim() == 1:  # a logit or a vector layer: the whole image
            best.add(i, act[unit_ids], torch.zeros(len(unit_ids), dtype=torch.long), 1)
        else:
            maps = act[unit_ids].flatten(1)
            values, index = maps.max(1)
            # a map that is 0 everywhere (a unit this image leaves off) is no example: argmax would pick
            # the top-left corner and show it as one
            off = (maps == 0).all(1)
            best.add(i, values.masked_fill(off, -math.inf), index, act.shape[-1])
    return has_maps, None


def _best_crops(best: _Best, sources: list[tuple[str, str | Path | Tensor]], rec: Recipe, side: int,
                whole: bool, field: Field | None, units: int) -> list[list[Example]]:
    """Each unit's best examples as crops (a row per unit, best first), each image that holds one read again."""
    kept = best.image[best.score > -math.inf]
    shown = {}
    for i in sorted(set(kept.tolist()) - {-1}):
        photo = read_photo(sources[i][1])
        x, placement = _model_input(photo, rec, side, whole)
        shown[i] = x[0], _Placement(*placement, *photo.shape[-2:])
    return [[_example(sources[i][0], score, *shown[i], position, field)
             for i, score, position in best.row(u) if score > -math.inf] for u in range(units)]


def _wanted_units(units: object, layer: str) -> list[int | str]:
    """`units` as a list of channel numbers, or (for the logit) class names too, refused in one line otherwise."""
    wanted = [units] if isinstance(units, (numbers.Integral, str)) else units
    try:
        wanted = list(wanted)
    except TypeError:
        wanted = []
    names = layer == OUTPUT
    for unit in wanted or [None]:
        if isinstance(unit, str) and not names:
            raise DreamlabError(f"unit {unit!r} is a name, and the units of layer {layer!r} are channel numbers, "
                                f"like [0, 12]; class names go with layer 'logit' (logit:tabby on the command "
                                f"line)")
        number = isinstance(unit, numbers.Integral) and not isinstance(unit, bool) and unit >= 0
        if not number and not (isinstance(unit, str) and unit.strip()):
            names_too = " or class names, like ['tabby']" if names else ""
            raise DreamlabError(f"units must be channel numbers >= 0, like [0, 12] or range(8){names_too}; got "
                                f"{units!r}"[:200])
    return [unit if isinstance(unit, str) else int(unit) for unit in wanted]


_BARE = re.compile(r"[A-Za-z_0-9][A-Za-z_0-9.]*|\d+(-\d+)?(,\d+(-\d+)?)*|'[^']*'|\"[^\"]*\"")  # needs no quotes


def class_units(name: str, categories: Sequence[str] | None, model: str) -> list[int]:
    """The logit indices that `name` stands for, read as render reads `logit:NAME` (tabby, tiger_cat, 'tiger cat',
    or an index list such as 281,285, or a list of both: tabby,285,'tiger cat')."""
    name = name.strip()
    if not categories and not re.fullmatch(r"[\d,-]+", name):
        raise DreamlabError(f"class name {name!r} given, but {model} has no class names; give a class index, like "
                            f"logit:3")
    quote = "'" if "'" not in name else '"'
    written = name if _BARE.fullmatch(name) else f"{quote}{name}{quote}"
    if written != name and "," in name:  # a list (tabby,285,'tiger cat') as render reads it, else one name
        try:
            return _logit_units(name, categories)
        except ObjectiveSyntaxError:
            pass
    return _logit_units(written, categories)


def _logit_units(written: str, categories: Sequence[str] | None) -> list[int]:
    from dreamlab.optvis.grammar import parse_objective

    return [int(label.removeprefix(f"{OUTPUT}:")) for label in parse_objective(f"{OUTPUT}:{written}",
                                                                              categories).labels]


def _classes(layer: str, unit_ids: list[int], categories: Sequence[str] | None) -> dict[str, str]:
    """The class names of a logit's units, where the model has them, for the provenance."""
    if layer != OUTPUT or not categories or max(unit_ids) >= len(categories):
        return {}
    return {"dreamlab:classes": " | ".join(f"{u}={categories[u]}" for u in unit_ids)}


def _distinct(sources: list[tuple[str, str | Path | Tensor]]
              ) -> tuple[list[tuple[str, str | Path | Tensor]], list[dict[str, str]], dict[str, str]]:
    """The sources with each content once (by sha256 of a file, or of a tensor's or sample photo's pixels), the
    records (image_record) of all, a repeat's `same_as` naming the image it repeats, and each repeat's name
    with that image's name."""
    kept, records, seen, duplicates = [], [], {}, {}
    for name, source in sources:
        pixels = read_photo(source) if isinstance(source, Tensor) or is_sample_photo(source) else None
        record = image_record(name, source, pixels)
        key = record["sha256"], record["sha256_of"]
        if key in seen:
            duplicates[name] = record["same_as"] = seen[key]
        else:
            seen[key] = name
            kept.append((name, source))
        records.append(record)
    return kept, records, duplicates


# two model inputs of one shape whose 8x8 thumbnails are this close in every block and channel are one picture (a
# resized or re-encoded copy): JPEG and resampling errors average out over a block (0.03 for a half-size JPEG of a
# sharp-edged 32 px image), while distinct pictures differ somewhere (a 2 px shift of a square: 0.17)
THUMBNAIL, ALIKE_GAP = 8, 0.05
ALIKE = f"its {THUMBNAIL}x{THUMBNAIL} thumbnail within {ALIKE_GAP:g} of that image's everywhere (another size or format)"


def _same_picture(name: str, resized: Tensor, seen: list[tuple[str, Tensor]]) -> str | None:
    """The name of an earlier image that `resized` (a model input [1, C, h, w]) is a copy of, or None (then it is
    added to `seen`)."""
    size = (THUMBNAIL, THUMBNAIL)
    thumbnail = torch.cat([F.adaptive_avg_pool2d(resized.float().cpu(), size).flatten(),
                           torch.tensor(resized.shape[-2:], dtype=torch.float32)])
    for earlier, other in seen:
        same_shape = bool(((other[-2:] - thumbnail[-2:]).abs() <= 1).all())  # sides rounded apart by a pixel
        if same_shape and float((other[:-2] - thumbnail[:-2]).abs().max()) < ALIKE_GAP:
            return earlier
    seen.append((name, thumbnail))
    return None


class _Best:
    """The `top` best (score, image, map position) of each unit, kept as the images stream past (ties: the
    earlier image first)."""

    def __init__(self, units: int, top: int):
        self.score = torch.full((units, 0), -math.inf)
        self.image = torch.zeros((units, 0), dtype=torch.long)
        self.position = torch.zeros((units, 0), dtype=torch.long)  # flat index into the map
        self.width = torch.zeros((units, 0), dtype=torch.long)  # of that image's map
        self.top = top

    def add(self, image: int, scores: Tensor, positions: Tensor, width: int) -> None:
        n = scores.shape[0]
        score = torch.cat([self.score, scores[:, None]], 1)
        order = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :self.top]
        self.score = score.gather(1, order)
        self.image = torch.cat([self.image, torch.full((n, 1), image)], 1).gather(1, order)
        self.position = torch.cat([self.position, positions[:, None]], 1).gather(1, order)
        self.width = torch.cat([self.width, torch.full((n, 1), width)], 1).gather(1, order)

    def row(self, unit: int) -> list[tuple[int, float, tuple[int, int]]]:
        """(image, score, (y, x) on the map) of the unit's best images, best first."""
        return [(int(i), float(s), divmod(int(p), int(w))) for i, s, p, w in
                zip(self.image[unit], self.score[unit], self.position[unit], self.width[unit])]


def checked_images(images: str | Path | Sequence[str | Path | Tensor]) -> list[tuple[str, str | Path | Tensor]]:
    """`image_list(images)`, each image checked (a file by its header: decoding waits for its turn)."""
    sources = image_list(images)
    for _, source in sources:
        _check_readable(source)
    return sources


def _check_readable(source: object) -> None:
    """A path that names a readable image (its header only: the pixels are decoded when the model reads it), a
    sample name, or an image tensor; anything else is refused in one line."""
    from PIL import Image

    if isinstance(source, Tensor) or is_sample_photo(source):
        read_photo(source)
        return
    if not isinstance(source, (str, Path)):
        read_photo(source)  # says what images may be
    path = Path(source)
    if not path.exists() and path.suffix.lower() not in IMAGE_SUFFIXES:  # a folder as likely as a file
        raise DreamlabError(f"no such file or folder {str(source)!r}; images are folders of PNG/JPEG photos, image "
                            f"files, or {' / '.join(SAMPLE_PHOTOS)} (scikit-learn's sample photos)")
    if not path.is_file():
        read_photo(path)  # the one-line "no such file"
    try:
        with Image.open(path) as img:
            img.verify()
    except PermissionError:
        raise permission_denied("image", path) from None
    except Exception as exc:  # PIL raises many kinds for a damaged or foreign file
        reason = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise DreamlabError(f"cannot read image {str(path)!r}: {reason}; give a PNG or JPEG file") from None


def _model_input(photo: Tensor, recipe: Recipe, side: int, whole: bool,
                 name: str = "an image") -> tuple[Tensor, tuple[int, int, int, int]]:
    """A photo [C, H, W] as the model reads it, before normalization: [1, C', h, w] with the shorter side
    `side`, or the centre square for a model that takes only its own size; with where that input lies in the
    resized photo (top, left offsets and the resized height, width). A photo whose longer side would exceed
    MAX_RESIZED_SIDE (a long strip) is refused, naming `name`."""
    h, w = photo.shape[-2:]
    longer = round(max(h, w) * side / min(h, w))
    if longer > MAX_RESIZED_SIDE:
        raise DreamlabError(f"{name} is {w}x{h} pixels: with its shorter side at {side} it would be {longer} px "
                            f"long (at most {MAX_RESIZED_SIDE}); crop it to a less extreme shape, or leave it out")
    resized = shorter_side_to(to_channels(photo, recipe), side)
    x = resized if whole else centre_crop(resized, (side, side))
    h, w = resized.shape[-2:]
    return x, ((h - x.shape[-2]) // 2, (w - x.shape[-1]) // 2, h, w)


@dataclass(frozen=True)
class _Placement:
    """Where a model input lies in its photo: its offset in the resized photo, that photo's size, the photo's."""

    top: int
    left: int
    resized_h: int
    resized_w: int
    photo_h: int
    photo_w: int

    def photo_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box [top, left, bottom, right) of the input in the photo's own pixels, cut to the photo: every
        photo pixel the box overlaps (start rounded down, end up), so a box never comes out empty, even on a
        photo smaller than the model input."""
        top, left, bottom, right = box

        def span(start: int, end: int, offset: int, photo: int, resized: int) -> tuple[int, int]:
            lo = (start + offset) * photo // resized  # integer floor and ceil: no float rounding at whole pixels
            hi = -(-(end + offset) * photo // resized)
            return min(max(lo, 0), photo), min(max(hi, 0), photo)

        y0, y1 = span(top, bottom, self.top, self.photo_h, self.resized_h)
        x0, x1 = span(left, right, self.left, self.photo_w, self.resized_w)
        return y0, x0, y1, x1


def _check_units(act: Tensor, layer: str, unit_ids: list[int]) -> None:
    if act.dim() not in (1, 3):
        raise DreamlabError(f"layer {layer!r} outputs shape {list(act.shape)}: examples need channels [C] or "
                            f"maps [C, H, W]; `dreamlab layers MODEL` lists shapes")
    bad = [u for u in unit_ids if u >= act.shape[0]]
    if bad:
        raise DreamlabError(f"unit {bad[0]} is out of range for layer {layer!r} ({act.shape[0]} channels: valid "
                            f"0-{act.shape[0] - 1})")


def _example(name: str, score: float, image: Tensor, placement: _Placement, position: tuple[int, int],
             field: Field | None) -> Example:
    """The crop of `image` [C, H, W] a unit saw at map `position`: its receptive field, grey past the edges (the
    whole image, centred in a square, for a layer without maps)."""
    c, h, w = image.shape
    if field is None:
        side = max(h, w)
        top, left = (h - side) // 2, (w - side) // 2
    else:
        top, left, bottom, _ = field.box(*position)
        side = bottom - top
    canvas = torch.full((c, side, side), CROP_FILL)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + side, h), min(left + side, w)
    canvas[:, y0 - top:y1 - top, x0 - left:x1 - left] = image[:, y0:y1, x0:x1]
    box = (top, left, top + side, left + side)
    return Example(name, score, box, canvas, None if field is None else position, placement.photo_box(box))


def example_tiles(row: Sequence[Example], columns: int, label: str = "") -> Tensor:
    """One unit's crops as labelled RGB tiles [columns, 3, TILE, TILE] (`label` before each score at the top, the
    image's name at the bottom), blank white where the unit has fewer examples than `columns`."""
    crops = [F.interpolate(e.crop[None], size=(TILE, TILE), mode="bilinear", antialias=True,
                           align_corners=False)[0].clamp(0, 1).expand(3, -1, -1) for e in row[:columns]]
    tiles = draw_labels(draw_labels(torch.stack(crops), [f"{label}{e.score:.3g}" for e in row[:columns]]),
                        [e.image for e in row[:columns]], bottom=True) if crops else torch.ones(0, 3, TILE, TILE)
    return torch.cat([tiles, torch.ones(columns - len(crops), 3, TILE, TILE)])


NEVER_ON = "no photo turns it on"  # the tile of a unit whose map is 0 everywhere on every image
NEVER_ON_FILL = 0.8  # light grey: apart from the white of missing tiles and the mid-grey past a crop's edges


def never_on_tile(label: str) -> Tensor:
    """The one tile [1, 3, TILE, TILE] of a unit that no image turned on: grey, `label` in the corner as on
    other tiles, and NEVER_ON in the middle (in two centred lines, as one does not fit a tile)."""
    from PIL import Image, ImageDraw, ImageFont

    tile = draw_labels(torch.full((1, 3, TILE, TILE), NEVER_ON_FILL), [label.rstrip(": ")])
    image = Image.fromarray((tile[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    head, tail = NEVER_ON.split(" turns ")
    draw.multiline_text((TILE / 2, TILE / 2), f"{head}\nturns {tail}", fill=(0, 0, 0), font=font, anchor="mm",
                        align="center")
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255


def _tile_record(example: Example) -> dict[str, object]:
    """Where a tile comes from, for the provenance: image, score, map position, box in the model input and in
    the image's own pixels."""
    return {"image": example.image, "score": float(f"{example.score:.6g}"),
            "position": list(example.position) if example.position is not None else None,
            "box": list(example.box), "photo_box": list(example.photo_box) if example.photo_box else None}


def _finish(layer: str, unit_ids: list[int], chosen: list[list[Example]], field: Field | None,
            text: dict[str, str], records: list[dict[str, str]], duplicates: dict[str, str],
            out: str | Path | None) -> Examples:
    columns = max(1, max(len(row) for row in chosen))  # a row is short where photos left its unit off
    never_on = [unit for unit, row in zip(unit_ids, chosen) if not row]
    tiles = torch.cat([example_tiles(row, columns, f"{unit}: ") if row else
                       torch.cat([never_on_tile(f"{unit}: "), torch.ones(columns - 1, 3, TILE, TILE)])
                       for unit, row in zip(unit_ids, chosen)])
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    text = {**text, "dreamlab:receptive_field": str(field.side) if field else "whole image",
            **({"dreamlab:receptive_stride": "x".join(f"{s:g}" for s in field.stride)} if field else {}),
            "dreamlab:images": json.dumps(records, **compact),
            "dreamlab:examples": " | ".join(",".join(f"{e.image}={e.score:.6g}" for e in row) for row in chosen),
            "dreamlab:example_sources": json.dumps([[_tile_record(e) for e in row] for row in chosen], **compact),
            **({"dreamlab:never_on": ",".join(map(str, never_on))} if never_on else {}),
            "dreamlab:order": "a row per unit, best first, each image once a row; a blank tile where fewer photos "
                              "turned the unit on (its map 0 everywhere); a unit no photo turned on (dreamlab:"
                              f"never_on): one grey tile saying '{NEVER_ON}'; boxes are [top, left, bottom, right): "
                              "box in the resized model input, photo_box in the image as read"}
    grid = TileGrid(tiles, columns=columns, padding=2, text=text)
    result = Examples(layer, unit_ids, chosen, field, grid, records, duplicates, never_on)
    if out is not None:
        result.save(out)
    return result
