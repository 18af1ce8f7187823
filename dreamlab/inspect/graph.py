"""The architecture as a diagram: torch.fx data flow, one node per module at a chosen depth, with output shapes.

The model is traced with torch.fx, with every module at ``depth`` (or without children) kept as one node, and
shapes come from one forward of a weightless copy on the meta device, so the caller's model is never moved,
run or changed. Functional ops (GoogLeNet's concats, ResNet's residual adds, functional ReLUs) are nodes too.
Each module's label gives its key hyperparameters and parameter count (a block kept whole: all of its own), and
nodes are coloured by family (conv, norm, activation, pool, linear, dropout, reshape, join) with a legend under
the title, which gives the total parameters and the input. The DOT text starts with a comment saying what drew
it (dreamlab, torch and torchvision versions, model, weights, input, depth); SVG keeps it as a comment and PNG
as text chunks.

>>> dot = graph("lenet-digits", rankdir="LR")       # DOT text; needs nothing installed
>>> dot.splitlines()[0]
'// dreamlab ... model: lenet-digits; weights: none; input: 1x28x28; depth: 2'
>>> dot = graph("resnet18", depth=3, out="resnet18.dot")   # also writes it; .svg/.png/.pdf through Graphviz's `dot`
"""
from __future__ import annotations

import contextlib
import io
import operator
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from dreamlab.errors import DreamlabError, check_whole, checked_keywords, first_line, unknown
from dreamlab.inspect.source import model_and_recipe
from dreamlab.models.copies import cpu_copy, weightless_copy
from dreamlab.models.prepare import option_named, too_small_error
from dreamlab.models.recipe import Recipe
from dreamlab.models.summary import check_sides

RANKDIRS = ("TB", "LR", "BT", "RL")
TEXT_FORMATS = (".dot", ".gv")
DOT_FORMATS = (".svg", ".png", ".pdf")
GRAPHVIZ_HINT = "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz) " \
                "or write DOT text with -o FILE.dot"

# fill colour per family: modules by their torch.nn family, functional ops by what they do; the rest is white
FAMILY_COLOURS = {"conv": "#cfe2f3", "norm": "#fff2cc", "activation": "#f4cccc", "pool": "#d9ead3",
                  "linear": "#ead1dc", "dropout": "#eeeeee", "reshape": "#d0e0e3", "join": "#fce5cd"}
_PLAIN_COLOUR = "#ffffff"  # blocks kept whole and other ops
_END_COLOUR = "#dddddd"  # the input and the output
_SKIPPED_FUNCTIONS = {operator.getitem, getattr}  # plumbing between nodes, not computation

# torch.nn's layers by the file torch defines them in (a subclass counts as its base)
_TORCH_FAMILIES = {"torch.nn.modules.conv": "conv", "torch.nn.modules.pooling": "pool",
                   "torch.nn.modules.batchnorm": "norm", "torch.nn.modules.instancenorm": "norm",
                   "torch.nn.modules.normalization": "norm", "torch.nn.modules.activation": "activation",
                   "torch.nn.modules.linear": "linear", "torch.nn.modules.dropout": "dropout",
                   "torch.nn.modules.flatten": "reshape", "torch.nn.modules.pixelshuffle": "reshape"}
# other libraries' leaf layers (FrozenBatchNorm2d, a Swish) by their class name: first match wins
_NAMED_FAMILIES = (("Conv", "conv"), ("Pool", "pool"), ("Norm", "norm"), ("ReLU", "activation"),
                   ("GELU", "activation"), ("SiLU", "activation"), ("Swish", "activation"), ("Linear", "linear"),
                   ("Dropout", "dropout"), ("StochasticDepth", "dropout"), ("DropPath", "dropout"),
                   ("Flatten", "reshape"), ("Permute", "reshape"))
_ACTIVATIONS = frozenset({"relu", "relu6", "leaky_relu", "rrelu", "prelu", "elu", "selu", "celu", "gelu", "silu",
                          "mish", "sigmoid", "hardsigmoid", "tanh", "hardtanh", "hardswish", "softplus", "softmax",
                          "log_softmax", "glu", "threshold", "logsigmoid"})
