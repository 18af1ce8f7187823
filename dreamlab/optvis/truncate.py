"""A model cut after the deepest layer an objective reads, as a torch.fx graph: the forward that `--compile` uses.

The hook-based `Capture` stops a forward by raising an exception from a hook, which torch.compile cannot put in
a graph. Here the model is traced with torchvision's feature extractor instead, so everything after the deepest
requested layer is simply not in the graph, and the graph returns the requested outputs as a dict.

>>> from dreamlab.models.zoo import lenet_digits
>>> features = truncated_forward(lenet_digits(), ["conv2"])     # fc1 and fc2 are not in the graph
>>> features(torch.rand(1, 1, 28, 28))["conv2"].shape
torch.Size([1, 50, 14, 14])
"""
from __future__ import annotations

import weakref
from collections.abc import Sequence

from torch import fx, nn

from dreamlab.optvis.capture import OUTPUT
from dreamlab.errors import DreamlabError, first_line

# one graph per (model, layers), kept while the model lives: every trace makes a new GraphModule class, and
# torch.compile recompiles for a new class (and gives up after a few), so renders must share the graph. The
# graph holds the submodules, parameters and buffers it was traced with, so it is only reused while the model
# still has those very objects (see _fingerprint).
_GRAPHS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, dict[tuple[str, ...], fx.GraphModule]]] = \
    weakref.WeakKeyDictionary()


def truncated_forward(model: nn.Module, layers: Sequence[str]) -> fx.GraphModule:
    """`model` (in eval mode) traced up to the deepest of `layers`, returning {layer: output}; cached per model.

    Each output is cloned right where it is produced, as Capture's hooks do, so that a later in-place op
    (GoogLeNet's `relu(inplace=True)`, ResNet's `out += identity`) cannot change it. The graph shares the
    model's parameters. `layers` are module names, or "logit" for the model's output.
    """
    key = tuple(sorted(set(layers)))
    fingerprint = _fingerprint(model)
    known, graphs = _GRAPHS.get(model, (None, {}))
    if known != fingerprint:  # a submodule, parameter or buffer was replaced since: trace again
        graphs = {}
        _GRAPHS[model] = (fingerprint, graphs)
    if key not in graphs:
        graphs[key] = _trace(model, key)
    return graphs[key]


def _fingerprint(model: nn.Module) -> tuple:
    """The identity of every submodule, parameter and buffer, by name (cheap: no tensor is read)."""
    return (tuple((name, id(m), type(m)) for name, m in model.named_modules()),
            tuple((name, id(t)) for name, t in model.named_parameters()),
            tuple((name, id(t)) for name, t in model.named_buffers()))


def _trace(model: nn.Module, layers: tuple[str, ...]) -> fx.GraphModule:
    from torchvision.models.feature_extraction import (
        create_feature_extractor,
        get_graph_node_names,
    )

    try:
        nodes = {name: name for name in layers if name != OUTPUT}
        if OUTPUT in layers:
            nodes[get_graph_node_names(model)[1][-1]] = OUTPUT
        graph_module = create_feature_extractor(model, return_nodes=nodes)
    except Exception as exc:  # fx raises many kinds of errors on untraceable code
        reason = first_line(exc)
        raise DreamlabError(f"compile (--compile) needs a model that torch.fx can trace, and {type(model).__name__} cannot "
                            f"be traced ({reason}); render without it") from None
    _clone_outputs(graph_module.graph)
    graph_module.recompile()
    return graph_module.eval()


def _clone_outputs(graph: fx.Graph) -> None:
    """Return a clone of each output node, taken right after the node runs."""
    output = next(n for n in graph.nodes if n.op == "output")
    returned: dict = output.args[0]
    clones = {}
    for name, node in returned.items():
        with graph.inserting_after(node):
            clones[name] = graph.call_method("clone", (node,))
    output.args = (clones,)
    graph.lint()


__all__ = ["truncated_forward"]
