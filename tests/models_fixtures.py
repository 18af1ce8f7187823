"""Small offline models shared by tests: random-weight torchvision models with usable activations."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from dreamlab import load_model


def calibrate_batchnorm(model: nn.Module, size: int = 64, channels: int = 3, seed: int = 0) -> nn.Module:
    """Set BatchNorm running statistics from smooth random images, then eval().

    Random-weight GoogLeNet's activations shrink ~1000x by inception4c with the default running statistics
    (mean 0, var 1); recomputing them on noise keeps every layer near unit scale, as a trained model is.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        x = torch.rand(16, channels, size // 8, size // 8, generator=generator)
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        model((x - 0.45) / 0.225)
    return model.eval().requires_grad_(False)


def random_googlenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return calibrate_batchnorm(load_model("googlenet", weights="none").model)


def random_resnet18(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return calibrate_batchnorm(torchvision.models.resnet18())


class TinyNet(nn.Module):
    """Two random convolutions (conv1, relu, conv2: 6 channels): renders of a second, any input size."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class SmallNet(nn.Module):
    """conv1 -> in-place nn.ReLU -> conv2 -> F.relu -> global pool -> 5 logits: the hazards of DESIGN.md (an
    in-place ReLU after a hooked layer, a functional ReLU) in a model that runs in milliseconds at any size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def named_digits_recipe(path):
    """Write a recipe of lenet-digits whose classes have names (DIGIT_NAMES) to `path`, and return it."""
    path.write_text('name = "named-digits"\nbuilder = "zoo:lenet_digits"\ninput_size = 28\nchannels = 1\n'
                    'mean = [0.0]\nstd = [1.0]\ntransforms = "small"\ncategories = [' +
                    ", ".join(f'"{n}"' for n in DIGIT_NAMES) + "]\n")
    return path


def registered_rgb_recipes(folder, builders, side):
    """Register each of `builders` ({name: module factory}) as builder 'tests:NAME' and write an RGB recipe file
    NAME.toml for it in `folder` (input size `side`, random weights, mean 0.5, std 1); {name: path}."""
    from dreamlab.models import loading

    paths = {}
    for name, build in builders.items():
        loading.register_builder(f"tests:{name}", lambda weights=None, build=build: build())
        paths[name] = folder / f"{name}.toml"
        paths[name].write_text(f'name = "{name}"\nbuilder = "tests:{name}"\ninput_size = {side}\nweights = "none"\n'
                               f'mean = [0.5, 0.5, 0.5]\nstd = [1.0, 1.0, 1.0]\n')
    return paths


class NarrowSizes(nn.Module):
    """Takes square sides 60 to 64 only, as MaxViT takes 221 to 224 (a 64 px recipe); two logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not 60 <= x.shape[-1] <= 64:
            raise RuntimeError(f"shape {list(x.shape)} is invalid for this grid")
        return self.fc(self.conv(x).mean((2, 3)))


class OnlySide(nn.Module):
    """Takes `side`x`side` inputs only and asserts it, as torchvision's ViT does its 224."""

    def __init__(self, side: int = 28):
        super().__init__()
        self.side = side
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._assert(x.shape[-2] == self.side, f"Wrong image height! Expected {self.side} but got {x.shape[-2]}!")
        return self.conv(x)
