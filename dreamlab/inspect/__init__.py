"""Looking inside a model: the architecture diagram, kernel grids, feature maps and TensorBoard logging."""
