"""Applications built on the capabilities: the command line (``cli``), the gallery builder (``gallery``),
the quality measures (``quality``) and the benchmarks (``bench``)."""
