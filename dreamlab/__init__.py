"""dreamlab: feature visualization for PyTorch.

The package is grouped by capability:

- ``dreamlab.optvis``: the optimization core (objectives and their grammar, image parameterizations,
  transforms, optimizers, activation capture, redirected ReLU, the render loop);
- ``dreamlab.models``: model access (recipes, loading and layer addresses, the layer table, the offline zoo);
- ``dreamlab.inspect`` and ``dreamlab.attribution``: looking inside a model and attributing its decisions;
- ``dreamlab.apps``: the applications on top (command line, gallery, quality measures, benchmarks).

The names most users need are re-exported here:

>>> import dreamlab
>>> result = dreamlab.render("googlenet", "inception4c:97", weights="none", steps=32, device="cpu")
>>> result.pil()[0].save("unit.png")
"""
__version__ = "0.1.0"

import importlib

# name -> module that defines it. Imported on first use (PEP 562), so `import dreamlab` (and the CLI's entry
# point) does not pay for torch up front, and Ctrl-C while torch loads reaches the CLI's guard.
_EXPORTS = {
    "attribute": "dreamlab.attribution.api", "gradcam": "dreamlab.attribution.api",
    "DreamlabError": "dreamlab.errors",
    "features": "dreamlab.inspect.features", "examples": "dreamlab.inspect.examples",
    "graph": "dreamlab.inspect.graph", "kernels": "dreamlab.inspect.kernels",
    "neuron_groups": "dreamlab.inspect.groups",
    "load_model": "dreamlab.models.loading",
    "Recipe": "dreamlab.models.recipe", "load_recipe": "dreamlab.models.recipe",
    "layer_table": "dreamlab.models.summary",
    "objectives": "dreamlab.optvis.objectives",  # the module itself
    "capture": "dreamlab.optvis.capture",
    "RenderResult": "dreamlab.optvis.result", "render": "dreamlab.optvis.engine",
    "RenderSettings": "dreamlab.optvis.settings",
    "dream": "dreamlab.optvis.dream", "DreamResult": "dreamlab.optvis.dream",
    "parse_objective": "dreamlab.optvis.grammar",
    "Objective": "dreamlab.optvis.objectives", "objective": "dreamlab.optvis.objectives",
    "activation_grid": "dreamlab.optvis.activation_grid", "ActivationGrid": "dreamlab.optvis.activation_grid",
    "invert": "dreamlab.optvis.inversion", "Inversion": "dreamlab.optvis.inversion",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dreamlab' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    value = module if name == "objectives" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """dir(dreamlab) lists the public names, though they are imported on first use (PEP 562)."""
    return sorted(set(__all__) | {name for name in globals() if not name.startswith("_")} - {"importlib"})


__all__ = ["__version__", "objectives", "capture", "DreamlabError", "parse_objective", "load_model", "Objective",
           "objective", "Recipe", "load_recipe", "RenderResult", "RenderSettings", "render", "layer_table",
           "gradcam", "attribute", "graph", "kernels", "features", "examples", "dream", "DreamResult",
           "activation_grid", "ActivationGrid", "neuron_groups", "invert", "Inversion"]
