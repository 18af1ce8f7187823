#!/usr/bin/env bash
# Rebuild the direction examples (README "Directions"): hed-vgg16's features.22 rendered along directions of
# its channel space instead of single channels. Needs its weights once (`dreamlab fetch hed-vgg16`),
# scikit-learn for the sample photos (`pip install -e '.[digits]'`) and about 5 minutes of a 2-core CPU.
# PYTHON picks the interpreter. The .npy files are written to a temporary folder and removed.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
vectors=$(mktemp -d)
trap 'rm -rf "$vectors"' EXIT

"$PYTHON" - "$vectors" <<'PY'
import sys
import numpy as np
import dreamlab

folder = sys.argv[1]
# channels 0 and 12 alone and together: a one-hot direction is the channel itself
mix = np.zeros((3, 512), np.float32)
mix[0, 0] = mix[1, 12] = mix[2, [0, 12]] = 1
np.save(f"{folder}/mix.npy", mix)
# each sample photo's mean activation per channel, and what tells the two apart (china - flower and back)
china, flower = [dreamlab.features("hed-vgg16", "features.22", name, top=1).channel_means.numpy()
                 for name in ("china", "flower")]
np.save(f"{folder}/photos.npy", np.stack([china, flower, china - flower, flower - china]))
PY

render() { "$PYTHON" -m dreamlab render features.22 --model hed-vgg16 --device cpu --grid "$@"; }
render --direction "$vectors/mix.npy" -o features.22_0_12_mix.png
render --direction "$vectors/photos.npy" --cossim-power 1 -o features.22_photos.png
