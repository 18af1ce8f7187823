"""dreamlab: feature visualization for PyTorch.

>>> import dreamlab
>>> result = dreamlab.render("googlenet", "inception4c:97", weights="none", steps=32, device="cpu")
>>> result.pil()[0].save("unit.png")
"""
__version__ = "0.1.0"

from . import objectives  # noqa: E402
from .capture import capture  # noqa: E402
from .errors import DreamlabError  # noqa: E402
from .grammar import parse_objective  # noqa: E402
from .models import load_model  # noqa: E402
from .objectives import Objective, objective  # noqa: E402
from .recipe import Recipe, load_recipe  # noqa: E402
from .engine import RenderResult, render  # noqa: E402
from .summary import layer_table  # noqa: E402

__all__ = ["__version__", "objectives", "capture", "DreamlabError", "parse_objective", "load_model", "Objective",
           "objective", "Recipe", "load_recipe", "RenderResult", "render", "layer_table"]
