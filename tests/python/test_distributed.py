"""The Ray Data engine (fissure.distributed) on a local Ray instance (2 CPUs).

The oracle is the single-machine engine (fissure.runs.run_folder) on the same folder: the Ray
run directory holds the same files with the same content (timings aside) and a manifest with
every input exactly once; also when a worker is killed mid-run (Ray restarts it and retries
its batch) and when a partial run is finished by the Ray engine."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import cv2
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from oracles.run_dirs import run_contents, spot_folder
from fissure import distributed  # noqa: E402
from fissure.cli import main  # noqa: E402
from fissure.jobs import DetectJob  # noqa: E402
from fissure.runs import MANIFEST, Manifest, run_folder  # noqa: E402

pytestmark = pytest.mark.ray

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; its workers import fissure and this
    module (the test jobs below) as the test process does."""
    if ray.is_initialized():  # pragma: no cover - another module's instance
        ray.shutdown()
    import fissure

    # the fissure this process imported (python/ with its built core, or the installed one)
    path = os.pathsep.join([str(Path(fissure.__file__).resolve().parents[1]), str(HERE),
                            *filter(None, [os.environ.get("PYTHONPATH")])])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def shift(tmp_path_factory) -> Path:
    """8 small photos with bright spots and the toy spot detector."""
    return spot_folder(tmp_path_factory.mktemp("shift"), 8, 600, 800, 5)


def inputs(shift: Path) -> list[Path]:
    return sorted((shift / "imgs").glob("*.png"))


def detect_job(shift: Path) -> DetectJob:
    return DetectJob(str(shift / "blobs.onnx"), tile_size=256, backend="onnxruntime",
                     num_threads=1)




