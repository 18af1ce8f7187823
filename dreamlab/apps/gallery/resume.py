"""Resuming a gallery: the settings each unit's record keeps, and the checks that refuse a folder whose units
this run would not render alike (another scheme, settings, options or precision), or note what differs slightly
(batch size, device, --compile)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from dreamlab.apps.gallery.naming import ANOTHER_OUT, OVERWRITE
from dreamlab.errors import DreamlabError
from dreamlab.models.loading import WEIGHTS_SEED, LoadedModel, weights_provenance

# must match to resume; weights_seed is random init's seed (None for loaded weights), absent from older records
SETTING_KEYS = ("recipe", "recipe_hash", "weights", "weights_seed", "steps", "size", "seed", "diversity",
                "diversity_weight")
RECORD_DEFAULTS = {"diversity": 1}  # what a record written before the key existed meant
# render's optimization options (--param ...), recorded as the unit's layer used them (fourier_decay only with the
# Fourier parameterization, the one it shapes); must match to resume. A record without them (made before gallery
# took them) was rendered with its layer's recipe values
OPTION_KEYS = ("param", "optimizer", "lr", "fourier_decay", "transforms", "alpha", "alpha_weight")
# what a newer record without the key meant: opaque renders (alpha is recorded only where it is on)
OPTION_DEFAULTS = {"alpha": False}
# How a unit is rendered, recorded as `scheme`: bump it when the same settings give a unit another image, so that
# a folder of the old scheme is refused instead of mixed with new units. 1: each unit its own objective
# (`conv2:25`; PNGs without dreamlab:unit_index); 2: unit `channel` of the layer's whole channel list.
RENDER_SCHEME = 2
SCHEMES = {1: "each unit rendered as its own objective", 2: "each unit its channel of the layer's whole channel list"}


def check_records(records: Any, loaded: LoadedModel, layer_steps: dict[str, int], size: int, seed: int,
                  diversity: int, diversity_weight: float | None, precision: str, out: Path) -> None:
    """Refuse a folder whose units were rendered by another scheme, with other settings or at another precision."""
    _check_scheme(records, out)
    _check_settings(records, loaded, layer_steps, size, seed, diversity, diversity_weight, out)
    _check_precision(records, precision, out)


def check_options(records: Any, layer_options: dict[str, dict[str, Any]],
                  recipe_options: dict[str, dict[str, Any]], out: Path) -> None:
    """Refuse a folder whose units were rendered with another --param, --optimizer, --lr, --fourier-decay or
    --transforms (a record without them: its layer's recipe values, which it was rendered with; a newer record
    leaves out only a fourier_decay that its parameterization does not use)."""
    for record in records:
        layer = record["layer"]
        older = "param" not in record
        for key in OPTION_KEYS:
            found = record.get(key, recipe_options[layer][key] if older else OPTION_DEFAULTS.get(key))
            expected = layer_options[layer][key]
            if found != expected:
                flag = _as_flag(key, found)
                raise DreamlabError(
                    f"{str(out)!r} holds units made with {key}={found!r} ({flag}), this run has "
                    f"{key}={expected!r}; pass {key}={found!r} ({flag}) to match them, or use {ANOTHER_OUT}, "
                    f"or {OVERWRITE} to replace them")


def _as_flag(key: str, value: Any) -> str:
    """How the command line gives `key`=`value`: '--lr 0.05', '--alpha', 'no --alpha'."""
    flag = f"--{key.replace('_', '-')}"
    if isinstance(value, bool):
        return flag if value else f"no {flag}"
    return f"{flag} {value}"


def warn_batch_sizes(records: Any, batch_size: int, out: Path, log: Callable[[str], None]) -> None:
    """A resume with another --batch-size is allowed but said: floating-point rounding depends on the batch size
    (on CPUs too), so its units may differ slightly from what the recorded one would have given."""
    other = sorted({r["batch_size"] for r in records if isinstance(r.get("batch_size"), int)} - {batch_size})
    if other:
        log(f"dreamlab: note: {out}: units there were rendered with batch_size {', '.join(map(str, other))} and "
            f"this run uses {batch_size}; rounding depends on the batch size (on CPUs too), so some units can differ "
            f"slightly from a run with one batch size (gallery/README.md, Determinism); pass batch_size={other[0]} "
            f"(--batch-size {other[0]}) to match them")


def warn_device_and_compile(records: Any, device: torch.device, compiled: str, out: Path,
                            log: Callable[[str], None]) -> None:
    """A resume on another kind of device, or with another --compile choice, is allowed but said, as another batch
    size is: their kernels round differently, so some units can differ slightly (records before `compile` was
    recorded are not compared)."""
    devices = sorted({r["device"] for r in records if isinstance(r.get("device"), str) and r["device"]}
                     - {device.type})
    if devices:
        log(f"dreamlab: note: {out}: units there were rendered on {', '.join(devices)} and this run renders on "
            f"{device.type}; kernels round differently on another device, so some units can differ slightly from "
            f"a run on one device; pass device={devices[0]!r} (--device {devices[0]}) to match them")
    modes = sorted({r["compile"] for r in records if isinstance(r.get("compile"), str)} - {compiled})
    if modes:
        match = "leave compile (--compile) out" if modes[0] == "no" else \
            f"pass compile={modes[0]!r} (--compile {modes[0]})"
        log(f"dreamlab: note: {out}: units there were rendered with compile {', '.join(modes)} and this run with "
            f"compile {compiled}; compiled kernels can round differently, so some units can differ slightly; "
            f"{match} to match them")


def _check_precision(records: Any, precision: str, out: Path) -> None:
    """Refuse to mix precisions in one folder: bf16 changes a unit's image well beyond rounding (unlike the batch
    size or device, which are noted), and the page would show both side by side without saying so."""
    for record in records:
        found = record.get("precision")
        if isinstance(found, str) and found and found != precision:
            raise DreamlabError(
                f"{str(out)!r} holds units rendered at precision {found} (on {record.get('device', 'another device')})"
                f", this run renders at {precision}; pass precision={found!r} (--precision {found}) to match them, or "
                f"use {ANOTHER_OUT}, or {OVERWRITE} to replace them")


def _check_scheme(records: Any, out: Path) -> None:
    """Refuse a folder whose units an older dreamlab rendered another way: resuming it would mix images that the
    same settings no longer give (records before `scheme` existed: scheme 1 unless the PNG names its unit_index)."""
    for record in records:
        found = record.get("scheme")
        if found is None:
            found = _png_scheme(out / record["file"])
        if found != RENDER_SCHEME:
            how = SCHEMES.get(found, "unknown to this version") if isinstance(found, int) else "unknown"
            raise DreamlabError(
                f"{str(out)!r} holds units of render scheme {found!r} ({how}), and this dreamlab renders scheme "
                f"{RENDER_SCHEME} ({SCHEMES[RENDER_SCHEME]}), whose images differ; use {ANOTHER_OUT}, or "
                f"{OVERWRITE} to render them again")


def _png_scheme(path: Path) -> int:
    """The scheme of a unit PNG written before records said it: scheme 2 PNGs name their dreamlab:unit_index."""
    try:
        with Image.open(path) as img:  # the text chunks before the image data: no decoding
            return RENDER_SCHEME if "dreamlab:unit_index" in img.info else 1
    except OSError:
        return RENDER_SCHEME  # unreadable here: read_records said it is whole, let the render settings decide


def weights_seed(loaded: LoadedModel) -> int | None:
    """The seed random init drew from (load_model seeds it), or None for weights that were loaded."""
    return WEIGHTS_SEED if loaded.weights == "none" else None


def weights_sha256(loaded: LoadedModel) -> str | None:
    """The sha256 (16 hex digits) of the weights file the model was loaded from, or None (a name, random init)."""
    return weights_provenance(loaded.weights).get("dreamlab:weights_sha256")


def _check_settings(records: Any, loaded: LoadedModel, layer_steps: dict[str, int], size: int, seed: int,
                    diversity: int, diversity_weight: float | None, out: Path) -> None:
    """Refuse to mix settings in one folder (`layer_steps`: the steps of each layer's units)."""
    wanted = {"recipe": loaded.recipe.name, "recipe_hash": loaded.recipe.hash(), "weights": loaded.weights,
              "weights_seed": weights_seed(loaded), "size": size, "seed": int(seed), "diversity": diversity,
              "diversity_weight": diversity_weight}
    sha256 = weights_sha256(loaded)
    for record in records:
        expected = {**wanted, "steps": layer_steps[record["layer"]]}
        for key in SETTING_KEYS:
            found = record.get(key, RECORD_DEFAULTS.get(key))
            if key == "weights" and sha256 is not None and record.get("weights_sha256") == sha256:
                continue  # the same file's bytes under another spelling of its path (absolute, from another folder)
            if found != expected[key]:
                raise DreamlabError(
                    f"{str(out)!r} holds units made with {key}={found!r}, this run has "
                    f"{key}={expected[key]!r}; use {ANOTHER_OUT}, or {OVERWRITE} to replace them")
        # records made before the hash was kept are not checked
        if "weights_sha256" in record and record["weights_sha256"] != sha256:
            raise DreamlabError(
                f"{str(out)!r} holds units made from {loaded.weights!r} with sha256 {record['weights_sha256']}, "
                f"and the file now has sha256 {sha256} (retrained or replaced); use "
                f"{ANOTHER_OUT}, or {OVERWRITE} to replace them")
