"""Load test of ``neuronatlas serve``: N concurrent visualisations from localhost while
the page and the query endpoint are probed; stops by itself and prints a table.

    python benchmarks/serve_load.py --run runs/paper            # 50 requests, 100 steps
    python benchmarks/serve_load.py --run runs/paper --soak 10000   # memory stays flat?

The server runs in its own process with its default limits (ServerLimits): at most 2
optimisations at once, 10 s in the queue before a 503, 20 s per optimisation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np


def serve_only(run: Path) -> None:
    """The server process: the run's atlas (or a stub page when it has none) on port 0."""
    import neuronatlas as na
    from neuronatlas.atlas.server import serve

    atlas = run / "atlas"
    if not (atlas / "index.html").is_file():
        atlas = Path(tempfile.mkdtemp())
        (atlas / "index.html").write_text("<!doctype html><title>atlas stub</title>")
    serve(run, na.MLP.load(run / "model.safetensors"), atlas_dir=atlas, port=0,
          log=lambda m: print(m, flush=True))


def pct(xs, q) -> float:
    return float(np.percentile(xs, q))


async def visualise(client, sizes, i: int, steps: int) -> dict:
    """One streamed request; its status, time to first event, total time, how it ended."""
    layer = 1 + i % (len(sizes) - 1)
    body = {"layer": layer, "neuron": (7 * i) % sizes[layer], "config": {"steps": steps}}
    t0 = time.perf_counter()
    first, ending = None, None
    async with client.stream("POST", "api/visualize", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"status": r.status_code, "total": time.perf_counter() - t0}
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                first = first or time.perf_counter() - t0
                ending = line[7:]
            if line.startswith("data: ") and ending == "done" and '"stopped": null' not in line:
                ending = "stopped"
    return {"status": 200, "first": first, "total": time.perf_counter() - t0, "end": ending}


async def fetch(url: str, method: str, path: str, body: bytes = b"", ok=b"HTTP/1.1 200"
                ) -> float:
    """Seconds for one request on a fresh TCP_NODELAY connection, sent in one write as a
    browser does (httpx's separate header and body writes meet Nagle's algorithm and
    delayed ACKs on a reused connection: +40 ms that are the client's, not the server's)."""
    parts = urlsplit(url)
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    writer.write(head.encode() + body)
    response = await reader.read()
    writer.close()
    if ok is not None and not response.startswith(ok):
        raise RuntimeError(f"{method} {path}: {response[:200]!r}")
    if not response.startswith(b"HTTP/1.1 "):
        raise RuntimeError(f"{method} {path}: no HTTP answer: {response[:200]!r}")
    return time.perf_counter() - t0


async def probe(url: str, until: asyncio.Event, every: float = 0.2) -> dict[str, list[float]]:
    """Latency of GET / and POST /api/query, every ``every`` s until ``until`` is set."""
    image = json.dumps({"image": np.random.default_rng(0).random(784).round(3).tolist()})
    out: dict[str, list[float]] = {"page": [], "query": []}
    while not until.is_set():
        out["page"].append(await fetch(url, "GET", "/"))
        out["query"].append(await fetch(url, "POST", "/api/query", image.encode()))
        await asyncio.sleep(every)
    return out


