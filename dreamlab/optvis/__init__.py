"""The optimization core: objectives and their grammar, image parameterizations, transforms, optimizers,
activation capture, the redirected ReLU, the fx forward for ``--compile``, and the render loop (``engine``)."""
