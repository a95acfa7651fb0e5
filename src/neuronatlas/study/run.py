"""A study run: its tasks (:mod:`.plan`) on Dask distributed, or in this process.

Schedulers: ``local`` (default) starts an embedded ``LocalCluster`` of N worker processes
with one thread each, its scheduler and dashboard bound to 127.0.0.1; ``tcp://HOST:PORT``
joins a cluster started with ``dask scheduler`` and ``dask worker`` (the workers must see
the same study folder, the package and the datasets); ``synchronous`` runs every task in
this process, without Dask, for debugging. Tasks are submitted as one graph under their
own keys, so a comparison starts as soon as its two networks exist; every task keeps its
result in the study's folder as it ends, and ``DIR/study.json`` records, per task, its
status, the worker that ran it, its start, end and seconds (or its error). The bytes of
every result are the same whichever scheduler ran them, and however many workers.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunFolderError
from ..fileio import atomic_write_json
from ..layout import STUDY_RECORD as RECORD
from ..runs import writing
from .page import write_page
from .plan import Task, plan
from .spec import SpecError, StudySpec
from .store import create_store
from .tasks import run_task

RECORD_EVERY = 1.0  # seconds between two writes of study.json while tasks finish
CONNECT_TIMEOUT = 6  # seconds to wait for a scheduler that does not answer (the command
# then fails within 10 s of its start)
#: what happened to a task: (event, task, its record or its error)
Event = Callable[[str, Task, dict], None]


@dataclass
class StudyResult:
    """The study's tasks and what became of each (``status``: done, failed, skipped)."""

    folder: Path
    tasks: list[Task]
    records: dict[str, dict] = field(default_factory=dict)  # key -> record
    dashboard: str | None = None

    @property
    def failed(self) -> dict[str, dict]:
        return {k: r for k, r in self.records.items() if r["status"] != "done"}


def parse_scheduler(text: str) -> str:
    """``local``, ``synchronous`` or ``tcp://HOST:PORT``; anything else is a SpecError."""
    if text in ("local", "synchronous"):
        return text
    m = re.fullmatch(r"tcp://([A-Za-z0-9.\-\[\]:]+):(\d{1,5})", text or "")
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise SpecError(f"--scheduler {text!r}: use local, synchronous or tcp://HOST:PORT "
                        "(the address dask scheduler prints)")
    return text


def run_study(spec: StudySpec, out: str | Path, *, scheduler: str = "local",
              workers: int | None = None, overwrite: bool = False, data_dir=None,
              on_event: Event | None = None, on_plan: Callable[[list[Task]], None] | None = None,
              log: Callable[[str], None] = lambda m: None) -> StudyResult:
    """Run every task of ``spec`` that is not already done in ``out``; returns what
    became of each. ``out`` holds one spec's study: another's is refused unless
    ``overwrite`` (its networks are replaced one by one as the new ones are made)."""
    scheduler = parse_scheduler(scheduler)
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise SpecError(f"--workers must be at least 1, got {workers!r}")
    out = Path(out).absolute()
    with writing(out, "run a study in"), _executor(scheduler, workers, log) as execute:
        _check_folder(out, spec, overwrite)
        tasks = plan(spec, data_dir, log=log)
        last = tasks[-1]  # the store task: universality and the page, after every other
        create_store(out, last.key, last.payload)
        if on_plan:
            on_plan(tasks)
        result = StudyResult(out, tasks, dashboard=getattr(execute, "dashboard", None))
        doc = {"spec_sha256": spec.text_sha256, "spec": spec.settings,
               "scheduler": scheduler, "tasks": {t.key: {"kind": t.kind, "label": t.label,
                                                        "deps": list(t.deps),
                                                        "status": "pending"} for t in tasks}}
        atomic_write_json(out / RECORD, doc)

        written = [time.monotonic()]

        def finished(t: Task, record: dict) -> None:
            result.records[t.key] = record
            doc["tasks"][t.key].update(record)
            # at most once a second (a study of thousands of tasks rewrote it thousands of
            # times), and at the end: a record lost to a kill is made again by the rerun,
            # which finds the task done
            if time.monotonic() - written[0] >= RECORD_EVERY or len(result.records) == len(tasks):
                atomic_write_json(out / RECORD, doc)
                written[0] = time.monotonic()
            if on_event:
                on_event(record["status"], t, record)

        context = {"data_dir": None if data_dir is None else str(Path(data_dir).absolute())}
        try:
            execute(tasks, out, context, finished)
        finally:
            atomic_write_json(out / RECORD, doc)
        if result.records.get(last.key, {}).get("status") != "done":
            try:  # the page of what finished; its failure must not hide the tasks'
                write_page(out, context["data_dir"])
            except Exception as exc:  # reported; the failures are still listed
                log(f"the page of what finished could not be written: "
                    f"{type(exc).__name__}: {exc}")
        return result


