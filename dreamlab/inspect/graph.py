"""The architecture as a diagram: torch.fx data flow, one node per module at a chosen depth, with output shapes.

The model is traced with torch.fx, with every module at ``depth`` (or without children) kept as one node, and
shapes come from one forward of a weightless copy on the meta device, so the caller's model is never moved,
run or changed. Functional ops where branches join (GoogLeNet's concats, ResNet's residual adds) are nodes too.

>>> dot = graph("googlenet", rankdir="LR")          # DOT text; needs nothing installed
>>> graph("resnet18", depth=3, out="resnet18.svg")   # SVG/PNG/PDF through Graphviz's `dot`
"""
from __future__ import annotations

import contextlib
import io
import operator
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from dreamlab.attribution.inputs import check_whole
from dreamlab.errors import DreamlabError, first_line, unknown
from dreamlab.inspect.source import model_and_recipe
from dreamlab.models.copies import cpu_copy, weightless_copy
from dreamlab.models.prepare import size_rejection
from dreamlab.models.recipe import Recipe
from dreamlab.models.summary import check_input_size

RANKDIRS = ("TB", "LR", "BT", "RL")
TEXT_FORMATS = (".dot", ".gv")
DOT_FORMATS = (".svg", ".png", ".pdf")
GRAPHVIZ_HINT = "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz) " \
                "or write DOT text with -o FILE.dot"

# fill colour by layer family, matched against the module's class name (first match wins)
_COLOURS = (("Conv", "#cfe2f3"), ("Pool", "#d9ead3"), ("Norm", "#fff2cc"), ("ReLU", "#f4cccc"),
            ("Linear", "#ead1dc"), ("Dropout", "#eeeeee"))
_JOIN_COLOUR = "#fce5cd"  # functional ops (cat, add, ...)
_SKIPPED_FUNCTIONS = {operator.getitem, getattr}  # plumbing between nodes, not computation


@dataclass(frozen=True)
class GraphNode:
    """One node of the diagram: a module call, a functional op, the input or the output."""

    id: str  # unique (fx node name: a module called twice gets two nodes)
    address: str  # dotted module address; for functional ops the module they run in ('' at the top)
    kind: str  # module class name, op name ('cat', 'add'), 'input' or 'output'
    shape: tuple[int, ...] | None  # output shape without the batch dimension
    op: str  # 'input', 'module', 'function', 'output'

    @property
    def label(self) -> str:
        shape = "×".join(map(str, self.shape)) if self.shape else "?" if self.shape is None else "scalar"
        if self.op == "module":
            return f"{self.address}\n{self.kind}\n{shape}"
        if self.op == "function":
            return f"{self.kind}\n{self.address + ' · ' if self.address else ''}{shape}"
        return f"{self.kind}\n{shape}"


@dataclass(frozen=True)
class ModelGraph:
    """Nodes in execution order and edges (source id, target id) along the data flow."""

    name: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[str, str], ...]

    def node(self, address: str, kind: str | None = None) -> GraphNode:
        """The first node at `address` (and of `kind`, when given)."""
        for n in self.nodes:
            if n.address == address and (kind is None or n.kind == kind):
                return n
        raise KeyError(address)

    def inputs_of(self, node_id: str) -> list[GraphNode]:
        by_id = {n.id: n for n in self.nodes}
        return [by_id[s] for s, t in self.edges if t == node_id]

    def to_dot(self, rankdir: str = "TB") -> str:
        """Graphviz DOT text."""
        check_rankdir(rankdir)
        lines = [f"digraph {_quote(self.name)} {{",
                 f'  graph [rankdir={rankdir}, nodesep=0.2, ranksep=0.3, fontname="Helvetica"];',
                 ('  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", '
                  'fontsize=10, margin="0.08,0.04"];'),
                 '  edge [arrowsize=0.6, color="#555555"];']
        for n in self.nodes:
            attrs = {"label": n.label}
            if n.op == "function":
                attrs |= {"shape": "ellipse", "style": "filled", "fillcolor": _JOIN_COLOUR}
            elif n.op in ("input", "output"):
                attrs |= {"shape": "box", "style": "filled", "fillcolor": "#dddddd"}
            else:
                attrs["fillcolor"] = next((c for key, c in _COLOURS if key in n.kind), "#ffffff")
            lines.append(f"  {_quote(n.id)} [{', '.join(f'{k}={_quote(v)}' for k, v in attrs.items())}];")
        lines += [f"  {_quote(s)} -> {_quote(t)};" for s, t in self.edges]
        lines.append("}")
        return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def check_rankdir(rankdir: str) -> None:
    if rankdir not in RANKDIRS:
        raise unknown("rankdir", rankdir, RANKDIRS, hint="TB: top to bottom, LR: left to right")


class _DepthTracer(fx.Tracer):
    """Keeps modules at `depth` (1 = the model's children) and modules without children as single calls."""

    def __init__(self, depth: int):
        super().__init__()
        self.depth = depth

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname.count(".") + 1 >= self.depth or next(m.children(), None) is None


