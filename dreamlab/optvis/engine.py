"""The render loop: optimize a batch of parameterized images so that each maximizes its unit's score.

>>> result = render("googlenet", "inception4c:0-7", weights="none", steps=64, size=128, device="cpu")
>>> result.images.shape, len(result.labels)
(torch.Size([8, 3, 128, 128]), 8)
"""
from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.devices import out_of_memory, resolve_device
from dreamlab.optvis.alpha import composite, seeded_backgrounds, transparency_penalty
from dreamlab.optvis.capture import Capture
from dreamlab.errors import DreamlabError, DreamlabNote, check_callback, checked_keywords
from dreamlab.io import photo_record, read_photo
from dreamlab.optvis.classes import class_layer_of
from dreamlab.optvis.grammar import parse_objective
from dreamlab.models.layout import to_channels_first
from dreamlab.models.loading import LoadedModel, module_names
from dreamlab.optvis.diversity import diversity_layer, repeat_units, with_diversity
from dreamlab.optvis.objectives import ALIGNMENT_DISTANCES, IMAGE, REFERENCE, Objective
from dreamlab.optvis.optimizers import make_optimizer
from dreamlab.optvis.progress import DeferredSigint, progress_bar
from dreamlab.optvis.params import ImageParam, takes_no_arguments, image_to_param_raw, make_param
from dreamlab.models.recipe import Recipe
from dreamlab.optvis.relu import RedirectedReLU
from dreamlab.optvis.render_sizes import TransformsOutgrowModel, rejected_size_error
from dreamlab.optvis.result import RenderResult
from dreamlab.optvis.score_checks import NonFinite, no_gradient
from dreamlab.models.prepare import FORWARD_ERRORS, prepared_model, raw_size_errors, resolve_model, takes_size
from dreamlab.optvis.settings import (RenderSettings, check_call, check_units, fit_init_image, param_options,
                                      provenance, resolve_settings, with_overrides)
from dreamlab.optvis.transforms import CallableTransforms, RandomTransforms, make_transforms, seeded_rng

SnapshotCallback = Callable[[int, Tensor, Sequence[str]], None]  # (step, images [b,C,H,W] cpu, labels)


def _fitted_renderer(make: Callable[[RenderSettings], _Renderer], settings: RenderSettings,
                     requested: RenderSettings) -> tuple[_Renderer, RenderSettings]:
    """A renderer whose first forward has passed (`check_units`). For a fixed-size model whose input the
    transforms' padding grows, and where the size, model_size and transforms all come from the recipe, the model
    is shown the images resized to its own size (model_size), with a DreamlabNote: what `model_size` is for (a
    size given as the recipe's own counts as left to it). A choice the
    caller made is kept, and gets the error that names both ways out."""
    renderer = make(settings)
    try:
        renderer.check_units()
        return renderer, settings
    except TransformsOutgrowModel as exc:
        side = renderer.recipe.input_size  # a size given as the recipe's own is no choice against it
        if requested.model_size is not None or requested.transforms is not None or \
                requested.size not in (None, side, (side, side)):
            raise DreamlabError(str(exc)) from None
    fitted = dataclasses.replace(settings, model_size=(side, side))
    renderer = make(fitted)
    try:
        renderer.check_units()
    except DreamlabError as exc:
        if "reads fixed positions" not in str(exc):
            raise  # a problem of its own, past the size (a unit out of range, a neuron of a token layer)
        raise DreamlabError(f"{renderer.recipe.name} takes {side}x{side} inputs only, and the transforms' padding "
                            f"grows the image; {renderer.objective.name!r} reads fixed positions, which resizing "
                            f"to {side}x{side} would move: use transforms that keep the size (transforms='small' "
                            f"or 'none', --transforms small or none)") from None
    warnings.warn(f"{renderer.recipe.name} takes {side}x{side} inputs only, and the transforms' padding grows the "
                  f"image; the model sees each step's images resized to {side}x{side} (as model_size={side} "
                  f"does; recorded as dreamlab:model_size)", DreamlabNote, stacklevel=4)  # render's caller
    return renderer, fitted


@dataclass
class _Batch:
    """What one batch of units produced (see _Renderer.run_batch)."""

    images: Tensor
    history: Tensor
    initial_scores: Tensor
    final_scores: Tensor
    snapshots: dict[int, Tensor]
    interrupted: bool
    grad_norms: Tensor
    steps: int  # the steps it ran
    gradient_reached: Tensor  # per image, whether a non-zero gradient reached its parameters at some step


