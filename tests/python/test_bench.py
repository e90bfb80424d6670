"""``fissure bench`` (fissure.bench): the report's schema, compare rows, NVML peak VRAM with a
fake pynvml, the f16 path's refusal on CPU and its cache, detection agreement, batch sizing
from VRAM growth, gpu-check's verdict and the command's bad-input exits."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from fissure import bench  # noqa: E402
from fissure.bench import (  # noqa: E402
    Config,
    VramSampler,
    batch_from_vram_growth,
    compare_detections,
    gpu_check_verdict,
    run_bench,
    validate_report,
)
from fissure.cli import main  # noqa: E402
from fissure.detection.toy import bright_spot_model, bright_spots  # noqa: E402

MB = 1 << 20


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("bench")
    model = d / "toy.onnx"
    model.write_bytes(bright_spot_model())
    img, _ = bright_spots(700, 1100, 20, seed=3)
    path = d / "spots.png"
    cv2.imwrite(str(path), img)
    return model, path


# ------------------------------------------------------------------------ the report


def test_cli_json_schema_and_compare_rows(toy, tmp_path, capsys):
    model, image = toy
    out = tmp_path / "r.json"
    rc = main(["bench", str(model), str(image), "--device", "cpu", "--backends", "onnxruntime",
               "--compare", "--rounds", "1", "--threads", "1", "--json", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    report = json.loads(out.read_text())
    assert validate_report(report) == []
    assert report["schema_version"] == bench.BENCH_SCHEMA_VERSION
    names = [r["name"] for r in report["rows"]]
    assert names == ["onnxruntime/cpu/f32", "sahi-style (onnxruntime/cpu/f32)",
                     "supervision-style (onnxruntime/cpu/f32)"]
    for row in report["rows"]:
        assert row["available"] and row["images_per_s"] > 0, row
        assert set(row["stages_s"]) == {"read", "preprocess", "model", "decode", "merge"}
        assert row["tile_latency_ms"]["p95"] >= row["tile_latency_ms"]["p50"] > 0
        assert row["tiles_per_image"] == 4 and row["batch_size"] >= 1
        assert row["peak_rss_mb"] > 0 and row["peak_vram_mb"] is None
        assert row["detections"] == 20  # every spot, once, whichever loop ran it
        assert row["implementation"]
    ref, sahi_row, sv_row = report["rows"]
    assert ref["agreement"] is None and ref["ratio"] is None
    assert sahi_row["agreement"]["ok"] and sahi_row["agreement"]["recall"] == 1.0
    ratios = report["compare"]["ratios"]
    assert report["compare"]["against"] == "onnxruntime/cpu/f32"
    assert ratios["sahi-style"] == pytest.approx(sahi_row["image_s_median"] / ref["image_s_median"])
    assert ratios["supervision-style"] == sv_row["ratio"] > 0
    assert report["compare"]["ratios_paired"]["sahi-style"] == pytest.approx(
        sahi_row["round_s"][0] / ref["round_s"][0])  # one round: the one pair
    assert "| onnxruntime/cpu/f32 |" in printed and "sahi-style" in printed
    assert "report written to" in printed


def test_generated_image_and_cuda_unavailable(toy):
    model, _ = toy
    report = run_bench(model, device="cuda", image_size=(700, 900), rounds=1, threads=1)
    assert validate_report(report) == []
    assert report["images"] == [{"path": None, "height": 700, "width": 900, "generated": True}]
    by = {r["name"]: r for r in report["rows"]}
    assert by["onnxruntime/cpu/f32"]["images_per_s"] > 0  # the reference runs
    cuda = [r for r in report["rows"] if r["device"] == "cuda"]
    assert [r["precision"] for r in cuda] == ["f32", "f16"]
    for r in cuda:  # this machine has no CUDA: marked, with the reason
        if r["images_per_s"] is None:
            assert not r["available"] and r["reason"]
    if not report["summary"]["cuda_available"]:
        status, lines = gpu_check_verdict(report)
        assert status == 3 and lines[0].startswith("CUDA unavailable")


def test_validate_report_names_what_is_wrong(toy):
    row = bench._empty_row(Config("onnxruntime", "cpu", "f32"), None)
    row["batch_size"] = "4"
    del row["ratio"]
    report = {"schema_version": 1, "fissure_version": "x", "created": "t", "machine": {},
              "model": {"path": "m", "sha256": "s"}, "images": [], "settings": {},
              "rows": [row], "compare": None,
              "summary": {"fastest": None, "cuda_available": False, "all_fit_budget": True}}
    errs = validate_report(report)
    assert any("missing keys ['ratio']" in e for e in errs)
    assert any("rows[0].batch_size" in e for e in errs)
    assert any("available but without a measurement" in e for e in errs)


# ------------------------------------------------------------------------ NVML with a fake


class FakeNvml(types.ModuleType):
    """pynvml's calls the sampler uses, replaying scripted readings."""

    def __init__(self, process_mb, device_mb, pid):
        super().__init__("pynvml")
        self.process_mb, self.device_mb, self.pid = list(process_mb), list(device_mb), pid
        self.inited = self.shut = 0

    def nvmlInit(self):
        self.inited += 1

    def nvmlShutdown(self):
        self.shut += 1

    def _check(self):  # NVML's calls fail between nvmlShutdown and the next nvmlInit
        if self.inited <= self.shut:
            raise RuntimeError("NVMLError_Uninitialized: Uninitialized")

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("gpu", i)

    def nvmlDeviceGetName(self, h):
        self._check()
        return b"Fake GTX 1650"

    def nvmlDeviceGetMemoryInfo(self, h):
        self._check()
        used = self.device_mb.pop(0) if len(self.device_mb) > 1 else self.device_mb[0]
        return types.SimpleNamespace(used=used * MB, total=4096 * MB, free=0)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        if not self.process_mb:
            return [types.SimpleNamespace(pid=self.pid + 1, usedGpuMemory=999 * MB)]
        mb = self.process_mb.pop(0) if len(self.process_mb) > 1 else self.process_mb[0]
        return [types.SimpleNamespace(pid=self.pid + 1, usedGpuMemory=999 * MB),
                types.SimpleNamespace(pid=self.pid, usedGpuMemory=mb * MB)]


