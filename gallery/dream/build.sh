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

# the endless zoom: 12 frames on a 320 px copy, each frame dreamed on the last one magnified 1.05x and turned 1 degree;
# from no frames, since a run resumes from the frames it finds (an older build's would be kept)
frames="${TMPDIR:-/tmp}/china_zoom_frames"
rm -rf "$frames"
"$PYTHON" -c "from PIL import Image; Image.open('china.jpg').resize((320, 214), Image.LANCZOS).save('${TMPDIR:-/tmp}/china320.png')"
"$PYTHON" -m dreamlab dream "${TMPDIR:-/tmp}/china320.png" --model hed-vgg16 --octaves 3 --steps 5 --zoom-frames 12 \
  --rotate 1 --fps 6 --frames-dir "$frames" -o china_zoom.webp