@dataclass
class _BatchRun:
    """One batch while it is optimized (see _Renderer.run_batch): what it optimizes and what it records."""

    units: Sequence[int]
    index: Tensor  # the units on the device
    param: ImageParam
    optimizer: torch.optim.Optimizer
    broken: NonFinite
    initial_scores: Tensor
    history: list[Tensor] = field(default_factory=list)  # each step's scores, on the device
    grad_norms: list[Tensor] = field(default_factory=list)  # each step's gradient norms, on the device
    gradient_reached: Tensor | None = None  # per image, a non-zero gradient at some step so far, on the device
    snapshots: dict[int, Tensor] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C stopped the steps

    def result(self, final: Tensor, final_scores: Tensor, interrupted_after: bool) -> _Batch:
        """The batch's images and records, on the CPU; `interrupted_after`: a Ctrl-C came after the steps."""
        b = len(self.units)
        hist = torch.stack(self.history).float().cpu() if self.history else torch.zeros(0, b)
        norms = torch.stack(self.grad_norms).float().cpu() if self.grad_norms else torch.zeros(0, b)
        # read once, here; no step ran: nothing to say
        reached = torch.ones(b, dtype=torch.bool) if self.gradient_reached is None else self.gradient_reached.cpu()
        return _Batch(final.cpu(), hist, self.initial_scores, final_scores, self.snapshots,
                      self.interrupted or interrupted_after, norms, len(self.history), reached)


