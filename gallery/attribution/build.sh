#!/usr/bin/env bash
# Rebuild the attribution pictures of the README: a held-out digit from scikit-learn's digits (never seen in
# training), its Grad-CAM, its integrated gradients and guided backprop, and the sanity check's table.
# Offline, CPU, a few seconds. PYTHON picks the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}

# held-out digit #2 (a 4), upsampled to 112 px so the overlays are readable
"$PYTHON" - <<'PY'
import torch.nn.functional as F
from dreamlab.io import save_png
from dreamlab.models.zoo.digits import load_digits_split

_, _, x, y = load_digits_split()
save_png(F.interpolate(x[2:3], size=(112, 112), mode="bilinear", align_corners=False)[0], "digit4.png",
         {"dreamlab:source": f"sklearn digits, held-out image 2, label {int(y[2])}"})
PY
"$PYTHON" -m dreamlab cam lenet-digits --image digit4.png --target logit:4 -o digit4_gradcam.png
"$PYTHON" -m dreamlab attribute lenet-digits --image digit4.png --target logit:4 --method ig -o digit4_ig.png
"$PYTHON" -m dreamlab attribute lenet-digits --image digit4.png --target logit:4 --method guided -o digit4_guided.png
"$PYTHON" -m dreamlab attribute lenet-digits --image digit4.png --target logit:4 --sanity \
  --method saliency,smoothgrad,ig,guided,deconvnet,gradcam,gradcam++ > sanity.txt
rm -f ./*.npy  # the raw maps: nothing to commit
cat sanity.txt
