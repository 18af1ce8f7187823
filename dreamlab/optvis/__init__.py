"""The optimization core: objectives and their grammar, unit lists (``units``), image parameterizations,
transforms, optimizers, activation capture, the redirected ReLU, the fx forward for ``--compile``, the render's
settings and input checks (``settings``), the render loop (``engine``) with what it returns (``result``,
``classes``), how it watches its scores (``score_checks``), shows progress (``progress``) and words a rejected
input size (``render_sizes``), and DeepDream on photos (``dream``, ``dream_settings``, ``dream_tiles``)."""
