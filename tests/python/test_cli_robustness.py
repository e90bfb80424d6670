"""The command line under failure: every per-image failure (preprocessing, the model) is
reported and skipped in every command (exit 1); out-of-memory is an error line (exit 2); a
file name stdout cannot encode does not fail a finished run; orphaned temporaries of killed
writes are removed by the next write of the same file; Ctrl-C stops a run within a second
with 130 and leaves each image's outputs complete or absent; SIGKILL during a bank's save
leaves the old bank or the new one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")

from fissure.anomaly import PatchCore  # noqa: E402
from fissure.cli import main  # noqa: E402
from fissure.io import write_json_atomic  # noqa: E402
from test_detect import blob_model, planted  # noqa: E402
from test_interrupt import default_sigint  # noqa: E402
from test_patchcore import texture  # noqa: E402

FAST = ["--backend", "onnxruntime", "--threads", "2", "--quiet"]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def test_detect_skips_an_image_smaller_than_a_fixed_input(tmp_path, capsys) -> None:
    model = tmp_path / "blobs.onnx"
    model.write_bytes(blob_model())
    names = []
    for i, size in enumerate((300, 60, 260)):  # the 60 x 60 one cannot fill a 128 input
        names.append(tmp_path / f"{i}_{size}.png")
        cv2.imwrite(str(names[-1]), planted(size, size, 2, seed=i + 1)[0])
    out = tmp_path / "out"
    rc = main(["detect", str(model), *map(str, names), "--out", str(out), "--tile-size", "128",
               "--mode", "none", "--input-size", "128", *FAST])
    err = capsys.readouterr().err
    assert rc == 1 and f"skipped {names[1]}: ValueError" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert [r["path"] for r in summary["images"]] == [str(names[0]), str(names[2])]


def test_specular_and_fit_skip_a_failing_image(tmp_path, monkeypatch, capsys) -> None:
    import fissure.specular as spec
    from fissure.anomaly import patchcore

    imgs = []
    for s in range(3):
        a = texture(96, 96, s)
        a[0, 0] = 7 if s == 1 else 100  # the marked image fails
        imgs.append(tmp_path / f"n{s}.png")
        cv2.imwrite(str(imgs[-1]), a)
    real_mask = spec.specular_mask

    def flaky_mask(image, **kw):
        if int(image[0, 0, 0]) == 7:
            raise RuntimeError("glare\nfailed")
        return real_mask(image, **kw)

    monkeypatch.setattr(spec, "specular_mask", flaky_mask)
    rc = main(["specular", *map(str, imgs), "--out", str(tmp_path / "s"), "--quiet"])
    assert rc == 1 and "RuntimeError: glare failed" in capsys.readouterr().err
    assert len(json.loads((tmp_path / "s" / "specular.json").read_text())["images"]) == 2
    monkeypatch.setattr(spec, "specular_mask", real_mask)

    real_embed = patchcore.PatchCore._embed_tiles

    def flaky_embed(self, image, tiles):
        if int(image[0, 0, 0]) == 7:
            raise RuntimeError("backbone fell over")
        return real_embed(self, image, tiles)

    monkeypatch.setattr(patchcore.PatchCore, "_embed_tiles", flaky_embed)
    bank = tmp_path / "b.safetensors"
    # --intensity none: the backbone sees the marked pixel unchanged
    rc = main(["anomaly", "fit", *map(str, imgs), "--out", str(bank), "--no-tile",
               "--coreset-ratio", "0.5", "--intensity", "none", *FAST])
    cap = capsys.readouterr()
    assert rc == 1, cap.err
    assert f"skipped {imgs[1]}: RuntimeError: backbone fell over" in cap.err
    assert "2 image(s)" in cap.out and "1 skipped" in cap.out and bank.is_file()


def test_out_of_memory_is_an_error_line(tmp_path, monkeypatch, capsys) -> None:
    from fissure.cli import detect
    from fissure.detection import TiledDetector

    model = tmp_path / "blobs.onnx"
    model.write_bytes(blob_model())
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), planted(128, 128, 1, seed=1)[0])
    monkeypatch.setattr(detect, "_physical_memory", lambda: 1 << 30)
    rc = main(["detect", str(model), str(img), "--out", str(tmp_path / "o"), "--input-size",
               "8192", *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("fissure: error: --input-size 8192 8192") and "GiB" in err

    def no_memory(self, *a, **kw):
        raise MemoryError("Unable to allocate 40.2 GiB")

    monkeypatch.setattr(TiledDetector, "__init__", no_memory)
    rc = main(["detect", str(model), str(img), "--out", str(tmp_path / "o"), *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("fissure: error: out of memory (Unable to allocate")
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_unencodable_paths_do_not_fail_a_finished_run(tmp_path) -> None:
    """An --out folder with an undecodable byte and an image with a non-ASCII name, printed
    to an ASCII-only, strict stdout: everything is written and the run exits 0."""
    img = tmp_path / "caf\u00e9.png"
    cv2.imwrite(str(img), planted(64, 64, 1, seed=1)[0])
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xff")
    r = subprocess.run([sys.executable, "-m", "fissure", "specular", str(img), "--out", out,
                        "--quiet"], capture_output=True, timeout=120,
                       env=dict(ENV, PYTHONIOENCODING="ascii:strict", LC_ALL="C.UTF-8"))
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert b"Traceback" not in r.stderr
    assert b"written to" in r.stdout and b"\\udcff" in r.stdout
    written = os.listdir(os.fsencode(str(tmp_path)) + b"/out\xff")
    assert b"specular.json" in written and "caf\u00e9_specular_mask.png".encode() in written


def test_the_next_write_removes_orphaned_temporaries(tmp_path) -> None:
    target = tmp_path / "bank.json"
    old = time.time() - 60
    orphans = [tmp_path / f".bank.json.{tag}.tmp" for tag in ("abcd1234", "x_y_z_09")]
    young = tmp_path / ".bank.json.young123.tmp"           # a writer may still be at it
    locked = tmp_path / ".bank.json.locked12.tmp"          # a live writer holds it
    other = tmp_path / ".other.json.abcd1234.tmp"          # another target's
    unlike = tmp_path / ".bank.json.not-mkstemp.tmp"       # not fissure's pattern
    for p in (*orphans, young, locked, other, unlike):
        p.write_bytes(b"x" * 1000)
        if p is not young:
            os.utime(p, (old, old))
    import fcntl

    fd = os.open(locked, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        write_json_atomic(target, {"ok": True})
    finally:
        os.close(fd)
    assert json.loads(target.read_text()) == {"ok": True}
    assert not any(p.exists() for p in orphans)
    assert young.exists() and locked.exists() and other.exists() and unlike.exists()


def test_interrupt_is_held_while_one_image_is_written() -> None:
    """Run in a fresh interpreter: a process that earlier had OpenVINO read a malformed model
    may have its main thread's alternate signal stack released (seen in this test suite), and
    a signal delivered there is a SIGSEGV; that is OpenVINO's state, not this context's."""
    code = """
