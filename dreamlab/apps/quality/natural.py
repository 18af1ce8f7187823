"""The natural-image measure on hed-vgg16 (issue #12): renders of features.15/.22/.29 units against the best
128-px crops of real photos, the activation they keep under unseen perturbations, and their colours.

The photos are the two that ship with scikit-learn (`load_sample_images`: china.jpg, flower.jpg, 427x640),
cropped at 128 px with a stride of 32 px at three scales. A unit passes when its render's activation (the
channel's spatial mean, after the ReLU) beats every crop's and every other unit's render's (renders are
super-stimuli: another unit's render often beats the photos too), and it keeps at least half of it under the
worst of a 1-px blur, a 0.85x rescale and a 5-degree rotation (dreamlab.apps.quality.perturb).

Rendering VGG16 is heavy on a CPU: the default is 4 units per layer; `units_per_layer=64` is the full measure
(`dreamlab quality --fast`: 2 units per layer at 48 steps).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamlab.apps.quality.perturb import kept_activation, kept_fraction, rounded_down
from dreamlab.io import SAMPLE_PHOTOS, sample_photo

HED_MODEL = "hed-vgg16"
HED_LAYERS = ("features.15", "features.22", "features.29")
CROP, STRIDE = 128, 32
PHOTO_SCALES = (1.0, 0.6, 0.35)  # a 427-px photo at 0.35 is about one crop high
BEAT_GOAL = 0.95  # fraction of units that beat the best crop and keep >= KEPT of their activation
KEPT = 0.5
RENDER_BATCH = 16  # units optimized at once: bounds memory at --hed-units 64 (QUALITY.md's full run used it too)


def photos() -> list[Tensor]:
    """scikit-learn's sample photos, each [3, H, W] in [0, 1]."""
    return [sample_photo(name, "the natural-image measure") for name in SAMPLE_PHOTOS]


def photo_crops(size: int = CROP, stride: int = STRIDE, scales: Sequence[float] = PHOTO_SCALES) -> Tensor:
    """[N, 3, size, size]: every crop of every photo at every scale (area-resampled), on a `stride` grid."""
    crops = []
    for photo in photos():
        for scale in scales:
            h, w = round(photo.shape[1] * scale), round(photo.shape[2] * scale)
            if min(h, w) < size:
                continue
            img = F.interpolate(photo[None], size=(h, w), mode="area")[0] if scale != 1 else photo
            tiles = img.unfold(1, size, stride).unfold(2, size, stride)  # [3, ny, nx, size, size]
            crops.append(tiles.permute(1, 2, 0, 3, 4).reshape(-1, 3, size, size))
    return torch.cat(crops)


def channel_means(model: torch.nn.Module, images: Tensor, layers: Sequence[str], mean: Sequence[float],
                  std: Sequence[float], batch: int = 16) -> dict[str, Tensor]:
    """{layer: [N, C]} the spatial mean of every channel of `layers` for each image (no gradient)."""
    from dreamlab.optvis.capture import Capture

    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    out: dict[str, list[Tensor]] = {layer: [] for layer in layers}
    with torch.no_grad(), Capture(model, list(layers), stop_early=False) as cap:
        for chunk in images.split(batch):
            acts = cap.run((chunk - m) / s)
            for layer in layers:
                out[layer].append(acts[layer].float().flatten(2).mean(2))
    return {layer: torch.cat(v) for layer, v in out.items()}


