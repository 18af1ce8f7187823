"""The model-randomization sanity check of Adebayo et al. (2018), "Sanity Checks for Saliency Maps".

Re-initialize the model's blocks from the top (the classifier) down, cumulatively, one block per step, and
compare each step's attribution map with the trained model's by Spearman rank correlation of the magnitudes.
A method that explains the model must change as its weights are destroyed; one that stays highly correlated
(guided backpropagation, in the paper and here) shows the input's edges rather than what the model learned.

A block (`blocks_top_down`) is a child module that holds parameters and runs in the forward pass; plain
containers (`nn.Sequential`, `nn.ModuleList`, `nn.ModuleDict`: VGG's `features`, ResNet's `layer1`) are
descended into, one block per child, as is a module that holds a stack of same-type blocks in one (ViT's
`encoder`, whose `layers` are its blocks), so the cascade goes layer by layer, or residual block by block, as
the paper's does. A module's own (bare) parameters, such as ViT's `class_token` and `encoder.pos_embedding`,
are a block of their own, below the module's children (a module uses them when it starts).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dreamlab.attribution.faithfulness import importance
from dreamlab.optvis.transforms import seeded_rng

Attribute = Callable[[nn.Module], Tensor]  # model -> attributions [B, C, H, W]

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)  # exact types: subclasses are blocks of their own
# a bare parameter (no `reset_parameters` owns it) is re-drawn from a normal truncated at 2 std with std 0.02: the
# init of ViT's position embedding (torchvision's VisionTransformer) and of timm's tokens; Adebayo et al. draw
# their re-initializations from a truncated normal too
BARE_STD = 0.02


@dataclass(frozen=True)
class SanityStep:
    """`correlation` is NaN where no image has one: a map that is all zero (or constant) has no ranks to
    correlate, as for a Grad-CAM whose weighted sum is 0 or negative everywhere. It is not a low correlation."""

    randomized: str  # the block (a module or a bare parameter's address) re-initialized at this step
    correlation: float  # mean over the images whose correlation is defined (both maps non-constant), else NaN


@contextmanager
def execution_order(model: nn.Module) -> Iterator[dict[nn.Module, int]]:
    """{module: when it first started} for the forward passes run inside (forward pre-hooks on every module)."""
    started: dict[nn.Module, int] = {}

    def hook(module: nn.Module, inputs: object) -> None:
        started.setdefault(module, len(started))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()]
    try:
        yield started
    finally:
        for handle in handles:
            handle.remove()


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _holds_stack(module: nn.Module) -> bool:
    """A module whose one plain container child with parameters holds a stack of two or more blocks of one type
    (ViT's `encoder` and its `layers`): descended into like a container. GoogLeNet's Inception module, with
    several container branches, is a block; so is a ResNet block with its `downsample` (conv and batch norm)."""
    containers = [c for c in module.children() if type(c) in CONTAINERS and _has_parameters(c)]
    if len(containers) != 1:
        return False
    blocks = [c for c in containers[0].children() if _has_parameters(c)]
    return len(blocks) >= 2 and len({type(c) for c in blocks}) == 1 and any(True for _ in blocks[0].children())


class _TargetReached(BaseException):
    """Stops a forward once the target's layers have run (a BaseException, so no `except Exception` eats it)."""


@contextmanager
def _stop_after(model: nn.Module, layers: Collection[str]) -> Iterator[None]:
    """Within, a forward stops (and the block ends) once every module in `layers` has run; none: no stop."""
    left = set(layers)
    handles = []

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            left.discard(name)
            if not left:
                raise _TargetReached
        return hook

    try:
        handles = [model.get_submodule(name).register_forward_hook(hook_for(name)) for name in layers]
        yield
    except _TargetReached:
        pass
    finally:
        for handle in handles:
            handle.remove()


def blocks_top_down(model: nn.Module, run: Callable[[], object] | None = None,
                    until: Collection[str] = ()) -> list[str]:
    """The model's blocks (see the module's docstring), last (the classifier) first.

    `run`: a callable that runs the model's forward (on the images); the blocks are then ordered by when they
    first run, and one that never runs (Inception v3's `AuxLogits` in eval mode) is left out, as re-initializing
    it changes nothing. `until`: the module addresses a target reads (not the output): the forward is stopped
    once they have run, so the blocks after them, which the target does not depend on, are left out too.
    Without `run` (or where it never calls the model), all of them, in registration order."""
    started: dict[nn.Module, int] = {}
    if run is not None:
        with execution_order(model) as started, _stop_after(model, until):
            run()
    if not started:  # no `run`, or it never called the model: every block, in registration order
        started = {m: i for i, m in enumerate(model.modules())}
    rows: list[tuple[int, str]] = []  # (when it starts, address)

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            if not _has_parameters(child):
                continue
            if type(child) in CONTAINERS:  # no forward of their own (ModuleList): their children say
                visit(child, f"{prefix}{name}.")
            elif child in started:
                if _holds_stack(child):
                    visit(child, f"{prefix}{name}.")
                else:
                    rows.append((started[child], prefix + name))
        if module in started:
            rows.extend((started[module], prefix + name) for name, _ in module.named_parameters(recurse=False))

    visit(model, "")
    return [name for _, name in sorted(rows, key=lambda row: -row[0])]


def average_ranks(values: Tensor) -> Tensor:
    """Ranks of a 1-D tensor, tied values sharing their mean rank (the many exact zeros of a map are ties)."""
    unique, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()
    return (last - (counts.double() - 1) / 2)[inverse]


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation per row of [B, N]; NaN for a row where either map is constant (all zero),
    whose correlation is undefined."""
    ranks_a = torch.stack([average_ranks(row) for row in a])
    ranks_b = torch.stack([average_ranks(row) for row in b])
    ranks_a = ranks_a - ranks_a.mean(1, keepdim=True)
    ranks_b = ranks_b - ranks_b.mean(1, keepdim=True)
    norms = ranks_a.norm(dim=1) * ranks_b.norm(dim=1)
    return torch.where(norms > 0, (ranks_a * ranks_b).sum(1) / norms.clamp(min=1e-12), torch.nan)


def reinitialize(module: nn.Module, seed: int) -> None:
    """Fresh default initialization for every submodule that has one (conv, linear, batch norm, attention's
    `_reset_parameters`), and a truncated normal (BARE_STD) for the parameters of submodules that have none
    (ViT's class token and position embedding, ConvNeXt's layer scale)."""
    device = next(module.parameters(), torch.empty(0)).device  # the initializers draw on the weights' device
    with seeded_rng(seed, device), torch.no_grad():
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
            elif hasattr(sub, "_reset_parameters"):  # nn.MultiheadAttention
                sub._reset_parameters()
            else:
                for parameter in sub.parameters(recurse=False):
                    _redraw(parameter)


def _redraw(parameter: Tensor) -> None:
    nn.init.trunc_normal_(parameter, std=BARE_STD, a=-2 * BARE_STD, b=2 * BARE_STD)


def randomize(model: nn.Module, block: str, seed: int) -> None:
    """Re-initialize `block` of `model`: a module's address, or a bare parameter's (see `blocks_top_down`)."""
    try:
        module = model.get_submodule(block)
    except AttributeError:
        parameter = model.get_parameter(block)
        with seeded_rng(seed, parameter.device), torch.no_grad():
            _redraw(parameter)
        return
    reinitialize(module, seed)


def cascading_randomization(model: nn.Module, attribute: Attribute, blocks: list[str] | None = None,
                            seed: int = 0) -> list[SanityStep]:
    """Rank correlations between the trained model's map and maps with ever more blocks re-initialized.

    The caller's model is not changed (a copy is randomized). `attribute(model)` computes the map. `blocks`:
    by default `blocks_top_down` of what the trained model's attribution ran. A step's correlation is NaN where
    every image's trained or randomized map is all zero (see SanityStep).
    """
    trained: list[Tensor] = []
    if blocks is None:
        blocks = blocks_top_down(model, lambda: trained.append(attribute(model)))
    reference = importance(trained[0] if trained else attribute(model), signed=False)
    randomized = copy.deepcopy(model)
    steps = []
    for i, name in enumerate(blocks):
        randomize(randomized, name, seed + i)
        current = importance(attribute(randomized), signed=False)
        steps.append(SanityStep(name, float(rank_correlation(reference, current).nanmean())))
    return steps
