#!/usr/bin/env bash
# Build the example galleries in this folder.
#
#   gallery/build_examples.sh            the small offline example, gallery/lenet-digits (CPU, about a minute)
#   gallery/build_examples.sh googlenet  GoogLeNet inception3a + inception4c (ImageNet weights, best on a GPU)
#   gallery/build_examples.sh all        both
#
# The digits build starts from an empty folder, so that the committed example is what the current code renders
# (a resumed folder would keep the images of an older version), and replaces gallery/lenet-digits only once it
# has finished. The GoogLeNet build resumes: stop it (Ctrl-C) and run it again, finished units are kept. Spread
# it over several GPUs with   LAUNCH="torchrun --nproc-per-node 4" gallery/build_examples.sh googlenet
# PYTHON picks the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
LAUNCH=${LAUNCH:-$PYTHON}

digits() {
  # The embedded digits model (shipped weights, no download) with its recipe's settings: both conv layers
  # and the logits (fc2). Rendered on the CPU so that the committed files do not depend on a GPU.
  local out=gallery/lenet-digits build=gallery/.lenet-digits.build
  rm -rf "$build"
  "$PYTHON" -m dreamlab gallery lenet-digits --layers conv1,conv2,fc2 --device cpu --out "$build"
  rm -rf "$out"
  mv "$build" "$out"
  echo "$out/index.html"
}

googlenet() {
  # torchvision downloads the ImageNet weights (~50 MB) on first use. 768 units of 224 px at 512 steps:
  # minutes on one recent GPU, many hours on a CPU. The result (~80 MB) is not meant to be committed.
  $LAUNCH -m dreamlab gallery googlenet --layers inception3a,inception4c --out gallery/googlenet
}

case "${1:-digits}" in
  digits) digits ;;
  googlenet) googlenet ;;
  all) digits; googlenet ;;
  *) echo "usage: $0 [digits|googlenet|all]" >&2; exit 2 ;;
esac
