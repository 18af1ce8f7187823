#!/usr/bin/env bash
# Rebuild the hed-vgg16 examples: a few channels of features.8, .15, .22 and .29 (the ReLUs after conv2_2,
# conv3_3, conv4_3, conv5_3) with the recipe's settings (128 px, 256 steps, channel-adam, Fourier decay 0.75,
# seed 0), and features.22:0-3 with lucid's settings beside them (QUALITY.md, "hed-vgg16"). Needs the weights
# once: `dreamlab fetch hed-vgg16`. CPU: about an hour on a busy 2-core machine. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
render() { "$PYTHON" -m dreamlab render "$@" --model hed-vgg16 --device cpu --grid; }

render features.8:0-3 -o features.8_0-3.png
render features.15:0-1 -o features.15_0-1.png
render features.22:0-3 -o features.22_0-3.png
render features.29:0-1 -o features.29_0-1.png
render features.22:0-3 --optimizer adam --fourier-decay 1 -o features.22_0-3_lucid.png
# twins of features.29 (QUALITY.md, "The full measure"): :440 and four units it out-drives, then :24 and :200
render features.29:440,56,352,392,408,24,200 -o features.29_twins.png
# beside features.22:0-3's renders: the crops of scikit-learn's two sample photos that drive each unit hardest
"$PYTHON" -m dreamlab examples hed-vgg16 features.22:0-3 --images china flower --size 256 -o features.22_0-3_examples.png