def test_vram_peak_from_the_process_entry(monkeypatch):
    fake = FakeNvml([300, 900, 1500, 700, 700], [5000], pid=4242)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    s = VramSampler(0, pid=4242)  # the module found by import, as in a real run
    for _ in range(4):
        s.sample()
    assert s.method == "process" and s.peak_mb == 1500  # not the other process's 999
    assert s.gpu_name() == "Fake GTX 1650" and s.gpu_total_mb() == 4096
    s.reset_peak()
    s.sample()
    assert s.peak_mb == 700
    s.start()
    s.stop()
    assert fake.inited == 1 and fake.shut == 1 and s.samples >= 7


def test_a_finished_row_reads_the_gpu_before_nvml_shuts_down(monkeypatch):
    """The worker's last report (found on a real H200: NVMLError_Uninitialized when the GPU's
    name was read after nvmlShutdown)."""
    from fissure.bench import finish_sampler

    fake = FakeNvml([300, 800], [5000], pid=7)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    s = VramSampler(0, pid=7).start()
    s.sample()
    got = finish_sampler(s)
    assert got == {"peak_vram_mb": 800, "vram_method": "process",
                   "gpu": {"name": "Fake GTX 1650", "total_mb": 4096}}
    assert fake.shut == 1
    assert finish_sampler(None, "unavailable: no NVML")["vram_method"] == "unavailable: no NVML"


def test_vram_peak_falls_back_to_device_delta():
    fake = FakeNvml([], [1000, 1200, 1800, 1100], pid=7)  # the process is never listed
    s = VramSampler(0, pid=7, nvml=fake)  # baseline 1000 MiB used by others
    for _ in range(3):
        s.sample()
    assert s.method == "device-delta" and s.peak_mb == 800


def test_vram_sampler_without_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert bench.nvml_module() is None
    with pytest.raises(ImportError, match="nvidia-ml-py"):
        VramSampler(0)


def test_worker_vram_batch_uses_the_growth(monkeypatch, toy):
    """The child's batch measurement: peak at batch 1 and 2 through the sampler, then the
    extrapolation (a fake sampler whose peak grows 200 MiB per tile over 400 MiB)."""
    from fissure.detection import TiledDetector

    model, _ = toy
    det = TiledDetector(str(model), backend="onnxruntime", device="cpu", num_threads=1,
                        max_batch=16)

    class Sampler:
        method = "process"
        peak_bytes = 0

        def reset_peak(self):
            self.peak_bytes = 0

        def sample(self):
            pass

    s = Sampler()
    run = det.backend.run

    def fake_run(feed):
        s.peak_bytes = max(s.peak_bytes, (400 + 200 * len(feed["images"])) * MB)
        return run(feed)

    monkeypatch.setattr(det.backend, "run", fake_run)
    out = bench._vram_batch(det, s, {"vram_budget_mb": 2048}, num_tiles=40)
    det.close()
    assert out["peak_b1_mb"] == 600 and out["peak_b2_mb"] == 800
    assert out["per_tile_mb"] == 200 and out["fixed_mb"] == 400
    # floor((0.85 * 2048 - 400) / 200) = floor(6.7): 15% of the budget kept free
    assert out["batch_size"] == 6


