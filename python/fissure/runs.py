"""Folder runs: many images through one model, streamed, resumable, each input exactly once.

A run turns a list of input images into a *run directory* (``out``)::

    out/run.json          what ran: the command, its settings, fissure's version
    out/manifest.jsonl    one line per finished input: path, size, mtime, status, outputs,
                          timings and the input's summary row
    out/NAME.json ...     each input's own outputs (the job decides which), written atomically
    out/summary.json      the run's summary (per image rows, failures, totals)
    out/summary.csv       the same rows as a table

Each input's outputs are written first (each file atomically: temporary file, fsync, rename),
then its manifest line is appended and fsync'ed. A run killed at any moment (even SIGKILL)
therefore leaves complete files only, and a manifest whose lines each name finished inputs
(a torn last line is dropped when the manifest is read). ``resume=True`` skips the inputs the
manifest lists as done (the same path, size and mtime) and retries those that failed; an input
whose outputs were written but whose line was not is simply processed again, overwriting the
same files with the same content. So a run killed and resumed any number of times ends with
every input processed exactly once in its manifest.

One image flows through three threads: a reader decodes the next images (``prefetch`` of
them, OpenCV releases the GIL while decoding) while the model runs on the current one in the
calling thread, and a writer encodes and writes the previous image's outputs. On a 24 MP
photo each of reading and writing takes a few hundred milliseconds; overlapped, they cost the
run only the time the model thread waits for them (``summary.json``: ``timings``).

Ctrl-C (SIGINT) in the main thread stops the run after the current image: its outputs and
manifest line are written, the run returns ``interrupted=True`` (the CLI exits 130), and
``resume=True`` continues where it stopped. A second Ctrl-C stops at once.

The jobs (what is done to each image) are in :mod:`fissure.jobs`; :mod:`fissure.distributed`
runs the same jobs on a Ray cluster into the same run directory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

__all__ = [
    "MANIFEST",
    "Item",
    "Job",
    "Manifest",
    "Outcome",
    "Run",
    "RunMismatchError",
    "RunReport",
    "SUMMARY",
    "make_record",
    "run_folder",
    "write_outcome",
]

#: the manifest's file name in a run directory
MANIFEST = "manifest.jsonl"
#: the run description's file name
RUN = "run.json"
#: the run summary's file stem (``summary.json``, ``summary.csv``): no image's result may take it
SUMMARY = "summary"
#: the manifest format; a newer one is refused by ``resume`` rather than misread
MANIFEST_VERSION = 1

PathLike = Union[str, os.PathLike]


class RunMismatchError(ValueError):
    """``resume=True`` on a run directory written by another command or other settings: the
    outputs would mix two runs, so nothing is done."""


@dataclass
class Outcome:
    """What a job made of one image: its summary ``row`` (JSON-able) and its output ``files``,
    a mapping of file name (relative to the run directory, or an absolute path) to content:
    ``bytes`` are written as they are, an ``np.ndarray`` is an image encoded by the name's
    suffix (PNG lossless, JPEG quality 90), anything else is written as JSON."""

    row: dict[str, Any]
    files: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    """One input of a run: its place among all inputs (``index``, from 0), its path, and the
    output stem (file-name base) the run gave it."""

    index: int
    path: str
    stem: str

    @property
    def key(self) -> str:
        return _key(self.path)


class Job:
    """What a folder run does to each image. Subclasses (:mod:`fissure.jobs`) set
    ``command`` and implement :meth:`process`; a job is a picklable recipe until
    :meth:`open` builds its model (once per process, or once per Ray actor)."""

    command = "job"
    #: output stems the job's own summary files use (no input may take them)
    reserved_stems: tuple[str, ...] = ()
    #: summary.csv's columns (default: the keys of the first row)
    csv_fields: Optional[tuple[str, ...]] = None
    #: called with a warning line for the person running the job (the CLI prints it above
    #: the progress bar); set by the runner
    log: Callable[[str], None] = staticmethod(lambda msg: print(msg, file=sys.stderr))

    def output_dirs(self) -> tuple[str, ...]:
        """Folders besides the run directory that the job writes files into (resume sweeps
        the temporaries a killed run left there too)."""
        return ()

    def settings(self) -> dict[str, Any]:
        """What identifies this job's outputs (JSON-able): ``resume`` refuses a run directory
        written with other settings."""
        return {}

    def open(self) -> None:
        """Builds the model; called before the first image (idempotent)."""

    def close(self) -> None:
        """Releases the model."""

    def describe(self) -> dict[str, Any]:
        """The job's resolved settings, recorded in ``summary.json``."""
        return {}

    def process(self, image: np.ndarray, item: Item) -> Outcome:
        raise NotImplementedError

    def postfix(self, row: dict[str, Any]) -> dict[str, Any]:
        """What the progress bar shows after an image."""
        return {}

    def summarize(self, rows: list[dict[str, Any]], failed: list[dict[str, str]],
                  seconds: float) -> tuple[dict[str, Any], str]:
        """``summary.json``'s document and the line a person reads at the end."""
        return ({"images": rows, "failed": failed, "seconds": seconds},
                f"fissure {self.command}: {len(rows)} image(s) in {seconds:.1f} s")

    def summary_files(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Extra files written with the summary (name -> content as in :class:`Outcome`)."""
        return {}

    def __enter__(self) -> "Job":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _key(path: PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


def _unique(stem: str, used: set) -> str:
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return name


def jsonable(obj: Any) -> Any:
    """``obj`` with tuples, numpy scalars and arrays, paths made JSON-able (others: repr)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


class Manifest:
    """A run directory's ``manifest.jsonl``: read (a torn last line, from a run killed while
    writing it, is dropped), compacted to the last line per input, appended with fsync."""

    def __init__(self, out: PathLike) -> None:
        self.path = Path(out) / MANIFEST
        self.records: dict[str, dict[str, Any]] = {}
        self._fd: Optional[int] = None
        self._lock = threading.Lock()
        #: lines in the file that a later line of the same input replaces
        self.superseded = 0

    def load(self) -> "Manifest":
        self.records = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return self
        for n, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = rec["key"]
            except (ValueError, KeyError, TypeError):
                if not data.endswith(b"\n") and n == data.count(b"\n") + 1:
                    break  # the torn last line of a killed run
                raise ValueError(f"{self.path}: line {n} is not a manifest record; the run "
                                 "directory is damaged (remove the line or start a new run)")
            if rec.get("manifest", MANIFEST_VERSION) > MANIFEST_VERSION:
                raise ValueError(f"{self.path}: written by a newer fissure (manifest format "
                                 f"{rec['manifest']}); resume it with that version")
            self.superseded += key in self.records
            self.records[key] = rec
        return self

    def rewrite(self) -> None:
        """Writes the loaded records back, one line per input (atomically)."""
        from .io import _atomic_write_bytes

        self.close()
        payload = b"".join(_line(r) for r in self.records.values())
        _atomic_write_bytes(self.path, payload)
        self.superseded = 0

    def append(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            os.write(self._fd, _line(record))
            os.fsync(self._fd)
            self.superseded += record["key"] in self.records
            self.records[record["key"]] = record

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


def write_outcome(out: PathLike, outcome: Outcome) -> list[str]:
    """Writes an outcome's files (each atomically); returns their names as given."""
    from .io import _atomic_write_bytes, write_image_atomic, write_json_atomic

    base = Path(out)
    for name, content in outcome.files.items():
        p = Path(name)
        p = p if p.is_absolute() else base / p
        if isinstance(content, (bytes, bytearray, memoryview)):
            _atomic_write_bytes(p, bytes(content))
        elif isinstance(content, np.ndarray):
            write_image_atomic(p, content)
        else:
            write_json_atomic(p, content)
    return list(outcome.files)


def make_record(item: Item, *, outcome: Optional[Outcome] = None, error: Optional[str] = None,
                timings: Optional[dict[str, float]] = None) -> dict[str, Any]:
    """A finished input's manifest record (:meth:`Run.record`); a module function so that an
    engine's workers (:mod:`fissure.distributed`) make the records the driver commits."""
    size, mtime = _stat(item.path)
    rec: dict[str, Any] = {
        "key": item.key, "path": item.path, "index": item.index, "stem": item.stem,
        "size": size, "mtime_ns": mtime,
        "status": "ok" if outcome is not None else "failed",
        "outputs": list(outcome.files) if outcome is not None else [],
        "row": jsonable(outcome.row) if outcome is not None else None,
        "timings": {k: round(v, 6) for k, v in (timings or {}).items()},
    }
    if error is not None:
        rec["error"] = error
    return rec


@dataclass
class RunReport:
    """What a run did: ``records`` of every input in input order (None where not done, e.g.
    after an interrupt), how many were processed now, skipped as done before, failed now; the
    exit status a command returns (0 all done, 1 some failed, 130 interrupted)."""

    records: list[Optional[dict[str, Any]]]
    processed: int = 0
    already_done: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    summary: Optional[dict[str, Any]] = None
    line: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return 130
        return 1 if any(r is not None and r["status"] != "ok" for r in self.records) else 0


class Run:
    """The plan of a folder run over ``paths`` into ``out``: each input's stem, which are left
    to do (all, or with ``resume`` those not done), and the manifest. Engines
    (:func:`run_folder`, :func:`fissure.distributed.run`) process :attr:`todo` and
    :meth:`commit` each record; :meth:`finish` writes the summary."""

    def __init__(self, job: Job, paths: Iterable[PathLike], out: PathLike, *,
                 resume: bool = False) -> None:
        self.job, self.out, self.resume = job, Path(out), bool(resume)
        self.paths = [os.fspath(p) for p in paths]
        self.manifest = Manifest(self.out)
        self.settings = jsonable(job.settings())
        if self.resume:
            from .io import remove_orphan_temps

            self._check_run()
            self.manifest.load()
            for folder in (self.out, *job.output_dirs()):  # a killed run's half-written temporaries
                if os.path.isdir(folder):
                    remove_orphan_temps(folder)
        used = {SUMMARY, *job.reserved_stems}
        done = self.manifest.records
        stems: dict[str, str] = {}
        for p in self.paths:  # stems an earlier run gave stay theirs
            rec = done.get(_key(p))
            if rec is not None and rec.get("stem") and rec["stem"] not in used:
                stems[_key(p)] = rec["stem"]
                used.add(rec["stem"])
        self.items: list[Item] = []
        for i, p in enumerate(self.paths):
            stem = stems.get(_key(p)) or _unique(Path(p).stem, used)
            stems[_key(p)] = stem
            self.items.append(Item(i, p, stem))
        self.todo: list[Item] = []
        self.already_done = 0
        for it in self.items:
            rec = done.get(it.key)
            if (rec is not None and rec.get("status") == "ok"
                    and (rec.get("size"), rec.get("mtime_ns")) == _stat(it.path)):
                self.already_done += 1
            else:
                self.todo.append(it)
        self._started = False
        if self.resume and self.manifest.records:
            self._started = True  # appended to, never replaced

    def _check_run(self) -> None:
        path = self.out / RUN
        try:
            prev = json.loads(path.read_text())
        except FileNotFoundError:
            if (self.out / MANIFEST).exists():
                raise RunMismatchError(f"{self.out}: a manifest without {RUN}; not a fissure "
                                       "run directory") from None
            return  # nothing to resume: a new run
        except ValueError:
            raise RunMismatchError(f"{path}: not readable as JSON; not a fissure run "
                                   "directory") from None
        if prev.get("command") != self.job.command:
            raise RunMismatchError(
                f"--resume: {self.out} holds a '{prev.get('command')}' run, not "
                f"'{self.job.command}'; use another --out or drop --resume")
        old = prev.get("settings", {})
        diff = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
        if diff:
            shown = "; ".join(f"{k}: {old.get(k)!r} then, {self.settings.get(k)!r} now"
                              for k in diff[:4])
            raise RunMismatchError(
                f"--resume: {self.out} was written with other settings ({shown}); resuming "
                "would mix two runs' outputs: use the same settings, another --out, or drop "
                "--resume to start over")

    def _start(self) -> None:
        """The run directory's first write: ``run.json`` (and a fresh manifest unless
        resuming); nothing is written for a run that does nothing."""
        if self._started:
            return
        from . import __version__
        from .io import write_json_atomic

        self._started = True
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.resume:
            try:
                os.unlink(self.manifest.path)
            except FileNotFoundError:
                pass
        write_json_atomic(self.out / RUN, {
            "command": self.job.command, "settings": self.settings,
            "fissure": __version__, "manifest": MANIFEST_VERSION,
            "inputs": len(self.paths)})

    def record(self, item: Item, *, outcome: Optional[Outcome] = None,
               error: Optional[str] = None, timings: Optional[dict[str, float]] = None
               ) -> dict[str, Any]:
        return make_record(item, outcome=outcome, error=error, timings=timings)

    def commit(self, record: dict[str, Any]) -> None:
        """Appends a finished input's line (its outputs must be written already)."""
        self._start()
        self.manifest.append(record)

    def records(self) -> list[Optional[dict[str, Any]]]:
        return [self.manifest.records.get(it.key) for it in self.items]

    def finish(self, seconds: float, *, timings: Optional[dict[str, float]] = None,
               processed: int = 0, interrupted: bool = False) -> RunReport:
        """Writes ``summary.json`` and ``summary.csv`` from the manifest (all inputs, also
        those done by earlier runs) unless interrupted or nothing was done; the report."""
        from .io import _atomic_write_bytes, write_json_atomic

        self.manifest.close()
        if self.manifest.superseded and not interrupted:
            # one line per input (the last: a retried failure's success, a changed file's
            # new result); inputs not given this time keep theirs
            self.manifest.rewrite()
        records = self.records()
        report = RunReport(records, processed=processed, already_done=self.already_done,
                           failed=sum(r is not None and r["status"] != "ok" for r in records),
                           seconds=seconds, interrupted=interrupted,
                           timings=dict(timings or {}))
        if interrupted or not any(r is not None for r in records):
            return report
        rows = [r["row"] for r in records if r is not None and r["status"] == "ok"]
        failed = [{"path": r["path"], "error": r.get("error", "failed")}
                  for r in records if r is not None and r["status"] != "ok"]
        doc, line = self.job.summarize(rows, failed, seconds)
        doc = dict(doc)
        doc["run"] = {"inputs": len(self.items), "processed": processed,
                      "already_done": self.already_done, "failed": len(failed),
                      "manifest": MANIFEST, "timings": jsonable(report.timings)}
        self._start()
        write_json_atomic(self.out / f"{SUMMARY}.json", doc)
        _atomic_write_bytes(self.out / f"{SUMMARY}.csv", csv_bytes(rows, self.job.csv_fields))
        extra = self.job.summary_files(rows)
        if extra:
            write_outcome(self.out, Outcome({}, extra))
        if self.already_done:
            line += f" ({self.already_done} done before, resumed)"
        report.summary, report.line = doc, line
        return report


def csv_bytes(rows: Sequence[dict[str, Any]], fields: Optional[Sequence[str]] = None) -> bytes:
    """Rows as CSV (header first); nested values as JSON."""
    if fields is None:
        fields = list(rows[0]) if rows else []
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                    for k, v in r.items()})
    return buf.getvalue().encode()


