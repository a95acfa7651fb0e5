"""The figures of docs/studies.md, from the example studies' ``study.zarr`` (run them
first: ``neuronatlas study examples/seeds.toml --out studies/seeds`` and the same for
``examples/activations.toml``). Reads the stores with xarray alone.

    python docs/make_study_figures.py studies/seeds studies/activations
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

HERE = Path(__file__).parent


def seeds_figure(folder: Path) -> Path:
    ds = xr.open_zarr(folder / "study.zarr").load()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    layers = ds["layer"].values
    width = 0.2
    for k, (name, label) in enumerate((("share_0_9", "matched r ≥ 0.9"),
                                       ("share_0_5", "matched r ≥ 0.5"),
                                       ("cka", "linear CKA"))):
        vals = ds[name].values  # (pair, layer)
        axes[0].bar(layers + (k - 1) * width, vals.mean(axis=0), width,
                    yerr=vals.std(axis=0), label=label)
    axes[0].set(xticks=layers, xlabel="hidden layer", ylim=(0, 1.3),
                title=f"{ds.sizes['pair']} pairs of seeds")
    axes[0].legend(fontsize=7, loc="upper left", ncol=3)
    for l in layers:
        size = int(ds["size"].sel(layer=l).values[0])
        best = ds["best"].sel(layer=l).values[:, :size].ravel()
        null = ds["null"].sel(layer=l).values[:, :size].ravel()
        axes[1].hist([best[np.isfinite(best)], null[np.isfinite(null)]], bins=30,
                     range=(0, 1), histtype="step", label=[f"layer {l}: other seeds",
                                                           f"layer {l}: rotated null"])
    axes[1].axvline(0.9, color="grey", lw=0.5)
    axes[1].set(xlabel="mean best-match correlation", ylabel="neurons",
                title="each neuron against the other seeds")
    axes[1].legend(fontsize=7)
    steps = ds["snapshot_step"].values[0]
    for l in layers:
        cka = ds["cka_to_final"].sel(layer=l).values  # (network, snapshot)
        size = int(ds["size"].sel(layer=l).values[0])
        corr = np.nanmedian(ds["self_corr"].sel(layer=l).values[:, :, :size], axis=(0, 2))
        axes[2].plot(steps, cka.mean(axis=0), marker="o", label=f"layer {l}: CKA to final")
        axes[2].plot(steps, corr, ls="--", marker=".", label=f"layer {l}: median neuron r")
    axes[2].set(xlabel="training step", ylim=(0, 1.02), title="formation over training")
    axes[2].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = HERE / "study_seeds.png"
    fig.savefig(out, dpi=110)
    return out


def activations_figure(folder: Path) -> Path:
    ds = xr.open_zarr(folder / "study.zarr").load()
    names = list(ds["network"].values)
    short = [n.replace("activation=", "").replace(",seed=", " s") for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, field, title in ((axes[0], "share_0_9", "layer 1: neurons matched at r ≥ 0.9"),
                             (axes[1], "cka", "layer 1: linear CKA")):
        grid = np.eye(len(names))
        for p in range(ds.sizes["pair"]):
            i = names.index(str(ds["pair_a"].values[p]))
            j = names.index(str(ds["pair_b"].values[p]))
            grid[i, j] = grid[j, i] = float(ds[field].values[p, 0])
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < 0.6 else "black")
        ax.set(xticks=range(len(names)), yticks=range(len(names)), title=title)
        ax.set_xticklabels(short, rotation=45, ha="right", fontsize=8)
        ax.set_yticklabels(short, fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8)
    out = HERE / "study_activations.png"
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


if __name__ == "__main__":
    seeds, activations = (Path(a) for a in sys.argv[1:3])
    print(seeds_figure(seeds), activations_figure(activations))
