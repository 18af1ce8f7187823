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

from dreamlab.attribution.api import attribute, gradcam  # noqa: E402
from dreamlab.errors import DreamlabError  # noqa: E402
from dreamlab.inspect.features import features  # noqa: E402
from dreamlab.inspect.graph import graph  # noqa: E402
from dreamlab.inspect.kernels import kernels  # noqa: E402
from dreamlab.models.loading import load_model  # noqa: E402
from dreamlab.models.recipe import Recipe, load_recipe  # noqa: E402
from dreamlab.models.summary import layer_table  # noqa: E402
from dreamlab.optvis import objectives  # noqa: E402
from dreamlab.optvis.capture import capture  # noqa: E402
from dreamlab.optvis.engine import RenderResult, render  # noqa: E402
from dreamlab.optvis.grammar import parse_objective  # noqa: E402
from dreamlab.optvis.objectives import Objective, objective  # noqa: E402

__all__ = ["__version__", "objectives", "capture", "DreamlabError", "parse_objective", "load_model", "Objective",
           "objective", "Recipe", "load_recipe", "RenderResult", "render", "layer_table",
           "gradcam", "attribute", "graph", "kernels", "features"]
