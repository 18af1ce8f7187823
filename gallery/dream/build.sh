#!/usr/bin/env bash
# Rebuild the DeepDream pictures of the README: scikit-learn's sample photo china.jpg, dreamed at its own size
# (640x427) with HED's VGG16 at features.22 (the recipe's default layer), 4 octaves of 10 steps. Needs the
# weights once: `dreamlab fetch hed-vgg16`. CPU, a few minutes. PYTHON picks the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}

"$PYTHON" - <<'PY'
from PIL import Image
from sklearn.datasets import load_sample_image

Image.fromarray(load_sample_image("china.jpg")).save("china.jpg", quality=90)
PY
"$PYTHON" -m dreamlab dream china.jpg --model hed-vgg16 -o china_dream.png
