"""GPU paths (skipped without CUDA): no host sync in the step loop, and CUDA agrees with the CPU."""
from __future__ import annotations

import contextlib

import pytest
import torch

from dreamlab import render
from dreamlab.optvis import engine

from models_fixtures import random_googlenet

pytestmark = pytest.mark.gpu


@contextlib.contextmanager
def sync_allowed():
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(0)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(before)


def test_step_loop_never_syncs_with_the_host(monkeypatch):
    """Every synchronizing call outside the allowed places (setup, clean scores, snapshots) raises."""
    for name in ("check_units", "clean_scores", "snapshot", "make_param"):
        original = getattr(engine._Renderer, name)

        def allowed(self, *args, _original=original, **kwargs):
            with sync_allowed():
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(engine._Renderer, name, allowed)
    model = random_googlenet().cuda()
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = render(model, "inception4c:0-3", steps=8, size=96, device="cuda", thresholds=[4])
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert result.history.shape == (8, 4)


def test_cuda_fp32_agrees_with_cpu():
    model = random_googlenet()
    # random streams differ between devices: start both from the same image, with no random transforms
    start = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    args = dict(steps=1, size=64, transforms="none", precision="fp32", channels_last=False, init_image=start)
    cpu = render(model, "inception4c:0-3", device="cpu", **args)
    gpu = render(model, "inception4c:0-3", device="cuda", **args)
    assert torch.allclose(cpu.initial_scores, gpu.initial_scores, rtol=1e-3, atol=1e-5)
    assert torch.allclose(cpu.history, gpu.history, rtol=1e-3, atol=1e-5)


def test_cuda_default_path_optimizes_and_reports_bf16():
    result = render(random_googlenet(), "inception4c:0-7", steps=16, size=96, device="cuda", transforms="none")
    assert result.provenance["dreamlab:precision"] == "bf16"
    assert torch.all(result.final_scores > result.initial_scores)


@pytest.mark.parametrize("mode", [True, "reduce-overhead"])
def test_compiled_cuda_render_matches_eager(mode):
    """torch.compile on the GPU, with and without CUDA graphs: the same images over a few steps."""
    model = random_googlenet().cuda()
    args = dict(steps=6, redirect_relu_steps=2, size=96, device="cuda", precision="fp32", transforms="none")
    eager = render(model, "inception4c:0-3", **args)
    compiled = render(model, "inception4c:0-3", compile=mode, **args)
    torch.testing.assert_close(compiled.images, eager.images, rtol=0, atol=1e-3)
    torch.testing.assert_close(compiled.history, eager.history, rtol=1e-3, atol=1e-4)