# ------------------------------------------------------------------------ pure functions


def test_batch_from_vram_growth_hand_computed():
    r = batch_from_vram_growth(600 * MB, 700 * MB, 1, 2, 2048, max_batch=16, headroom=0)
    assert (r["per_tile_mb"], r["fixed_mb"], r["batch_size"]) == (100, 500, 15)
    assert r["predicted_peak_mb"] == 2000
    # 400 MiB over 3 tiles: 133.3 per tile, fixed 466.7; (2048 - 466.7) / 133.3 = 11.86
    assert batch_from_vram_growth(600 * MB, 1000 * MB, 1, 4, 2048, headroom=0)["batch_size"] == 11
    assert batch_from_vram_growth(600 * MB, 700 * MB, 1, 2, 2048, num_tiles=6)["batch_size"] == 6
    assert batch_from_vram_growth(600 * MB, 600 * MB, 1, 2, 2048, max_batch=8)["batch_size"] == 8
    assert batch_from_vram_growth(3000 * MB, 3100 * MB, 1, 2, 2048)["batch_size"] == 1
    # the default keeps 15% of the budget free: the H200's PP-OCRv4 det figures (fixed 674
    # MiB, 144 MiB a tile) give batch 7 (674 + 7 * 144 = 1682 <= 0.85 * 2048 = 1740.8), where
    # batch 9 (predicted 1970) peaked at 2056 MiB
    h200 = batch_from_vram_growth(818 * MB, 962 * MB, 1, 2, 2048)
    assert h200["batch_size"] == 7 and h200["predicted_peak_mb"] == 1682
    with pytest.raises(ValueError):
        batch_from_vram_growth(1, 2, 2, 1, 2048)


def _naive_match(a, b, ca, cb, thr):
    pairs = []
    for i in range(len(a)):
        for j in range(len(b)):
            if ca[i] != cb[j]:
                continue
            ix = max(0.0, min(a[i][2], b[j][2]) - max(a[i][0], b[j][0]))
            iy = max(0.0, min(a[i][3], b[j][3]) - max(a[i][1], b[j][1]))
            inter = ix * iy
            union = ((a[i][2] - a[i][0]) * (a[i][3] - a[i][1])
                     + (b[j][2] - b[j][0]) * (b[j][3] - b[j][1]) - inter)
            iou = inter / union if union > 0 else 0.0
            if iou >= thr:
                pairs.append((-iou, i, j))
    pairs.sort()
    used_a, used_b, n = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            n += 1
    return n


