"""Planning a gallery run: check the request against the model and the folder, and split the chosen
channels into batches (the same channels always form the same batches)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from dreamlab.apps.gallery.folder import GalleryFolder
from dreamlab.apps.gallery.naming import ANOTHER_OUT, OVERWRITE
from dreamlab.apps.gallery.resume import (OPTION_DEFAULTS, OPTION_KEYS, check_options, check_records, warn_batch_sizes,
                                          warn_device_and_compile, weights_seed, weights_sha256)
from dreamlab.errors import DreamlabError, first_line, unknown
from dreamlab.models.loading import LoadedModel, layers_hint, ported_name_hint
from dreamlab.models.recipe import LAYER_KEYS, Recipe
from dreamlab.models.summary import summarize
from dreamlab.optvis.capture import OUTPUT, output_module, reused_module, unused_module
from dreamlab.optvis.settings import check_precision
from dreamlab.optvis.transforms import RandomTransforms, size_keeping_presets
from dreamlab.optvis.units import format_units

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """What decides a unit's pixels, shared by every unit of a gallery."""

    model: str
    recipe: str
    recipe_hash: str
    weights: str
    weights_seed: int | None  # the seed of random init ("none" weights), else None
    size: int
    seed: int
    batch_size: int  # units per render call: recorded, and a resume with another one is warned about
    diversity: int = 1  # images per unit (--diversity)
    diversity_weight: float | None = None  # --diversity-weight; None without diversity
    precision: str = "fp32"  # resolved: fp32 or bf16
    weights_sha256: str | None = None  # of a weights file's bytes (its path alone does not say which weights)


@dataclass(frozen=True)
class Batch:
    """Consecutive channels of one layer, rendered together by one engine call."""

    layer: str
    channels: tuple[int, ...]

    @property
    def label(self) -> str:
        """'conv2:0-15', or 'conv2:3' for one channel."""
        first, last = self.channels[0], self.channels[-1]
        return f"{self.layer}:{first}" if first == last else f"{self.layer}:{first}-{last}"