@contextmanager
def _executor(scheduler: str, workers: int | None, log):
    """``execute(tasks, out, context, finished)`` on the scheduler asked for, connected (or its
    cluster started) before anything is planned or written; closed on leaving."""
    if scheduler == "synchronous":
        yield _synchronous
        return
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=50)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise SpecError(f"no Dask scheduler answers at {scheduler} within "
                            f"{CONNECT_TIMEOUT} s ({type(exc).__name__})") from None
    log(f"Dask dashboard: {client.dashboard_link}")
    many = {w.get("name", a): w["nthreads"] for a, w in
            client.scheduler_info().get("workers", {}).items() if w.get("nthreads", 1) > 1}
    if many:
        client.close()
        name, n = next(iter(many.items()))
        raise SpecError(f"{scheduler}: worker {name} runs {n} threads; start the workers with "
                        "dask worker --nthreads 1 (and --nworkers N for more processes): each "
                        "task sets one BLAS thread for its whole process")

    def execute(tasks, out, context, finished):
        _submit_and_record(client, tasks, out, context, finished)

    execute.dashboard = client.dashboard_link
    try:
        yield execute
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_folder(out: Path, spec: StudySpec, overwrite: bool) -> None:
    import json

    try:
        theirs = json.loads((out / RECORD).read_text())["spec_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if theirs != spec.text_sha256 and not overwrite:
        raise RunFolderError(f"{out} holds a study of another spec; use another --out, or "
                             "--overwrite to make this one there (its networks are replaced "
                             "only as the new ones are made)")


def _failure(exc: BaseException) -> dict:
    return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}


def _skipped(needed: str) -> dict:
    return {"status": "skipped", "error": f"needs {needed}, which did not finish"}


def _synchronous(tasks: list[Task], out: Path, context: dict, finished) -> None:
    """Every task in this process, dependencies first; a task whose dependency failed
    is skipped, the others still run."""
    status: dict[str, str] = {}
    records: dict[str, dict] = {}
    labels = {t.key: t.label for t in tasks}
    for t in tasks:
        bad = [d for d in t.deps if status.get(d) != "done"]
        if bad:
            record = _skipped(labels[bad[0]])
        else:
            try:
                record = {"status": "done", **run_task(t.kind, str(out), t.key, t.payload,
                                                       context, *(records[d] for d in t.deps))}
            except Exception as exc:  # recorded, as Dask records it; the rest still run
                record = _failure(exc)
        status[t.key] = record["status"]
        records[t.key] = record
        finished(t, record)


def _submit_and_record(client, tasks: list[Task], out: Path, context: dict, finished) -> None:
    """Submit every task under a key of its own and of this study's folder (two studies on
    one scheduler never share a task), and record each as it ends."""
    import hashlib

    from distributed import as_completed

    folder = hashlib.sha256(str(out).encode()).hexdigest()[:8]
    futures, by_dask = {}, {}
    for t in tasks:
        dask_key = f"{t.key}-{folder}"
        futures[t.key] = client.submit(run_task, t.kind, str(out), t.key, t.payload, context,
                                       *(futures[d] for d in t.deps), key=dask_key,
                                       pure=False)
        by_dask[dask_key] = t
    labels = {t.key: t.label for t in tasks}
    try:
        for fut in as_completed(list(futures.values())):
            t = by_dask[fut.key]
            if fut.status == "finished":
                finished(t, {"status": "done", **fut.result()})
            elif fut.status == "error":
                # Dask errs a task when one of its dependencies erred, at once: blame that one
                failed = next((d for d in t.deps if futures[d].status == "error"), None)
                finished(t, _skipped(labels[failed]) if failed else _failure(fut.exception()))
            else:  # cancelled or lost: the scheduler went away or restarted
                finished(t, {"status": "failed", "error": f"the task was {fut.status} by Dask "
                                                          "(scheduler restarted or gone)"})
    except BaseException:
        client.cancel(list(futures.values()))
        raise