async def load(url: str, n: int, steps: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        sizes = (await client.get("api/model")).json()["sizes"]
        idle_done = asyncio.Event()
        idle_task = asyncio.create_task(probe(url, idle_done, every=0.05))
        await asyncio.sleep(2)
        idle_done.set()
        idle = await idle_task
        busy_done = asyncio.Event()
        busy_task = asyncio.create_task(probe(url, busy_done))
        load_avg = os.getloadavg()[0]
        t0 = time.perf_counter()
        results = await asyncio.gather(*(visualise(client, sizes, i, steps) for i in range(n)))
        wall = time.perf_counter() - t0
        busy_done.set()
        busy = await busy_task
    report(results, idle, busy, wall, n, steps, sizes, load_avg)


def report(results, idle, busy, wall, n, steps, sizes, load_avg) -> None:
    ok = [r for r in results if r["status"] == 200]
    refused = [r for r in results if r["status"] == 503]
    other = [r for r in results if r["status"] not in (200, 503)]
    stopped = [r for r in ok if r["end"] != "done"]
    ms = lambda xs, q: f"{1000 * pct(xs, q):.0f} ms" if xs else "-"  # noqa: E731
    print(f"model {'-'.join(map(str, sizes))}; {n} concurrent visualise requests of {steps} "
          f"steps from localhost; {os.cpu_count()} cores; 1-minute load average at the start "
          f"{load_avg:.2f}")
    print()
    print("| measure | value |")
    print("|---|---|")
    rows = [
        ("requests completed (200, streamed to the end)", f"{len(ok) - len(stopped)} / {n}"),
        ("stopped by the time limit", str(len(stopped))),
        ("refused 503 (busy after 10 s in the queue)", str(len(refused))),
        ("other statuses", str(len(other))),
        ("wall time for all requests", f"{wall:.1f} s"),
        ("visualise total latency p50 / p95 (incl. queue)",
         f"{ms([r['total'] for r in ok], 50)} / {ms([r['total'] for r in ok], 95)}"),
        ("visualise time to first event p50 / p95",
         f"{ms([r['first'] for r in ok], 50)} / {ms([r['first'] for r in ok], 95)}"),
        ("503 answered after p50", ms([r["total"] for r in refused], 50)),
    ]
    for name, label in (("page", "GET / (atlas page)"), ("query", "POST /api/query")):
        rows.append((f"{label} idle p50 / p95", f"{ms(idle[name], 50)} / {ms(idle[name], 95)}"))
        rows.append((f"{label} under load p50 / p95 / max ({len(busy[name])} probes)",
                     f"{ms(busy[name], 50)} / {ms(busy[name], 95)} / {ms(busy[name], 100)}"))
    for name, value in rows:
        print(f"| {name} | {value} |")


def rss_mib(pid: int) -> float:
    """The server process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(url: str, n: int, pid: int) -> None:
    """``n`` requests, one after another on fresh connections, of every kind the server
    answers: the page, queries, the model, refused bodies (422, 415, 404), and short
    visualisations; the server's resident memory after each tenth."""
    rng = np.random.default_rng(0)
    kinds = {"page": ("GET", "/", b""), "model": ("GET", "/api/model", b""),
             "missing": ("GET", "/nothing.js", b""),
             "bad json": ("POST", "/api/query", b"{not json"),
             "bad image": ("POST", "/api/query", b'{"image": [2]}'),
             "visualize": ("POST", "/api/visualize",
                           json.dumps({"layer": 7, "neuron": 1,
                                       "config": {"steps": 5}}).encode())}
    counts = {k: 0 for k in [*kinds, "query"]}
    memory = [(0, rss_mib(pid))]
    t0 = time.perf_counter()
    for i in range(n):
        kind = ["query", "query", "query", *kinds][i % (3 + len(kinds))]
        if kind == "query":
            body = json.dumps({"image": rng.random(784).round(3).tolist()}).encode()
            method, path = "POST", "/api/query"
        else:
            method, path, body = kinds[kind]
        await fetch(url, method, path, body, ok=None)
        counts[kind] += 1
        if (i + 1) % (n // 10) == 0:
            memory.append((i + 1, rss_mib(pid)))
    wall = time.perf_counter() - t0
    print(f"{n} requests in {wall:.1f} s ({n / wall:.0f}/s): "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("| requests done | server RSS (MiB) |")
    print("|---|---|")
    for done, mib in memory:
        print(f"| {done} | {mib:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/paper"))
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--soak", type=int, default=0,
                    help="instead: this many requests of every kind, memory after each tenth")
    ap.add_argument("--serve-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_only:
        return serve_only(args.run)
    proc = subprocess.Popen([sys.executable, __file__, "--serve-only", "--run", str(args.run)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        if args.soak:
            asyncio.run(soak(url, args.soak, proc.pid))
        else:
            asyncio.run(load(url, args.requests, args.steps))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
