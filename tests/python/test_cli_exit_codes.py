"""Exit statuses and messages that every ``fissure`` command shares (docs/detect.md,
docs/anomaly_cli.md): 0 all done; 1 some inputs unreadable or failed, the rest written; 2
nothing done and nothing written (an input matching no file, bad options); 130 on Ctrl-C; a
closed output pipe is not a traceback. And what ``fissure detect`` says it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fissure.cli import main

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
from test_detect import blob_model, planted  # noqa: E402

from fissure.detection.decoders import KINDS  # noqa: E402

FAST = ["--backend", "onnxruntime", "--threads", "2", "--quiet"]


@pytest.fixture()
def inputs(tmp_path: Path) -> dict:
    """blobs.onnx, imgs/a.png (300 x 400), imgs/b.png (260 x 260) and a broken.png."""
    d = {"dir": tmp_path, "model": tmp_path / "blobs.onnx", "imgs": tmp_path / "imgs",
         "broken": tmp_path / "broken.png"}
    d["model"].write_bytes(blob_model())
    d["imgs"].mkdir()
    for seed, (name, h, w) in enumerate((("a", 300, 400), ("b", 260, 260)), start=1):
        d[name] = d["imgs"] / f"{name}.png"
        cv2.imwrite(str(d[name]), planted(h, w, 3, seed=seed)[0])
    d["broken"].write_bytes(b"\x89PNG not really")
    return d


def commands(d: dict, out: Path, *images: str) -> dict[str, list[str]]:
    """Each command's argv over `images`, writing under `out` (predict needs no real bank:
    its inputs are checked before the bank is opened)."""
    return {
        "detect": ["detect", str(d["model"]), *images, "--out", str(out), "--tile-size", "128",
                   *FAST],
        "specular": ["specular", *images, "--out", str(out), "--quiet"],
        "fit": ["anomaly", "fit", *images, "--out", str(out / "bank.safetensors"), *FAST],
        "predict": ["anomaly", "predict", str(d["dir"] / "bank.safetensors"), *images,
                    "--out", str(out), *FAST],
    }


@pytest.mark.parametrize("command", ["detect", "specular", "fit", "predict"])
@pytest.mark.parametrize("typo", ["missing.png", "imgs/*.jpeg", "emptydir"])
def test_an_input_matching_nothing_exits_2_and_writes_nothing(inputs, command, typo,
                                                             capsys) -> None:
    (inputs["dir"] / "emptydir").mkdir()
    out = inputs["dir"] / "out"
    argv = commands(inputs, out, str(inputs["a"]), str(inputs["dir"] / typo))[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fissure: error: no input images match") and typo in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()  # no summary.json, no results, no bank


@pytest.mark.parametrize("command", ["detect", "specular"])
def test_some_unreadable_exit_1_all_good_exit_0(inputs, command, capsys) -> None:
    out = inputs["dir"] / "out"
    argv = commands(inputs, out, str(inputs["a"]), str(inputs["broken"]), str(inputs["b"]))
    assert main(argv[command]) == 1
    assert "skipped" in capsys.readouterr().err
    summary = json.loads((out / ("summary.json" if command == "detect" else "specular.json"))
                         .read_text())
    assert len(summary["images"]) == 2
    assert [f["path"] for f in summary["failed"]] == [str(inputs["broken"])]
    out2 = inputs["dir"] / "out2"
    assert main(commands(inputs, out2, str(inputs["imgs"]))[command]) == 0


def test_fit_some_unreadable_exit_1_all_good_exit_0(inputs) -> None:
    out = inputs["dir"] / "out"
    fit = ["--no-tile", "--coreset-ratio", "0.5"]
    argv = commands(inputs, out, str(inputs["a"]), str(inputs["broken"]))["fit"]
    assert main(argv + fit) == 1 and (out / "bank.safetensors").is_file()
    argv = commands(inputs, out, str(inputs["a"]), str(inputs["b"]))["fit"]
    assert main(argv + fit) == 0


def test_detect_model_failure_on_one_image_exits_1(inputs, monkeypatch, capsys) -> None:
    from fissure.detection import TiledDetector

    real = TiledDetector.__call__

    def flaky(self, image):
        if image.shape[0] == 260:  # b.png
            raise RuntimeError("device lost")
        return real(self, image)

    monkeypatch.setattr(TiledDetector, "__call__", flaky)
    out = inputs["dir"] / "out"
    assert main(commands(inputs, out, str(inputs["imgs"]))["detect"]) == 1
    err = capsys.readouterr().err
    assert "b.png: RuntimeError: device lost" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert [r["path"] for r in summary["images"]] == [str(inputs["a"])]
    assert summary["failed"] == [{"path": str(inputs["b"]), "error": "RuntimeError: device lost"}]


@pytest.mark.parametrize("command", ["detect", "specular", "fit", "predict"])
def test_ctrl_c_exits_130_without_a_traceback(inputs, command, monkeypatch, capsys) -> None:
    import fissure.io
    from fissure.anomaly import PatchCore

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fissure.io, "read_image", interrupt)
    monkeypatch.setattr(PatchCore, "load", interrupt)
    out = inputs["dir"] / "out"
    assert main(commands(inputs, out, str(inputs["imgs"]))[command]) == 130
    err = capsys.readouterr().err
    assert err.strip().endswith("fissure: interrupted") and "Traceback" not in err
    assert not (out / "summary.json").exists()


def test_closed_output_pipe_is_not_a_traceback() -> None:
    """`fissure info | head -1`: the reader is gone before fissure writes."""
    p = subprocess.Popen([sys.executable, "-m", "fissure", "info"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # type: ignore[union-attr]
    with p.stderr:  # type: ignore[union-attr]
        err = p.stderr.read().decode()  # type: ignore[union-attr]
    rc = p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert rc == 141


def test_shell_pipe_into_head() -> None:
    p = subprocess.run(f"'{sys.executable}' -m fissure info | head -1", shell=True,
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("fissure ") and p.stdout.count("\n") == 1
    assert "Traceback" not in p.stderr, p.stderr


def test_decoder_choices_in_help_and_errors_in_cli_terms(inputs, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "one of " + ", ".join(KINDS) in help_text
    base = ["detect", str(inputs["model"]), str(inputs["imgs"]), "--out",
            str(inputs["dir"] / "out"), *FAST]
    cases = [
        (["--decoder", "foo"], "fissure: error: --decoder foo: expected one of auto, "
         + ", ".join(KINDS) + "\n"),
        (["--decoder-option", "foo=1"], "fissure: error: --decoder-option foo=1: the "
         "probability_map decoder takes mask_threshold, min_area, masks\n"),
        (["--decoder-option", "mask_threshold=high"], "fissure: error: --decoder-option "
         "mask_threshold=high: expected a number\n"),
        (["--decoder-option", "masks"], "fissure: error: --decoder-option masks: expected "
         "KEY=VALUE\n"),
    ]
    for extra, want in cases:
        assert main(base + extra) == 2
        assert capsys.readouterr().err == want
    assert main(base + ["--decoder", "yolo"]) == 2
    err = capsys.readouterr().err
    assert "no decoder of kind 'yolo' matches the outputs" in err
    assert "pass --decoder KIND" in err and "decoder=" not in err and "Traceback" not in err
    assert not (inputs["dir"] / "out").exists()


def test_detect_says_what_it_runs(inputs, capsys) -> None:
    out = inputs["dir"] / "out"
    rc = main(["detect", str(inputs["model"]), str(inputs["imgs"]), "--out", str(out),
               "--tile-size", "128", "--overlap-ratio", "0.25", "--classes", "blob",
               "--mean", "0.5", "0.5", "0.5", "--std", "0.25", "0.25", "0.25", "--bgr",
               "--merge", "nms", "--match-metric", "iou", "--match-threshold", "0.6",
               "--backend", "openvino", "--precision", "f32", "--threads", "2", "--quiet"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("fissure detect: blobs.onnx on openvino CPU, precision f32; decoder "
                        "probability_map; 1 class name(s) from given: blob")
    assert lines[1] == ("  input 128x128 NCHW float32 letterbox, BGR x0.00392157 mean 0.5 std "
                        "0.25; tiles 128x128 overlap 0.25; conf >= 0.25; merge nms iou >= 0.6")
    summary = json.loads((out / "summary.json").read_text())
    d = summary["detector"]
    assert d["backend"] == "openvino" and d["device"] == "CPU" and d["precision"] == "f32"
    assert d["decoder"]["kind"] == "probability_map"
    assert d["preprocess"]["input_size"] == [128, 128] and d["preprocess"]["mode"] == "letterbox"
    assert d["preprocess"]["mean"] == [0.5] * 3 and d["preprocess"]["std"] == [0.25] * 3
    assert d["preprocess"]["rgb"] is False and d["preprocess"]["dtype"] == "float32"
    assert d["tile_size"] == [128, 128] and d["overlap_ratio"] == [0.25, 0.25]
    assert d["merge"] == {"method": "nms", "match_metric": "iou", "match_threshold": 0.6,
                          "class_agnostic": False}
    assert d["class_names"] == {"0": "blob"}
    assert [r["result"] for r in summary["images"]] == ["a.json", "b.json"]
    for row in summary["images"]:
        doc = json.loads((out / row["result"]).read_text())
        assert doc["detector"] == d and len(doc["annotations"]) == row["detections"]


def test_detect_on_onnxruntime_reports_the_model_precision(inputs, capsys) -> None:
    out = inputs["dir"] / "out"
    assert main(commands(inputs, out, str(inputs["a"]))["detect"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "on onnxruntime cpu, precision as exported (float32 input)" in first
    assert "class ids (no names)" in first


def test_a_summary_named_input_does_not_overwrite_the_summary(inputs, capsys) -> None:
    img, _ = planted(128, 128, 1, seed=3)
    cv2.imwrite(str(inputs["dir"] / "summary.png"), img)
    out = inputs["dir"] / "out"
    assert main(commands(inputs, out, str(inputs["dir"] / "summary.png"))["detect"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"][0]["result"] == "summary_2.json"
    assert "image" in json.loads((out / "summary_2.json").read_text())
