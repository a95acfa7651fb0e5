"""All 3,892 neurons of the paper's network, 100 steps each with TV + L1 + clip.

In one process and one run:

* neuronatlas: ``na.visualize(model, every neuron, VisConfig(steps=100, tv, l1))``;
* PyTorch autograd, batched on the CPU: one image row per neuron, one batch per
  layer, forward to that layer, ``backward()`` of the summed target activations,
  then the same clip / TV / L1 update rule;
* the lower bound: the forward and input-gradient matmul FLOPs of the work (each row
  runs the layers up to its target, forward and backward) divided by the best GEMM
  FLOP/s measured on large square float32 matrices; and the same for the FLOPs the
  renderer really does (a row that targets one hidden neuron needs only that neuron's
  weight row at its own layer, so it skips that layer's GEMMs).

Threads: 2 for both libraries. ``OPENBLAS_CORETYPE`` is dropped for this process
(``--keep-env`` keeps it) and the BLAS kernel that ran is printed.

    python benchmarks/vis_speed.py [--model runs/paper/model.safetensors] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_speed import (
    THREADS,
    _reexec_without_coretype,
    blas_description,
    peak_gemm_flops,
    report,
)


def vis_flops(sizes, steps) -> float:
    macs = [i * o for i, o in zip(sizes, sizes[1:])]
    total = 0
    for layer in range(1, len(sizes)):
        total += sizes[layer] * 4 * sum(macs[:layer])  # forward + input gradient per row
    return total * steps


def renderer_flops(r, sizes, steps) -> float:
    """Multiply-add FLOPs of one Backprop, forward and backward, over ``steps``: the GEMM
    rows m[l] at every layer, plus one dot product per single-neuron row."""
    total = 0
    for l in range(1, len(r.m)):
        total += 2 * 2 * r.m[l] * sizes[l - 1] * sizes[l]
        total += 2 * 2 * (r.n[l] - r.m[l]) * sizes[l - 1]
    return total * steps


def gemms_alone(na, model, targets, cfg) -> float:
    """Seconds for just the renderer's GEMMs of the same run (forward and backward plans,
    called back to back ``cfg.steps`` times): the floor for this work on this BLAS."""
    import numpy as np

    from neuronatlas.nn.backprop import Backprop
    from neuronatlas.vis.visualize import objective_for

    r = Backprop(model, [objective_for(t, cfg, model.sizes) for t in targets])
    r.forward(np.full((len(targets), 784), 0.01, model.dtype))
    plans = [p for p in r.fwd[1:]] + [p for p in r.bwd[1:]]
    t = time.perf_counter()
    for _ in range(cfg.steps):
        for plan in plans:
            plan()
    return time.perf_counter() - t, renderer_flops(r, model.sizes, cfg.steps)


def torch_render(torch, model, sizes, steps, lr, tv, l1):
    """The same work with autograd: per layer, a batch with one row per neuron."""
    Ws = [torch.from_numpy(w) for w in model.weights]
    bs = [torch.from_numpy(b) for b in model.biases]
    L = len(Ws)
    out = []
    for layer in range(1, L + 1):
        n = sizes[layer]
        x = torch.full((n, 784), 0.01)
        idx = torch.arange(n)
        for _ in range(steps):
            x.requires_grad_(True)
            a = torch.clamp(x, 0, 1)
            for l in range(layer):
                a = a @ Ws[l].T + bs[l]
                a = torch.relu(a) if l < L - 1 else torch.softmax(a, dim=1)
            a[idx, idx].sum().backward()
            with torch.no_grad():
                g = x.grad
                u = x.detach().view(n, 28, 28)
                p = torch.nn.functional.pad(u, (1, 1, 1, 1))
                sv = torch.sign(p[:, 1:, 1:-1] - p[:, :-1, 1:-1])
                sh = torch.sign(p[:, 1:-1, 1:] - p[:, 1:-1, :-1])
                tvg = (sv[:, :-1] - sv[:, 1:] + sh[:, :, :-1] - sh[:, :, 1:]).reshape(n, 784)
                x = x.detach() + lr * (g - tv * tvg - l1 * torch.sign(x.detach()))
        out.append(torch.clamp(x, 0, 1))
    return torch.cat(out)


def main(argv=None) -> int:
    argv = sys.argv if argv is None else argv
    _reexec_without_coretype(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="runs/paper/model.safetensors")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--keep-env", action="store_true")
    parser.add_argument("--other-activation", default="gelu",
                        help="also visualise every neuron of the same weights with this hidden "
                             "activation")
    args = parser.parse_args(argv[1:])

    import numpy as np
    from threadpoolctl import threadpool_limits

    import neuronatlas as na

    threadpool_limits(THREADS)
    if os.path.exists(args.model):
        model, source = na.MLP.load(args.model), args.model
    else:
        model, source = na.MLP.init(na.PAPER_SIZES, rng=np.random.default_rng(0)), "random init"
    sizes = model.sizes
    targets = [(l, i) for l in range(1, len(sizes)) for i in range(sizes[l])]
    cfg = na.VisConfig(steps=args.steps)  # the defaults: TV 0.064, L1 0.0064, clip, lr 0.05
    flops = vis_flops(sizes, args.steps)
    peak = peak_gemm_flops(np)

    t = time.perf_counter()
    res = na.visualize(model, targets, cfg)
    ours = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    gemm_only, done_flops = gemms_alone(na, model, targets, cfg)
    other_model = na.MLP(model.weights, model.biases, {}, args.other_activation)
    t = time.perf_counter()
    na.visualize(other_model, targets, cfg)
    other = time.perf_counter() - t

    theirs = None
    if not args.skip_torch:
        import torch

        torch.set_num_threads(THREADS)
        t = time.perf_counter()
        with torch.inference_mode(False):
            imgs = torch_render(torch, model, sizes, args.steps, cfg.lr, cfg.tv, cfg.l1)
        theirs = time.perf_counter() - t
        diff = float(np.abs(imgs.numpy() - res.images).max())
    peak = max(peak, peak_gemm_flops(np))
    bound, own = flops / peak, done_flops / peak
    lines = [
        f"- model: {source}; {len(targets)} neurons, {args.steps} steps, tv {cfg.tv}, "
        f"l1 {cfg.l1}, clip, lr {cfg.lr}",
        blas_description(),
        f"- peak GEMM {peak / 1e9:.1f} GFLOP/s; matmul work of every row through every "
        f"layer up to its target: {flops / 1e12:.3f} TFLOP -> lower bound {bound:.2f} s; "
        f"work the renderer does (single-neuron rows skip their own layer's GEMMs): "
        f"{done_flops / 1e12:.3f} TFLOP -> {own:.2f} s",
        "",
        "| all neurons | seconds | vs bound | vs bound of the work done |",
        "|---|---|---|---|",
        f"| neuronatlas (batched staircase) | {ours:.2f} | {ours / bound:.2f}x | "
        f"{ours / own:.2f}x |",
    ]
    if theirs is not None:
        lines.append(f"| PyTorch autograd, batched per layer | {theirs:.2f} | "
                     f"{theirs / bound:.2f}x | |")
    lines += [f"| neuronatlas, {args.other_activation} hidden layers | {other:.2f} | "
              f"{other / bound:.2f}x | {other / own:.2f}x |",
              f"| neuronatlas's GEMMs alone | {gemm_only:.2f} | {gemm_only / bound:.2f}x | "
              f"{gemm_only / own:.2f}x |",
              f"| GEMM lower bound | {bound:.2f} | 1.00x | |",
              f"| GEMM lower bound of the work done | {own:.2f} | {own / bound:.2f}x | 1.00x |",
              "", f"- neuronatlas peak memory (ru_maxrss): {rss:.2f} GiB",
              f"- {args.other_activation} / ReLU, same weights: {other / ours:.2f}x"]
    if theirs is not None:
        lines.append(f"- neuronatlas / PyTorch: {ours / theirs:.2f}x; largest pixel difference "
                     f"between the two: {diff:.2e}")
    report(lines, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
