"""Folder runs (fissure.runs): the manifest, --resume, exactly-once under SIGKILL, a graceful
Ctrl-C, read-ahead and write-behind, the run summary.

The oracle for the kill test is an uninterrupted run over the same folder: after any number
of SIGKILLs at random moments and one --resume, the run directory holds the same files with
the same content, and its manifest lists every input exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from oracles.run_dirs import run_contents, spot_folder
from fissure.cli import main
from fissure.runs import MANIFEST, Item, Job, Manifest, Outcome, Run, RunMismatchError, run_folder

ROOT = Path(__file__).resolve().parents[2]
# the fissure this test process imported (the source tree's python/ with its built core, or the
# installed package in CI), first for the child processes too
FISSURE_PARENT = str(Path(__import__("fissure").__file__).resolve().parents[1])
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([FISSURE_PARENT, *sys.path]))


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Sum(Job):
    """A job without a model: the image's channel sums as JSON and a half-size picture."""

    command = "sum"

    def __init__(self, delay: float = 0.0, fail_on: str = "", tag: str = "a") -> None:
        self.delay, self.fail_on, self.tag = delay, fail_on, tag
        self.calls: list[str] = []

    def settings(self) -> dict:
        return {"tag": self.tag}

    def process(self, image: np.ndarray, item: Item) -> Outcome:
        self.calls.append(item.path)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on and self.fail_on in item.path:
            raise RuntimeError("model failed")
        sums = [int(v) for v in image.reshape(-1, 3).sum(0)]
        return Outcome({"path": item.path, "sum": sum(sums)},
                       {f"{item.stem}.json": {"sums": sums},
                        f"{item.stem}_half.png": image[::2, ::2].copy()})


@pytest.fixture()
def folder(tmp_path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(d / f"im{i}.png"), rng.integers(0, 255, (40 + i, 50, 3), np.uint8))
    (d / "broken.png").write_bytes(b"not a png")
    return d


def paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def expected_sum(path: Path) -> int:
    return int(cv2.imread(str(path)).astype(np.int64).sum())


def test_a_run_writes_outputs_manifest_and_summary(folder, tmp_path) -> None:
    out = tmp_path / "out"
    report = run_folder(Sum(), paths(folder), out)
    assert report.exit_status == 1 and report.processed == 9 and report.failed == 1
    lines = [json.loads(ln) for ln in (out / MANIFEST).read_text().splitlines()]
    assert len(lines) == 9
    by = {Path(r["path"]).name: r for r in lines}
    assert by["broken.png"]["status"] == "failed" and "decode" in by["broken.png"]["error"]
    for p in paths(folder):
        if p.name == "broken.png":
            continue
        r = by[p.name]
        assert r["status"] == "ok" and r["row"]["sum"] == expected_sum(p)
        assert r["size"] == p.stat().st_size and r["mtime_ns"] == p.stat().st_mtime_ns
        assert json.loads((out / f"{p.stem}.json").read_text())["sums"] == \
            [int(v) for v in cv2.imread(str(p)).reshape(-1, 3).sum(0)]
        assert np.array_equal(cv2.imread(str(out / f"{p.stem}_half.png")),
                              cv2.imread(str(p))[::2, ::2])
        assert set(r["timings"]) >= {"read_s", "process_s", "write_s"}
    summary = json.loads((out / "summary.json").read_text())
    assert [r["path"] for r in summary["images"]] == [str(p) for p in paths(folder)
                                                     if p.name != "broken.png"]
    assert summary["failed"][0]["path"].endswith("broken.png")
    assert summary["run"]["inputs"] == 9 and summary["run"]["processed"] == 9
    csv_rows = (out / "summary.csv").read_text().splitlines()
    assert csv_rows[0] == "path,sum" and len(csv_rows) == 9
    assert json.loads((out / "run.json").read_text())["settings"] == {"tag": "a"}


def test_resume_skips_done_retries_failed_and_redoes_changed(folder, tmp_path) -> None:
    out = tmp_path / "out"
    first = Sum(fail_on="im3")
    run_folder(first, paths(folder), out)
    assert len(first.calls) == 8  # broken.png never reached the job
    (folder / "broken.png").unlink()
    cv2.imwrite(str(folder / "broken.png"), np.zeros((8, 8, 3), np.uint8))  # repaired
    changed = folder / "im5.png"
    cv2.imwrite(str(changed), np.full((9, 9, 3), 7, np.uint8))
    again = Sum()
    report = run_folder(again, paths(folder), out, resume=True)
    assert sorted(Path(p).name for p in again.calls) == ["broken.png", "im3.png", "im5.png"]
    assert report.exit_status == 0 and report.already_done == 6 and report.processed == 3
    lines = (out / MANIFEST).read_text().splitlines()
    assert len(lines) == 9  # compacted: one line per input
    by = {Path(json.loads(ln)["path"]).name: json.loads(ln) for ln in lines}
    assert by["im5.png"]["row"]["sum"] == 7 * 81 * 3
    assert all(r["status"] == "ok" for r in by.values())
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["images"]) == 9 and summary["failed"] == []
    assert summary["run"]["already_done"] == 6
    # nothing left: a third resume processes nothing and keeps the summary
    third = Sum()
    report = run_folder(third, paths(folder), out, resume=True)
    assert third.calls == [] and report.already_done == 9 and report.exit_status == 0