def map_offsets(padded: dict[str, Tensor], plain: dict[str, Tensor]) -> dict[str, tuple[int, int]]:
    """(dy, dx) per spatial layer: where the map of the image sits in the map of the transformed image, taken as
    padded (or cropped, for a negative offset) by the same amount on every side. A user transform that resizes
    the image breaks that assumption: a neuron is then read at the same offset from the map's centre."""
    return {name: ((padded[name].shape[-2] - act.shape[-2]) // 2, (padded[name].shape[-1] - act.shape[-1]) // 2)
            for name, act in plain.items() if act.dim() == 4 and padded[name].dim() == 4}


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (tuple hashing of ints is the same in every process)."""
    return hash(parts) & 0x7FFF_FFFF_FFFF_FFFF


class _Renderer:
    """Holds the per-render state shared by every batch of units."""

    def __init__(self, model: nn.Module, objective: Objective, recipe: Recipe, settings: RenderSettings,
                 init_images: dict[int, Tensor] | Tensor | None, thresholds: Sequence[int],
                 on_snapshot: SnapshotCallback | None, keep_snapshots: bool = True):
        self.model, self.objective, self.recipe, self.settings = model, objective, recipe, settings
        # what the optimizer maximizes: the objective read on the transformed images' maps (see check_units),
        # with the diversity penalty; the clean scores that report a render are the objective's alone
        self.step_objective = self.for_steps(objective)
        self.layers = sorted(self.step_objective.layers - {IMAGE})
        dev = settings.device
        self.mean = torch.tensor(recipe.mean, device=dev).view(1, -1, 1, 1)
        self.std = torch.tensor(recipe.std, device=dev).view(1, -1, 1, 1)
        self.transforms = make_transforms(settings.transforms, recipe.fill)
        self.reference = self._reference_image(objective.reference)
        self.init_images = init_images  # one image for every unit, or one per unit
        self.thresholds = sorted(set(thresholds))  # checked against the steps by render()
        self.on_snapshot = on_snapshot
        self.keep_snapshots = keep_snapshots
        self.checked = False
        self.channels_last: frozenset[str] = frozenset()  # layers read transposed (models/layout.py)
        self.features: nn.Module | None = None
        self.compiled_scores = None
        if settings.compile:
            from dreamlab.optvis.truncate import truncated_forward

            self.features = truncated_forward(model, self.layers) if self.layers else None
            self.compiled_scores = torch.compile(self.step_scores, dynamic=False,
                                                 mode=None if settings.compile == "default" else settings.compile)

    def _reference_image(self, photo: Tensor | None) -> Tensor | None:
        """An objective's reference image (o.match) as a batch of one at the render size and the recipe's channels
        (scaled to cover, centre crop), on the device; refused where it cannot share the renders' transforms."""
        if photo is None:
            return None
        from dreamlab.inspect.features import to_channels
        from dreamlab.io import centre_crop, cover

        s = self.settings
        if isinstance(self.transforms, CallableTransforms):  # they draw from the global RNG, once per call
            raise DreamlabError("an objective that compares with a photo (o.match) sends it through the same "
                                "random transforms as the renders, which user transforms cannot repeat: give a "
                                "preset (standard, small, jitter, none) or RandomTransforms")
        for name, value in (("alpha", s.alpha), ("compile", s.compile), ("diversity", s.diversity > 1)):
            if value:
                raise DreamlabError(f"an objective that compares with a photo (o.match) does not take {name}: "
                                    f"leave {name} out")
        image = to_channels(photo.float(), self.recipe)[None]
        return centre_crop(cover(image, s.height_width), s.height_width).to(s.device)

    def reference_input(self, batch: int, draws: Tensor | None = None) -> Tensor | None:
        """The model input of the reference image for a batch of `batch` renders: through the transforms with
        their `draws` (None: no transforms, as the final scores read the renders)."""
        if self.reference is None:
            return None
        image = self.reference.expand(batch, -1, -1, -1)
        return self.normalize(self.to_model_size(image if draws is None else self.transforms(image, draws=draws)))

    def for_steps(self, objective: Objective) -> Objective:
        s = self.settings
        return with_diversity(objective, s.diversity, s.diversity_layer, s.diversity_weight) if s.diversity > 1 \
            else objective

    def to_model_size(self, images: Tensor) -> Tensor:
        """`images` resized to the model_size setting (bilinear, antialiased when shrinking, as PIL and
        torchvision resize), or as they are when it is unset or already met."""
        size = self.settings.model_height_width
        if size is None or tuple(images.shape[-2:]) == size:
            return images
        shrinking = size[0] < images.shape[-2] or size[1] < images.shape[-1]
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrinking)

    def normalize(self, images: Tensor) -> Tensor:
        x = (images - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.settings.channels_last else x

    def autocast(self):
        if self.settings.precision == "bf16":
            return torch.autocast(self.settings.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def scores(self, run_layers: Callable[[Tensor], dict[str, Tensor]], images: Tensor, model_input: Tensor,
               index: Tensor, objective: Objective | None = None, reference_input: Tensor | None = None) -> Tensor:
        with self.autocast():
            acts = dict(run_layers(model_input)) if self.layers else {}
            if reference_input is not None:
                with torch.no_grad():
                    acts.update({REFERENCE + name: act for name, act in run_layers(reference_input).items()})
        acts[IMAGE] = images
        return (objective or self.objective)(acts, index)

    def step_scores(self, run_layers: Callable[[Tensor], dict[str, Tensor]], param: ImageParam, draws: Tensor,
                    index: Tensor, backgrounds: Tensor | None = None) -> Tensor:
        """One step's forward: the images, their transforms, the model up to the objective's layers, the scores.
        A transparent render's images are laid over `backgrounds` first (lucid: before the transforms), and its
        scores carry the transparency penalty."""
        images = param()
        seen = images if backgrounds is None else composite(images, backgrounds)
        model_input = self.normalize(self.to_model_size(self.transforms(seen, draws=draws)))
        score = self.scores(run_layers, seen, model_input, index, self.step_objective,
                            self.reference_input(len(seen), draws))
        return score if backgrounds is None else transparency_penalty(score, images, self.settings.alpha_weight)

    def backgrounds(self, step: int, units: Sequence[int]) -> Tensor | None:
        """A transparent render's random backgrounds for this step, one per image from its own generator (seeded
        by the render's seed, the step and the unit: the same whatever the batches); None for an opaque one."""
        s = self.settings
        if not s.alpha:
            return None
        seeds = [derived_seed(s.seed, 2, step, unit) for unit in units]
        return seeded_backgrounds(seeds, self.recipe.channels, s.height_width, s.device)

    def check_units(self) -> None:
        """One forward of one grey input, before any image is allocated: refuses reused modules, units out of
        range of their layer's channels, and input sizes the model rejects."""
        dev = self.settings.device
        with torch.no_grad(), self.step_rng(0):
            middle = torch.full((1, RandomTransforms.DRAWS_PER_SAMPLE), 0.5, device=dev)
            grey = torch.full((1, self.recipe.channels, *self.settings.height_width), 0.5, device=dev)
            padded = self.transforms(grey, draws=middle)
            model_input, clean = self.to_model_size(padded), self.to_model_size(grey)
        acts = self._forward_once(model_input) if self.layers else {}
        resized = bool(acts) and model_input.shape[-2:] != clean.shape[-2:]
        transformed, acts = (acts, self._forward_once(clean)) if resized else (acts, acts)
        # an objective's photo (o.match) as the final scores read it, beside the grey render
        reference = {} if self.reference is None else {
            REFERENCE + name: act for name, act in self._forward_once(self.to_model_size(self.reference)).items()}
        # units and positions are checked on the maps of the image at the render size (at model_size when it is
        # set), which the final scores read; the transforms' padding makes the maps the optimizer sees larger, so
        # fixed positions (a neuron at x, y) are read where the render-size map sits in them, and must fall inside
        # them too
        self.objective.check({**{name: act.shape for name, act in {**acts, **reference}.items()},
                              IMAGE: grey.shape})
        if self.settings.model_size is not None and padded.shape[-2:] != grey.shape[-2:]:
            self._refuse_fixed_positions(acts, padded.shape[-2:])
        with torch.no_grad():  # one score per sample, or the one-line error now rather than after the bar starts
            self.objective({**acts, **reference, IMAGE: grey}, torch.zeros(1, dtype=torch.long, device=dev))
        if resized:
            self.step_objective = self.for_steps(self.objective.at_offsets(map_offsets(transformed, acts)))
            self.step_objective.check({name: act.shape for name, act in transformed.items()})
        layer = self.settings.diversity_layer
        if self.settings.diversity > 1 and acts[layer].dim() < 2:
            raise DreamlabError(f"diversity compares the images' activations at {layer!r}, whose output "
                                f"{list(acts[layer].shape)} has no channels: pick a conv layer")
        self.checked = True

    def _refuse_fixed_positions(self, acts: dict[str, Tensor], padded: Sequence[int]) -> None:
        """With model_size, transforms that pad shrink the image's content in what the model sees (the padded
        image is resized to model_size), so a neuron at x, y of the clean map sits elsewhere in the step's map;
        no offset can say where. Refuse those objectives (the centre stays the centre, so it is kept). A
        fixed position shifted far outside every map fails the objective's own position check: that is how
        an objective with fixed positions is told from one without."""
        far = {name: (-(1 << 30), -(1 << 30)) for name, act in acts.items() if act.dim() == 4}
        try:
            self.objective.at_offsets(far).check({name: act.shape for name, act in acts.items()})
        except DreamlabError:
            height, width = self.settings.height_width
            raise DreamlabError(
                f"{self.objective.name!r} reads fixed positions, which model_size cannot keep in place: the "
                f"transforms make the {height}x{width} image {padded[0]}x{padded[1]}, which model_size then "
                f"shrinks; use transforms that keep the size (transforms='small' or 'none'), the centre (no x, y), "
                f"or leave model_size unset") from None

    def _forward_once(self, model_input: Tensor) -> dict[str, Tensor]:
        try:
            with torch.no_grad(), raw_size_errors(), Capture(self.model, self.layers, stop_early=False) as cap, \
                    self.autocast():  # a size the model rejects is told below, in render's words
                acts = cap.run(self.normalize(model_input))
                self.channels_last = cap.channels_last  # for the compiled forward, which has no Capture
                return acts
        except FORWARD_ERRORS as exc:
            error = rejected_size_error(exc, model_input, self.model, self.recipe, self.settings, self._accepts)
            if error is None:
                raise  # the model fails at its own size too: its error, not a size rejection
            raise error from None

    def _accepts(self, size: int | tuple[int, int]) -> bool:
        """Whether the model runs on a grey input of the recipe's size (telling a size rejection from a bug)."""
        def forward(grey: Tensor) -> None:
            with Capture(self.model, self.layers, stop_early=False) as cap, self.autocast():
                cap.run(self.normalize(grey))

        return takes_size(forward, self.recipe.channels, size, self.settings.device)

    def make_param(self, units: Sequence[int]) -> nn.Module:
        s = self.settings
        # one generator per unit: a unit's start does not depend on how the units are split into batches
        generators = [torch.Generator(s.device).manual_seed(derived_seed(s.seed, 0, unit)) for unit in units]
        param = make_param(s.param, len(units), self.recipe.channels, s.height_width, generator=generators,
                           device=s.device, **param_options(s))
        if self.init_images is None:
            return param
        # a unit's images would all start as the same photo, where the diversity penalty has no gradient:
        # each keeps its own random start on top of it
        noise = [t.detach().clone() for t in param.parameters()] if s.diversity > 1 else []
        if isinstance(self.init_images, dict):
            image_to_param_raw(torch.stack([self.init_images[u] for u in units]).to(s.device), param)
        else:
            image_to_param_raw(self.init_images.to(s.device), param)
        with torch.no_grad():
            for tensor, start in zip(param.parameters(), noise):
                tensor.add_(start)
        return param

    def step_rng(self, step: int):
        """User transforms draw from torch's global RNG: seed it from the render's seed and the step."""
        if isinstance(self.transforms, CallableTransforms):
            return seeded_rng(derived_seed(self.settings.seed, 1, step), self.settings.device)
        return nullcontext()

    def run_batch(self, units: Sequence[int], bar) -> _Batch:
        """Optimize the images of these units (indices into the objective's units)."""
        run = self._start_batch(units)
        with Capture(self.model, self.layers) if self.features is None else nullcontext() as cap, \
                _quiet_compiler() if self.compiled_scores else nullcontext():
            run_layers = self._layer_runner(cap)
            try:
                self._optimize(run, run_layers, bar)
            except KeyboardInterrupt:
                run.interrupted = True
        with DeferredSigint() as later:  # the steps are over: a Ctrl-C now stops the render after this batch
            run.broken.raise_if_any()
            final, final_scores = self.clean_scores(run.param, run.index)
            return run.result(final, final_scores, later.hit)

    def _start_batch(self, units: Sequence[int]) -> _BatchRun:
        """The batch's parameterization and optimizer, checked units and the scores of its starting images."""
        param = self.make_param(units)
        optimizer = make_optimizer(self.settings.optimizer, param.parameters(), lr=self.settings.lr)
        index = torch.tensor(list(units), device=self.settings.device)
        if not self.checked:
            self.check_units()
        initial_scores = self.clean_scores(param, index)[1]
        broken = NonFinite(units, self.objective.labels, factory_lr=not isinstance(self.settings.optimizer, str))
        broken.check_scores(initial_scores, 0)
        return _BatchRun(units, index, param, optimizer, broken, initial_scores)

    def _layer_runner(self, cap: Capture | None) -> Callable[[Tensor], dict[str, Tensor]]:
        """What runs the model's forward up to the objective's layers: the capture's, or the compiled features'."""
        if cap is not None:
            return cap.run
        if not self.channels_last:
            return self.features
        return partial(_channels_first, self.features, self.channels_last)

    def _optimize(self, run: _BatchRun, run_layers: Callable[[Tensor], dict[str, Tensor]], bar) -> None:
        """The optimization steps, recorded into `run` (on the device: no host sync but at the thresholds)."""
        b = len(run.units)
        step_generator = torch.Generator(self.settings.device)
        fast_scores = self.compiled_scores or self.step_scores  # after the redirected-ReLU steps
        for step in range(1, self.settings.steps + 1):
            score = self._step_score(step, step_generator, fast_scores, run_layers, run)
            run.optimizer.zero_grad(set_to_none=True)
            (-score.sum()).backward()  # the one negation: objectives are maximized
            norms, reached = _gradient_stats(run.param, b, per_image=isinstance(self.settings.param, str))
            run.grad_norms.append(norms)  # on the device: no host sync
            run.gradient_reached = reached if run.gradient_reached is None else run.gradient_reached | reached
            run.optimizer.step()
            run.history.append(score.detach().clone())  # a CUDA graph reuses its output buffer
            run.broken.record(score, step)  # on the device: read only at snapshots and at the end
            if bar is not None:
                bar.update(b)
            if step in self.thresholds:
                run.broken.raise_if_any()
                images = self.snapshot(run.param, run.units, step)
                if self.keep_snapshots:
                    run.snapshots[step] = images

    def _step_score(self, step: int, step_generator: torch.Generator, fast_scores: Callable[..., Tensor],
                    run_layers: Callable[[Tensor], dict[str, Tensor]], run: _BatchRun) -> Tensor:
        """One step's scores of the transformed images, refused when they have no gradient."""
        # every step draws the transforms of all units and keeps this batch's: same per unit whatever the split
        step_generator.manual_seed(derived_seed(self.settings.seed, 1, step))
        draws = torch.rand(self.objective.batch_size, RandomTransforms.DRAWS_PER_SAMPLE, generator=step_generator,
                           device=self.settings.device)[run.index]
        backgrounds = self.backgrounds(step, run.units)
        if step <= self.settings.redirect_relu_steps:  # eager: the mode swaps every ReLU's gradient
            with RedirectedReLU(), self.step_rng(step):
                score = self.step_scores(run_layers, run.param, draws, run.index, backgrounds)
        else:
            with self.step_rng(step):
                score = fast_scores(run_layers, run.param, draws, run.index, backgrounds)
        if not score.requires_grad:
            raise no_gradient(self.objective.name)
        return score

    def clean_scores(self, param: ImageParam, index: Tensor) -> tuple[Tensor, Tensor]:
        """The images without transforms and their scores (CPU), e.g. to report what a render achieved."""
        with torch.no_grad(), Capture(self.model, self.layers) as cap:
            images = param().float()
            # a transparent image is scored over the recipe's grey (the transforms' fill): one fixed background
            seen = composite(images, self.recipe.fill) if self.settings.alpha else images
            # what the model sees: at model_size when it is set (the final scores are of that image)
            return images, self.scores(cap.run, seen, self.normalize(self.to_model_size(seen)), index, None,
                                       self.reference_input(len(seen))).float().cpu()

    def snapshot(self, param: ImageParam, units: Sequence[int], step: int) -> Tensor:
        with torch.no_grad():
            images = param().float().cpu()
        if self.on_snapshot is not None:
            self.on_snapshot(step, images, [self.objective.labels[u] for u in units])
        return images


def _channels_first(features: Callable[[Tensor], dict[str, Tensor]], channels_last: frozenset[str],
                    x: Tensor) -> dict[str, Tensor]:
    """The compiled forward's activations, with channels-last layers transposed as Capture does."""
    return to_channels_first(features(x), channels_last)


@contextmanager
def _quiet_compiler() -> Iterator[None]:
    """Silence two harmless messages of torch.compile while it compiles, then restore the process's settings."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    with warnings.catch_warnings():
        # the FFT of the Fourier parameterization runs as a library call, which is what this warns about
        warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex")
        # inductor looks for CUDA even when compiling for the CPU, and says so
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


@checked_keywords  # render(objective, model=net) is told the order
def render(model: nn.Module | str | LoadedModel, objective: Objective | str,
           settings: RenderSettings | None = None, *, recipe: Recipe | str | None = None,
           weights: str | Path | None = "default", units: Sequence[int] | None = None,
           batch_size: int | None = None, thresholds: Sequence[int] = (), on_snapshot: SnapshotCallback | None = None,
           keep_snapshots: bool = True, init_image: Tensor | str | Path | None = None, progress: bool = False,
           **overrides: Any) -> RenderResult:
    """Optimize one image per unit of `objective` and return them with their history and provenance.

    `model` is a recipe or torchvision name ('googlenet'), a LoadedModel, or any nn.Module (left unmodified).
    What decides the pixels is one `RenderSettings`; its fields can also be given as keywords, which override
    it (`render(model, "inception4c:97", steps=256, size=(96, 128), seed=1)`). Unset settings come from the
    recipe. `units` renders only these indices of a batched objective (e.g. `range(16, 32)` of `layer:0-511`);
    each unit starts from the same noise and draws the same transforms as in a render of them all, whatever
    the split into batches, so its image is the same up to the rounding of kernels whose results depend on the
    batch size (cuDNN's and some CPUs', amplified over many steps: gallery/README.md). `batch_size` caps how many
    images are optimized at once (default: all; when memory runs out, on a GPU or the CPU, the batch is halved and the run goes
    on, except with o.alignment, whose neighbours would be cut apart: that is refused); with `diversity` N, a
    unit's N images share a batch, so it is rounded down to a multiple of N.
    `thresholds` are steps (1..steps) at which `on_snapshot` is called and snapshots are kept in the result
    (`keep_snapshots=False` leaves them to the callback: a TensorBoard log's images need not stay in memory).
    `init_image` ([H,W], [C,H,W], or one per unit [B,C,H,W], in [0,1]; or a PNG/JPEG path, or `china`/`flower`)
    replaces the random start (with `diversity`, a unit's images start from its image plus their own random
    starts); the provenance names it (`dreamlab:init`, `dreamlab:init_sha256` of its file or pixels). Ctrl-C ends
    the run early and returns the batches that exist, with `interrupted=True` and each image's `steps` (a Ctrl-C
    before the first batch got going raises KeyboardInterrupt). `alpha=True` renders transparent images, RGBA
    (optvis/alpha.py; `result.has_alpha`), with `alpha_weight` the transparency penalty. With `compile`, the
    model must be traceable by torch.fx; the warm-up is paid once per model, layers and shape in a process.
    """
    requested = with_overrides(settings, overrides)
    check_callback("on_snapshot", on_snapshot, "on_snapshot(step, images, labels)", 3)
    init_image, init_record = _read_init_image(init_image)
    if init_image is not None and requested.init_sd is not None:  # the start image replaces the random start
        raise DreamlabError(f"init_sd={requested.init_sd!r} is the spread of the random start, and init_image starts "
                            f"from the image instead: leave init_sd out, or init_image out for a random start")
    module, recipe_obj, weights_desc, categories, owned = resolve_model(model, recipe, weights, precision=True)
    obj = _as_objective(objective, categories, module)
    dev = resolve_device(requested.device)
    settings = resolve_settings(requested, recipe_obj, owned, dev, obj.layers)
    todo = check_units(units, obj.batch_size)
    thresholds = check_call(settings.steps, batch_size, thresholds)
    copies = settings.diversity  # below, todo holds indices into the repeated objective: unit u's are u*copies+k
    obj, todo, settings = _with_diversity_copies(obj, todo, settings, recipe_obj, batch_size)
    per_batch, fixed_batch = _batch_plan(settings, todo, batch_size, copies)
    _check_alignment(obj, todo, per_batch, copies)
    init_images, init_record = _init_images(init_image, init_record, settings, recipe_obj, todo, copies)
    parts: list[_Batch] = []
    stopped = False  # a Ctrl-C outside a batch's steps (between batches, or while one starts)
    try:
        with prepared_model(module, dev, settings.channels_last, owned) as ready:
            renderer, settings = _fitted_renderer(  # its first forward checks units and sizes before any image
                lambda chosen: _Renderer(ready, obj, recipe_obj, chosen, init_images, thresholds, on_snapshot,
                                         keep_snapshots), settings, requested)
            class_layer = class_layer_of(ready, obj.layers, categories, recipe_obj.channels,
                                         settings.model_height_width or settings.height_width, dev)
            _run_with_bar(renderer, todo, per_batch, copies, fixed_batch, parts, settings.steps, progress)
    except KeyboardInterrupt:
        if not parts:
            raise  # nothing was finished
        stopped = True  # the batches finished so far are returned
    with DeferredSigint():  # a second Ctrl-C must not lose them now
        result = _result(parts, obj, todo, copies, sorted(set(thresholds)),
                         provenance_of=lambda steps: {**provenance(obj, recipe_obj, weights_desc, settings, steps),
                                                      **init_record},
                         planned=settings.steps, stopped=stopped, categories=categories, class_layer=class_layer)
        _note_no_gradient(result)
        return result


def _run_with_bar(renderer: _Renderer, todo: Sequence[int], per_batch: int, copies: int, fixed_batch: bool,
                  parts: list[_Batch], steps: int, progress: bool) -> None:
    """`_run_batches`, under a progress bar of every image's steps where `progress` asks for one."""
    what = f"{len(todo) // copies} unit(s) x {copies} images" if copies > 1 else f"{len(todo)} unit(s)"
    bar = progress_bar(len(todo) * steps, f"rendering {what}, {steps} steps") if progress else None
    try:
        _run_batches(renderer, todo, per_batch, copies, fixed_batch, bar, parts)
    finally:
        if bar is not None:
            bar.close()


def _read_init_image(init_image: Tensor | str | Path | None) -> tuple[Tensor | None, dict[str, str]]:
    """A path's pixels and its provenance record, read before the model loads (a wrong path is told at once);
    pixels or None are passed through with an empty record."""
    if not isinstance(init_image, (str, Path)):
        return init_image, {}
    pixels = read_photo(init_image, "init_image")
    return pixels, photo_record(init_image, pixels, "init")


def _as_objective(objective: Objective | str, categories: Sequence[str] | None, module: nn.Module) -> Objective:
    """The Objective itself, or the one a string names; anything else is refused."""
    obj = parse_objective(objective, categories, module_names(module)) if isinstance(objective, str) else objective
    if not isinstance(obj, Objective) and callable(obj):  # lucent's `lambda T: T("layer")[:, 5].mean()`
        name = getattr(obj, "__name__", type(obj).__name__)
        raise DreamlabError(f"objective {name!r} is a plain function; decorate it with @dreamlab.objective(layers="
                            f"['layer']), and it gets the activations it declares, acts['layer'] (one score per "
                            f"sample)")
    if not isinstance(obj, Objective):
        raise DreamlabError(f"objective must be a string such as 'inception4c:97' or an Objective (dreamlab."
                            f"objectives), got {type(objective).__name__}")
    return obj


def _with_diversity_copies(obj: Objective, todo: list[int], settings: RenderSettings, recipe: Recipe,
                 batch_size: int | None) -> tuple[Objective, list[int], RenderSettings]:
    """With `diversity` N (settings.diversity) each unit becomes N samples in a row, optimized in one batch:
    the repeated objective, the indices into it (unit u's are u*N+k), and the settings with the layer the
    diversity penalty reads. With N = 1 all is returned as it is."""
    copies = settings.diversity
    if copies == 1:
        if "diversity" in obj.couples:  # o.diversity compares the images of one unit: alone it is 0
            raise DreamlabError(f"{obj.name!r} holds o.diversity, which compares each image with the other images "
                                f"of its unit, and each unit has one image here; add diversity=N (N >= 2) with "
                                f"diversity_weight=0, as lucid's batch of N")
        return obj, todo, settings
    settings = dataclasses.replace(settings, diversity_layer=diversity_layer(
        obj, recipe.default_layer, settings.diversity_layer))
    obj = repeat_units(obj, copies)
    todo = [u * copies + k for u in todo for k in range(copies)]
    if batch_size is not None and batch_size < copies:
        raise DreamlabError(f"batch_size (--batch-size) {batch_size} is below diversity {copies}: the images of "
                            f"one unit are optimized together; give at least {copies} (or leave it unset)")
    return obj, todo, settings


def _check_alignment(obj: Objective, todo: Sequence[int], per_batch: int, copies: int) -> None:
    """Refuse o.alignment where no batch holds two units it compares (1 to 4 places apart in the unit list): its
    term would be 0 for every image, as o.diversity's is without diversity=N."""
    if "alignment" not in obj.couples or _aligns_a_pair(todo, per_batch, copies):
        return
    alone = "one unit is rendered" if len({u // copies for u in todo}) == 1 else \
        "no batch holds two units 1 to 4 places apart"
    raise DreamlabError(f"{obj.name!r} holds o.alignment, which compares each image with those of the units 1 to 4 "
                        f"places from its own in the same batch, and {alone} here, so it would be 0; render "
                        f"neighbouring units together (o.channel_interpolate(..., steps=N), a range like "
                        f"'conv2:0-7') and leave batch_size unset")


def _aligns_a_pair(todo: Sequence[int], per_batch: int, copies: int) -> bool:
    """Whether a batch of `per_batch` images of `todo` holds two units o.alignment compares."""
    for start in range(0, len(todo), per_batch):
        units = {u // copies for u in todo[start:start + per_batch]}
        if any(u + d in units for u in units for d in ALIGNMENT_DISTANCES):
            return True
    return False


def _refuse_halving_alignment(obj: Objective, todo: Sequence[int], images: int, smaller: int, copies: int) -> None:
    """Out of memory with `images` of `todo` at once: refuse to halve the batch (to `smaller`) when `obj` holds
    o.alignment, which compares the units of one batch only, so that a render never compares fewer neighbours
    than were asked for because memory ran short; a smaller batch_size is the user's to choose."""
    if "alignment" not in obj.couples:
        return
    split = f", or give batch_size={smaller} (neighbours in different batches are then not compared)" \
        if _aligns_a_pair(todo, smaller, copies) else ""
    raise DreamlabError(f"out of memory optimizing {images} images at once, and {obj.name!r} holds o.alignment, "
                        f"which compares only the units of one batch, so the batch is not halved; free memory on "
                        f"the device or render a smaller size{split}")


def _batch_plan(settings: RenderSettings, todo: Sequence[int], batch_size: int | None,
                copies: int) -> tuple[int, bool]:
    """How many images a batch holds (whole groups of a unit's `copies`), and whether that batch is fixed."""
    per_batch = min(batch_size or len(todo), len(todo))
    per_batch -= per_batch % copies
    # a module, or a factory that takes no arguments, makes one fixed batch: it cannot be halved on out-of-memory
    fixed_batch = isinstance(settings.param, nn.Module) or (
        callable(settings.param) and not isinstance(settings.param, str) and takes_no_arguments(settings.param))
    if isinstance(settings.param, nn.Module) and per_batch < len(todo):
        raise DreamlabError(f"a param module holds one fixed batch: render its {len(todo)} units at once (leave "
                            f"batch_size unset) or pass a factory")
    return per_batch, fixed_batch


def _init_images(init_image: Tensor | None, init_record: dict[str, str], settings: RenderSettings, recipe: Recipe,
                 todo: Sequence[int], copies: int) -> tuple[dict[int, Tensor] | Tensor | None, dict[str, str]]:
    """The start images fitted to the render's size (one for all units, or one per index of `todo`), and the
    provenance record of the init image (a tensor's is made here; a file's was made as it was read)."""
    if init_image is None:
        return None, init_record
    if not isinstance(settings.param, str):
        raise DreamlabError("init_image works with the named parameterizations (param='pixel', 'fourier' or 'maco'), "
                            "not a module or factory of your own; start from noise, or name one of them")
    fitted = fit_init_image(init_image, recipe.channels, settings.height_width, len(todo) // copies)
    init_record = init_record or photo_record(init_image, init_image, "init")
    init_images = fitted if fitted.shape[0] == 1 else dict(zip(todo, fitted.repeat_interleave(copies, 0)))
    return init_images, init_record


def _run_batches(renderer: _Renderer, todo: Sequence[int], per_batch: int, copies: int, fixed_batch: bool, bar,
                 parts: list[_Batch]) -> None:
    """Run `todo` in batches of `per_batch` images, appending each finished batch to `parts` (so a Ctrl-C keeps
    them); stops after a batch that was interrupted. On out-of-memory the batch is halved and retried, unless it
    is fixed, already one unit's images, or its objective holds o.alignment."""
    start = 0
    while start < len(todo):
        end = min(start + per_batch, len(todo))
        try:
            parts.append(renderer.run_batch(todo[start:end], bar))
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not out_of_memory(exc) or per_batch == copies or fixed_batch:
                raise
            # keep finished batches, retry this one smaller (whole groups of a unit's images)
            smaller = max(copies, (per_batch + 1) // 2 // copies * copies)
            _refuse_halving_alignment(renderer.objective, todo, end - start, smaller, copies)
            per_batch = smaller
            if renderer.settings.device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        start = end
        if parts[-1].interrupted:
            break


def _result(parts: list[_Batch], obj: Objective, todo: Sequence[int], copies: int, thresholds: Sequence[int],
            provenance_of: Callable[[int], dict[str, str]], planned: int, stopped: bool,
            categories: Sequence[str] | None = None, class_layer: str | None = None) -> RenderResult:
    """The finished batches as one RenderResult (history and provenance hold the steps every batch ran)."""
    done = sum(p.images.shape[0] for p in parts)
    snapshots = {step: torch.cat([p.snapshots[step] for p in parts]) for step in thresholds
                 if all(step in p.snapshots for p in parts)}
    steps_run = min(p.steps for p in parts)
    return RenderResult(
        images=torch.cat([p.images for p in parts]),
        labels=[obj.labels[u] for u in todo[:done]],
        history=torch.cat([p.history[:steps_run] for p in parts], dim=1),
        initial_scores=torch.cat([p.initial_scores for p in parts]),
        final_scores=torch.cat([p.final_scores for p in parts]),
        provenance=provenance_of(steps_run),
        snapshots=snapshots,
        interrupted=stopped or any(p.interrupted for p in parts),
        grad_norms=torch.cat([p.grad_norms[:steps_run] for p in parts], dim=1),
        unit_indices=[u // copies for u in todo[:done]],
        categories=categories,
        class_layer=class_layer,
        steps=[p.steps for p in parts for _ in range(p.images.shape[0])],
        planned_steps=planned,
        gradient_reached=torch.cat([p.gradient_reached for p in parts]).tolist(),
    )


def _gradient_stats(param: ImageParam, images: int, per_image: bool) -> tuple[Tensor, Tensor]:
    """This step's gradients on the parameterization's tensors, in one pass, on the device (no host sync): each
    image's gradient norm [images] over the tensors batched one slice per image (for --tensorboard; 0 where none
    is), and whether any gradient entry reaching it is non-zero [images] (RenderResult.no_gradient). `per_image`:
    every tensor is batched one slice per image (the built-in params), so each image is judged by its own slice; else
    (a user module, whose tensors may be shared) by all of them."""
    device = next(param.parameters()).device
    squares = torch.zeros(images, device=device)
    reached = torch.zeros(images, dtype=torch.bool, device=device)
    for p in param.parameters():
        if p.grad is None:
            continue
        grad = p.grad.detach()
        batched = p.dim() > 0 and p.shape[0] == images
        if batched:
            squares = squares + grad.reshape(images, -1).float().pow(2).sum(1)
        nonzero = grad != 0
        reached = reached | (nonzero.reshape(images, -1).any(1) if per_image and batched else nonzero.any())
    return squares.sqrt(), reached


def _note_no_gradient(result: RenderResult) -> None:
    """A DreamlabNote naming the images no gradient reached (RenderResult.no_gradient): they are their start
    images, which nothing else says."""
    labels = result.no_gradient()
    if not labels:
        return
    names = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
    one = len(labels) == 1
    warnings.warn(DreamlabNote(
        f"{names}: the gradient reaching {'its image' if one else 'their images'} was exactly 0 at every step, so "
        f"the objective never changed {'it' if one else 'them'} and {'it is its' if one else 'each is its'} start "
        f"image; its score does not change with the image: a ReLU on the way to the unit is off everywhere (a "
        f"unit after it sees only a bias), or the score has no gradient (.sign(), .round(), a comparison or "
        f"another step function: use a smooth score, e.g. torch.sigmoid(k * x) for a step)"),
        stacklevel=4)  # render's caller
