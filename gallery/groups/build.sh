#!/usr/bin/env bash
# Rebuild the neuron-group example (README "Neuron groups"): scikit-learn's china photo at hed-vgg16's
# features.22, factored into 6 groups, each rendered. Needs its weights once (`dreamlab fetch hed-vgg16`),
# scikit-learn for the sample photo (`pip install -e '.[digits]'`) and about 5 minutes of a 2-core CPU.
# PYTHON picks the interpreter. The directions (.npy) are written beside the figure.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}

"$PYTHON" -m dreamlab groups hed-vgg16 features.22 --image china --groups 6 --photo-size 224 \
    --size 96 --steps 128 --device cpu -o china_features.22.png
