"""One training epoch of the paper's MLP: neuronatlas vs PyTorch vs the GEMM lower bound.

In one process and one run:

* neuronatlas: one epoch of ``neuronatlas.train`` (batch 32, float32, the paper's
  architecture, reshuffled), timed around the step loop as ``metrics.jsonl`` does;
* PyTorch: the loop a user would write (``nn.Sequential`` + ``torch.optim.SGD`` +
  ``F.cross_entropy``, batches gathered by a ``randperm``), same batch and threads;
* the lower bound: the epoch's matmul FLOPs divided by the best GEMM FLOP/s measured
  on large square float32 matrices, before and after the two loops;
* the same epoch with another hidden activation (``--other-activation``, GELU by
  default): its extra cost is element-wise work only, at most 1.3x ReLU's epoch.

Both libraries run with 2 threads. This environment may set ``OPENBLAS_CORETYPE``;
the benchmark re-runs itself without it (``--keep-env`` to keep it) and reports the
BLAS kernel that ran. Run it alone: a second busy process distorts every number.

    python benchmarks/train_speed.py [--steps N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

THREADS = 2


def _reexec_without_coretype(argv):
    if "--keep-env" in argv or os.environ.get("_NA_BENCH_CHILD"):
        return
    if not any(k in os.environ for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")):
        return
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["_NA_BENCH_CHILD"] = "1"
    os.execve(sys.executable, [sys.executable, *argv], env)


def epoch_flops(sizes, batch, steps) -> float:
    """Forward z = a W^T, weight gradient dW = dz^T a, input gradient dz W (not layer 1)."""
    macs = [i * o for i, o in zip(sizes, sizes[1:])]
    per_sample = 2 * sum(macs) + 2 * sum(macs) + 2 * sum(macs[1:])
    return per_sample * batch * steps


def gemms_alone(na, data, steps) -> float:
    """Seconds for just the GEMMs of ``steps`` training steps (the fused step's plans,
    called back to back on real activations): the floor for this batch size."""
    import numpy as np

    from neuronatlas.nn.sgd_step import SGDStep

    model = na.MLP.init(na.PAPER_SIZES, rng=np.random.default_rng(0))
    step = SGDStep(model, 32, 1e-30)  # a vanishing (not zero: BLAS skips alpha=0) update
    step(data.train_x[:32], data.train_y[:32])
    plans = step.fwd + step.bwd + step.upd
    t = time.perf_counter()
    for _ in range(steps):
        for plan in plans:
            plan()
    return time.perf_counter() - t


def peak_gemm_flops(np) -> float:
    best = 0.0
    for n in (2048, 3072, 4096):
        a = np.random.default_rng(0).random((n, n), dtype=np.float32)
        c = np.empty_like(a)
        np.matmul(a, a, out=c)
        for _ in range(3):
            t = time.perf_counter()
            np.matmul(a, a, out=c)
            best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def blas_description() -> str:
    from threadpoolctl import threadpool_info

    kernels = [f"{i['internal_api']} {i['version']} ({i['architecture']}, "
               f"{i['num_threads']} threads)" for i in threadpool_info() if i["user_api"] == "blas"]
    return (f"- BLAS: {'; '.join(kernels)}; OPENBLAS_CORETYPE="
            f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")


def report(lines: list[str], markdown: str | None) -> None:
    text = "\n".join(lines)
    print(text)
    if markdown:
        with open(markdown, "w") as f:
            f.write(text + "\n")


def main(argv=None) -> int:
    argv = sys.argv if argv is None else argv
    _reexec_without_coretype(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="time this many steps and scale to an epoch (default: a full epoch)")
    parser.add_argument("--markdown", default=None, help="also write the results here")
    parser.add_argument("--keep-env", action="store_true", help="keep OPENBLAS_CORETYPE")
    parser.add_argument("--other-activation", default="gelu",
                        help="also time an epoch with this hidden activation")
    args = parser.parse_args(argv[1:])

    import numpy as np
    from threadpoolctl import threadpool_limits

    import neuronatlas as na

    threadpool_limits(THREADS)
    data = na.load_mnist()
    batch = 32
    steps_epoch = len(data.train_x) // batch
    steps = args.steps or steps_epoch
    if steps < steps_epoch:
        data = na.MNIST(data.train_x[: steps * batch], data.train_y[: steps * batch],
                        data.test_x[:1000], data.test_y[:1000])
    flops = epoch_flops(na.PAPER_SIZES, batch, steps_epoch)
    peak_before = peak_gemm_flops(np)

    # --- neuronatlas ----------------------------------------------------------------------
    result = na.train(data, na.TrainConfig(epochs=1, fine_tune_epochs=0, seed=0))
    ours = result.metrics[0]["seconds"] * steps_epoch / steps
    ours_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    gemm_only = gemms_alone(na, data, steps) * steps_epoch / steps
    other = na.train(data, na.TrainConfig(epochs=1, fine_tune_epochs=0, seed=0,
                                          activation=args.other_activation))
    other_s = other.metrics[0]["seconds"] * steps_epoch / steps

    # --- PyTorch ---------------------------------------------------------------------------
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(na.PAPER_SIZES, na.PAPER_SIZES[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(na.PAPER_SIZES) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    X, Y = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
    perm = torch.randperm(len(X))
    t = time.perf_counter()
    for s in range(steps):
        idx = perm[s * batch : (s + 1) * batch]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(X[idx]), Y[idx])
        loss.backward()
        opt.step()
    theirs = (time.perf_counter() - t) * steps_epoch / steps

    peak = max(peak_before, peak_gemm_flops(np))
    bound = flops / peak
    lines = [
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)",
        blas_description(),
        f"- timed: {steps} steps of batch {batch}, scaled to an epoch of {steps_epoch} steps",
        f"- matmul work of one epoch: {flops / 1e12:.3f} TFLOP; "
        f"peak GEMM {peak / 1e9:.1f} GFLOP/s -> lower bound {bound:.2f} s",
        "",
        "| one epoch | seconds | vs PyTorch | vs bound |",
        "|---|---|---|---|",
        f"| neuronatlas (fused NumPy/BLAS) | {ours:.2f} | {ours / theirs:.2f}x | "
        f"{ours / bound:.2f}x |",
        f"| PyTorch CPU (nn.Sequential + SGD) | {theirs:.2f} | 1.00x | {theirs / bound:.2f}x |",
        f"| neuronatlas, {args.other_activation} hidden layers | {other_s:.2f} | "
        f"{other_s / theirs:.2f}x | {other_s / bound:.2f}x |",
        f"| the same batch-32 GEMMs alone | {gemm_only:.2f} | {gemm_only / theirs:.2f}x | "
        f"{gemm_only / bound:.2f}x |",
        f"| GEMM lower bound | {bound:.2f} | {bound / theirs:.2f}x | 1.00x |",
        "",
        f"- peak memory of the neuronatlas part (ru_maxrss, data included): {ours_rss:.2f} GiB",
        f"- {args.other_activation} / ReLU, same network and data: {other_s / ours:.2f}x",
    ]
    report(lines, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
