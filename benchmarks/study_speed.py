"""Study speed: ``na.compare`` of two networks of the paper's size on 10,000 test images
(seconds, peak memory), and a four-network study run serially in one process, on one
Dask worker and on two (wall seconds; the scheduling overhead is the wall time beyond the
tasks' own seconds). Run alone on a quiet machine:

    python benchmarks/study_speed.py [--skip-study]
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPEC = """sizes = "784,512,256,10"
seed = [0, 1, 2, 3]
epochs = 4
fine-tune-epochs = 0
"""  # four networks: about a minute and a half of tasks, serially


def compare_paper_size() -> dict:
    import neuronatlas as na
    from neuronatlas.nn.blas import blas_threads

    data = na.load_mnist()
    a, b = (na.MLP.init(na.PAPER_SIZES, rng=np.random.default_rng(s)) for s in (0, 1))
    out = {}
    for threads in (1, 2):
        with blas_threads(threads):
            t = time.perf_counter()
            na.compare(a, b, data.test_x)
            out[f"compare_seconds_{threads}_threads"] = round(time.perf_counter() - t, 2)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def study_walls() -> dict:
    folder = Path(tempfile.mkdtemp())
    (folder / "spec.toml").write_text(SPEC)
    out = {}
    for name, args in (("synchronous", ["--scheduler", "synchronous"]),
                       ("local_1_worker", ["--workers", "1"]),
                       ("local_2_workers", ["--workers", "2"])):
        target = folder / name
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "neuronatlas", "study", folder / "spec.toml",
                        "--out", target, *args], check=True, capture_output=True)
        wall = time.perf_counter() - t
        tasks = json.loads((target / "study.json").read_text())["tasks"].values()
        out[name] = {"wall_seconds": round(wall, 2),
                     "task_seconds": round(sum(t["seconds"] for t in tasks), 2)}
    serial, one, two = (out[k]["wall_seconds"] for k in ("synchronous", "local_1_worker",
                                                         "local_2_workers"))
    out["overhead_1_worker_vs_serial"] = round(one / serial - 1, 3)
    out["speedup_2_workers_vs_1"] = round(one / two, 2)
    shutil.rmtree(folder)
    return out


def _nothing(i, *deps):
    return i


def dask_overhead() -> dict:
    """Milliseconds per task Dask adds: 500 independent empty tasks, and a chain of 200
    (each waits for the one before, as a comparison waits for its trainings), on a
    LocalCluster of one single-threaded worker."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(_nothing, -1).result()
        t = time.perf_counter()
        client.gather([client.submit(_nothing, i, key=f"k{i}") for i in range(500)])
        independent = (time.perf_counter() - t) / 500
        t = time.perf_counter()
        prev = client.submit(_nothing, 0, key="c0")
        for i in range(1, 200):
            prev = client.submit(_nothing, i, prev, key=f"c{i}")
        prev.result()
        chain = (time.perf_counter() - t) / 200
    return {"ms_per_independent_task": round(1000 * independent, 2),
            "ms_per_chained_task": round(1000 * chain, 2)}


def blas_kernel() -> list[str]:
    """The BLAS libraries this process runs, with their kernel (OPENBLAS_CORETYPE as set)."""
    from threadpoolctl import threadpool_info

    return [f"{i['internal_api']} {i.get('version')} {i.get('architecture')}"
            for i in threadpool_info() if i["user_api"] == "blas"]


if __name__ == "__main__":
    import neuronatlas  # noqa: F401  (loads NumPy's BLAS before it is reported)

    result = {"blas": blas_kernel(), "dask": dask_overhead(), **compare_paper_size()}
    if "--skip-study" not in sys.argv:
        result["study"] = study_walls()
    print(json.dumps(result, indent=1))