_DONE = object()


class _Stop:
    """SIGINT in the main thread: the first asks the run to stop after the current image,
    a second raises KeyboardInterrupt at once."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.requested = False
        self.log = log
        self.previous: Any = None
        self.installed = False

    def __enter__(self) -> "_Stop":
        if threading.current_thread() is threading.main_thread():
            try:
                self.previous = signal.signal(signal.SIGINT, self._handler)
                self.installed = True
            except (ValueError, OSError):
                pass
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.log("fissure: stopping after the current image (Ctrl-C again to stop now)")

    def __exit__(self, *exc: Any) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)


def run_folder(job: Job, paths: Iterable[PathLike], out: PathLike, *, resume: bool = False,
               prefetch: int = 2, progress: bool = False, desc: Optional[str] = None,
               read: Optional[Callable[[str], np.ndarray]] = None,
               is_failure: Optional[Callable[[BaseException], bool]] = None) -> RunReport:
    """Runs ``job`` over ``paths`` into the run directory ``out`` on this machine (see the
    module's docstring): reading ``prefetch`` images ahead on one thread, writing outputs on
    another, appending each finished input to the manifest; with ``resume`` only what is
    not done. ``read`` reads one path (default :func:`fissure.io.read_image`);
    ``is_failure(exc)`` says whether an exception of ``job.process`` fails the input (True:
    recorded and the run goes on) or is a bug (False: raised); default: RuntimeError,
    MemoryError, ValueError and the backends' own errors. Returns a :class:`RunReport`
    (``summary.json`` and ``summary.csv`` written unless interrupted or nothing was done)."""
    from . import io as fio

    if prefetch < 1:
        raise ValueError(f"prefetch: expected an int >= 1, got {prefetch!r}")
    run = paths if isinstance(paths, Run) else Run(job, paths, out, resume=resume)
    failure = is_failure or is_runtime_error
    reader = read or (lambda p: fio.read_image(p))
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(run.items), initial=run.already_done,
                   desc=desc or job.command, unit="img")

    def log(msg: str) -> None:
        if bar is not None:
            bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    job.log = log
    t0 = time.perf_counter()
    timings = {"read_wait_s": 0.0, "process_s": 0.0, "write_wait_s": 0.0,
               "read_s": 0.0, "write_s": 0.0}
    processed = 0
    interrupted = False
    stop_reading = threading.Event()
    inq: "queue.Queue[Any]" = queue.Queue(maxsize=prefetch)
    outq: "queue.Queue[Any]" = queue.Queue(maxsize=2)
    write_error: list[BaseException] = []

    def read_ahead() -> None:
        try:
            for it in run.todo:
                if stop_reading.is_set():
                    break
                t = time.perf_counter()
                try:
                    img: Any = reader(it.path)
                except (OSError, ValueError, MemoryError) as exc:
                    img = exc
                while not stop_reading.is_set():
                    try:
                        inq.put((it, img, time.perf_counter() - t), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # KeyboardInterrupt from a test's reader, a bug
            last: Any = (None, exc, 0.0)
        else:
            last = _DONE
        while not stop_reading.is_set():  # the main thread may be gone: never block for good
            try:
                inq.put(last, timeout=0.1)
                return
            except queue.Full:
                continue

    def write_behind() -> None:
        while True:
            job_ = outq.get()
            if job_ is _DONE:
                return
            it, outcome, tm = job_
            if write_error:
                continue  # drain: nothing more is written after a failed write
            try:
                t = time.perf_counter()
                if outcome is not None:
                    write_outcome(run.out, outcome)
                tm["write_s"] = time.perf_counter() - t
                timings["write_s"] += tm["write_s"]
                rec = run.record(it, outcome=outcome, error=tm.pop("error", None), timings=tm)
                run.commit(rec)
            except BaseException as exc:
                write_error.append(exc)

    rthread = threading.Thread(target=read_ahead, name="fissure-read", daemon=True)
    wthread = threading.Thread(target=write_behind, name="fissure-write", daemon=True)
    rthread.start()
    wthread.start()
    try:
        with job, _Stop(log) as stop:
            while True:
                if stop.requested:
                    interrupted = True
                    break
                t = time.perf_counter()
                got = inq.get()
                timings["read_wait_s"] += time.perf_counter() - t
                if got is _DONE:
                    break
                it, img, read_s = got
                if it is None:
                    raise img
                timings["read_s"] += read_s
                tm: dict[str, Any] = {"read_s": read_s}
                outcome = None
                if isinstance(img, BaseException):
                    msg = read_error(img)
                    log(f"fissure: skipped {it.path}: {msg}")
                    tm["error"] = msg
                else:
                    t = time.perf_counter()
                    try:
                        outcome = job.process(img, it)
                    except Exception as exc:
                        if not failure(exc):
                            raise
                        msg = f"{type(exc).__name__}: {one_line(exc)}"
                        log(f"fissure: skipped {it.path}: {msg}")
                        tm["error"] = msg
                    tm["process_s"] = time.perf_counter() - t
                    timings["process_s"] += tm["process_s"]
                    del img
                t = time.perf_counter()
                outq.put((it, outcome, tm))
                timings["write_wait_s"] += time.perf_counter() - t
                if write_error:
                    break
                processed += 1
                if bar is not None:
                    bar.update(1)
                    if outcome is not None:
                        post = job.postfix(outcome.row)
                        if post:
                            bar.set_postfix(**post)
    finally:
        stop_reading.set()
        while True:  # unblock the reader
            try:
                inq.get_nowait()
            except queue.Empty:
                break
        t = time.perf_counter()
        outq.put(_DONE)
        wthread.join()
        timings["write_wait_s"] += time.perf_counter() - t
        rthread.join(timeout=5)
        run.manifest.close()
        if bar is not None:
            bar.close()
    if write_error:
        raise write_error[0]
    seconds = time.perf_counter() - t0
    timings["wall_s"] = seconds
    return run.finish(seconds, timings={k: round(v, 4) for k, v in timings.items()},
                      processed=processed, interrupted=interrupted)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def read_error(exc: BaseException) -> str:
    """The error recorded for an input that could not be read (OSError, ValueError,
    MemoryError): the message on one line, MemoryError named."""
    return f"MemoryError: {one_line(exc)}" if isinstance(exc, MemoryError) else one_line(exc)


def is_runtime_error(exc: BaseException) -> bool:
    """Errors that the model run itself raises: RuntimeError/MemoryError and the backends' own
    exception types (ONNX Runtime's derive from Exception directly). A folder run records them
    as the input's failure; anything else is a bug and keeps its traceback."""
    if isinstance(exc, (RuntimeError, MemoryError, ValueError)):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("onnxruntime", "openvino"))
