"""The readability benchmark (docs/vis_quality.md): every visualisation method, measured per layer.

    python benchmarks/vis_quality.py                      # the paper's run, all neurons
    python benchmarks/vis_quality.py --per-layer 64 --methods paper,readable
    python benchmarks/vis_quality.py --json out.json --markdown docs/vis_quality.md

Run it alone (2-core machines: another process holding a core slows BLAS badly).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

import neuronatlas as na
from neuronatlas.judges import load_judges
from neuronatlas.readability import benchmark, candidate_methods, markdown


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/paper/model.safetensors")
    ap.add_argument("--dataset", default=None, help="default: the model's own")
    ap.add_argument("--methods", default=None,
                    help="comma-separated names (default: every candidate)")
    ap.add_argument("--per-layer", type=int, default=None,
                    help="neurons drawn per hidden layer (default: all)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    a = ap.parse_args(argv)
    model = na.MLP.load(a.model)
    from neuronatlas.runs import run_dataset

    data = run_dataset(model, a.dataset)
    methods = candidate_methods()
    if a.methods:
        unknown = [m for m in a.methods.split(",") if m not in methods]
        if unknown:
            print(f"unknown method(s) {unknown}; known: {', '.join(methods)}", file=sys.stderr)
            return 2
        methods = {m: methods[m] for m in a.methods.split(",")}
    t0 = time.perf_counter()
    judges = load_judges(data, log=print)
    out = benchmark(model, data, methods, judges, per_layer=a.per_layer, seeds=a.seeds,
                    pairs=a.pairs, accentuate=na.VisConfig.preset("accentuate"),
                    log=lambda m: print(m, flush=True))
    out["machine"] = {"python": platform.python_version(), "numpy": np.__version__,
                      "processor": platform.processor() or platform.machine(),
                      "total_seconds": time.perf_counter() - t0}
    text = markdown(out)
    print(text)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    if a.markdown:
        a.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
