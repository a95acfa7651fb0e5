"""Regenerate docs/output_neurons.png: the ten output neurons at three TV weights.

    python docs/make_output_neurons.py [runs/paper/model.safetensors]
"""

import sys

import numpy as np

import neuronatlas as na
from neuronatlas.vis.images import save_png

model = na.MLP.load(sys.argv[1] if len(sys.argv) > 1 else "runs/paper/model.safetensors")
rows = []
for tv in (0.016, 0.032, 0.064):
    res = na.visualize(model, [(8, k) for k in range(10)], na.VisConfig(tv=tv, l1=tv / 10))
    print(f"tv {tv}: activations {np.round(res.activation, 3).tolist()}")
    tiles = [np.pad(im.reshape(28, 28) / max(im.max(), 1e-6), 1, constant_values=1.0)
             for im in res.images]  # each tile scaled to its own maximum
    rows.append(np.concatenate(tiles, axis=1))
save_png("docs/output_neurons.png", np.concatenate(rows, axis=0), scale=6)