def test_resume_refuses_other_settings_or_command(folder, tmp_path) -> None:
    out = tmp_path / "out"
    run_folder(Sum(tag="a"), paths(folder)[:2], out)
    with pytest.raises(RunMismatchError, match="tag"):
        Run(Sum(tag="b"), paths(folder), out, resume=True)

    class Other(Sum):
        command = "other"

    with pytest.raises(RunMismatchError, match="'sum' run"):
        Run(Other(), paths(folder), out, resume=True)
    # without --resume a new run starts over in the same folder
    report = run_folder(Sum(tag="b"), paths(folder)[:3], out)
    assert report.already_done == 0 and len((out / MANIFEST).read_text().splitlines()) == 3


def test_a_torn_last_line_is_dropped_and_a_damaged_line_refused(folder, tmp_path) -> None:
    out = tmp_path / "out"
    run_folder(Sum(), paths(folder)[:3], out)
    text = (out / MANIFEST).read_bytes()
    (out / MANIFEST).write_bytes(text + text.splitlines()[0][:25])  # killed mid-append
    assert len(Manifest(out).load().records) == 3
    again = Sum()
    run_folder(again, paths(folder)[:4], out, resume=True)
    assert [Path(p).name for p in again.calls] == ["im0.png"][:0] + [paths(folder)[3].name]
    assert all(json.loads(ln) for ln in (out / MANIFEST).read_text().splitlines())
    lines = (out / MANIFEST).read_text().splitlines()
    (out / MANIFEST).write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="line 2 is not a manifest record"):
        Manifest(out).load()


