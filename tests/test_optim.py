"""ChannelAdam (dreamlab.optvis.optimizers): Adam with one second moment per (sample, channel)."""
from __future__ import annotations

import pytest
import torch

from dreamlab.errors import DreamlabError
from dreamlab.optvis.optimizers import ChannelAdam, make_optimizer


def _first_step(grad: torch.Tensor, lr: float = 0.1) -> torch.Tensor:
    p = torch.nn.Parameter(torch.zeros_like(grad))
    opt = ChannelAdam([p], lr=lr)
    p.grad = grad.clone()
    opt.step()
    return p.detach()


def test_first_step_is_the_gradient_over_its_channels_rms() -> None:
    g = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    g[0, 1] *= 1000  # channels of very different scales each move the same amount
    g[1, 2] *= 1e-4
    step = _first_step(g, lr=0.1)
    rms = g.square().mean((2, 3), keepdim=True).sqrt()
    torch.testing.assert_close(step, -0.1 * g / rms)
    torch.testing.assert_close(step.square().mean((2, 3)).sqrt(), torch.full((2, 3), 0.1))


def test_the_step_keeps_the_gradients_direction_where_adam_keeps_its_sign() -> None:
    g = torch.zeros(1, 1, 2, 2)
    g[0, 0, 0, 0], g[0, 0, 1, 1] = 1.0, 0.01  # a strong and a weak (leaking) coordinate
    step = _first_step(g)
    assert float(step[0, 0, 1, 1] / step[0, 0, 0, 0]) == pytest.approx(0.01)
    p = torch.nn.Parameter(torch.zeros_like(g))
    adam = torch.optim.Adam([p], lr=0.1)
    p.grad = g.clone()
    adam.step()
    moved = p.detach()
    assert float(moved[0, 0, 1, 1] / moved[0, 0, 0, 0]) == pytest.approx(1.0, rel=1e-3)  # a full step for the weak one


def test_a_steady_gradient_gives_steady_steps_with_bias_correction() -> None:
    g = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    p = torch.nn.Parameter(torch.zeros_like(g))
    opt = ChannelAdam([p], lr=0.05)
    for _ in range(10):
        p.grad = g.clone()
        opt.step()
    rms = g.square().mean((2, 3), keepdim=True).sqrt()
    torch.testing.assert_close(p.detach(), -10 * 0.05 * g / rms, rtol=1e-5, atol=1e-6)


def test_fourier_spectra_are_normalized_per_sample_and_channel() -> None:
    g = torch.randn(2, 3, 8, 5, 2, generator=torch.Generator().manual_seed(2))
    g[1] *= 50  # sample 1's gradient is 50x larger: it moves as far as sample 0
    step = _first_step(g)
    torch.testing.assert_close(step.square().flatten(2).mean(2).sqrt(), torch.full((2, 3), 0.1))


def test_one_dimensional_parameters_are_refused() -> None:
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.ones(4)
    with pytest.raises(ValueError, match=r"needs \[sample, channel, \.\.\.\] parameters, got shape \(4,\)"):
        ChannelAdam([p]).step()


def test_optimizers_by_name() -> None:
    p = torch.nn.Parameter(torch.zeros(1, 1, 2, 2))
    assert isinstance(make_optimizer("channel-adam", [p], lr=0.1), ChannelAdam)
    assert type(make_optimizer("adam", [p], lr=0.1)) is torch.optim.Adam
    with pytest.raises(DreamlabError, match="unknown optimizer 'sgd'; valid: channel-adam, adam"):
        make_optimizer("sgd", [p], lr=0.1)


def test_near_a_minimum_channel_adam_keeps_full_steps_where_adam_stops() -> None:
    """The limit optimizers.py documents: a vanishing gradient (a penalty at its minimum) still gets a step of lr."""
    moved = {}
    for name in ("channel-adam", "adam"):
        p = torch.nn.Parameter(torch.full((1, 2, 4, 4), 1e-10))
        opt = make_optimizer(name, [p], lr=0.02)
        p.grad = 2 * p.detach()  # the gradient of the penalty p^2 at 1e-10 from its minimum
        opt.step()
        moved[name] = float((p.detach() - 1e-10).abs().max())
    assert moved["channel-adam"] == pytest.approx(0.02, rel=0.01)  # a full step away from the minimum
    assert moved["adam"] < 1e-3  # Adam's eps (1e-8) damps it to 2% of lr
