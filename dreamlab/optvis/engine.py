"""The render loop: optimize a batch of parameterized images so that each maximizes its unit's score.

>>> result = render("googlenet", "inception4c:0-7", weights="none", steps=64, size=128, device="cpu")
>>> result.images.shape, len(result.labels)
(torch.Size([8, 3, 128, 128]), 8)
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from dreamlab import __version__
from dreamlab.devices import resolve_device, same_device
from dreamlab.optvis.capture import Capture
from dreamlab.errors import DreamlabError, unknown
from dreamlab.optvis.grammar import parse_objective
from dreamlab.models.loading import LoadedModel, load_model, torchvision_categories
from dreamlab.optvis.objectives import IMAGE, Objective
from dreamlab.optvis.optimizers import OPTIMIZERS, make_optimizer
from dreamlab.optvis.params import PARAMS, ImageParam, image_to_param_raw, make_param
from dreamlab.models.recipe import Recipe
from dreamlab.optvis.relu import RedirectedReLU
from dreamlab.optvis.transforms import RandomTransforms

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
SnapshotCallback = Callable[[int, Tensor, Sequence[str]], None]  # (step, images [b,C,H,W] cpu, labels)


@dataclass
class RenderResult:
    """Rendered images [B, C, H, W] in [0, 1] (CPU), one per unit, with what produced them."""

    images: Tensor
    labels: list[str]
    history: Tensor  # objective per step and unit, [steps, B], measured on the transformed images
    initial_scores: Tensor  # objective of each unit on its starting un-transformed image, [B]
    final_scores: Tensor  # objective of each unit on its final un-transformed image, [B]
    provenance: dict[str, str]
    snapshots: dict[int, Tensor] = field(default_factory=dict)  # step -> images, for the requested thresholds
    interrupted: bool = False  # Ctrl-C stopped the run early; images are the last state reached

    def pil(self) -> list[Image.Image]:
        """The images as PIL images (RGB, or L for one channel)."""
        from dreamlab.io import to_pil

        return [to_pil(img) for img in self.images]


@dataclass(frozen=True)
class RenderSettings:
    """Everything that decides the pixels, resolved from the recipe and the caller's overrides."""

    steps: int
    size: int
    lr: float
    optimizer: str
    param: str
    transforms: str
    seed: int
    device: torch.device
    precision: str  # "fp32" or "bf16" (autocast around the model only)
    channels_last: bool
    redirect_relu_steps: int  # steps at the start that use the redirected ReLU gradient (see relu.py)
    # torch.compile mode for each step's forward ("default", "reduce-overhead" for CUDA graphs, ...), or None
    compile: str | None = None


@dataclass
class _Chunk:
    """What one chunk of units produced (see _Renderer.run_chunk)."""

    images: Tensor
    history: Tensor
    initial_scores: Tensor
    final_scores: Tensor
    snapshots: dict[int, Tensor]
    interrupted: bool


def custom_recipe(model: nn.Module, channels: int = 3, input_size: int = 224) -> Recipe:
    """Settings for a model passed as a module without a recipe: ImageNet-style preprocessing."""
    return Recipe(name=type(model).__name__, builder="custom:" + type(model).__name__, weights="none",
                  channels=channels, input_size=input_size,
                  mean=(0.485, 0.456, 0.406) if channels == 3 else (0.5,) * channels,
                  std=(0.229, 0.224, 0.225) if channels == 3 else (0.5,) * channels)


def _model_device(model: nn.Module) -> torch.device | None:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return None if tensor is None else tensor.device


