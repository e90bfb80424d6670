"""Folder runs on a Ray cluster (``pip install "fissure[ray]"``; docs/distributed.md).

:func:`run` is :func:`fissure.runs.run_folder` on many machines: the same job
(:mod:`fissure.jobs`), the same run directory (``run.json``, ``manifest.jsonl``, each input's
files, ``summary.json``, ``summary.csv``), the same ``resume``. The inputs go to a pool of Ray
actors as paths (a few bytes each, never pixels through the object store); each actor builds
the job's model once (one :class:`~fissure.TiledDetector`, :class:`~fissure.PatchCore` or
:class:`~fissure.Inspector` per actor, with ``num_cpus`` / ``num_gpus`` reserved for it),
reads its images itself, writes their files into the run directory (storage every node sees)
atomically, and returns each input's manifest record. The driver, one process, appends the
records to the manifest, so the manifest has one writer and each input is committed once.

A worker that dies (killed, out of memory, its node lost) is restarted by Ray and its batch
retried: the retried images write the same files again (stems are
planned by the driver, files are replaced atomically) and the driver commits each input once,
so nothing is lost or duplicated. An image the job cannot read or process is a failed record,
as in a local run. Ctrl-C stops the run after the records that have arrived (the manifest
names finished inputs only); ``resume=True`` goes on.

:func:`map_images` is for pipelines that are Ray Data already: a Dataset (or paths) in, a
Dataset of results out, written to a directory too if asked.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from .runs import (Item, Job, PathLike, Run, RunReport, _Stop, is_runtime_error, one_line, read_error,
                   _unique, make_record, write_outcome)

__all__ = ["map_images", "require_ray", "run"]


def require_ray(what: str = "fissure.distributed") -> Any:
    """The ``ray`` module with Ray Data; ImportError with the install hint when missing."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{what} needs Ray Data, which is not installed: pip install \"fissure[ray]\" "
            "(or pip install \"ray[data]\")") from e
    return ray


class _JobActor:
    """One Ray actor: the job's model, built once; each call processes a batch of inputs.

    ``mode="records"``: the batch has ``index``, ``path``, ``stem``; returns each input's
    manifest record as JSON (column ``record``) and, once per actor, the job's resolved
    settings (column ``describe``, for the driver's summary). ``mode="rows"``
    (:func:`map_images`): the batch has ``path`` and/or ``image`` (optional ``stem``,
    ``index``); returns ``path``, ``stem``, ``status``, ``error``, ``row`` (JSON), ``outputs``.
    """

    def __init__(self, job: Job, out: Optional[str], is_failure: Callable[[BaseException], bool],
                 mode: str = "records", rgb: bool = False) -> None:
        self.job, self.out, self.is_failure = job, out, is_failure
        self.mode, self.rgb = mode, rgb
        self.job.log = lambda msg: print(msg, file=sys.stderr, flush=True)
        self.job.open()
        self.described = False
        self._pool: Any = None

    def _read(self, item: Item, image: Any) -> tuple[Any, Optional[str], float]:
        """The image (read from its path unless given), or the error that failed it."""
        from . import io as fio

        t = time.perf_counter()
        error = None
        if image is None:
            try:
                image = fio.read_image(item.path)
            except (OSError, ValueError, MemoryError) as exc:
                image = None
                error = read_error(exc)
        else:
            image = np.ascontiguousarray(image[..., ::-1] if self.rgb and image.ndim == 3
                                         else image)
        return image, error, time.perf_counter() - t

    def _write(self, item: Item, outcome: Any, error: Optional[str],
               tm: dict[str, float]) -> dict[str, Any]:
        t = time.perf_counter()
        if outcome is not None and self.out is not None:
            write_outcome(self.out, outcome)
        tm["write_s"] = time.perf_counter() - t
        return make_record(item, outcome=outcome, error=error, timings=tm)

    def _batch(self, items: list[Item], images: Any) -> list[dict[str, Any]]:
        """The batch's records, in order. As in a local run, one thread reads the next image
        while the model runs on this one in the calling thread, and another writes the
        previous image's files; the call returns when every file of the batch is written."""
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = (ThreadPoolExecutor(1, thread_name_prefix="fissure-read"),
                          ThreadPoolExecutor(1, thread_name_prefix="fissure-write"))
        reader, writer = self._pool
        reads = [reader.submit(self._read, items[0], None if images is None else images[0])]
        writes = []
        for i, item in enumerate(items):
            if i + 1 < len(items):
                reads.append(reader.submit(self._read, items[i + 1],
                                           None if images is None else images[i + 1]))
            image, error, read_s = reads[i].result()
            reads[i] = None  # type: ignore[call-overload]  # the pixels go with the image
            tm = {"read_s": read_s}
            outcome = None
            if error is None:
                t = time.perf_counter()
                try:
                    outcome = self.job.process(image, item)
                except Exception as exc:
                    if not self.is_failure(exc):
                        for f in writes:
                            f.result()
                        raise
                    error = f"{type(exc).__name__}: {one_line(exc)}"
                tm["process_s"] = time.perf_counter() - t
            del image
            if error is not None:
                self.job.log(f"fissure: skipped {item.path}: {error}")
            writes.append(writer.submit(self._write, item, outcome, error, tm))
        return [f.result() for f in writes]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(next(iter(batch.values())))
        paths = batch.get("path")
        items = []
        for i in range(n):
            path = str(paths[i]) if paths is not None else ""
            stem = (str(batch["stem"][i]) if "stem" in batch
                    else Path(path).stem if path else "")
            index = int(batch["index"][i]) if "index" in batch else 0
            if self.out is not None and not stem:
                raise ValueError("map_images(write_to=...): the dataset needs a 'path' or "
                                 "'stem' column to name each image's files")
            items.append(Item(index, path, stem))
        recs = self._batch(items, batch.get("image"))
        describe = ["" if self.described or i else json.dumps(self.job.describe())
                    for i in range(n)]
        self.described = True
        if self.mode == "records":
            return {"record": np.array([json.dumps(r) for r in recs], dtype=object),
                    "describe": np.array(describe, dtype=object)}
        return {"path": np.array([r["path"] for r in recs], dtype=object),
                "stem": np.array([r["stem"] for r in recs], dtype=object),
                "status": np.array([r["status"] for r in recs], dtype=object),
                "error": np.array([r.get("error", "") for r in recs], dtype=object),
                "row": np.array([json.dumps(r["row"]) for r in recs], dtype=object),
                "outputs": np.array([json.dumps(r["outputs"] if self.out else [])
                                     for r in recs], dtype=object)}