def score_natural(model: torch.nn.Module, images: Tensor, layer: str, units: Sequence[int],
                  crop_best: Tensor, mean: Sequence[float], std: Sequence[float], fill: float = 0.5, *,
                  best_crops: Tensor | None = None) -> list[dict[str, Any]]:
    """Per unit: image i on unit units[i] against the best crop's activation `crop_best` [U] and against the
    other images (the other units' renders: `rival`), clean and kept under the unseen perturbations.

    The renders are super-stimuli: the render of one unit often drives a neighbouring unit harder than any photo
    does, so beating the photos alone would pass another unit's render. A unit passes when its own render beats
    the best crop *and* every other render on that unit (`rival`: the strongest of them, `rival_unit`: whose
    render it is), and keeps at least KEPT of its activation.
    With `best_crops` (crop i: unit i's best photo crop), each item also says how much of its activation that
    photo keeps under the same perturbations (`crop_kept`): a reference, not part of passing."""
    index = torch.as_tensor(list(units))
    if len(index) != images.shape[0]:
        raise ValueError(f"one image per unit: got {images.shape[0]} images for {len(index)} units")

    def score(x: Tensor) -> Tensor:
        return channel_means(model, x, [layer], mean, std)[layer][torch.arange(len(index)), index]

    on_units = channel_means(model, images, [layer], mean, std)[layer][:, index]  # [image, unit]
    rendered, worst = kept_activation(score, images, fill, clean=on_units.diagonal())
    kept = kept_fraction(rendered, worst)
    others = on_units.masked_fill(torch.eye(len(index), dtype=torch.bool), float("-inf"))
    rival, rival_index = others.max(0)  # -inf for a lone image
    crop_kept = kept_fraction(*kept_activation(score, best_crops, fill)) if best_crops is not None else None
    return [{"unit": f"{layer}:{u}", "rendered": round(float(rendered[i]), 3),
             "best_crop": round(float(crop_best[i]), 3), "ratio": round(float(rendered[i] / crop_best[i]), 3)
             if crop_best[i] > 0 else float("inf"), "rival": round(float(rival[i]), 3),
             "rival_unit": f"{layer}:{units[int(rival_index[i])]}" if len(index) > 1 else None,
             "kept": rounded_down(float(kept[i])),
             **({} if crop_kept is None else {"crop_kept": rounded_down(float(crop_kept[i]))}),
             "passed": bool(rendered[i] > crop_best[i] and rendered[i] > rival[i] and kept[i] >= KEPT)}
            for i, u in enumerate(units)]


def fragile_note(items: Sequence[dict[str, Any]]) -> str:
    """How much the units' best photo crops keep under the same perturbations, beside the renders: a unit whose
    best photo keeps less than KEPT responds to detail that a 1-px blur or a small rescale removes."""
    live = [it for it in items if it["best_crop"] > 0 and "crop_kept" in it]
    if not live:
        return "no unit has a photo crop that activates it"
    crop_kept = sorted(it["crop_kept"] for it in live)
    short = [it for it in live if it["kept"] < KEPT]
    both = [it for it in short if it["crop_kept"] < KEPT]
    head = (f"the units' best photo crops keep median {crop_kept[len(crop_kept) // 2]:.2f} (min {crop_kept[0]:.3f}) "
            f"of their activation under the same perturbations; ")
    if not short:
        return head + f"every live unit's render keeps >= {KEPT:g}"
    return (head + f"{len(both)} of the {len(short)} live unit(s) whose render keeps < {KEPT:g} have a best crop "
            f"that keeps < {KEPT:g} too"
            + (" (" + ", ".join(f"{it['unit']} {it['crop_kept']:.3f}" for it in both) + ")" if both else ""))


def rival_note(items: Sequence[dict[str, Any]]) -> str | None:
    """The units that fail only because another unit's render drives them harder than their own (units that
    share a preferred pattern: the two renders look alike); None when there are none."""
    beaten = [it for it in items if it["rendered"] > it["best_crop"] and it["kept"] >= KEPT
              and it["rendered"] <= it["rival"]]
    if not beaten:
        return None
    return (f"{len(beaten)} unit(s) beat the photos and keep >= {KEPT:g} but lose on their own channel to another "
            f"unit's render: " + ", ".join(f"{it['unit']} ({it['rival_unit']}'s render {it['rival']:g} against "
                                           f"its own {it['rendered']:g})" for it in beaten))


def colour_stats(images: Tensor) -> dict[str, float]:
    """Mean R, G, B and blue minus red of the mean colour, over a batch [N, 3, H, W]."""
    rgb = images.float().mean((0, 2, 3))
    return {"r": round(float(rgb[0]), 3), "g": round(float(rgb[1]), 3), "b": round(float(rgb[2]), 3),
            "blue_minus_red": round(float(rgb[2] - rgb[0]), 3)}