def trace_graph(model: nn.Module, input_shape: tuple[int, ...], depth: int = 2, name: str = "model",
                input_size: int | None = None) -> ModelGraph:
    """The data-flow graph of `model` for one input of `input_shape` ([1, C, H, W]); the model is not touched.
    `input_size`: the recipe's, named in the error when the model takes it but not `input_shape`."""
    check_whole("depth", depth, 1, flag="--depth", hint=" (1: the model's top-level modules)")
    try:
        return _graph_of(model, input_shape, depth, name)
    except _Failed as failed:
        cause = failed.cause
    size = input_size
    side = "x".join(map(str, input_shape[1:]))
    if size and tuple(input_shape[-2:]) != (size, size) and _takes(model, input_shape, size, depth):
        raise size_rejection(name, input_shape, cause, size) from None  # like render's, naming the size
    raise DreamlabError(f"{name} failed on a {side} input ({first_line(cause)}) in one forward of a copy of it; "
                        f"if it takes another input size, give size (--size)") from None


class _Failed(Exception):
    """Neither a meta-device nor a CPU forward gave the shapes; `cause` is the error that says most."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def _graph_of(model: nn.Module, input_shape: Sequence[int], depth: int, name: str) -> ModelGraph:
    """The graph from a forward of a weightless copy on the meta device; where the model needs real values (a
    hook that reads them, `if x.mean() > 0`) or an op has no meta kernel, from a forward of a CPU copy."""
    copied = weightless_copy(model).eval()
    try:
        return _shapes(copied, _trace(copied, depth), input_shape, depth, name, "meta")
    except Exception as exc:  # noqa: BLE001 -- the model refused the input, or it needs real tensors
        meta_error = exc.__cause__ or exc  # ShapeProp wraps the op's error in one that quotes the whole node
    copied = cpu_copy(model).eval()
    try:
        return _shapes(copied, _trace(copied, depth), input_shape, depth, name, "cpu")
    except Exception as exc:  # noqa: BLE001 -- whatever the model raises
        cpu_error = exc.__cause__ or exc
    # an error about the meta device says nothing about the model; otherwise the meta one is as good, and shorter
    raise _Failed(cpu_error if "meta" in str(meta_error).lower() else meta_error)


def _trace(copied: nn.Module, depth: int) -> fx.GraphModule | None:
    """The fx GraphModule of `copied`, or None where Python control flow defeats tracing (see runtrace.py)."""
    try:
        return fx.GraphModule(copied, _DepthTracer(depth).trace(copied))
    except Exception:  # noqa: BLE001 -- fx raises many kinds (TraceError, TypeError on data-dependent control flow)
        return None


def _shapes(copied: nn.Module, traced: fx.GraphModule | None, input_shape: Sequence[int], depth: int,
            name: str, device: str = "meta") -> ModelGraph:
    """The graph with the output shapes of one forward of `input_shape` (zeros on `device`)."""
    x = torch.zeros(*input_shape, device=device)
    if traced is None:
        from dreamlab.inspect.runtrace import run_graph

        return run_graph(copied, x, depth, name)
    try:
        with contextlib.redirect_stderr(io.StringIO()) as printed, torch.no_grad():
            ShapeProp(traced).propagate(x)  # it prints a failing node's traceback
    except Exception as exc:  # noqa: BLE001 -- whatever the model raises
        if "Proxy(" not in str(exc.__cause__ or exc):
            raise
        # a message the trace baked in (f"got {h}" with h a tracing proxy): the untraced forward says it right
        from dreamlab.inspect.runtrace import run_graph

        return run_graph(copied, x, depth, name)
    sys.stderr.write(printed.getvalue())  # it succeeded: whatever else was printed (warnings) is the user's
    return _collapse(traced.graph, name)


def _takes(model: nn.Module, input_shape: Sequence[int], size: int, depth: int) -> bool:
    """Whether the model's shapes propagate at `size` pixels: a size rejection rather than another failure."""
    try:
        _graph_of(model, (*input_shape[:2], size, size), depth, "probe")
    except _Failed:
        return False
    return True


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    if isinstance(meta, (tuple, list)) and not hasattr(meta, "shape"):  # a tuple of outputs (MultiheadAttention)
        meta = next((m for m in meta if hasattr(m, "shape")), None)
    shape = getattr(meta, "shape", None)
    return tuple(shape[1:]) if shape is not None else None


def _kept(node: fx.Node) -> bool:
    if node.op in ("placeholder", "output", "call_module"):
        return True
    if node.op in ("call_function", "call_method"):
        return node.target not in _SKIPPED_FUNCTIONS and _shape(node) is not None
    return False  # get_attr: constants and buffers


