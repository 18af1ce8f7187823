"""Optimizers for parameterized images.

`ChannelAdam` is Adam with one second-moment estimate per (sample, channel) instead of one per coordinate.
Plain Adam divides every coordinate of a Fourier spectrum by its own gradient history, so frequencies that
receive only tiny, incidental gradients (leaking through the sigmoid once pixels saturate) get full-size steps
and fill the image with blotches. ChannelAdam keeps the direction of the gradient within each channel and only
normalizes its size, so each channel of each sample still moves at the same rate, whatever the model's scale.

Its step follows the raw gradient, where Adam's follows roughly its sign, so the Fourier parameterization's
1/f^d scale enters the image-space step twice: decay 0.5 with ChannelAdam gives the 1/f preference that
decay 1 gives with Adam (lucid's setting). Recipes therefore pair `optimizer = "channel-adam"` with
`fourier_decay = 0.5`. The figures that chose this are in QUALITY.md.

Limit: like Adam, ChannelAdam moves each channel by about `lr` per step whatever the gradient's size, and its eps
(1e-12) is too small to damp even a vanishing gradient, where Adam's (1e-8) stops it. So an objective that is a
penalty alone and starts at its minimum (lucid's `alignment` test: nearly identical starting images) is pushed
away from it by about `lr` per step: at the digits recipe's lr 0.02 an alignment penalty on conv2 ends 16 steps
worse than it started for 5 of 5 seeds, where Adam ends better for 5 of 5. Render such objectives with
`optimizer="adam"`, a smaller `lr` (0.005 works for both), or add the penalty to something to maximize.

>>> p = torch.nn.Parameter(torch.zeros(2, 3, 4, 4))
>>> opt = make_optimizer("channel-adam", [p], lr=0.1)
>>> p.grad = torch.ones_like(p); opt.step()
>>> round(float(p.detach()[0, 0, 0, 0]), 3)   # one step of lr against the gradient, as any torch optimizer
-0.1
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from dreamlab.errors import DreamlabError, unknown


class ChannelAdam(torch.optim.Optimizer):
    """Adam whose second moment is averaged over all dimensions after the first two (sample, channel).

    Parameters must be at least 2-D with the sample on dim 0 and the channel on dim 1 (pixels [B, C, H, W];
    spectra [B, C, H, W', 2]). Bias correction as in Adam (Kingma & Ba, 2015).
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 0.05, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-12):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - the Optimizer signature
        """One update of every parameter: Adam's, with one second moment per (sample, channel)."""
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.dim() < 2:
                    raise ValueError(f"ChannelAdam needs [sample, channel, ...] parameters, got shape {tuple(p.shape)}")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros(p.shape[:2] + (1,) * (p.dim() - 2), device=p.device, dtype=p.dtype)
                state["step"] += 1
                t = state["step"]  # a Python int: no host sync
                grad = p.grad
                state["m"].lerp_(grad, 1 - beta1)
                square_mean = grad.square().flatten(2).mean(2).view_as(state["v"])
                state["v"].lerp_(square_mean, 1 - beta2)
                denom = (state["v"] / (1 - beta2 ** t)).sqrt_().add_(group["eps"])
                p.addcdiv_(state["m"], denom, value=-group["lr"] / (1 - beta1 ** t))
        return None


OPTIMIZERS = {"channel-adam": ChannelAdam, "adam": torch.optim.Adam}


OptimizerFactory = Callable[[list[Tensor]], torch.optim.Optimizer]  # e.g. lambda p: torch.optim.Adam(p, lr=0.05)


def make_optimizer(spec: str | OptimizerFactory, params: Iterable[Tensor], lr: float) -> torch.optim.Optimizer:
    """An optimizer by name ('channel-adam', dreamlab's default, or 'adam', per-coordinate as lucid) at `lr`, or
    from a factory called with the list of parameters (the factory sets its own learning rate)."""
    params = list(params)
    if isinstance(spec, str):
        if spec not in OPTIMIZERS:
            raise unknown("optimizer", spec, OPTIMIZERS)
        return OPTIMIZERS[spec](params, lr=lr)
    if not callable(spec):
        raise DreamlabError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or a factory params -> "
                            f"torch.optim.Optimizer, got {type(spec).__name__}")
    optimizer = spec(params)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise DreamlabError(f"the optimizer factory returned {type(optimizer).__name__}; it must return a "
                            f"torch.optim.Optimizer over the parameters it is given")
    return optimizer


__all__ = ["OPTIMIZERS", "ChannelAdam", "OptimizerFactory", "make_optimizer"]
