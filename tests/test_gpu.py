"""GPU paths (skipped without CUDA): no host sync in the step loop, and CUDA agrees with the CPU."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dreamlab import render

from models_fixtures import random_googlenet

pytestmark = pytest.mark.gpu


def _syncs(model, steps: int) -> int:
    """How many synchronizing CUDA calls one render makes (torch's sync debug mode warns on each)."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            render(model, "inception4c:0-3", steps=steps, size=96, device="cuda", thresholds=[4])
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def test_step_loop_never_syncs_with_the_host():
    """Setup, clean scores, snapshots and the results sync; the steps do not: the count does not grow with them.

    tests/test_fast_paths.py checks the same as logic on the CPU (host reads of a render)."""
    model = random_googlenet().cuda()
    render(model, "inception4c:0-3", steps=1, size=96, device="cuda")  # first-call costs
    assert _syncs(model, 8) == _syncs(model, 16)


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


def test_cam_and_attribute_on_cuda_match_the_cpu(tmp_path):
    from dreamlab.apps.cli import main
    from dreamlab.io import save_png

    photo = tmp_path / "photo.png"
    save_png(torch.rand(3, 56, 56, generator=torch.Generator().manual_seed(0)), photo)
    for command in (["cam"], ["attribute", "--method", "ig", "--steps", "8"]):
        maps = {}
        for device in ("cpu", "cuda"):
            out = tmp_path / f"{command[0]}_{device}.png"
            assert main([command[0], "lenet-digits", "--image", str(photo), "--target", "logit:3", *command[1:],
                         "--device", device, "-o", str(out)]) == 0
            maps[device] = torch.from_numpy(np.load(out.with_suffix(".npy")))
        # cuDNN runs convolutions in TF32 by default (10-bit mantissa): on an H200 the maps differed by
        # 1.2e-3 of their largest value in one element shown (2026-12-04)
        assert torch.allclose(maps["cpu"], maps["cuda"], atol=1e-2 * float(maps["cpu"].abs().max()))
