#!/usr/bin/env bash
# Rebuild the diversity examples (README "Diversity"): four images per unit, pushed apart by the distance
# between their Gram matrices (dreamlab/optvis/diversity.py), a row per unit. The digits need nothing; the
# hed-vgg16 rows need its weights once (`dreamlab fetch hed-vgg16`) and about 15 minutes of a 2-core CPU.
# PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
render() { "$PYTHON" -m dreamlab render "$@" --device cpu --grid --diversity 4; }

render logit:0-9 --model lenet-digits -o lenet-digits_logit_0-9.png
render features.22:12 --model hed-vgg16 -o hed-vgg16_features.22_12.png
render features.22:12 --model hed-vgg16 --diversity-weight 0 -o hed-vgg16_features.22_12_weight0.png