def test_stems_stay_with_their_inputs_when_inputs_are_added(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    cv2.imwrite(str(b / "x.png"), np.zeros((4, 4, 3), np.uint8))
    out = tmp_path / "out"
    run_folder(Sum(), [b / "x.png"], out)
    cv2.imwrite(str(a / "x.png"), np.ones((4, 4, 3), np.uint8))
    run = Run(Sum(), [a / "x.png", b / "x.png"], out, resume=True)
    assert [(Path(it.path).parent.name, it.stem) for it in run.items] == [("a", "x_2"), ("b", "x")]


def test_reading_and_writing_overlap_the_model(folder, tmp_path) -> None:
    """Reading takes 50 ms per image, the model 50 ms, writing 50 ms: in series 8 images
    take 1.2 s; overlapped about 0.45 s."""
    from fissure import io as fio

    def slow_read(p):
        time.sleep(0.05)
        return fio.read_image(p)

    import fissure.runs as runs

    real = runs.write_outcome

    def slow_write(out, outcome):
        time.sleep(0.05)
        return real(out, outcome)

    good = [p for p in paths(folder) if p.name != "broken.png"]
    try:
        runs.write_outcome = slow_write
        t = time.perf_counter()
        report = run_folder(Sum(delay=0.05), good, tmp_path / "out", read=slow_read)
        wall = time.perf_counter() - t
    finally:
        runs.write_outcome = real
    assert report.exit_status == 0
    assert wall < 0.9, f"{wall:.2f} s: reading and writing did not overlap the model"
    t = report.timings
    assert t["read_s"] >= 0.39 and t["write_s"] >= 0.39 and t["process_s"] >= 0.39


def test_a_bug_in_the_job_is_raised_with_the_written_outputs_kept(folder, tmp_path) -> None:
    class Buggy(Sum):
        def process(self, image, item):
            if "im2" in item.path:
                raise KeyError("bug")
            return super().process(image, item)

    out = tmp_path / "out"
    with pytest.raises(KeyError):
        run_folder(Buggy(), paths(folder), out)
    names = [Path(json.loads(ln)["path"]).name for ln in (out / MANIFEST).read_text().splitlines()]
    assert names == ["broken.png", "im0.png", "im1.png"]
    assert not (out / "summary.json").exists()


_RUN_SCRIPT = r"""
import sys, time
sys.argv = ["fissure", *sys.argv[1:]]
from fissure.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def shift(tmp_path_factory) -> Path:
    """A folder of 12 small photos with bright spots and the toy spot detector."""
    return spot_folder(tmp_path_factory.mktemp("shift"), 12, 1200, 1600, 6)


def detect_argv(shift: Path, out: Path) -> list[str]:
    return ["detect", str(shift / "blobs.onnx"), str(shift / "imgs"), "--out", str(out),
            "--tile-size", "256", "--backend", "onnxruntime", "--threads", "1", "--quiet"]




def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(shift,
                                                                          tmp_path) -> None:
    """Runs killed with SIGKILL at random moments (at least 24 kills over several run
    directories, each resumed until it finishes) end exactly as an uninterrupted run. The
    kill window follows the machine's load: it widens after a kill that came before another
    image was done and narrows after a run that finished first, until 10 kills have landed
    mid-run (some but not all images done; at most 80 kills)."""
    ref = tmp_path / "ref"
    t = time.perf_counter()
    assert main(detect_argv(shift, ref)) == 0
    run_s = time.perf_counter() - t  # the run itself (the model opened in this process)
    expected = run_contents(ref)
    assert len([n for n in expected if n.endswith("_overlay.jpg")]) == 12
    rnd = random.Random(15)
    kills = seq = 0
    mid_run = 0  # kills that left some but not all images done
    stretch = 1.0  # the kill window's scale: the subprocess runs slower under load
    while (kills < 24 or mid_run < 10) and kills < 80:
        seq += 1
        out = tmp_path / f"out{seq}"
        for _ in range(12):
            done = len(Manifest(out).load().records) if (out / MANIFEST).exists() else 0
            argv = detect_argv(shift, out) + (["--resume"] if out.exists() else [])
            p = subprocess.Popen([sys.executable, "-c", _RUN_SCRIPT, *argv], env=ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert p.stdout is not None
            p.stdout.readline()  # the model is open: the run starts now
            time.sleep(rnd.uniform(0, stretch * run_s * (12 - done) / 12))
            killed = p.poll() is None
            if killed:
                p.kill()
                kills += 1
            p.communicate()
            if (out / MANIFEST).exists():
                # every line of the manifest names an input whose outputs are complete
                recs = Manifest(out).load().records.values()
                for r in recs:
                    for name in r["outputs"]:
                        assert (out / name).stat().st_size > 0
                mid_run += killed and 0 < len(recs) < 12
            if killed and (not (out / MANIFEST).exists()
                           or len(Manifest(out).load().records) == done):
                stretch = min(stretch * 1.25, 20.0)  # nothing more was done: too early
            if not killed:
                stretch = max(stretch / 1.25, 0.5)
                break
        final = subprocess.run([sys.executable, "-c", _RUN_SCRIPT, *detect_argv(shift, out),
                                "--resume"], env=ENV, capture_output=True, text=True,
                               timeout=300)
        assert final.returncode == 0, final.stderr
        assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
        lines = (out / MANIFEST).read_text().splitlines()
        keys = [json.loads(ln)["key"] for ln in lines]
        assert len(keys) == 12 == len(set(keys))  # each input exactly once
        assert all(json.loads(ln)["status"] == "ok" for ln in lines)
        got = run_contents(out)
        assert sorted(got) == sorted(expected)
        for name in expected:
            assert got[name] == expected[name], (out, name)
    assert mid_run >= 10, f"only {mid_run} of {kills} kills landed mid-run"


def test_ctrl_c_stops_after_the_current_image_and_resume_finishes(shift, tmp_path) -> None:
    out = tmp_path / "out"
    argv = detect_argv(shift, out)
    p = subprocess.Popen([sys.executable, "-c", _RUN_SCRIPT, *argv], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / MANIFEST).exists():
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    err_text = err.decode(errors="replace")
    assert p.returncode == 130, err_text
    assert "Traceback" not in err_text and "--resume" in err_text
    recs = list(Manifest(out).load().records.values())
    assert 0 < len(recs) < 12, "the run should stop early"
    for r in recs:
        assert all((out / n).is_file() for n in r["outputs"])
    assert not (out / "summary.json").exists()
    assert main(argv + ["--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["images"]) == 12 and summary["run"]["already_done"] == len(recs)


def test_cli_resume_with_other_settings_exits_2(shift, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    first = detect_argv(shift, out)
    first[2] = str(shift / "imgs" / "p00.png")
    assert main(first[:5] + ["--tile-size", "320", "--quiet"]) == 0
    capsys.readouterr()
    rc = main(detect_argv(shift, out) + ["--resume"])
    err = capsys.readouterr().err
    assert rc == 2 and "other settings" in err and "tile_size" in err


def test_process_runs_on_the_calling_thread(folder, tmp_path) -> None:
    seen = []

    class Where(Sum):
        def process(self, image, item):
            seen.append(threading.current_thread() is threading.main_thread())
            return super().process(image, item)

    run_folder(Where(), paths(folder)[1:4], tmp_path / "out")
    assert seen == [True, True, True]