def plan_batches(layers: Sequence[tuple[str, int]], channels: Sequence[int] | None, batch_size: int) -> list[Batch]:
    """Split each layer's (chosen) channels into runs of consecutive channels within aligned windows of
    `batch_size`: the same channels always form the same batches."""
    batches = []
    for layer, count in layers:
        chosen = sorted({c for c in channels if 0 <= c < count}) if channels is not None else list(range(count))
        if not chosen:
            given = format_units(sorted(set(channels or ())))
            raise DreamlabError(f"channels {given} (--channels {given}) selects no channel of layer {layer!r} "
                                f"({count} channels: 0-{count - 1}); pick channels within 0-{count - 1} for it, or "
                                f"leave channels out for every channel")
        run: list[int] = []
        for c in chosen:
            if run and (c != run[-1] + 1 or c // batch_size != run[0] // batch_size):
                batches.append(Batch(layer, tuple(run)))
                run = []
            run.append(c)
        batches.append(Batch(layer, tuple(run)))
    return batches


@dataclass
class Plan:
    """What rank 0 decided; broadcast to the other ranks."""

    settings: Settings
    layers: list[tuple[str, int]]  # every layer of the gallery in model order, with its channel count
    batches: list[Batch]  # the run's batches (finished ones included)
    todo: list[Batch]  # batches with at least one unfinished unit
    done: set[tuple[str, int]] = field(default_factory=set)  # units finished before the run
    layer_steps: dict[str, int] = field(default_factory=dict)  # each layer's steps: --steps, or its recipe's
    output_layer: str | None = None  # the gallery layer whose output is the model's (what `logit:N` reads)
    class_names: tuple[str, ...] | None = None  # the model's class names, one per channel of output_layer
    layer_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # render settings beyond the layer's
    layer_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # each layer's OPTION_KEYS values

    def class_of(self, layer: str, ch: int) -> dict[str, str]:
        """{"class": NAME} for a unit of the output layer of a model that names its classes, where the name says
        more than the number (lenet-digits' '3' does not, as render's file names); else {}."""
        from dreamlab.optvis.classes import logit_class

        name = logit_class(f"logit:{ch}", self.class_names) if layer == self.output_layer else None
        return {"class": name} if name else {}

    def new_units(self) -> list[str]:
        """The units this run renders (by every rank): the unfinished units of its batches."""
        return [f"{b.layer}:{c}" for b in self.todo for c in b.channels if (b.layer, c) not in self.done]


def make_plan(loaded: LoadedModel, folder: GalleryFolder, stack: contextlib.ExitStack,
               layers: Sequence[str] | None, *, steps: int | None, size: int | None, seed: int,
               device: torch.device, batch_size: int | None, channels: Sequence[int] | None, overwrite: bool,
               log: Log, diversity: int = 1, diversity_weight: float | None = None, precision: str = "auto",
               compile: bool | str = False, options: dict[str, Any] | None = None) -> Plan:
    """Check the request and the folder (holding its lock on `stack` from here on) and list the batches.
    `precision` is render's (auto: bf16 on cuda, else fp32); `compile` is only compared with the records';
    `options`: render's OPTION_KEYS given for every layer (the others are each layer's recipe's)."""
    recipe = loaded.recipe
    precision = resolve_precision(precision, device)
    size = int(size if size is not None else recipe.input_size)
    order, counts, calls = _layer_channels(loaded, size)
    _check_transforms_fit(loaded, (options or {}).get("transforms"), size)  # before touching the folder
    notes: list[str] = []  # about how units will be rendered: said only where some are left to render
    wanted = _wanted_layers(loaded, layers, order, counts, calls, size, notes.append)
    if channels is not None:
        _check_channels(wanted, counts, channels, log)  # fail before touching the folder

    records = _locked_records(folder, stack, wanted, order, counts, channels, overwrite, recipe.name, log)
    shown, gallery_layers, output = _gallery_layers(loaded, wanted, records, order, counts, size)
    layer_steps, layer_overrides = _layer_settings(recipe, shown, output, steps)
    layer_options, recipe_options = _layer_options(recipe, shown, output, options or {})
    check_records(records.values(), loaded, layer_steps, size, seed, diversity, diversity_weight, precision,
                  folder.out)
    check_options(records.values(), layer_options, recipe_options, folder.out)
    for layer in shown:  # the options given win over a layer's own settings, as render's do over the recipe's
        layer_overrides[layer] = {**layer_overrides.get(layer, {}), **(options or {})}
    # a unit is `diversity` images: the default keeps about as many images per call as without
    batch_size = batch_size or max(1, (64 if device.type == "cuda" else 16) // diversity)
    warn_batch_sizes(records.values(), batch_size, folder.out, notes.append)
    warn_device_and_compile(records.values(), device, compile_label(compile), folder.out, notes.append)
    settings = Settings(model=recipe.name, recipe=recipe.name, recipe_hash=recipe.hash(), weights=loaded.weights,
                        weights_seed=weights_seed(loaded), size=size, seed=int(seed),
                        batch_size=batch_size, diversity=diversity, diversity_weight=diversity_weight,
                        precision=precision, weights_sha256=weights_sha256(loaded))
    batches = plan_batches([(layer, counts[layer]) for layer in wanted], channels, batch_size)
    done = set(records)
    todo = _unfinished(batches, done, folder, diversity)
    for note in notes if todo else ():
        log(note)
    _fit_logit_transforms(loaded, layer_overrides, options or {}, size, {b.layer for b in todo}, log)
    return Plan(settings, gallery_layers, batches, todo, done, layer_steps, output,
                _class_names(loaded, output, counts), layer_overrides, layer_options)


def _wanted_layers(loaded: LoadedModel, layers: Sequence[str] | None, order: list[str], counts: dict[str, int],
                   calls: dict[str, int], size: int, log: Log) -> list[str]:
    """The layers asked for (default: the recipe's default layer), each once, `logit` as the module that computes
    it where one does; refused in one line where one is not a layer a gallery can show."""
    recipe = loaded.recipe
    wanted = list(dict.fromkeys(layers)) if layers else ([recipe.default_layer] if recipe.default_layer else [])
    if not wanted:
        raise DreamlabError(f"recipe {recipe.called!r} names no default layer; give layers (--layers): `dreamlab "
                            f"layers {recipe.called}` lists them")
    if OUTPUT in wanted and OUTPUT not in counts:
        wanted = _logit_as_layer(loaded, wanted, order, counts, size, log)
    for layer in wanted:
        if calls.get(layer, 0) > 1:
            raise reused_module(layer)
        if calls.get(layer) == 0:
            raise unused_module(layer, [name for name in order if name.startswith(f"{layer}.")
                                        and "." not in name[len(layer) + 1:] and calls.get(name)])
        if layer not in counts:  # logit is a layer here too, as in render's objectives
            raise unknown("layer", layer, [*order, OUTPUT], hint=_layer_hint(loaded, layer, [*order, OUTPUT]))
    return wanted


def _layer_hint(loaded: LoadedModel, layer: str, names: Sequence[str]) -> str:
    """The hint for a --layers name the model lacks: what a unit (`conv2:3`, whose channels go in --channels) or a
    lucid/lucent name means here, then where the layer names are listed."""
    name, _, units = layer.partition(":")
    if name in names and units:
        said = f"give the layer alone, {name!r}, and its channels as channels {units} (--channels {units}); "
    else:
        said = ported_name_hint(layer, names)
    return said + layers_hint(loaded.model, loaded.recipe.name)


def _locked_records(folder: GalleryFolder, stack: contextlib.ExitStack, wanted: Sequence[str], order: Sequence[str],
                    counts: dict[str, int], channels: Sequence[int] | None, overwrite: bool, model: str,
                    log: Log) -> dict[tuple[str, int], dict[str, Any]]:
    """Lock the folder (on `stack` from here on), remove a stopped run's temporary files and, with --overwrite,
    the units this run renders again: the records of the finished units it then holds."""
    stack.enter_context(folder.locked())
    if folder.remove_temp_files():
        log(f"{folder.out}: removed temporary files left by a stopped run")
    if overwrite:
        _check_overwrite(folder, wanted, order, counts, model)
        _check_overwrite_channels(folder, wanted, channels)
        removed = folder.remove_units()
        if removed:
            log(f"{folder.out}: overwrite (--overwrite) removed {removed} units of an earlier run")
    return folder.read_records()


def _gallery_layers(loaded: LoadedModel, wanted: Sequence[str], records: dict[tuple[str, int], dict[str, Any]],
                    order: list[str], counts: dict[str, int],
                    size: int) -> tuple[set[str], list[tuple[str, int]], str | None]:
    """(the layers the page shows: those asked for and those the folder holds; the same in model order with their
    channel counts; the one whose output is the model's, or None)."""
    if OUTPUT not in counts and any(layer == OUTPUT for layer, _ in records):  # a resume that does not ask for it
        _add_output_as_logit(loaded, order, counts, size)
    shown = set(wanted) | {layer for layer, _ in records}
    gallery_layers = [(name, counts[name]) for name in order if name in shown and name in counts]
    output = OUTPUT if OUTPUT in shown and OUTPUT in counts else \
        _output_layer(loaded, [name for name, _ in gallery_layers], size)
    return shown, gallery_layers, output


def _layer_settings(recipe: Recipe, shown: set[str], output: str | None,
                    steps: int | None) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """(each layer's steps: `steps`, or its recipe's; the render settings a layer has beyond its own, for the
    layers that have some: those of the model's output, `_logit_settings`)."""
    layer_recipes = {layer: _layer_recipe(recipe, layer, output) for layer in shown}
    layer_steps = {layer: int(steps if steps is not None else layer_recipe.steps)
                   for layer, layer_recipe in layer_recipes.items()}
    layer_overrides = {layer: _logit_settings(recipe, layer, layer_recipe)
                       for layer, layer_recipe in layer_recipes.items()}
    return layer_steps, {layer: found for layer, found in layer_overrides.items() if found}


def _unfinished(batches: list[Batch], done: set[tuple[str, int]], folder: GalleryFolder, diversity: int) -> list[Batch]:
    """The batches with a unit not `done`, once the folder has been checked to take those units' files."""
    todo = [b for b in batches if any((b.layer, c) not in done for c in b.channels)]
    folder.check_paths([(b.layer, c) for b in todo for c in b.channels if (b.layer, c) not in done], diversity)
    return todo


def _class_names(loaded: LoadedModel, output: str | None, counts: dict[str, int]) -> tuple[str, ...] | None:
    """The model's class names where there is one per channel of the output layer, else None."""
    return loaded.categories if output is not None and loaded.categories is not None \
        and len(loaded.categories) == counts[output] else None


def _layer_options(recipe: Recipe, shown: set[str], output: str | None,
                   options: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(each layer's OPTION_KEYS values as its units render them: `options` where given, else its recipe's; its
    recipe's alone), fourier_decay None without the Fourier parameterization; refusing a fourier_decay given where
    a layer does not render with it (in both interfaces' words: build_gallery serves the CLI too)."""
    def shaped(values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "fourier_decay": values["fourier_decay"] if values["param"] == "fourier" else None}

    own = {layer: {key: getattr(_layer_recipe(recipe, layer, output), key, OPTION_DEFAULTS.get(key))
                   for key in OPTION_KEYS} for layer in shown}  # alpha is no recipe setting: opaque
    used = {layer: {**values, **options} for layer, values in own.items()}
    decay = options.get("fourier_decay")
    for layer, values in used.items():
        if decay is not None and values["param"] != "fourier":
            whose = "" if "param" in options else " (its recipe's)"
            raise DreamlabError(f"fourier_decay={decay!r} (--fourier-decay) applies to the Fourier parameterization "
                                f"only, and layer {layer} renders with param {values['param']!r}{whose}: give "
                                f"param='fourier' (--param fourier), or leave fourier_decay out")
    return ({layer: shaped(values) for layer, values in used.items()},
            {layer: shaped(values) for layer, values in own.items()})


def _layer_recipe(recipe: Recipe, layer: str, output: str | None) -> Recipe:
    """The recipe `layer`'s units render with. The module whose output is the model's also takes the
    [layers."logit"] settings, as `render logit:N` would (where its own table sets a key too, the table written
    later in the recipe wins, as for any objective that reads two layers)."""
    return recipe.for_layers([OUTPUT, layer] if layer == output else [layer])


def _logit_settings(recipe: Recipe, layer: str, layer_recipe: Recipe) -> dict[str, Any]:
    """The render settings (steps aside) that `layer_recipe` has beyond what render gives `layer` by itself."""
    own = recipe.for_layers([layer])
    return {key: getattr(layer_recipe, key) for key in LAYER_KEYS
            if key != "steps" and getattr(layer_recipe, key) != getattr(own, key)}


def resolve_precision(precision: str, device: torch.device) -> str:
    """render's precision for `device`: auto is bf16 on cuda and fp32 elsewhere (as resolve_settings picks it)."""
    check_precision(precision)
    return ("bf16" if device.type == "cuda" else "fp32") if precision == "auto" else precision


def compile_label(compile: bool | str) -> str:
    """--compile as PNG provenance and records write it: 'no', or the torch.compile mode."""
    return "default" if compile is True else (str(compile) if compile else "no")


def _output_layer(loaded: LoadedModel, layers: Sequence[str], size: int) -> str | None:
    """The layer among `layers` whose output is the model's own output (the logits `logit:N` reads), found by one
    forward pass on a blank image; None when none is (or the pass fails: the page then says what to type)."""
    return _forward(loaded, layers, size)[0]


def _forward(loaded: LoadedModel, layers: Sequence[str], size: int) -> tuple[str | None, Any]:
    """(the layer among `layers` whose output is the model's own, the model's output) of one forward pass on a
    blank image; (None, None) when the pass fails."""
    param = next(loaded.model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        return output_module(loaded.model, layers, torch.zeros(1, loaded.recipe.channels, size, size, device=device))
    except Exception:  # noqa: BLE001  (a nicety for the page's search box, never a reason to stop the run)
        return None, None


def _logit_as_layer(loaded: LoadedModel, wanted: list[str], order: list[str], counts: dict[str, int], size: int,
                    log: Log) -> list[str]:
    """`wanted` with `logit` (the model's output, as objectives call it) replaced by the module that computes it,
    said in a note. Where no module's output is the model's (a function follows the last module), `logit` stays a
    layer of its own, with a channel per output (`counts`, `order` gain it); refused in one line when the output
    is no tensor of channels."""
    layer, _ = _forward(loaded, order, size)
    if layer is not None:
        log(f"dreamlab: note: logit, the model's output, is layer {layer!r} of {loaded.recipe.name}; its page and "
            f"files use that name (the page's search box takes logit:N)")
        return list(dict.fromkeys(layer if name == OUTPUT else name for name in wanted))
    _add_output_as_logit(loaded, order, counts, size)
    return wanted


def _add_output_as_logit(loaded: LoadedModel, order: list[str], counts: dict[str, int], size: int) -> None:
    """Add `logit`, the model's output, to the gallery's layers (last in `order`, its channel count in `counts`:
    a [B, N] output has N, a [B, C, H, W] map C), or refuse in one line when it is not such a tensor."""
    _, output = _forward(loaded, [], size)
    if not isinstance(output, torch.Tensor) or output.dim() not in (2, 4) or output.shape[1] < 1:
        name = loaded.recipe.name
        shape = list(output.shape) if isinstance(output, torch.Tensor) else \
            "none: its forward pass failed" if output is None else type(output).__name__
        raise DreamlabError(f"{name}'s output ({shape}) is not a tensor of channels ([batch, N] logits or a "
                            f"[batch, C, H, W] map), so a gallery cannot show `logit` as a layer; give a module of "
                            f"`dreamlab layers {name}` in layers (--layers), or render its output with `dreamlab "
                            f"render logit:0 --model {name}`")
    order.append(OUTPUT)
    counts[OUTPUT] = int(output.shape[1])


def _check_channels(wanted: Sequence[str], counts: dict[str, int], channels: Sequence[int], log: Log) -> None:
    """Refuse a --channels that goes past every layer asked for (render refuses `conv1:20` alike) or selects no
    channel of one; note what it leaves out of a narrower layer when a wider one takes all of it."""
    chosen = sorted(set(channels))
    if not chosen:
        raise DreamlabError("channels (--channels) selects no channel; give some, e.g. range(16) (--channels 0-15), "
                            "or leave channels out for every channel")
    widest = max(counts[layer] for layer in wanted)
    within = [c for c in chosen if c < widest]
    if within and chosen[-1] >= widest:  # (none within: plan_batches says it selects no channel)
        past = ", ".join(f"{layer!r} ({counts[layer]} channels: 0-{counts[layer] - 1})" for layer in wanted)
        raise DreamlabError(f"channels {format_units(chosen)} (--channels {format_units(chosen)}) goes past "
                            f"layer{'s' if len(wanted) > 1 else ''} {past}; use channels {format_units(within)} "
                            f"(--channels {format_units(within)}), or leave channels out for every channel")
    plan_batches([(layer, counts[layer]) for layer in wanted], chosen, 1)  # a layer it selects nothing of
    for layer in wanted:
        past_layer = [c for c in chosen if c >= counts[layer]]
        if past_layer:  # one --channels serves layers of several widths: say what a narrower one leaves out
            log(f"dreamlab: note: channels (--channels) goes past layer {layer!r} ({counts[layer]} channels: "
                f"0-{counts[layer] - 1}); {format_units(past_layer)} left out there")


def _check_overwrite(folder: GalleryFolder, wanted: Sequence[str], order: Sequence[str], counts: dict[str, int],
                     model: str) -> None:
    """--overwrite replaces the units of the layers this run renders; refuse it while the folder holds finished
    units of other layers, which it would delete without rendering them again."""
    held: dict[str, int] = {}
    for layer, _ in folder.read_records():
        if layer not in wanted:
            held[layer] = held.get(layer, 0) + 1
    if not held:
        return
    rank = {name: i for i, name in enumerate(order)}
    others = sorted(held, key=lambda name: (rank.get(name, len(rank)), name))
    listed = ", ".join(f"{name!r} ({held[name]} unit{'s' if held[name] > 1 else ''})" for name in others)
    if all(name in counts for name in others):
        every = [name for name in order if name in set(wanted) | set(others)]
        fix = (f"add {'it' if len(others) == 1 else 'them'} to layers (layers={every!r}, --layers "
               f"{','.join(every)}) to render {'it' if len(others) == 1 else 'them'} again with this run's settings, "
               f"or use {ANOTHER_OUT}")
    else:
        fix = f"they are not all layers of {model}: use {ANOTHER_OUT}, or remove the folder yourself"
    raise DreamlabError(f"{OVERWRITE} would delete the finished units of layer{'s' if len(others) > 1 else ''} "
                        f"{listed} in {str(folder.out)!r}, which this run does not render; {fix}")


def _check_overwrite_channels(folder: GalleryFolder, wanted: Sequence[str], channels: Sequence[int] | None) -> None:
    """--overwrite with --channels: refuse while the folder holds finished units of the layers this run renders
    but outside its --channels, which it would delete without rendering them again."""
    if channels is None:
        return
    chosen = set(channels)
    dropped: dict[str, list[int]] = {}
    for layer, ch in sorted(folder.read_records()):
        if layer in wanted and ch not in chosen:
            dropped.setdefault(layer, []).append(ch)
    if not dropped:
        return
    listed = ", ".join(f"{layer}:{format_units(dropped[layer])}" for layer in wanted if layer in dropped)
    count = sum(len(chs) for chs in dropped.values())
    keep = format_units(sorted(chosen | {ch for chs in dropped.values() for ch in chs}))
    chosen_units = format_units(sorted(chosen))
    raise DreamlabError(f"{OVERWRITE} would delete {count} finished unit{'s' if count > 1 else ''} ({listed}) in "
                        f"{str(folder.out)!r}, which this run's channels {chosen_units} (--channels {chosen_units}) "
                        f"does not render; leave channels out to render every channel again with this run's settings "
                        f"(or use channels {keep}, --channels {keep}), or use {ANOTHER_OUT}")


def _layer_channels(loaded: LoadedModel, size: int) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """(every module name in model order, channel count of each addressable one, forward calls of each) at the
    render size."""
    recipe = loaded.recipe
    try:
        # the recipe's size and name make a refused size's message `layers`' own
        rows = summarize(loaded.model, size, recipe.channels, recipe.input_size, recipe.source, recipe.name).layers
    except RuntimeError as exc:
        raise DreamlabError(f"{recipe.name} does not run on {size}px images ({first_line(exc)}); "
                            f"use size={recipe.input_size} (--size {recipe.input_size})") from None
    counts = {r.name: r.channels for r in rows if r.channels and r.calls == 1}
    return [r.name for r in rows], counts, {r.name: r.calls for r in rows}  # type: ignore[return-value]


def _outgrown(loaded: LoadedModel, preset: str, size: int) -> tuple[int, int] | None:
    """The size that transforms `preset` pad a `size` image to, where the model does not take it; else None."""
    grown = RandomTransforms.preset(preset).output_size(size, size)
    if grown == (size, size):
        return None
    recipe = loaded.recipe
    try:
        summarize(loaded.model, grown, recipe.channels, name=recipe.name)
    except DreamlabError:
        return grown
    return None


def _fit_logit_transforms(loaded: LoadedModel, layer_overrides: dict[str, dict[str, Any]], options: dict[str, Any],
                          size: int, rendering: set[str], log: Log) -> None:
    """Show a fixed-size model its own size (model_size, said in a note where the layer has units to render in
    `rendering`: a resume that renders none of them is quiet) where a recipe's [layers."logit"] table sets the
    output layer a preset whose padding grows the image past it, as render does for `logit:N` and for a recipe's
    other presets: the gallery hands that table's values to render as its own, which render would refuse at the
    first batch as a choice of the caller's. (A preset given for the gallery was checked before.)"""
    if "transforms" in options:
        return
    for layer, overrides in layer_overrides.items():
        preset = overrides.get("transforms")
        grown = _outgrown(loaded, preset, size) if isinstance(preset, str) else None
        if grown is None:
            continue
        overrides["model_size"] = size
        if layer in rendering:
            log(f"dreamlab: note: {loaded.recipe.name} takes {size}x{size} inputs only, and transforms {preset!r} "
                f"(its recipe's [layers.\"{OUTPUT}\"] table, for layer {layer}) pad the image to "
                f"{grown[0]}x{grown[1]}; the model sees each step's images resized to {size}x{size} (as "
                f"model_size={size} does; recorded as dreamlab:model_size)")


def _check_transforms_fit(loaded: LoadedModel, transforms: str | None, size: int) -> None:
    """Refuse a transforms preset given for the gallery whose padding grows the `size` image past what a
    fixed-size model takes: render would refuse it at the first batch, and a gallery has no model_size to resize
    with. (A recipe's own preset is left to render, which then shows the model its own size; that of a
    [layers."logit"] table, _fit_logit_transforms.)"""
    grown = _outgrown(loaded, transforms, size) if transforms is not None else None
    if grown is not None:
        recipe = loaded.recipe
        keeping = size_keeping_presets()
        raise DreamlabError(f"{recipe.name} does not take the {grown[0]}x{grown[1]} images that transforms "
                            f"{transforms!r} (--transforms {transforms}) make of its {size}x{size} ones by padding; "
                            f"valid for this model: transforms={' or '.join(map(repr, keeping))} (--transforms "
                            f"{' or '.join(keeping)}), which keep the size")
