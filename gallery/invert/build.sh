#!/usr/bin/env bash
# Rebuild the feature-inversion examples (README "Feature inversion"): scikit-learn's china photo inverted at four
# depths of hed-vgg16, and lucid's caricature at two. Needs its weights once (`dreamlab fetch hed-vgg16`),
# scikit-learn for the sample photo (`pip install -e '.[digits]'`) and about 5 minutes of a 2-core CPU.
# PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}

"$PYTHON" -m dreamlab invert hed-vgg16 features.8,features.15,features.22,features.29 --image china \
    --device cpu -o china_match.png
"$PYTHON" -m dreamlab invert hed-vgg16 features.15,features.22 --image china --mode caricature \
    --cossim-power 1 --device cpu -o china_caricature.png