@pytest.mark.parametrize("seed", range(6))
def test_compare_detections_against_a_naive_matching(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    xy = rng.uniform(0, 200, (n, 2))
    a = np.hstack([xy, xy + rng.uniform(5, 40, (n, 2))])
    keep = rng.random(n) > 0.2
    b = a[keep] + rng.normal(0, 1.5, (int(keep.sum()), 4))
    extra = rng.uniform(0, 200, (int(rng.integers(0, 5)), 2))
    b = np.vstack([b, np.hstack([extra, extra + 20])])
    ca = rng.integers(0, 3, n)
    cb = np.concatenate([ca[keep], rng.integers(0, 3, len(extra))])
    for thr in (0.5, 0.9):
        r = compare_detections(a, b, ca, cb, iou=thr)
        want = _naive_match(a.tolist(), b.tolist(), ca.tolist(), cb.tolist(), thr)
        assert r["matched"] == want
        assert r["recall"] == (want / n if n else 1.0)
        assert r["precision"] == (want / len(b) if len(b) else 1.0)


def test_compare_detections_identical_and_empty():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    assert compare_detections(a, a)["recall"] == 1.0
    r = compare_detections(a, np.zeros((0, 4)))
    assert (r["recall"], r["precision"]) == (0.0, 1.0)
    assert compare_detections(a, a, [0, 1], [1, 0])["matched"] == 0  # classes differ


def test_gpu_check_verdict():
    def row(**kw):
        r = bench._empty_row(Config("onnxruntime", "cuda", kw.pop("precision", "f32")), None)
        r.update(images_per_s=1.0, batch_size=4, vram_method="process", **kw)
        return r

    ok = {"recall": 1.0, "precision": 1.0, "iou": 0.9, "min_required": 0.99, "ok": True,
          "matched": 5, "reference": 5, "candidate": 5}
    rep = {"settings": {"vram_budget_mb": 2048.0},
           "rows": [row(peak_vram_mb=1500.0, agreement=ok)]}
    assert gpu_check_verdict(rep)[0] == 0
    rep["rows"].append(row(precision="f16", peak_vram_mb=2100.0, agreement=ok))
    status, lines = gpu_check_verdict(rep)
    assert status == 1 and any("2100 MiB > budget" in ln for ln in lines)
    bad = dict(ok, ok=False, recall=0.5)
    assert gpu_check_verdict({"settings": rep["settings"],
                              "rows": [row(peak_vram_mb=100.0, agreement=bad)]})[0] == 1
    assert gpu_check_verdict({"settings": rep["settings"],
                              "rows": [row(peak_vram_mb=None, agreement=ok)]})[0] == 1


# ------------------------------------------------------------------------ f16 and configurations


def test_f16_refused_on_cpu_and_cached(tmp_path, monkeypatch):
    from fissure.backends import open_model
    from fissure.backends import onnxruntime as ortb

    monkeypatch.setenv("FISSURE_CACHE", str(tmp_path))
    data = bright_spot_model()
    with pytest.raises(ValueError, match="f16.*CUDA only"):
        open_model(data, "onnxruntime", "cpu", precision="f16")
    reason = bench.unavailable_reason(Config("onnxruntime", "cpu", "f16"), ["CPUExecutionProvider"], [])
    assert "CUDA or OpenVINO" in reason
    cfgs = bench.select_configs("cpu", ["onnxruntime"], ["f16"])
    assert Config("onnxruntime", "cpu", "f16") in cfgs
    assert "onnxruntime-gpu" in bench.unavailable_reason(
        Config("onnxruntime", "cuda", "f16"), ["CPUExecutionProvider"], [])
    p = ortb.f16_model(data)
    assert p.parent == tmp_path / "f16" and p.is_file()
    import onnx

    m = onnx.load(str(p))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # f32 I/O
    assert "Cast" in [n.op_type for n in m.graph.node]
    import onnxruntime.transformers.float16 as f16

    monkeypatch.setattr(f16, "convert_float_to_float16",
                        lambda *a, **k: pytest.fail("converted twice"))
    assert ortb.f16_model(data) == p  # cached: keyed by the model's sha256


def test_select_configs():
    assert [c.name for c in bench.select_configs("cpu")] == [
        "onnxruntime/cpu/f32", "openvino/cpu/f32", "openvino/cpu/bf16", "openvino/cpu/f16"]
    assert [c.name for c in bench.select_configs("cuda")] == [
        "onnxruntime/cpu/f32", "onnxruntime/cuda/f32", "onnxruntime/cuda/f16"]
    with pytest.raises(ValueError, match="--device tpu"):
        bench.select_configs("tpu")
    with pytest.raises(ValueError, match="backend 'tensorrt'"):
        bench.select_configs("cpu", ["tensorrt"])


def test_cv2_preprocess_matches_the_core():
    from fissure.preprocess import PreprocessConfig, preprocess_tiles

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)
    tile = np.array([[10, 20, 410, 270]], np.int64)
    for mode in ("letterbox", "resize"):
        cfg = PreprocessConfig(input_size=(320, 320), mode=mode)
        got = bench._cv2_preprocess(img[20:270, 10:410], cfg)
        want = preprocess_tiles(img, tile, cfg)
        assert got.shape == want.shape
        assert np.mean(np.abs(got - want)) < 2 / 255  # cv2 and the core may round differently


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("case", ["model", "image", "device", "budget"])
def test_bad_input_exits_2(toy, tmp_path, capsys, case):
    model, image = toy
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    args = {"model": ["bench", str(tmp_path / "missing.onnx"), "--device", "cpu"],
            "image": ["bench", str(model), str(bad), "--device", "cpu"],
            "device": ["bench", str(model), "--device", "tpu"],
            "budget": ["bench", str(model), "--vram-budget", "-5"]}[case]
    assert main(args + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fissure: error: "), err


def test_format_table_marks_unavailable_rows_and_what_ran():
    ok = bench._empty_row(Config("openvino", "cpu", "bf16"), None)
    ok.update(images_per_s=0.5, image_s_median=2.0, precision_run="f32", batch_size=4,
              tile_latency_ms={"p50": 10.0, "p95": 20.0}, peak_rss_mb=700.0, fits_budget=True,
              stages_s={"read": 0.1, "preprocess": 0.0, "model": 1.8, "decode": 0.1,
                        "merge": 0.0}, detections=3)
    gone = bench._empty_row(Config("onnxruntime", "cuda", "f16"), "no NVIDIA GPU")
    text = bench.format_table({"rows": [ok, gone]})
    lines = text.splitlines()
    assert lines[2].startswith("| openvino/cpu/bf16 (runs f32) | 0.500 | 10.0 / 20.0 |")
    assert "| onnxruntime/cuda/f16 | unavailable: no NVIDIA GPU |" in lines[3]
    assert all(ln.count("|") == lines[0].count("|") for ln in lines)


def test_paired_ratio():
    assert bench.paired_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 3.0]) == 2.0  # pairs 2, 3, 1
    assert bench.paired_ratio([2.0], [1.0, 1.0]) is None  # a round missing: no pairs
    assert bench.paired_ratio([], []) is None


