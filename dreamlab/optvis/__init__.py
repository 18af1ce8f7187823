"""The optimization core: objectives and their grammar, unit lists (``units``), image parameterizations,
transforms, optimizers, activation capture, the redirected ReLU, the fx forward for ``--compile``, the render's
settings and input checks (``settings``), and the render loop (``engine``)."""