@contextmanager
def prepared_model(model: nn.Module, device: torch.device, channels_last: bool, owned: bool) -> Iterator[nn.Module]:
    """The model in eval mode with frozen parameters on `device`.

    A model dreamlab loaded (`owned`, e.g. a LoadedModel) is moved to `device` in place and stays there, so the
    next render on that device finds it ready; its memory layout is channels_last for this render only and is
    contiguous again afterwards, so one render's layout never leaks into the next. A caller's module is left
    exactly as it was found: on another device it is copied, never moved.
    """
    if owned:
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        try:
            yield model
        finally:
            if channels_last:
                model.to(memory_format=torch.contiguous_format)
        return
    if not same_device(_model_device(model), device):
        model = copy.deepcopy(model).to(device)  # never move the caller's model
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.requires_grad for p in model.parameters()}
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training
        for p, flag in grads.items():
            p.requires_grad_(flag)


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (tuple hashing of ints is the same in every process)."""
    return hash(parts) & 0x7FFF_FFFF_FFFF_FFFF


class _Renderer:
    """Holds the per-render state shared by every chunk of units."""

    def __init__(self, model: nn.Module, objective: Objective, recipe: Recipe, settings: RenderSettings,
                 init_image: Tensor | None, thresholds: Sequence[int], on_snapshot: SnapshotCallback | None,
                 param_options: dict):
        self.model, self.objective, self.recipe, self.s = model, objective, recipe, settings
        self.layers = sorted(objective.layers - {IMAGE})
        dev = settings.device
        self.mean = torch.tensor(recipe.mean, device=dev).view(1, -1, 1, 1)
        self.std = torch.tensor(recipe.std, device=dev).view(1, -1, 1, 1)
        self.transforms = dataclasses.replace(RandomTransforms.preset(settings.transforms), fill=recipe.fill)
        self.init_image = init_image
        self.thresholds = sorted({t for t in thresholds if 0 < t <= settings.steps})
        self.on_snapshot = on_snapshot
        self.param_options = param_options
        self.checked = False
        self.features: nn.Module | None = None
        self.compiled_scores = None
        if settings.compile:
            from dreamlab.optvis.truncate import truncated_forward

            self.features = truncated_forward(model, self.layers) if self.layers else None
            # the FFT of the Fourier parameterization runs as a library call, which is what this warns about
            warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex")
            # inductor looks for CUDA even when compiling for the CPU, and says so once per process
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            self.compiled_scores = torch.compile(self.step_scores, dynamic=False,
                                                 mode=None if settings.compile == "default" else settings.compile)

    def normalize(self, images: Tensor) -> Tensor:
        x = (images - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.s.channels_last else x

    def autocast(self):
        if self.s.precision == "bf16":
            return torch.autocast(self.s.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def scores(self, run_layers: Callable[[Tensor], dict[str, Tensor]], images: Tensor, model_input: Tensor,
               index: Tensor) -> Tensor:
        with self.autocast():
            acts = dict(run_layers(model_input)) if self.layers else {}
        acts[IMAGE] = images
        return self.objective(acts, index)

    def step_scores(self, run_layers: Callable[[Tensor], dict[str, Tensor]], param: ImageParam, draws: Tensor,
                    index: Tensor) -> Tensor:
        """One step's forward: the images, their transforms, the model up to the objective's layers, the scores."""
        images = param()
        model_input = self.normalize(self.transforms(images, draws=draws))
        return self.scores(run_layers, images, model_input, index)

    def check_units(self, model_input: Tensor) -> None:
        """One full forward of one input: catches reused modules and out-of-range units before optimizing."""
        with torch.no_grad(), Capture(self.model, self.layers, stop_early=False) as cap, self.autocast():
            try:
                acts = cap.run(self.normalize(model_input)) if self.layers else {}
            except (RuntimeError, AssertionError, ValueError) as exc:  # the model refused the input's shape
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                shape = "x".join(map(str, model_input.shape[1:]))
                raise DreamlabError(
                    f"{self.recipe.name} rejected a {shape} input ({reason}); a model with a fixed input size "
                    f"needs --size {self.recipe.input_size} and transforms that keep the size "
                    f"(--transforms small or none)") from None
        self.objective.check({name: act.shape for name, act in acts.items()})
        self.checked = True

    def make_param(self, units: Sequence[int]) -> ImageParam:
        # one generator per unit: a unit's start does not depend on how the units are split into batches
        generators = [torch.Generator(self.s.device).manual_seed(_seed(self.s.seed, 0, unit)) for unit in units]
        param = make_param(self.s.param, len(units), self.recipe.channels, self.s.size, generator=generators,
                           device=self.s.device, **self.param_options)
        if self.init_image is not None:
            image_to_param_raw(self.init_image.to(self.s.device), param)
        return param

    def run_chunk(self, units: Sequence[int], bar) -> _Chunk:
        """Optimize the images of these units (indices into the objective's batch)."""
        dev = self.s.device
        b = len(units)
        param = self.make_param(units)
        step_generator = torch.Generator(dev)
        total = self.objective.batch_size
        optimizer = make_optimizer(self.s.optimizer, param.parameters(), lr=self.s.lr)
        index = torch.tensor(list(units), device=dev)
        history: list[Tensor] = []
        snapshots: dict[int, Tensor] = {}
        interrupted = False
        if not self.checked:
            size = self.transforms.output_size(self.s.size, self.s.size)
            self.check_units(torch.zeros(1, self.recipe.channels, *size, device=dev))
        initial_scores = self.clean_scores(param, index)[1]
        with Capture(self.model, self.layers) if self.features is None else nullcontext() as cap:
            run_layers = self.features if cap is None else cap.run
            fast_scores = self.compiled_scores or self.step_scores  # after the redirected-ReLU steps
            try:
                for step in range(1, self.s.steps + 1):
                    # every step draws the transforms of all units and keeps this chunk's: same per unit
                    # whatever the split
                    step_generator.manual_seed(_seed(self.s.seed, 1, step))
                    draws = torch.rand(total, RandomTransforms.DRAWS_PER_SAMPLE, generator=step_generator,
                                       device=dev)[index]
                    if step <= self.s.redirect_relu_steps:  # eager: the mode swaps every ReLU's gradient
                        with RedirectedReLU():
                            score = self.step_scores(run_layers, param, draws, index)
                    else:
                        score = fast_scores(run_layers, param, draws, index)
                    optimizer.zero_grad(set_to_none=True)
                    (-score.sum()).backward()  # the one negation: objectives are maximized
                    optimizer.step()
                    history.append(score.detach().clone())  # a CUDA graph reuses its output buffer
                    if bar is not None:
                        bar.update(b)
                    if step in self.thresholds:
                        snapshots[step] = self.snapshot(param, units, step)
            except KeyboardInterrupt:
                interrupted = True
        final, final_scores = self.clean_scores(param, index)
        hist = torch.stack(history).float().cpu() if history else torch.zeros(0, b)
        return _Chunk(final.cpu(), hist, initial_scores, final_scores, snapshots, interrupted)

    def clean_scores(self, param: ImageParam, index: Tensor) -> tuple[Tensor, Tensor]:
        """The images without transforms and their scores (CPU), e.g. to report what a render achieved."""
        with torch.no_grad(), Capture(self.model, self.layers) as cap:
            images = param().float()
            return images, self.scores(cap.run, images, self.normalize(images), index).float().cpu()

    def snapshot(self, param: ImageParam, units: Sequence[int], step: int) -> Tensor:
        with torch.no_grad():
            images = param().float().cpu()
        if self.on_snapshot is not None:
            self.on_snapshot(step, images, [self.objective.labels[u] for u in units])
        return images


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _resolve_model(model: nn.Module | str | LoadedModel, recipe: Recipe | str | None,
                   weights: str | Path | None) -> tuple[nn.Module, Recipe, str, tuple[str, ...] | None, bool]:
    """(module, recipe, weights description, class names, whether dreamlab owns the module)."""
    if isinstance(model, str):
        model = load_model(recipe if recipe is not None else model, weights)
    if isinstance(model, LoadedModel):
        return model.model, model.recipe, model.weights, model.categories, True
    if isinstance(recipe, str):
        from dreamlab.models.recipe import load_recipe

        recipe = load_recipe(recipe)
    recipe = recipe or custom_recipe(model)
    categories = recipe.categories or torchvision_categories(recipe)
    return model, recipe, "caller's module", categories, False


def render(model: nn.Module | str | LoadedModel, objective: Objective | str, *, recipe: Recipe | str | None = None,
           weights: str | Path | None = "default", steps: int | None = None, size: int | None = None,
           lr: float | None = None, optimizer: str | None = None, param: str | None = None,
           transforms: str | None = None, seed: int = 0,
           device: str | torch.device | None = None, batch_size: int | None = None,
           thresholds: Sequence[int] = (), on_snapshot: SnapshotCallback | None = None,
           init_image: Tensor | None = None, precision: str = "auto", channels_last: bool | None = None,
           redirect_relu_steps: int = 16, param_options: dict | None = None,
           units: Sequence[int] | None = None, progress: bool = False, compile: bool | str = False) -> RenderResult:
    """Optimize one image per unit of `objective` and return them with their history and provenance.

    `model` is a recipe or torchvision name ('googlenet'), a LoadedModel, or any nn.Module (left unmodified).
    Unset settings come from the recipe. `batch_size` caps how many units are optimized at once (default: all;
    on a GPU out-of-memory the batch is halved and the run goes on). Ctrl-C ends the run early and returns what
    exists, with `interrupted=True`. The first `redirect_relu_steps` steps let gradient through ReLUs that
    are off everywhere, so units that start dead can come alive (lucid's redirected ReLU). `optimizer` is
    'channel-adam' or 'adam' (see optimizers.py). `param_options` go to the parameterization and override the
    recipe's (e.g. {"decay_power": 1.0, "decorrelate": True, "color_matrix": tensor, "sd": 0.01}).
    `units` renders only these indices of a batched objective (e.g. `range(16, 32)` of `layer:0-511`); each
    unit's image is the same as in a render of them all, whatever the split. `compile` (True, or a torch.compile
    mode such as "reduce-overhead" for CUDA graphs) compiles each step's forward after the redirected-ReLU
    steps: the warm-up is paid once per model, layers and shape in a process, later renders reuse it. The model
    must be traceable by torch.fx.
    """
    module, recipe_obj, weights_desc, categories, owned = _resolve_model(model, recipe, weights)
    obj = parse_objective(objective, categories) if isinstance(objective, str) else objective
    dev = resolve_device(device)
    if precision not in ("auto", "fp32", "bf16"):
        raise DreamlabError(f"unknown precision {precision!r}; valid: auto, fp32, bf16")
    settings = RenderSettings(
        steps=int(steps if steps is not None else recipe_obj.steps),
        size=int(size if size is not None else recipe_obj.input_size),
        lr=float(lr if lr is not None else recipe_obj.lr),
        optimizer=optimizer or recipe_obj.optimizer,
        param=param or recipe_obj.param,
        transforms=transforms or recipe_obj.transforms,
        seed=int(seed),
        device=dev,
        precision=("bf16" if dev.type == "cuda" else "fp32") if precision == "auto" else precision,
        channels_last=(dev.type == "cuda" and owned) if channels_last is None else channels_last,
        redirect_relu_steps=int(redirect_relu_steps),
        compile=("default" if compile is True else compile) or None,
    )
    _validate(settings)
    if init_image is not None:
        init_image = _fit_image(init_image, recipe_obj.channels, settings.size)
    total = obj.batch_size
    todo = list(range(total)) if units is None else [int(u) for u in units]
    if not todo or any(not 0 <= u < total for u in todo):
        raise DreamlabError(f"units must be indices into the objective's {total} units (0-{total - 1}), "
                            f"got {list(units) if units is not None else []}"[:300])
    with prepared_model(module, dev, settings.channels_last, owned) as ready:
        renderer = _Renderer(ready, obj, recipe_obj, settings, init_image, thresholds, on_snapshot,
                             _param_options(recipe_obj, settings.param, param_options))
        parts, start, chunk = [], 0, min(batch_size or len(todo), len(todo))
        bar = _progress_bar(len(todo) * settings.steps) if progress else None
        try:
            while start < len(todo):
                end = min(start + chunk, len(todo))
                try:
                    part = renderer.run_chunk(todo[start:end], bar)
                except (torch.OutOfMemoryError, RuntimeError) as exc:
                    if not _out_of_memory(exc) or chunk == 1:
                        raise
                    chunk = (chunk + 1) // 2  # keep finished chunks, retry this one smaller
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                parts.append(part)
                start = end
                if part.interrupted:
                    break
        finally:
            if bar is not None:
                bar.close()
    done = sum(p.images.shape[0] for p in parts)
    snapshots = {step: torch.cat([p.snapshots[step] for p in parts]) for step in renderer.thresholds
                 if all(step in p.snapshots for p in parts)}
    steps_run = min(p.history.shape[0] for p in parts)
    return RenderResult(
        images=torch.cat([p.images for p in parts]),
        labels=[obj.labels[u] for u in todo[:done]],
        history=torch.cat([p.history[:steps_run] for p in parts], dim=1),
        initial_scores=torch.cat([p.initial_scores for p in parts]),
        final_scores=torch.cat([p.final_scores for p in parts]),
        provenance=provenance(obj, recipe_obj, weights_desc, settings, steps_run, renderer.param_options),
        snapshots=snapshots,
        interrupted=any(p.interrupted for p in parts),
    )


def _param_options(recipe: Recipe, param: str, overrides: dict | None) -> dict:
    """The parameterization's options: the recipe's start level and Fourier decay, then the caller's."""
    options: dict = {"start_level": recipe.start_level}
    if param == "fourier":
        options["decay_power"] = recipe.fourier_decay
    return options | dict(overrides or {})


def _validate(s: RenderSettings) -> None:
    if s.steps < 1:
        raise DreamlabError(f"steps must be at least 1, got {s.steps}")
    if s.size < 8:
        raise DreamlabError(f"size must be at least 8 pixels, got {s.size}")
    if s.lr <= 0:
        raise DreamlabError(f"learning rate must be positive, got {s.lr}")
    RandomTransforms.preset(s.transforms)
    if s.param not in PARAMS:
        raise unknown("parameterization", s.param, PARAMS)
    if s.optimizer not in OPTIMIZERS:
        raise unknown("optimizer", s.optimizer, OPTIMIZERS)
    if s.compile is not None and s.compile not in COMPILE_MODES:
        raise unknown("compile mode", s.compile, COMPILE_MODES)


def _fit_image(image: Tensor, channels: int, size: int) -> Tensor:
    """A [C,H,W] or [B,C,H,W] image in [0,1] resized to the render size with the model's channel count."""
    image = image.float()
    if image.dim() == 3:
        image = image[None]
    if image.shape[1] == 3 and channels == 1:
        image = image.mean(1, keepdim=True)
    elif image.shape[1] == 1 and channels == 3:
        image = image.expand(-1, 3, -1, -1)
    elif image.shape[1] != channels:
        raise DreamlabError(f"the start image has {image.shape[1]} channels; this model takes {channels}")
    image = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    return image.clamp(0, 1)


def _progress_bar(total: int):
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="img-step", unit_scale=True, leave=False)


def provenance(obj: Objective, recipe: Recipe, weights: str, s: RenderSettings, steps_run: int,
               param_options: dict | None = None) -> dict[str, str]:
    """What produced an image, stored in its PNG text chunks."""
    import torchvision

    options = {f"dreamlab:{key}": f"{value:g}" for key, value in (param_options or {}).items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return {
        "dreamlab:objective": obj.name,
        "dreamlab:model": recipe.name,
        "dreamlab:weights": weights,
        "dreamlab:recipe": recipe.name,
        "dreamlab:recipe_hash": recipe.hash(),
        "dreamlab:seed": str(s.seed),
        "dreamlab:steps": str(steps_run),
        "dreamlab:size": str(s.size),
        "dreamlab:lr": f"{s.lr:g}",
        "dreamlab:optimizer": s.optimizer,
        "dreamlab:param": s.param,
        "dreamlab:transforms": s.transforms,
        **options,  # the parameterization's numeric options: start_level, decay_power, sd
        "dreamlab:device": s.device.type,
        "dreamlab:precision": s.precision,
        "dreamlab:compile": s.compile or "no",
        "dreamlab:version": __version__,
        "torch:version": torch.__version__,
        "torchvision:version": torchvision.__version__,
    }
