"""`dreamlab layers MODEL`: the layer table (addresses, types, output shapes, parameters), in execution order."""
from __future__ import annotations

import argparse
import json

from dreamlab.apps.args import add_positional_model, image_size, nonempty, positional_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_positional_model(p, "recipe name, recipe .toml or torchvision model name")
    p.add_argument("--size", type=image_size,
                   help="input size in pixels, N or HEIGHTxWIDTH such as 96x128 (default: the recipe's)")
    p.add_argument("--weights", default="none", type=nonempty,
                   help="weights to load (default: none; shapes do not depend on them)")
    p.add_argument("--json", action="store_true", help="print JSON (input, layers, output, totals) instead of a table")


def run(args: argparse.Namespace) -> int:
    from dreamlab.models.loading import load_model
    from dreamlab.models.summary import format_table, format_totals, model_totals, summarize

    loaded = load_model(positional_model(args), weights=args.weights, recipe_layers="note")  # lists them to fix
    size = args.size or loaded.recipe.input_size
    summary = summarize(loaded.model, input_size=size, channels=loaded.recipe.channels,
                        recipe_size=loaded.recipe.input_size, recipe_file=loaded.recipe.source,
                        name=loaded.recipe.name, option="--size")
    totals = model_totals(loaded.model, summary)
    if args.json:
        print(json.dumps({"input": summary.input.as_dict(), "layers": [r.as_dict() for r in summary.layers],
                          "output": summary.output.as_dict(), "totals": totals.as_dict()}, indent=1))
    else:
        print(format_table(summary.rows()))
        print()
        print(format_totals(totals, size))
    return 0
