"""The data-flow graph by running the model once on the meta device: for models torch.fx cannot trace.

Python control flow (a loop over layers, `if side.shape != size`) defeats symbolic tracing, but one real
forward sees what ran. Hooks on the modules at the chosen depth record module calls; a TorchFunctionMode
records the torch functions called between them (cat, add, interpolate, ...). Edges follow the tensors: each
tensor remembers the node that produced it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from dreamlab.inspect.graph import GraphNode, ModelGraph

_PLUMBING = {"__getitem__", "__get__", "size", "dim", "numel", "__len__"}  # pass tensors on, or return no tensor


class _Recorder(TorchFunctionMode):
    """Collects nodes and edges; while a leaf module runs (`active`), what happens inside it is not recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[GraphNode] = []
        self.edges: list[tuple[str, str]] = []
        self.producers: dict[int, list[str]] = {}  # id(tensor) -> node ids it came from
        self.keep: list[Any] = []  # holds every seen tensor, so no id is reused during the trace
        self.active: nn.Module | None = None
        self.scope: list[str] = []
        self.counts: dict[str, int] = {}

    def unique(self, base: str) -> str:
        count = self.counts.get(base, 0)
        self.counts[base] = count + 1
        return base if count == 0 else f"{base}_{count}"

    def sources(self, values: Any) -> list[str]:
        found: list[str] = []
        for value in tree_flatten(values)[0]:
            if isinstance(value, Tensor):
                found += [s for s in self.producers.get(id(value), ()) if s not in found]
        return found

    def mark(self, values: Any, ids: list[str]) -> None:
        for value in tree_flatten(values)[0]:
            if isinstance(value, Tensor):
                self.producers[id(value)] = ids
                self.keep.append(value)

    def add(self, node: GraphNode, inputs: Any, outputs: Any) -> None:
        self.edges += [(s, node.id) for s in self.sources(inputs)]
        self.nodes.append(node)
        self.mark(outputs, [node.id])

    def __torch_function__(self, func: Callable, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.active is not None:
            return out
        name = getattr(func, "__name__", str(func))
        first = next((v for v in tree_flatten(out)[0] if isinstance(v, Tensor)), None)
        if name in _PLUMBING or first is None:
            if first is not None:
                self.mark(out, self.sources((args, kwargs)))
            return out
        scope = self.scope[-1] if self.scope else ""
        node = GraphNode(self.unique(f"{scope}.{name}".strip(".").replace(".", "_")), scope, name.strip("_"),
                         tuple(first.shape[1:]), "function")
        self.add(node, (args, kwargs), out)
        return out


def run_graph(model: nn.Module, x: Tensor, depth: int, name: str) -> ModelGraph:
    """Run `model` (a weightless meta copy) on `x` and return the graph of what ran, modules kept at `depth`."""
    rec = _Recorder()
    leaves = {m for address, m in model.named_modules()
              if address and (address.count(".") + 1 >= depth or next(m.children(), None) is None)}
    names = {m: address for address, m in model.named_modules()}
    handles = []

    def pre(module: nn.Module, inputs: Any) -> None:
        if rec.active is not None:
            return
        if module in leaves:
            rec.active = module
        else:
            rec.scope.append(names[module])

    def post(module: nn.Module, inputs: Any, output: Any) -> None:
        if rec.active is module:
            rec.active = None
            first = next((v for v in tree_flatten(output)[0] if isinstance(v, Tensor)), None)
            address = names[module]
            node = GraphNode(rec.unique(address.replace(".", "_")), address, type(module).__name__,
                             None if first is None else tuple(first.shape[1:]), "module")
            rec.add(node, inputs, output)
        elif rec.active is None and rec.scope and rec.scope[-1] == names[module]:
            rec.scope.pop()

    try:
        for address, module in model.named_modules():
            if address:
                handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
        rec.add(GraphNode("x", "", "input", tuple(x.shape[1:]), "input"), (), x)
        with torch.no_grad(), rec:
            out = model(x)
        first = next((v for v in tree_flatten(out)[0] if isinstance(v, Tensor)), None)
        rec.add(GraphNode("output", "", "output", None if first is None else tuple(first.shape[1:]), "output"),
                out, ())
    finally:
        for handle in handles:
            handle.remove()
    return ModelGraph(name, tuple(rec.nodes), tuple(rec.edges))