def measure_natural(units_per_layer: int = 4, steps: int | None = None, seed: int = 0, device: str = "cpu",
                    layers: Sequence[str] = HED_LAYERS, progress: bool = False, **render_settings: Any):
    """Render `units_per_layer` units (evenly spread over the channels) of each layer with the recipe, or with
    `render_settings` (e.g. optimizer='adam', fourier_decay=1.0 for lucid's), and score them on the photos.
    `steps` None: the recipe's. `progress`: a stderr line per phase and each render's progress.
    Returns (Measure, {layer: rendered images})."""
    from dreamlab.apps.quality.measures import Measure, say
    from dreamlab.models.loading import load_model
    from dreamlab.optvis.engine import render
    from dreamlab.optvis.objectives import channel

    start = time.perf_counter()
    loaded = load_model(HED_MODEL)
    recipe = loaded.recipe
    crops = photo_crops()
    if progress:
        say(f"natural: scoring {crops.shape[0]} photo crops on {', '.join(layers)} of {HED_MODEL}")
    crop_acts = channel_means(loaded.model, crops, layers, recipe.mean, recipe.std)
    items: list[dict[str, Any]] = []
    images: dict[str, Tensor] = {}
    for layer in layers:
        width = crop_acts[layer].shape[1]
        units = sorted({round(i * width / units_per_layer) for i in range(units_per_layer)})
        if progress:
            say(f"natural: {layer}, {len(units)} unit(s)")
        result = render(loaded, channel(layer, units), steps=steps, seed=seed, device=device,
                        batch_size=RENDER_BATCH, progress=progress, **render_settings)
        images[layer] = result.images.cpu()
        best, best_index = crop_acts[layer][:, units].max(0)
        items += score_natural(loaded.model, images[layer], layer, units, best, recipe.mean, recipe.std,
                               recipe.fill, best_crops=crops[best_index])
    n = len(items)
    hits = sum(it["passed"] for it in items)
    beat = sum(it["rendered"] > it["best_crop"] for it in items)
    beat_rivals = sum(it["rendered"] > it["rival"] for it in items)
    kept = sorted(it["kept"] for it in items)
    rendered_colour = colour_stats(torch.cat(list(images.values())))
    photo_colour = colour_stats(crops)
    notes = [f"{beat}/{n} beat the best of {crops.shape[0]} photo crops, {beat_rivals}/{n} every other unit's render "
             f"of their layer; kept under perturbation: median "
             f"{kept[n // 2]:.2f}, min {kept[0]:.3f}",
             f"mean colour of the renders (r, g, b) = ({rendered_colour['r']:.2f}, {rendered_colour['g']:.2f}, "
             f"{rendered_colour['b']:.2f}), blue - red {rendered_colour['blue_minus_red']:+.2f}; of the photo "
             f"crops ({photo_colour['r']:.2f}, {photo_colour['g']:.2f}, {photo_colour['b']:.2f}), "
             f"{photo_colour['blue_minus_red']:+.2f}"]
    notes.append(fragile_note(items))
    twins = rival_note(items)
    if twins:
        notes.append(twins)
    silent = [it for it in items if it["best_crop"] <= 0]
    if silent:  # a unit no photo crop turns on: its render "beats" 0 with any activation; listed, still counted
        notes.append(f"{len(silent)} unit(s) that no photo crop activates: "
                     + ", ".join(f"{it['unit']} (render {it['rendered']:g}, kept {it['kept']:.3f})" for it in silent)
                     + f"; the other units: {sum(it['passed'] for it in items if it['best_crop'] > 0)}/"
                       f"{n - len(silent)} pass")
    measure = Measure(
        name="natural", title="hed-vgg16 vs photo crops", figure=hits / n,
        figure_text=f"{hits}/{n} units beat the best crop and the other renders and keep >= {KEPT:g}",
        goal=BEAT_GOAL, goal_text=f">= {100 * BEAT_GOAL:.0f}% of units", passed=hits / n >= BEAT_GOAL,
        items=items, notes=notes, seconds=time.perf_counter() - start)
    return measure, images


__all__ = ["HED_LAYERS", "photos", "photo_crops", "channel_means", "score_natural", "fragile_note", "rival_note",
           "colour_stats", "measure_natural"]
