"""`dreamlab recipes`: the shipped recipes, one line each."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """No arguments."""


def run(args: argparse.Namespace) -> int:
    from dreamlab.models.recipe import load_recipe, shipped_recipe_names

    for name in shipped_recipe_names():
        r = load_recipe(name)
        print(f"{r.name:14} {r.builder:40} {r.input_size:4d}px  default layer: {r.default_layer}")
    print("any torchvision classification model also works by name: `dreamlab layers convnext_tiny`, "
          "`dreamlab render features.5:0 --model convnext_tiny`")
    return 0
