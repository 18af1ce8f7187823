#!/usr/bin/env bash
# Rebuild the pictures of `dreamlab graph`, `dreamlab kernels` and `dreamlab features` shown in the README.
# Offline and on the CPU in seconds: the embedded lenet-digits model (shipped weights) and random-weight
# GoogLeNet (the diagram needs no weights). Needs Graphviz (`dot`) and scikit-learn.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
OUT=gallery/inspect

"$PYTHON" -m dreamlab graph lenet-digits --rankdir LR -o "$OUT/lenet-digits_graph.png"
"$PYTHON" -m dreamlab graph googlenet --rankdir LR -o "$OUT/googlenet_graph.svg"
"$PYTHON" -m dreamlab kernels lenet-digits conv1 -o "$OUT/lenet-digits_conv1_kernels.png"
# a handwritten 3 from scikit-learn's digits, as the model saw them in training (8x8 upsampled to 28x28)
"$PYTHON" - "$OUT/digit3.png" <<'PY'
import sys
from dreamlab.io import save_png
from dreamlab.models.zoo.digits import load_digits_split
x_train, y_train, _, _ = load_digits_split()
save_png(x_train[(y_train == 3).nonzero()[0, 0]], sys.argv[1], {"dreamlab:source": "sklearn digits, first 3 of the training split"})
PY
"$PYTHON" -m dreamlab features lenet-digits conv1 --image "$OUT/digit3.png" -o "$OUT/lenet-digits_conv1_features.png"