def _function_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _collapse(g: fx.Graph, name: str) -> ModelGraph:
    """Graph nodes for the kept fx nodes; edges skip the plumbing nodes in between (getitem, size, ...)."""
    modules = {}  # fx node -> the kept nodes it stands for (itself, or the kept nodes feeding a skipped one)
    nodes: list[GraphNode] = []
    edges: list[tuple[str, str]] = []
    for node in g.nodes:
        sources: list[str] = []
        for arg in node.all_input_nodes:
            for s in modules.get(arg, ()):
                if s not in sources:
                    sources.append(s)
        if not _kept(node):
            # plumbing passes its tensors' sources on; a size or shape (`x.shape[0]`, no tensor) carries no data
            modules[node] = sources if "tensor_meta" in node.meta or node.op != "call_function" and \
                node.op != "call_method" else []
            continue
        stack = node.meta.get("nn_module_stack") or {}
        scope = next(reversed(stack)) if stack else ""
        if node.op == "placeholder":
            item = GraphNode(node.name, "", "input", _shape(node), "input")
        elif node.op == "output":
            item = GraphNode(node.name, "", "output", _shape(node.all_input_nodes[0]) if node.all_input_nodes
                             else None, "output")
        elif node.op == "call_module":
            module = g.owning_module.get_submodule(str(node.target)) if g.owning_module else None
            item = GraphNode(node.name, str(node.target), type(module).__name__, _shape(node), "module")
        else:
            item = GraphNode(node.name, scope if isinstance(scope, str) else "", _function_name(node), _shape(node),
                             "function")
        nodes.append(item)
        edges += [(s, item.id) for s in sources]
        modules[node] = [item.id]
    return ModelGraph(name, tuple(nodes), tuple(edges))


def check_output(path: str | Path) -> str:
    """The output format (file suffix) of `path`, refused unless DOT text or one Graphviz renders."""
    suffix = Path(path).suffix.lower()
    if suffix not in TEXT_FORMATS + DOT_FORMATS:
        raise DreamlabError(f"cannot write a graph as {suffix or 'a file without suffix'!r}; "
                            f"valid: {', '.join(TEXT_FORMATS + DOT_FORMATS)}")
    return suffix


def write_graph(dot_text: str, path: str | Path) -> Path:
    """Write DOT text (.dot/.gv) or render it with Graphviz's `dot` (.svg/.png/.pdf)."""
    from dreamlab.io import atomic_write_bytes, atomic_write_text

    path = Path(path)
    suffix = check_output(path)
    if suffix in TEXT_FORMATS:
        return atomic_write_text(path, dot_text)
    binary = shutil.which("dot")
    if binary is None:
        raise DreamlabError(f"writing {suffix} needs Graphviz's `dot` program; {GRAPHVIZ_HINT}")
    done = subprocess.run([binary, f"-T{suffix[1:]}"], input=dot_text.encode(), capture_output=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        raise DreamlabError(f"Graphviz's dot failed: {done.stderr.decode(errors='replace').strip()[:300]}")
    return atomic_write_bytes(path, done.stdout)


def _build(model: nn.Module | str | Path, recipe: object, weights: str | Path | None) -> tuple[nn.Module, Recipe]:
    """The module and its recipe; a named model without weights is built on the meta device (VGG16: 0.2 s, not 8)."""
    if isinstance(model, (str, Path)) and str(weights).lower() == "none":
        try:
            with torch.device("meta"):
                return model_and_recipe(model, recipe, weights)[:2]
        except DreamlabError:
            raise
        except Exception:  # noqa: BLE001, S110 -- a builder that needs real tensors: build it normally below
            pass
    if not isinstance(model, (str, Path)) and str(weights).lower() == "none":
        weights = "default"  # graph's default: a module or LoadedModel keeps its own weights, which it does not read
    return model_and_recipe(model, recipe, weights)[:2]


def model_graph(model: nn.Module | str | Path, *, depth: int = 2, size: int | None = None,
                recipe: object = None, weights: str | Path | None = "none") -> ModelGraph:
    """The ModelGraph of a recipe/torchvision name or a module (see `graph`)."""
    depth = check_whole("depth", depth, 1, flag="--depth", hint=" (1: the model's top-level modules)")
    if size is not None:
        size = check_whole("size", size, 1, flag="--size", hint=" (the input side in pixels)")
        check_input_size(size, name="size")
    module, rec = _build(model, recipe, weights)
    side = size or rec.input_size
    return trace_graph(module, (1, rec.channels, side, side), depth=depth, name=rec.name, input_size=rec.input_size)


def graph(model: nn.Module | str | Path, *, rankdir: str = "TB", depth: int = 2, size: int | None = None,
          out: str | Path | None = None, recipe: object = None, weights: str | Path | None = "none") -> str:
    """The architecture of `model` as DOT text, also written to `out` (.dot, .gv, .svg, .png, .pdf) when given.

    `model` is a recipe or torchvision name, a recipe TOML path, or an nn.Module (with `recipe` for its input
    size and channels; default 3x224x224). `depth` picks how far modules are opened (1: the top-level ones;
    GoogLeNet's inception branches show at 2, ResNet's residual adds at 3). `size` is the input side in pixels
    (default: the recipe's). Shapes need no weights, so the default `weights` is 'none'.
    """
    check_rankdir(rankdir)
    if out is not None:
        check_output(out)
    dot_text = model_graph(model, depth=depth, size=size, recipe=recipe, weights=weights).to_dot(rankdir)
    if out is not None:
        write_graph(dot_text, out)
    return dot_text