_RESHAPES = frozenset({"flatten", "unflatten", "view", "reshape", "permute", "transpose", "squeeze", "unsqueeze",
                       "expand", "contiguous", "movedim", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle"})
_CONCATS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack"})


def module_family(module: nn.Module) -> str:
    """The colour family of a module kept as one node: 'block' when it has children, else its torch.nn family
    ('conv', 'norm', 'activation', 'pool', 'linear', 'dropout', 'reshape'), or 'other'."""
    if next(module.children(), None) is not None:
        return "block"
    if isinstance(module, nn.Identity):  # defined beside Linear, but computes nothing
        return "other"
    for cls in type(module).__mro__:
        if cls.__module__ in _TORCH_FAMILIES:
            return _TORCH_FAMILIES[cls.__module__]
    name = type(module).__name__
    return next((family for key, family in _NAMED_FAMILIES if key in name), "other")


def function_family(name: str, sources: int) -> str:
    """The colour family of a functional op called `name` that reads tensors from `sources` nodes: 'join' for a
    concat or any op that combines two or more (add, mul of two tensors), else by what it does."""
    base = name.strip("_")  # in place: relu_, __iadd__
    if base in _ACTIVATIONS:
        return "activation"
    if base in _RESHAPES:
        return "reshape"
    if "pool" in base:
        return "pool"
    if base in _CONCATS or sources >= 2:
        return "join"
    if base.startswith("conv"):
        return "conv"
    if base == "linear":
        return "linear"
    if base.endswith("norm"):
        return "norm"
    return "dropout" if "dropout" in base else "other"


def _per_axis(value: object, dims: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def _compact(values: tuple) -> str:
    """(2, 2) -> '2', (2, 1) -> '2×1'."""
    return str(values[0]) if len(set(values)) == 1 else "×".join(map(str, values))


def _unless(what: str, value: object, default: int, dims: int) -> list[str]:
    """['stride 2'] where any axis differs from `default`, else []."""
    values = _per_axis(value, dims)
    return [f"{what} {_compact(values)}"] if any(v != default for v in values) else []


def _padding(module: nn.Module, dims: int) -> list[str]:
    padding = module.padding
    mode = getattr(module, "padding_mode", "zeros")
    if isinstance(padding, str):  # 'same' or 'valid' (no padding)
        shown_pad = [] if padding == "valid" else [f"pad {padding}"]
    else:
        shown_pad = _unless("pad", padding, 0, dims)
    return [f"{text} {mode}" for text in shown_pad] if mode != "zeros" else shown_pad


def hyperparameters(module: nn.Module) -> str:
    """A module's key settings, short: Conv2d '3→64, 7×7, stride 2, pad 3' (stride, pad, dilation and groups only
    where not the default), MaxPool2d '3×3, stride 2, ceil', Linear '2450→500', BatchNorm2d '64'; '' for others."""
    match = re.search(r"(\d)d$", type(module).__name__)
    dims = int(match.group(1)) if match else 1  # for a kernel given as one int: MaxPool2d(3) is 3×3
    m = module
    if isinstance(m, nn.modules.conv._ConvNd):
        parts = [f"{m.in_channels}→{m.out_channels}", "×".join(map(str, m.kernel_size)),
                 *_unless("stride", m.stride, 1, dims), *_padding(m, dims), *_unless("dilation", m.dilation, 1, dims)]
        parts += [f"groups {m.groups}"] if m.groups > 1 else []
    elif isinstance(m, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
        parts = ["×".join(map(str, _per_axis(m.kernel_size, dims))),
                 f"stride {_compact(_per_axis(m.stride or m.kernel_size, dims))}", *_padding(m, dims),
                 *_unless("dilation", getattr(m, "dilation", 1), 1, dims)]
        parts += ["ceil"] if m.ceil_mode else []
    elif isinstance(m, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        parts = ["to " + "×".join("*" if s is None else str(s) for s in _per_axis(m.output_size, dims))]
    elif isinstance(m, nn.Linear):
        parts = [f"{m.in_features}→{m.out_features}"]
    elif isinstance(m, nn.modules.batchnorm._NormBase):  # BatchNorm, InstanceNorm
        parts = [str(m.num_features)]
    elif isinstance(m, nn.LayerNorm):
        parts = ["×".join(map(str, m.normalized_shape))]
    elif isinstance(m, nn.GroupNorm):
        parts = [f"{m.num_channels}, {m.num_groups} groups"]
    elif isinstance(m, nn.modules.dropout._DropoutNd):
        parts = [f"p={m.p:g}"]
    else:
        return ""
    return ", ".join(parts)


def count_text(params: int) -> str:
    """'9,408 params', '1 param'."""
    return f"{params:,} param{'' if params == 1 else 's'}"


@dataclass(frozen=True)
class GraphNode:
    """One node of the diagram: a module call, a functional op, the input or the output."""

    id: str  # unique (fx node name: a module called twice gets two nodes)
    address: str  # dotted module address; for functional ops the module they run in ('' at the top)
    kind: str  # module class name, op name ('cat', 'add'), 'input' or 'output'
    shape: tuple[int, ...] | None  # output shape without the batch dimension
    op: str  # 'input', 'module', 'function', 'output'
    family: str = ""  # colour family: module_family or function_family ('' for the input and output)
    detail: str = ""  # a module's key hyperparameters ('3→64, 7×7, stride 2, pad 3')
    params: int | None = None  # a module's parameters, its children's included (None: not a module)

    @property
    def label(self) -> str:
        """The node's text in the drawing: address, kind and output shape (and parameters) of a module."""
        shape = "×".join(map(str, self.shape)) if self.shape else "?" if self.shape is None else "scalar"
        if self.op == "module":
            kind = f"{self.kind} {self.detail}" if self.detail else self.kind
            return f"{self.address}\n{kind}\n{shape}{' · ' + count_text(self.params) if self.params else ''}"
        if self.op == "function":
            return f"{self.kind}\n{self.address + ' · ' if self.address else ''}{shape}"
        return f"{self.kind}\n{shape}"


@dataclass(frozen=True)
class ModelGraph:
    """Nodes in execution order and edges (source id, target id) along the data flow."""

    name: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[str, str], ...]
    params: int | None = None  # the model's parameters, shared ones once
    weights: str | None = None  # where the weights came from ('none', 'default', a file, "caller's module")
    depth: int | None = None

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The input's shape without the batch dimension ([C, H, W])."""
        return next((n.shape for n in self.nodes if n.op == "input"), None)

    def provenance(self) -> dict[str, str]:
        """What drew this graph, under the keys render's PNGs use: the DOT text's first comment, an SVG's comment
        and a PNG's text chunks."""
        from dreamlab.attribution.photos import versions

        info = {**versions(), "dreamlab:model": self.name}
        if self.weights is not None:
            info["dreamlab:weights"] = self.weights
        if self.input_shape is not None:
            info["dreamlab:input"] = "x".join(map(str, self.input_shape))
        if self.depth is not None:
            info["dreamlab:depth"] = str(self.depth)
        return info

    def comment(self) -> str:
        """The provenance as one line: 'dreamlab 0.1.0 (torch 2.x, torchvision 0.y); model: lenet-digits; ...'."""
        info = self.provenance()
        made = (f"dreamlab {info.pop('dreamlab:version')} (torch {info.pop('torch:version')}, "
                f"torchvision {info.pop('torchvision:version')})")
        text = "; ".join([made, *(f"{key.removeprefix('dreamlab:')}: {value}" for key, value in info.items())])
        return "".join(c if c.isprintable() else "?" for c in text)  # a newline in a path would end the comment

    def node(self, address: str, kind: str | None = None) -> GraphNode:
        """The first node at `address` (and of `kind`, when given)."""
        for n in self.nodes:
            if n.address == address and (kind is None or n.kind == kind):
                return n
        raise KeyError(address)

    def inputs_of(self, node_id: str) -> list[GraphNode]:
        """The nodes with an edge into `node_id`."""
        by_id = {n.id: n for n in self.nodes}
        return [by_id[s] for s, t in self.edges if t == node_id]

    def title(self) -> str:
        """The graph's label as a Graphviz HTML label: the name, parameters and input, then a legend of the
        colours in use."""
        facts = [f"<B>{_html(self.name)}</B>"]
        if self.params is not None:
            facts.append(f"{self.params:,} parameters")
        if self.input_shape is not None:
            facts.append("input " + "×".join(map(str, self.input_shape)))
        rows = [f'<TR><TD ALIGN="LEFT">{" · ".join(facts)}</TD></TR>']
        used = {n.family for n in self.nodes}
        cells = [f'<TD BGCOLOR="{colour}" BORDER="1">{family}</TD>' for family, colour in FAMILY_COLOURS.items()
                 if family in used]
        if any(n.op in ("module", "function") and n.family not in FAMILY_COLOURS for n in self.nodes):
            cells.append(f'<TD BGCOLOR="{_PLAIN_COLOUR}" BORDER="1">other (a block kept whole, another op)</TD>')
        if any(n.op == "function" for n in self.nodes):
            cells.append("<TD>(ellipse: a function call)</TD>")
        if cells:
            legend = f'<TABLE BORDER="0" CELLSPACING="3" CELLPADDING="2"><TR>{"".join(cells)}</TR></TABLE>'
            rows.append(f'<TR><TD ALIGN="LEFT">{legend}</TD></TR>')
        return f'<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="1">{"".join(rows)}</TABLE>>'

    def to_dot(self, rankdir: str = "TB") -> str:
        """Graphviz DOT text, starting with a comment that says what drew it."""
        check_rankdir(rankdir)
        comment = self.comment()
        lines = [f"// {comment}",
                 f"digraph {_quote(self.name)} {{",
                 f'  graph [rankdir={rankdir}, nodesep=0.2, ranksep=0.3, fontname="Helvetica", fontsize=11, '
                 f"labelloc=t, labeljust=l, comment={_quote(comment)}, label={self.title()}];",
                 ('  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", '
                  'fontsize=10, margin="0.08,0.04"];'),
                 '  edge [arrowsize=0.6, color="#555555"];']
        for n in self.nodes:
            attrs = {"label": n.label}
            if n.op == "function":
                attrs |= {"shape": "ellipse", "style": "filled",
                          "fillcolor": FAMILY_COLOURS.get(n.family, _PLAIN_COLOUR)}
            elif n.op in ("input", "output"):
                attrs |= {"shape": "box", "style": "filled", "fillcolor": _END_COLOUR}
            else:
                attrs["fillcolor"] = FAMILY_COLOURS.get(n.family, _PLAIN_COLOUR)
            lines.append(f"  {_quote(n.id)} [{', '.join(f'{k}={_quote(v)}' for k, v in attrs.items())}];")
        lines += [f"  {_quote(s)} -> {_quote(t)};" for s, t in self.edges]
        lines.append("}")
        return "\n".join(lines) + "\n"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def check_rankdir(rankdir: str) -> None:
    """Refuse a layout direction other than RANKDIRS, in one line."""
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
                input_size: int | None = None, option: str | None = None) -> ModelGraph:
    """The data-flow graph of `model` for one input of `input_shape` ([1, C, H, W]); the model is not touched.
    `input_size`: the recipe's, named in the error when the model takes it but not `input_shape`; `option`: how
    the caller spells the size in errors ('--size', 'size'; None: both)."""
    depth = check_whole("depth", depth, 1, flag="--depth", hint=" (1: the model's top-level modules)")
    try:
        return _graph_of(model, input_shape, depth, name)
    except _Failed as failed:
        cause = failed.cause
    size = input_size
    side = "x".join(map(str, input_shape[1:]))
    if size and tuple(input_shape[-2:]) != (size, size) and _takes(model, input_shape, size, depth):
        def takes(side: int) -> bool:
            return _takes(model, input_shape, side, depth)

        raise too_small_error(name, input_shape, cause, size, takes, option) from None  # as `layers` says it
    raise DreamlabError(f"{name} failed on a {side} input ({first_line(cause)}) in one forward of a copy of it; "
                        f"if it takes another input size, give {option_named(option, 'size (--size)')}") from None


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
        drawn = _shapes(copied, _trace(copied, depth), input_shape, depth, name, "meta")
    except Exception:  # noqa: BLE001 -- the model refused the input or needs real tensors: the CPU copy tells
        pass
    else:
        return _described(drawn, copied, depth)
    copied = cpu_copy(model).eval()
    try:
        drawn = _shapes(copied, _trace(copied, depth), input_shape, depth, name, "cpu")
    except Exception as exc:  # noqa: BLE001 -- whatever the model raises
        # the CPU copy's error: the model's own words on real tensors, as `layers` and cam quote them (a meta
        # kernel words a shape error its own way). ShapeProp wraps the op's error in one that quotes the whole node
        raise _Failed(exc.__cause__ or exc) from None
    return _described(drawn, copied, depth)


def _described(drawn: ModelGraph, copied: nn.Module, depth: int) -> ModelGraph:
    """`drawn` with each node's family, hyperparameters and parameter count, read from the copy that ran (after
    its forward, so lazy modules have their parameters)."""
    sources = Counter(target for _, target in drawn.edges)
    nodes = []
    for n in drawn.nodes:
        if n.op == "module":
            module = copied.get_submodule(n.address)
            n = replace(n, family=module_family(module), detail=hyperparameters(module),
                        params=sum(p.numel() for p in module.parameters()))
        elif n.op == "function":
            n = replace(n, family=function_family(n.kind, sources[n.id]))
        nodes.append(n)
    return replace(drawn, nodes=tuple(nodes), params=sum(p.numel() for p in copied.parameters()), depth=depth)


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
    if Path(path).is_dir():
        raise DreamlabError(f"graph output {str(path)!r} is a folder; give a file name ending in one of "
                            f"{', '.join(TEXT_FORMATS + DOT_FORMATS)}")
    if suffix not in TEXT_FORMATS + DOT_FORMATS:
        raise DreamlabError(f"cannot write a graph as {suffix or 'a file without suffix'!r}; "
                            f"valid: {', '.join(TEXT_FORMATS + DOT_FORMATS)}")
    return suffix


def write_graph(dot_text: str, path: str | Path, provenance: dict[str, str] | None = None) -> Path:
    """Write DOT text (.dot/.gv) or render it with Graphviz's `dot` (.svg/.png/.pdf); a PNG gets `provenance` as
    text chunks, a PDF as its document information (DOT and SVG carry it as a comment, from the DOT text)."""
    from dreamlab.inspect.pdf_info import add_pdf_info
    from dreamlab.io import atomic_write_bytes, atomic_write_text, set_png_text

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
    atomic_write_bytes(path, done.stdout)
    if suffix == ".pdf" and provenance:
        return add_pdf_info(path, provenance)
    return set_png_text(path, provenance) if suffix == ".png" and provenance else path


def _build(model: nn.Module | str | Path, recipe: object, weights: str | Path | None
           ) -> tuple[nn.Module, Recipe, str]:
    """The module, its recipe and where its weights came from; a named model without weights is built on the meta
    device (VGG16: 0.2 s, not 8)."""
    if isinstance(model, (str, Path)) and str(weights).lower() == "none":
        try:
            with torch.device("meta"):
                return model_and_recipe(model, recipe, weights)[:3]
        except DreamlabError:
            raise
        except Exception:  # noqa: BLE001, S110 -- a builder that needs real tensors: build it normally below
            pass
    if not isinstance(model, (str, Path)) and str(weights).lower() == "none":
        weights = "default"  # graph's default: a module or LoadedModel keeps its own weights, which it does not read
    return model_and_recipe(model, recipe, weights)[:3]


def model_graph(model: nn.Module | str | Path, *, depth: int = 2, size: int | tuple[int, int] | None = None,
                recipe: object = None, weights: str | Path | None = "none", option: str = "size") -> ModelGraph:
    """The ModelGraph of a recipe/torchvision name or a module (see `graph`); `option`: how the caller spells
    the size where the model rejects it, 'size' (Python's keyword) or '--size' (`dreamlab graph`)."""
    depth = check_whole("depth", depth, 1, flag="--depth", hint=" (1: the model's top-level modules)")
    sides = None if size is None else check_sides(size)  # named as depth is: keyword and flag
    module, rec, described = _build(model, recipe, weights)
    height, width = sides or (rec.input_size, rec.input_size)
    drawn = trace_graph(module, (1, rec.channels, height, width), depth=depth, name=rec.name,
                        input_size=rec.input_size, option=option)
    return replace(drawn, weights=described)


@checked_keywords
def graph(model: nn.Module | str | Path, *, rankdir: str = "TB", depth: int = 2,
          size: int | tuple[int, int] | None = None, out: str | Path | None = None, recipe: object = None,
          weights: str | Path | None = "none") -> str:
    """The architecture of `model` as DOT text, also written to `out` (.dot, .gv, .svg, .png, .pdf) when given.

    `model` is a recipe or torchvision name, a recipe TOML path, or an nn.Module (with `recipe` for its input
    size and channels; default 3x224x224). `depth` picks how far modules are opened (1: the top-level ones;
    GoogLeNet's inception branches show at 2, ResNet's residual adds at 3). `size` is the input side in pixels,
    or (height, width) (default: the recipe's). Shapes need no weights, so the default `weights` is 'none'.
    """
    return drawn_graph(model, rankdir=rankdir, depth=depth, size=size, out=out, recipe=recipe, weights=weights)


def drawn_graph(model: nn.Module | str | Path, *, rankdir: str = "TB", depth: int = 2,
                size: int | tuple[int, int] | None = None, out: str | Path | None = None, recipe: object = None,
                weights: str | Path | None = "none", option: str = "size") -> str:
    """`graph`, whose errors spell the size as `option` does: 'size' (Python's keyword) or '--size' (`dreamlab
    graph`)."""
    check_rankdir(rankdir)
    if out is not None:
        check_output(out)
    drawn = model_graph(model, depth=depth, size=size, recipe=recipe, weights=weights, option=option)
    dot_text = drawn.to_dot(rankdir)
    if out is not None:
        write_graph(dot_text, out, drawn.provenance())
    return dot_text