def _manifest_keys(out: Path) -> list[str]:
    return [json.loads(ln)["key"] for ln in (out / MANIFEST).read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(shift, tmp_path_factory) -> dict[str, object]:
    """The single-process run of the folder."""
    out = tmp_path_factory.mktemp("ref") / "out"
    report = run_folder(detect_job(shift), inputs(shift), out)
    assert report.exit_status == 0
    got = run_contents(out)
    assert len([n for n in got if n.endswith("_overlay.jpg")]) == 8
    return got


def test_ray_run_equals_the_single_process_run(local_ray, shift, reference, tmp_path) -> None:
    out = tmp_path / "out"
    report = distributed.run(detect_job(shift), inputs(shift), out, actors=2, batch_size=2)
    assert report.exit_status == 0 and report.processed == 8 and report.failed == 0
    keys = _manifest_keys(out)
    assert len(keys) == 8 == len(set(keys))
    assert run_contents(out) == reference
    recs = Manifest(out).load().records.values()
    assert all(set(r["timings"]) >= {"read_s", "process_s", "write_s"} for r in recs)


class KillOnce(DetectJob):
    """The detector, whose worker dies (SIGKILL) the first time it meets ``victim``: a marker
    file says whether it did already, so Ray's retry on a new worker succeeds."""

    def __init__(self, *args, marker: str, victim: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marker, self.victim = marker, victim

    def process(self, image, item):
        if item.path.endswith(self.victim) and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().process(image, item)


def test_a_worker_killed_mid_run_is_retried_and_nothing_is_lost_or_duplicated(
        local_ray, shift, reference, tmp_path) -> None:
    out = tmp_path / "out"
    marker = tmp_path / "killed"
    job = KillOnce(str(shift / "blobs.onnx"), tile_size=256, backend="onnxruntime",
                   num_threads=1, marker=str(marker), victim="p05.png")
    report = distributed.run(job, inputs(shift), out, actors=2)
    assert marker.exists()  # a worker died
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]  # its temporaries swept
    assert report.exit_status == 0 and report.processed == 8
    keys = _manifest_keys(out)
    assert len(keys) == 8 == len(set(keys))
    assert run_contents(out) == reference


def test_ray_finishes_a_partial_run_as_an_uninterrupted_one(local_ray, shift, reference,
                                                           tmp_path) -> None:
    out = tmp_path / "out"
    paths = inputs(shift)
    first = run_folder(detect_job(shift), paths[:3], out)
    assert first.exit_status == 0
    report = distributed.run(detect_job(shift), paths, out, resume=True, actors=2)
    assert report.already_done == 3 and report.processed == 5 and report.exit_status == 0
    keys = _manifest_keys(out)
    assert len(keys) == 8 == len(set(keys))
    assert run_contents(out) == reference
    # nothing left: no Ray work at all, the summary stays
    again = distributed.run(detect_job(shift), paths, out, resume=True, actors=2)
    assert again.processed == 0 and again.already_done == 8 and again.exit_status == 0


def test_unreadable_inputs_are_failed_records_not_task_failures(local_ray, shift,
                                                               tmp_path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "out"
    report = distributed.run(detect_job(shift), [*inputs(shift)[:2], bad], out, actors=2)
    assert report.exit_status == 1 and report.failed == 1
    by = {Path(r["path"]).name: r for r in report.records}
    assert by["broken.png"]["status"] == "failed" and "decode" in by["broken.png"]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["images"]) == 2 and summary["failed"][0]["path"] == str(bad)


def test_map_images_on_a_dataset_of_paths_and_of_pixels(local_ray, shift, reference,
                                                        tmp_path) -> None:
    paths = [str(p) for p in inputs(shift)[:3]]
    ds = ray.data.from_items([{"path": p, "index": i} for i, p in enumerate(paths)])
    rows = sorted(distributed.map_images(ds, detect_job(shift), actors=1,
                                         write_to=tmp_path / "w").take_all(),
                  key=lambda r: r["path"])
    assert [r["path"] for r in rows] == paths and {r["status"] for r in rows} == {"ok"}
    for r in rows:
        name = Path(r["path"]).stem
        assert json.loads(r["outputs"]) == [f"{name}.json", f"{name}_overlay.jpg"]
        assert (tmp_path / "w" / f"{name}_overlay.jpg").read_bytes() == \
            reference[f"{name}_overlay.jpg"]
        assert json.loads(r["row"])["detections"] == len(reference[f"{name}.json"]
                                                         ["annotations"])
    pixels = ray.data.from_items([{"image": cv2.imread(p)[..., ::-1].copy(), "stem": "x"}
                                  for p in paths[:2]])
    got = distributed.map_images(pixels, detect_job(shift), actors=1, rgb=True).take_all()
    dets = sorted(json.loads(r["row"])["detections"] for r in got)
    assert dets == sorted(len(reference[f"{Path(p).stem}.json"]["annotations"])
                          for p in paths[:2])
    assert all(r["outputs"] == "[]" for r in got)


def test_cli_engine_ray_gives_the_same_outputs(local_ray, shift, reference, tmp_path,
                                               capsys) -> None:
    out = tmp_path / "out"
    argv = ["detect", str(shift / "blobs.onnx"), str(shift / "imgs"), "--out", str(out),
            "--tile-size", "256", "--backend", "onnxruntime", "--threads", "1", "--quiet",
            "--engine", "ray", "--actors", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "8 image(s)" in capsys.readouterr().out
    assert run_contents(out) == reference
    assert len(set(_manifest_keys(out))) == 8


def test_missing_ray_gives_the_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"fissure\[ray\]"):
        distributed.require_ray()


def test_bad_arguments_are_refused_before_anything_runs(shift, tmp_path) -> None:
    with pytest.raises(ValueError, match="actors"):
        distributed.run(detect_job(shift), inputs(shift), tmp_path / "o", actors=0)
    with pytest.raises(ValueError, match="batch_size"):
        distributed.run(detect_job(shift), inputs(shift), tmp_path / "o", batch_size=0)
    assert not (tmp_path / "o").exists()


class KillAlways(DetectJob):
    """The detector, whose worker dies every time it meets ``victim``."""

    def __init__(self, *args, victim: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.victim = victim

    def process(self, image, item):
        if item.path.endswith(self.victim):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().process(image, item)


def test_an_image_that_kills_every_worker_fails_the_run_after_max_retries(
        local_ray, shift, tmp_path) -> None:
    out = tmp_path / "out"
    job = KillAlways(str(shift / "blobs.onnx"), tile_size=256, backend="onnxruntime",
                     num_threads=1, victim="p00.png")
    with pytest.raises(ray.exceptions.RayActorError):
        distributed.run(job, inputs(shift)[:3], out, actors=1, max_retries=1)
    if (out / MANIFEST).exists():  # what finished before is recorded, complete
        for r in Manifest(out).load().records.values():
            assert r["status"] == "ok" and not r["path"].endswith("p00.png")
            assert all((out / n).is_file() for n in r["outputs"])
