#!/usr/bin/env bash
# Rebuild the transparent-render examples (README "Transparent renders"): hed-vgg16's features.22:0-3 with an
# alpha channel, as RGBA PNGs. Needs its weights once (`dreamlab fetch hed-vgg16`) and about 4 minutes of a
# 2-core CPU. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}

"$PYTHON" -m dreamlab render features.22:0-3 --model hed-vgg16 --device cpu --size 96 --steps 128 --alpha --grid \
    -o features.22_0-3.png