def _connect(ray: Any, address: Optional[str], init_kwargs: Optional[dict]) -> bool:
    """Connects to Ray unless this process is connected already; True when it connected."""
    if ray.is_initialized():
        return False
    kwargs = dict(init_kwargs or {})
    kwargs.setdefault("address", address or os.environ.get("RAY_ADDRESS") or None)
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("log_to_driver", True)
    kwargs.setdefault("logging_level", logging.WARNING)  # no INFO banners around the bar
    ray.init(**kwargs)
    return True


def _pool_size(ray: Any, num_cpus: float, num_gpus: float) -> int:
    """Actors the cluster has room for: one per ``num_cpus`` CPUs (and ``num_gpus`` GPUs)."""
    res = ray.cluster_resources()
    n = int(res.get("CPU", 1) // num_cpus) if num_cpus > 0 else int(res.get("CPU", 1))
    if num_gpus > 0:
        n = min(n, int(res.get("GPU", 0) // num_gpus))
        if n < 1:
            raise ValueError(f"num_gpus={num_gpus} per actor: the Ray cluster has "
                             f"{res.get('GPU', 0):g} GPU(s)")
    return max(1, n)


def _check(actors: Optional[int], num_cpus: float, num_gpus: float, batch_size: int) -> None:
    if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int)
                               or actors < 1):
        raise ValueError(f"actors: expected an int >= 1 or None, got {actors!r}")
    if num_cpus < 0 or num_gpus < 0:
        raise ValueError(f"num_cpus, num_gpus: expected >= 0, got {num_cpus!r}, {num_gpus!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")


@contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[None]:
    """Ray Data's own progress bars and execution banners off (the run has its own bar)."""
    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.print_on_execution_start
    ctx.enable_progress_bars, ctx.print_on_execution_start = False, False
    loggers = {name: logging.getLogger(name) for name in (
        "ray.data._internal.progress", "ray.data._internal.execution.streaming_executor")}
    levels = {name: lg.level for name, lg in loggers.items()}
    for lg in loggers.values():
        lg.setLevel(logging.WARNING + 1)
    try:
        yield
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start = saved
        for name, lg in loggers.items():
            lg.setLevel(levels[name])


def _map(ray: Any, ds: Any, job: Job, out: Optional[str], *, actors: Optional[int],
         num_cpus: float, num_gpus: float, batch_size: int, max_retries: Optional[int],
         is_failure: Callable[[BaseException], bool], mode: str, rgb: bool = False) -> Any:
    if actors is None:
        compute = ray.data.ActorPoolStrategy(
            min_size=1, max_size=(_pool_size(ray, num_cpus, num_gpus)
                                  if ray.is_initialized() else None))
    else:
        compute = ray.data.ActorPoolStrategy(size=actors)
    remote: dict[str, Any] = {"num_cpus": num_cpus}
    if num_gpus:
        remote["num_gpus"] = num_gpus
    # A dead worker: Ray Data restarts the actor and retries its batch, by default without
    # limit (max_restarts=-1, max_task_retries=-1 on its actor pools); max_retries bounds the
    # retries, so that an image that kills every worker fails the run instead of looping.
    # Ray >= 2.60 accepts these only as deprecated free-form remote arguments.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        if max_retries is not None:
            remote.update(max_restarts=-1, max_task_retries=int(max_retries))
        return ds.map_batches(
            _JobActor, fn_constructor_args=(job, out, is_failure, mode, rgb), compute=compute,
            batch_size=batch_size, batch_format="numpy", zero_copy_batch=True, **remote)


def run(job: Job, paths: Union[Iterable[PathLike], Run], out: PathLike, *,
        resume: bool = False, address: Optional[str] = None, actors: Optional[int] = None,
        num_cpus: float = 1.0, num_gpus: float = 0.0, batch_size: int = 1,
        progress: bool = False, desc: Optional[str] = None,
        is_failure: Optional[Callable[[BaseException], bool]] = None,
        max_retries: Optional[int] = None,
        ray_init_kwargs: Optional[dict[str, Any]] = None) -> RunReport:
    """Runs ``job`` over ``paths`` into the run directory ``out`` on a pool of Ray actors;
    the same files, manifest and summary as :func:`fissure.runs.run_folder` (module
    docstring). ``out`` and the inputs must be on storage every Ray node sees at the same path.

    ``address``: the cluster (default ``RAY_ADDRESS``, else a local Ray started for this run
    and shut down after it); a process already connected (``ray.init`` called) keeps its
    connection. ``actors``: how many (default: as many as the cluster has room for at
    ``num_cpus`` CPUs and ``num_gpus`` GPUs each); ``batch_size`` images per actor call (at most
    a share of the inputs per actor; within a call an actor reads the next image and writes
    the previous one's files while the model runs; a dead worker's whole call is retried,
    and its records arrive together: the default 1 gives the finest progress, retries and
    Ctrl-C, and measured as fast as 4 here, benchmarks/bench_distributed.py);
    ``max_retries``: how often a batch whose worker died is retried (default: Ray Data's,
    without limit; an image that crashes its worker process every time then keeps the run
    going until Ctrl-C, so give a number where that can happen). ``is_failure(exc)``: as in
    :func:`~fissure.runs.run_folder`. ``ray_init_kwargs``: more arguments to ``ray.init``.
    Returns a :class:`~fissure.runs.RunReport`."""
    _check(actors, num_cpus, num_gpus, batch_size)
    plan = paths if isinstance(paths, Run) else Run(job, paths, out, resume=resume)
    failure = is_failure or is_runtime_error
    t0 = time.perf_counter()
    todo = {it.key: it for it in plan.todo}
    timings = {"read_s": 0.0, "process_s": 0.0, "write_s": 0.0}
    if not todo:
        plan.manifest.close()
        return plan.finish(0.0, timings={"wall_s": 0.0}, processed=0)
    ray = require_ray()
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(plan.items), initial=plan.already_done,
                   desc=desc or job.command.split()[-1], unit="img")

    def log(msg: str) -> None:
        if bar is not None:
            bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    started = _connect(ray, address, ray_init_kwargs)
    processed = 0
    interrupted = False
    rows: Any = None
    try:
        n = actors or _pool_size(ray, num_cpus, num_gpus)
        n = min(n, len(todo))
        # every actor gets work: no bigger batches than a share of what is left
        batch_size = max(1, min(batch_size, -(-len(todo) // n)))
        with _quiet_ray_data(ray):
            items = [{"index": it.index, "path": it.path, "stem": it.stem}
                     for it in todo.values()]
            ds = ray.data.from_items(items, override_num_blocks=max(1, min(
                len(items), -(-len(items) // batch_size))))
            ds = _map(ray, ds, job, str(plan.out), actors=n, num_cpus=num_cpus,
                      num_gpus=num_gpus, batch_size=batch_size, max_retries=max_retries,
                      is_failure=failure, mode="records")
            with _Stop(log) as stop:
                rows = iter(ds.iter_rows())
                for row in rows:
                    if row["describe"]:
                        _adopt_description(job, json.loads(row["describe"]))
                    rec = json.loads(row["record"])
                    if todo.pop(rec["key"], None) is None:
                        continue  # a retried batch's second answer: committed already
                    plan.commit(rec)
                    processed += 1
                    for k in timings:
                        timings[k] += rec["timings"].get(k, 0.0)
                    if bar is not None:
                        bar.update(1)
                        if rec["status"] == "ok":
                            post = job.postfix(rec["row"])
                            if post:
                                bar.set_postfix(**post)
                    if stop.requested:
                        interrupted = bool(todo)
                        break
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # stops the execution: actors still running are released
        plan.manifest.close()
        # a worker killed while writing left a temporary behind (its retry wrote the file);
        # those a live writer holds are kept (locked)
        from .io import remove_orphan_temps

        for folder in (plan.out, *job.output_dirs()):
            if os.path.isdir(folder):
                remove_orphan_temps(folder)
        if bar is not None:
            bar.close()
        if started:
            ray.shutdown()
    seconds = time.perf_counter() - t0
    timings["wall_s"] = seconds
    return plan.finish(seconds, timings={k: round(v, 4) for k, v in timings.items()},
                       processed=processed, interrupted=interrupted)


def _adopt_description(job: Job, desc: dict[str, Any]) -> None:
    """The resolved settings an actor's model reported, for the driver's summary (a job the
    driver never opened has none of its own)."""
    if desc and not job.describe() and hasattr(job, "describe_model"):
        job._describe = desc  # type: ignore[attr-defined]


def map_images(data: Any, job: Job, *, actors: Optional[int] = None, num_cpus: float = 1.0,
               num_gpus: float = 0.0, batch_size: int = 1, write_to: Optional[PathLike] = None,
               rgb: bool = False, is_failure: Optional[Callable[[BaseException], bool]] = None,
               max_retries: Optional[int] = None) -> Any:
    """``job`` over a Ray Dataset of images (lazy: a Dataset out, run when consumed).

    ``data``: a ``ray.data.Dataset`` with a ``path`` column (each actor reads its images:
    the cheap way on shared storage) or an ``image`` column of HxWx3 uint8 arrays (BGR, as
    :func:`fissure.io.read_image` gives; ``rgb=True`` for RGB ones such as
    ``ray.data.read_images``), optionally ``stem`` (the output file names' base, default the
    path's stem) and ``index`` (e.g. the COCO image id - 1); or a list of paths. Out: a
    Dataset with ``path``, ``stem``, ``status`` ("ok" or "failed"), ``error`` ("" when ok),
    ``row`` (the job's summary row as JSON text: ``json.loads(row["row"])``) and ``outputs``
    (JSON list of the files written to ``write_to``; none without it). The other arguments
    as in :func:`run`."""
    ray = require_ray("fissure.distributed.map_images")
    _check(actors, num_cpus, num_gpus, batch_size)
    if not isinstance(data, ray.data.Dataset):
        used: set = set()
        data = ray.data.from_items([{"index": i, "path": os.fspath(p),
                                     "stem": _unique(Path(os.fspath(p)).stem, used)}
                                    for i, p in enumerate(data)])
    out = None
    if write_to is not None:
        Path(write_to).mkdir(parents=True, exist_ok=True)
        out = os.fspath(write_to)
    return _map(ray, data, job, out, actors=actors, num_cpus=num_cpus, num_gpus=num_gpus,
                batch_size=batch_size, max_retries=max_retries,
                is_failure=is_failure or is_runtime_error, mode="rows", rgb=rgb)
