#!/usr/bin/env bash
# Rebuild the activation grid example (README "Activation grids"): what hed-vgg16's features.22 sees in each of
# 6 x 6 cells of scikit-learn's china photo, and the square of the photo the model reads. Needs its weights
# once (`dreamlab fetch hed-vgg16`), scikit-learn for the sample photo (`pip install -e '.[digits]'`) and about
# 5 minutes of a 2-core CPU. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}

"$PYTHON" -m dreamlab grid hed-vgg16 features.22 --image china --cells 6 --cell-size 64 --steps 64 --device cpu \
    -o china_features.22_grid.png
# the photo as the model reads it (shorter side to the recipe's 128 px, centre crop)
"$PYTHON" - <<'PY'
import dreamlab
from dreamlab.inspect.features import centre_crop, shorter_side_to
from dreamlab.io import load_image, save_png

side = dreamlab.load_recipe("hed-vgg16").input_size
square = centre_crop(shorter_side_to(load_image("china"), side), (side, side))
save_png(square[0], "china_crop.png")
PY