import os, signal, time
from fissure.cli._common import outputs_of_one_image
done = []
try:
    with outputs_of_one_image():
        signal.raise_signal(signal.SIGINT)
        time.sleep(0.05)
        done.append("all outputs written")
except KeyboardInterrupt:
    done.append("interrupted after")
assert done == ["all outputs written", "interrupted after"], done
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                       timeout=60, preexec_fn=default_sigint)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("many")
    (d / "imgs").mkdir()
    for s in range(10):
        cv2.imwrite(str(d / "imgs" / f"n{s:02d}.png"), np.tile(texture(256, 256, s), (4, 4, 1)))
    (d / "blobs.onnx").write_bytes(blob_model())
    return d


def _wait_until_working(p: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until the child has imported fissure and opened its model (the C++ core and ONNX
    Runtime are mapped): a Ctrl-C during the interpreter's start-up is not what these tests
    time, and on a loaded machine the start-up alone can take seconds."""
    maps = Path(f"/proc/{p.pid}/maps")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        try:
            text = maps.read_text()
        except OSError:
            return  # no /proc: fall back to the fixed delay
        if "_core" in text and "onnxruntime" in text:
            return
        time.sleep(0.02)


@pytest.mark.parametrize("command", ["detect", "fit"])
def test_ctrl_c_stops_within_a_second_with_130(many, tmp_path, command) -> None:
    out = tmp_path / "out"
    argv = {"detect": ["detect", str(many / "blobs.onnx"), str(many / "imgs"), "--out",
                       str(out), *FAST],
            "fit": ["anomaly", "fit", str(many / "imgs"), "--out", str(out / "b.safetensors"),
                    *FAST]}[command]
    for delay in (0.3, 0.9):
        p = subprocess.Popen([sys.executable, "-m", "fissure", *argv], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=default_sigint)
        _wait_until_working(p)
        time.sleep(delay)
        sent = time.perf_counter()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        took = time.perf_counter() - sent
        assert p.returncode == 130, err.decode(errors="replace")
        # the image in progress finishes first: a second on an idle machine, longer in
        # proportion when other processes share the cores
        limit = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
        assert took < limit, f"stopped {took:.2f} s after Ctrl-C (limit {limit:.1f} s)"
        assert b"Traceback" not in err
        files = sorted(os.listdir(out)) if out.exists() else []
        assert not [f for f in files if f.endswith(".tmp")]
        if command == "detect":  # each image: its JSON and its overlay, or neither
            jsons = {f[:-5] for f in files if f.endswith(".json")} - {"run"}
            assert jsons == {f[:-len("_overlay.jpg")] for f in files if f.endswith("_overlay.jpg")}
            # and the manifest lists each finished image once (what --resume skips)
            lines = ((out / "manifest.jsonl").read_text().splitlines()
                     if (out / "manifest.jsonl").exists() else [])
            stems = [json.loads(ln)["stem"] for ln in lines]
            assert sorted(stems) == sorted(set(stems)) and set(stems) <= jsons
        else:
            assert "b.safetensors" not in files


def test_sigkill_during_save_leaves_the_old_bank_or_the_new(tmp_path) -> None:
    script = tmp_path / "saver.py"
    script.write_text(
        "import sys, numpy as np\n"
        "from fissure.anomaly import PatchCore\n"
        "pc = PatchCore()\n"
        "pc.threshold, pc.image_threshold = 1.0, 1.0\n"
        "banks = [np.full((20000, 152), v, np.float32) for v in (1.0, 2.0)]\n"
        "print('ready', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    pc.bank = banks[i % 2]\n"
        "    pc.save(sys.argv[1])\n"
        "    i += 1\n")
    target = tmp_path / "bank.safetensors"
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    kills = 0
    while kills < 10 and time.perf_counter() - t0 < 15:
        p = subprocess.Popen([sys.executable, str(script), str(target)], env=ENV,
                             stdout=subprocess.PIPE)
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        p.kill()
        p.wait()
        p.stdout.close()
        kills += 1
        if target.exists():
            bank = PatchCore.load(target).bank
            assert bank is not None and bank.shape == (20000, 152)
            assert float(bank[0, 0]) in (1.0, 2.0) and np.all(bank == bank[0, 0])
    assert kills >= 5 and target.exists()
