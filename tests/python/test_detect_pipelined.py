"""TiledDetector with batches in flight (``max_in_flight > 1``): the same detections, in the same
order, as the synchronous path (``max_in_flight=1``), and the same as an independent tiled loop
(SAHI's slicing, ONNX Runtime per tile, cv2 components, SAHI's GreedyNMMPostprocess).

A backend that completes batches out of order and late, and reads its input only when it
runs, checks that a feeder buffer is never refilled while its batch is in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest

import fissure
from fissure import TiledDetector
from fissure.backends import open_model
from fissure.backends.onnxruntime import OnnxRuntimeBackend

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from fissure.detection.toy import bright_spot_model as blob_model  # noqa: E402
from fissure.detection.toy import bright_spots as planted  # noqa: E402
from oracles.tiled_loop import assert_same_detections, tiled_loop  # noqa: E402


def assert_identical(a: fissure.Detections, b: fissure.Detections) -> None:
    """Same detections in the same order: boxes, scores, classes and masks bit for bit."""
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    assert (a.masks is None) == (b.masks is None)
    if a.masks is not None:
        np.testing.assert_array_equal(a.masks.regions, b.masks.regions)
        np.testing.assert_array_equal(a.masks.offsets, b.masks.offsets)
        np.testing.assert_array_equal(a.masks.data, b.masks.data)


def blob_oracle(image: np.ndarray, tile: int, overlap: float, thr: float = 0.3,
                box_thr: float = 0.5):
    sess = ort.InferenceSession(blob_model(), providers=["CPUExecutionProvider"])

    def run_tile(crop: np.ndarray):
        x = crop[:, :, ::-1].astype(np.float32) * np.float32(1 / 255)
        p = sess.run(None, {"images": np.ascontiguousarray(x.transpose(2, 0, 1)[None])})[0][0, 0]
        n, labels, st, _ = cv2.connectedComponentsWithStats((p > thr).astype(np.uint8),
                                                            connectivity=8)
        boxes, scores = [], []
        for k in range(1, n):
            s = float(p[labels == k].astype(np.float64).mean())
            if s >= box_thr:
                bx, by, bw, bh = (int(v) for v in st[k, :4])
                boxes.append([bx, by, bx + bw, by + bh])
                scores.append(s)
        return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores), \
            np.zeros(len(scores), np.int64)

    return tiled_loop(image, tile, overlap, run_tile)


def _detector(model, **kw) -> TiledDetector:
    return TiledDetector(model, tile_size=256, overlap_ratio=0.2, conf_threshold=0.5,
                         decoder_options={"mask_threshold": 0.3}, **kw)


@pytest.mark.parametrize("backend,options", [
    ("onnxruntime", {}),
    ("onnxruntime", {"async_workers": 2}),
    ("openvino", {"hint": "latency"}),
    ("openvino", {"hint": "throughput", "num_requests": 3}),
])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_pipelined_equals_synchronous_and_the_sahi_loop(backend: str, options: dict,
                                                        batch_size: int) -> None:
    pytest.importorskip(backend)
    img, gt = planted(900, 1300, 40, seed=11, size=(8, 70))
    prec = "f32" if backend == "openvino" else None
    with open_model(blob_model(), backend, "cpu", precision=prec, **options) as m:
        with _detector(m, batch_size=batch_size, max_in_flight=1) as det:
            ref = det(img)
            assert det.stats.in_flight == 1
        for depth in (2, 3, 5):
            with _detector(m, batch_size=batch_size, max_in_flight=depth) as det:
                got = det(img)
                st = det.stats
            assert st.in_flight == min(depth, st.batches) and st.batches == -(-st.tiles // batch_size)
            assert 0 < st.model_s <= st.total_s
            assert_identical(got, ref)
    assert_same_detections(ref, blob_oracle(img, 256, 0.2), atol=0)


def test_defaults_per_backend() -> None:
    with _detector(blob_model(), backend="onnxruntime") as det:
        assert det.max_in_flight == 1  # ONNX Runtime on a CPU: synchronous (measured)
    pytest.importorskip("openvino")
    with _detector(blob_model(), backend="openvino", precision="f32") as det:
        assert det.backend.max_in_flight >= 2
        assert det.max_in_flight == det.backend.max_in_flight
        img, gt = planted(700, 700, 10, seed=12)
        d = det(img)
        assert det.stats.in_flight == min(det.max_in_flight, det.stats.batches) >= 2
    assert_same_detections(d, blob_oracle(img, 256, 0.2), atol=0)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_in_flight"):
            _detector(blob_model(), backend="onnxruntime", max_in_flight=bad)


class LateBackend(OnnxRuntimeBackend):
    """Runs each submitted batch in its own thread after a random delay, so batches finish out
    of order and read their input (without a copy) long after submit; records how many were in
    flight at once and every input as it was when the batch ran."""

    def __init__(self, model: bytes, fail_at: int = -1) -> None:
        super().__init__(model, "cpu")
        self.rng = np.random.default_rng(0)
        self.lock = threading.Lock()
        self.in_flight = self.most = self.calls = 0
        self.fail_at = fail_at
        self.threads: list[threading.Thread] = []

    def _submit(self, feed):
        fut: Future = Future()
        delay = float(self.rng.uniform(0.0, 0.03))
        with self.lock:
            i = self.calls
            self.calls += 1
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)

        def work() -> None:
            time.sleep(delay)
            try:
                if i == self.fail_at:
                    raise RuntimeError(f"batch {i} failed")
                out = self._run(feed)
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.in_flight -= 1
                fut.set_exception(e)
                return
            with self.lock:
                self.in_flight -= 1
            fut.set_result(out)

        t = threading.Thread(target=work)
        self.threads.append(t)
        t.start()
        return fut


@pytest.mark.parametrize("depth", [2, 4])
def test_late_out_of_order_batches_read_untouched_buffers(depth: int) -> None:
    img, gt = planted(1000, 1200, 40, seed=13)
    with _detector(blob_model(), backend="onnxruntime", batch_size=2) as det:
        ref = det(img)
    with LateBackend(blob_model()) as m, _detector(m, batch_size=2, max_in_flight=depth) as det:
        got = det(img)
        assert 2 <= m.most <= depth
        assert det.stats.in_flight == depth
    assert_identical(got, ref)


def test_a_failing_batch_raises_after_the_others_finish() -> None:
    img, gt = planted(800, 800, 10, seed=14)
    with LateBackend(blob_model(), fail_at=3) as m, \
            _detector(m, batch_size=1, max_in_flight=3) as det:
        with pytest.raises(RuntimeError, match="batch 3 failed"):
            det(img)
        assert m.in_flight == 0  # nothing left running on the feeder's buffers
        # the detector still works afterwards
        m.fail_at = -1
        d = det(img)
    assert_same_detections(d, blob_oracle(img, 256, 0.2), atol=0)


def test_static_batch_model_pipelined() -> None:
    img, gt = planted(700, 700, 20, seed=3)
    with TiledDetector(blob_model((4, 3, 200, 200)), backend="onnxruntime", tile_size=200,
                       overlap_ratio=0.3, conf_threshold=0.5, max_in_flight=2) as det:
        d = det(img)
        assert det.stats.batch_size == 4 and det.stats.tiles % 4 != 0
        assert det.stats.in_flight == 2
    assert_same_detections(d, blob_oracle(img, 200, 0.3), atol=0)


def test_budget_counts_every_batch_in_flight() -> None:
    """The batch under a budget is floor((budget - fixed) / (per_tile * in flight))."""
    img, _ = planted(800, 800, 5, seed=6)
    for depth in (1, 3):
        with _detector(blob_model(), backend="onnxruntime", max_batch=16,
                       max_in_flight=depth) as det:
            det(img)
            cost = det.batch_cost
            budget = det.vram_budget_mb * (1 << 20)
            want = int((budget - cost.fixed_bytes) // (cost.per_tile_bytes * depth))
            want = max(1, min(16, det.stats.tiles, want))
            assert det.stats.batch_size == want


def test_openvino_hint_follows_batches_in_flight() -> None:
    """A detector that opens an OpenVINO model compiles it with THROUGHPUT (streams for the
    batches in flight), or LATENCY for the synchronous loop; OpenVINO reports what it got."""
    pytest.importorskip("openvino")
    with _detector(blob_model(), backend="openvino", precision="f32") as det:
        assert det.backend.config["PERFORMANCE_HINT"] == "THROUGHPUT"
        assert str(det.backend.compiled_model.get_property("PERFORMANCE_HINT")) in (
            "THROUGHPUT", "PerformanceMode.THROUGHPUT")
    with _detector(blob_model(), backend="openvino", precision="f32", max_in_flight=1) as det:
        assert det.backend.config["PERFORMANCE_HINT"] == "LATENCY"
    with _detector(blob_model(), backend="onnxruntime") as det:  # no hint reaches ORT
        assert det.backend.name == "onnxruntime"


def test_auto_drops_the_other_runtimes_options() -> None:
    from fissure.backends import choose, probe

    pytest.importorskip("openvino")
    c = choose(probe(), "onnx", "cpu")
    with open_model(blob_model(), "auto", "cpu", hint="throughput", async_workers=2) as m:
        assert m.name == c.backend
        if m.name == "openvino":
            assert m.config["PERFORMANCE_HINT"] == "THROUGHPUT"
        else:
            assert m.max_in_flight == 3
    with pytest.raises(TypeError):
        open_model(blob_model(), "onnxruntime", "cpu", hint="throughput")
