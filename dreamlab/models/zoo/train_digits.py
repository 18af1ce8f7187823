"""Reproducibly train the zoo's digit models and save their fp16 weights.

Usage: ``python -m dreamlab.models.zoo.train_digits [--out DIR]`` (default: the
package's ``dreamlab/zoo/weights/``). Runs in about two minutes on 2 idle CPU
cores and prints the held-out accuracy of each model after the fp16 round
trip that the shipped files go through.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.models.zoo.digits import (
    DIGITS_MEAN,
    DIGITS_STD,
    JUDGE_WEIGHTS_FILE,
    LENET_WEIGHTS_FILE,
    DigitsJudge,
    LeNetDigits,
    load_digits_split,
    load_fp16_state_dict,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Augment:
    """Ranges of the random affine jitter and pixel noise (in [0, 1] space)."""

    max_shift_px: float
    max_rotate_deg: float
    max_scale: float  # scale drawn from [1 - max_scale, 1 + max_scale]
    noise_std: float


@dataclass(frozen=True)
class TrainConfig:
    """One model's training settings (seed, schedule, augmentation)."""

    seed: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    augment: Augment


LENET_CONFIG = TrainConfig(
    seed=0, epochs=30, batch_size=64, lr=1e-3, weight_decay=0.0,
    augment=Augment(max_shift_px=2.0, max_rotate_deg=8.0, max_scale=0.08, noise_std=0.03),
)
JUDGE_CONFIG = TrainConfig(
    seed=1234, epochs=80, batch_size=64, lr=2e-3, weight_decay=1e-4,
    augment=Augment(max_shift_px=2.5, max_rotate_deg=10.0, max_scale=0.10, noise_std=0.06),
)


def normalize(x: Tensor) -> Tensor:
    """Digits images in [0, 1] normalized as the model takes them."""
    return (x - DIGITS_MEAN) / DIGITS_STD


def augment(x: Tensor, aug: Augment, gen: torch.Generator) -> Tensor:
    """Random per-image shift/scale/rotation plus gaussian noise, clamped to [0, 1]."""
    n, _, h, w = x.shape

    def uniform(limit: float) -> Tensor:
        return (torch.rand(n, generator=gen) * 2 - 1) * limit

    angle = uniform(math.radians(aug.max_rotate_deg))
    scale = 1 + uniform(aug.max_scale)
    # affine_grid works in [-1, 1] coordinates: one pixel is 2 / size.
    tx = uniform(aug.max_shift_px) * 2 / w
    ty = uniform(aug.max_shift_px) * 2 / h
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out + torch.randn(out.shape, generator=gen) * aug.noise_std
    return out.clamp(0.0, 1.0)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """The share of images the model classifies right."""
    model.eval()
    pred = model(normalize(x)).argmax(dim=1)
    return (pred == y).float().mean().item()


def train(model: nn.Module, cfg: TrainConfig, x: Tensor, y: Tensor) -> nn.Module:
    """AdamW with a one-cycle learning-rate schedule over augmented mini-batches."""
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            xb = normalize(augment(x[idx], cfg.augment, gen))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def save_fp16(model: nn.Module, path: Path) -> None:
    """Save the state dict with float tensors as fp16 (other dtypes unchanged)."""
    state = {
        k: v.detach().half() if v.is_floating_point() else v.detach()
        for k, v in model.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def main(argv: list[str] | None = None) -> None:
    """Train both digit models, save their fp16 weights under --out and print each one's held-out accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    x_train, y_train, x_test, y_test = load_digits_split()
    mean, std = x_train.mean().item(), x_train.std().item()
    if (round(mean, 4), round(std, 4)) != (DIGITS_MEAN, DIGITS_STD):
        raise SystemExit(f"DIGITS_MEAN/STD are stale: data gives {mean:.4f}/{std:.4f}")
    print(f"train {len(x_train)} / test {len(x_test)} images, mean {mean:.4f} std {std:.4f}")

    jobs: list[tuple[str, type[nn.Module], TrainConfig, str]] = [
        ("lenet", LeNetDigits, LENET_CONFIG, LENET_WEIGHTS_FILE),
        ("judge", DigitsJudge, JUDGE_CONFIG, JUDGE_WEIGHTS_FILE),
    ]
    for name, cls, cfg, filename in jobs:
        start = time.perf_counter()
        torch.manual_seed(cfg.seed)
        model = train(cls(), cfg, x_train, y_train)
        acc32 = accuracy(model, x_test, y_test)
        path = args.out / filename
        save_fp16(model, path)
        reloaded = cls()
        reloaded.load_state_dict(load_fp16_state_dict(path))
        acc16 = accuracy(reloaded, x_test, y_test)
        elapsed = time.perf_counter() - start
        print(
            f"{name}: held-out accuracy {acc16:.4f} after fp16 round trip "
            f"(fp32 {acc32:.4f}), train acc {accuracy(reloaded, x_train, y_train):.4f}, "
            f"{path} {path.stat().st_size / 1e6:.2f} MB, {elapsed:.1f} s"
        )


if __name__ == "__main__":
    main()
