#!/usr/bin/env bash
# Rebuild the MACO example (README "MACO", QUALITY.md "hed-vgg16: MACO"): hed-vgg16 features.22:0-3 with the
# phase-only parameterization, Adam at lr 0.3 (`dreamlab quality --settings maco`), 128 px, 256 steps, seed 0;
# gallery/hed-vgg16/features.22_0-3.png is the same units with the recipe's Fourier parameterization. Needs the
# hed-vgg16 weights once (`dreamlab fetch hed-vgg16`) and about 10 minutes of a 2-core CPU. PYTHON picks the
# interpreter.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
"$PYTHON" -m dreamlab render features.22:0-3 --model hed-vgg16 --param maco --optimizer adam --lr 0.3 \
    --device cpu --grid -o hed-vgg16_features.22_0-3_maco.png