def test_finish_row_budget_fit_from_the_peaks():
    rounds = [{"image_s": [2.0], "stages_s": {"read": 0.1, "preprocess": 0.1, "model": 1.5,
                                              "decode": 0.2, "merge": 0.1},
               "tile_ms": [10.0, 30.0], "batch_size": 6}]
    info = {"implementation": "fissure.TiledDetector", "tiles_per_image": 2,
            "describe": {"precision": "as exported (float32 input)"},
            "batch_source": "measured VRAM growth (batch 1 -> 2)",
            "vram_batch": {"batch_size": 6}}
    for vram, fits in ((1900.0, True), (2100.0, False), (None, None)):
        row = bench._empty_row(Config("onnxruntime", "cuda", "f32"), None)
        bench._finish_row(row, info, rounds, {"peak_rss_mb": 3000.0, "peak_vram_mb": vram,
                                              "vram_method": "process"}, 1, 2048.0)
        assert row["fits_budget"] is fits  # on CUDA the VRAM decides, not the RSS
        assert row["batch_size"] == 6 and row["images_per_s"] == 0.5
        assert row["tile_latency_ms"] == {"p50": 20.0, "p95": pytest.approx(29.0)}
    cpu = bench._empty_row(Config("onnxruntime", "cpu", "f32"), None)
    bench._finish_row(cpu, info, rounds, {"peak_rss_mb": 3000.0}, 1, 2048.0)
    assert cpu["fits_budget"] is False and cpu["peak_vram_mb"] is None


def test_f16_conversion_that_changes_the_outputs_is_refused(tmp_path, monkeypatch):
    """PP-OCRv4 det's constants overflow f16: its converted copy outputs garbage (found on an
    H200: 0 of 820 boxes kept); the conversion's probe refuses it and caches nothing, while a
    model that converts cleanly is cached."""
    import importlib.util

    from fissure.backends import ModelLoadError
    from fissure.backends.onnxruntime import f16_model, f16_probe_difference

    pytest.importorskip("onnx")
    monkeypatch.setenv("FISSURE_CACHE", str(tmp_path / "cache"))
    toy = bright_spot_model()
    out = f16_model(toy)
    assert out.is_file() and f16_probe_difference(toy, out.read_bytes()) < 0.01
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or spec.origin is None:
        pytest.skip("rapidocr-onnxruntime (PP-OCRv4 det) is not installed")
    ocr = Path(spec.origin).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"
    with pytest.raises(ModelLoadError, match="changes this model's outputs"):
        f16_model(ocr)
    assert len(list((tmp_path / "cache" / "f16").iterdir())) == 1  # the toy's only


def test_text_page_boxes_hold_the_ink() -> None:
    """The generated page's ground truth: every word's dark pixels lie in its box, no two boxes
    share a 64x150 cell, and nothing dark lies outside the boxes (a white page)."""
    from fissure.bench import text_page

    img, boxes = text_page(640, 900, 30, seed=5, textured=False)
    assert img.shape == (640, 900, 3) and img.dtype == np.uint8 and boxes.shape == (30, 4)
    dark = img[..., 0] < 200
    inside = np.zeros_like(dark)
    for x1, y1, x2, y2 in boxes.astype(int):
        assert dark[y1:y2 + 1, x1:x2 + 1].any()
        inside[max(y1 - 1, 0):y2 + 2, max(x1 - 1, 0):x2 + 2] = True
    assert not (dark & ~inside).any()
    cells = {(int(y1 + 8) // 64, int(x1) // 150) for x1, y1, _, _ in boxes}
    assert len(cells) == 30
    with pytest.raises(ValueError, match="at most 60 words"):
        text_page(640, 900, 61)
