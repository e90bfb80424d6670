"""Hostile input files and input lists: decompression bombs (a few hundred bytes of PNG or
JPEG declaring 30000 x 30000 or 50000 x 50000 pixels) are refused from their headers before
they are decoded, in bounded memory; every command reports them, skips them and processes
the rest (exit 1); an OpenCV error is a ValueError naming the file; inputs reached twice (a
``**`` glob through a symbolic-link loop) are processed once. Oracles: the sizes the files
were forged with, and ``ru_maxrss`` of a process that reads them."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")

import fissure.io as fio  # noqa: E402
from fissure.cli import main  # noqa: E402
from test_detect import blob_model, planted  # noqa: E402
from test_patchcore import texture  # noqa: E402

FAST = ["--backend", "onnxruntime", "--threads", "2", "--quiet"]


def png_bomb(w: int, h: int) -> bytes:
    """A valid PNG signature and IHDR (correct CRC) declaring w x h RGB, with 1 MiB of zeros
    deflated into a tiny IDAT: the shape of a real decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * (1 << 20), 9)) + chunk(b"IEND", b""))


def jpeg_bomb(w: int, h: int) -> bytes:
    """A real 64 x 64 JPEG whose SOF0 frame header is edited to declare w x h."""
    ok, buf = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    i = data.find(b"\xff\xc0")
    assert i > 0
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


@pytest.fixture()
def bombs(tmp_path: Path) -> dict[str, Path]:
    d = {"png50k": tmp_path / "png50k.png", "png30k": tmp_path / "png30k.png",
         "jpg30k": tmp_path / "jpg30k.jpg"}
    d["png50k"].write_bytes(png_bomb(50000, 50000))
    d["png30k"].write_bytes(png_bomb(30000, 30000))
    d["jpg30k"].write_bytes(jpeg_bomb(30000, 30000))
    return d


def test_header_sizes_of_every_format(tmp_path) -> None:
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    for ext in (".png", ".jpg", ".bmp", ".tif", ".webp", ".pgm", ".ppm", ".jp2"):
        p = tmp_path / f"x{ext}"
        assert cv2.imwrite(str(p), img[:, :, 0] if ext == ".pgm" else img)
        assert fio.image_file_size(p) == (53, 37), ext
    p = tmp_path / "progressive.jpg"
    cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert fio.image_file_size(p) == (53, 37)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    assert fio.image_file_size(tmp_path / "junk.png") is None


def test_bombs_are_refused_from_the_header_in_bounded_memory(bombs) -> None:
    """Read in a fresh process: refused with a ValueError naming the file and its declared
    size, and the process's peak memory stays near its baseline (decoding the 30000 x 30000
    PNG took 3.5 GB; the JPEG 5.2 GB)."""
    code = (
        "import resource, sys, fissure.io as fio\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        fio.read_image(p)\n"
        "    except ValueError as e:\n"
        "        print('refused', e)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print('grew_kb', peak - base)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", code, *map(str, bombs.values())],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    refused = [ln for ln in lines if ln.startswith("refused")]
    assert len(refused) == 3, r.stdout
    for line, (name, p) in zip(refused, bombs.items()):
        assert str(p) in line and "not decoded" in line and "MAX_IMAGE_PIXELS" in line
        assert ("50000 x 50000" if "50k" in name else "30000 x 30000") in line
    grew_kb = int(lines[-1].split()[1])
    assert grew_kb < 64 * 1024, f"reading the bombs grew the peak RSS by {grew_kb} KB"


def test_the_limit_is_configurable(bombs, tmp_path, monkeypatch) -> None:
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((40, 50, 3), np.uint8))
    assert fio.read_image(small).shape == (40, 50, 3)
    with pytest.raises(ValueError, match=r"50 x 40 = 2,000 pixels, more than the limit of 1,999"):
        fio.read_image(small, max_pixels=1999)
    monkeypatch.setenv("FISSURE_MAX_IMAGE_PIXELS", "1999")
    with pytest.raises(ValueError, match="limit of 1,999"):
        fio.read_image(small)
    assert fio.read_image(small, max_pixels=2000).shape == (40, 50, 3)  # keyword beats env
    monkeypatch.setenv("FISSURE_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="FISSURE_MAX_IMAGE_PIXELS: expected a positive integer"):
        fio.read_image(small)
    with pytest.raises(ValueError, match="max_pixels"):
        fio.read_image(small, max_pixels=0)
    # past fissure's limit, OpenCV's own (2**30) refuses the 50000 x 50000 PNG: its cv2.error
    # becomes a ValueError naming the file
    monkeypatch.setenv("FISSURE_MAX_IMAGE_PIXELS", str(10**10))
    with pytest.raises(ValueError, match="cannot decode image file") as e:
        fio.read_image(bombs["png50k"])
    assert str(bombs["png50k"]) in str(e.value)


def test_a_bad_limit_in_the_environment_stops_the_cli_before_anything(tmp_path,
                                                                     monkeypatch, capsys) -> None:
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), texture(64, 64, 0))
    monkeypatch.setenv("FISSURE_MAX_IMAGE_PIXELS", "-5")
    assert main(["specular", str(img), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "FISSURE_MAX_IMAGE_PIXELS" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory) -> Path:
    from fissure.anomaly import PatchCore

    d = tmp_path_factory.mktemp("bank")
    pc = PatchCore(tile_size=None, coreset_ratio=0.25, backend="onnxruntime", num_threads=2)
    pc.fit([texture(128, 128, s) for s in range(3)])
    return pc.save(d / "bank.safetensors")


def _good_images(tmp_path: Path, command: str) -> list[Path]:
    good = [tmp_path / "good1.png", tmp_path / "good2.png"]
    for s, p in enumerate(good):
        cv2.imwrite(str(p), texture(128, 128, 10 + s) if command in ("fit", "predict")
                    else planted(160, 160, 3, seed=s + 1)[0])
    return good


def _run_skipping(command: str, images: list[str], good: list[Path], bad: list[Path],
                  bank: Path, tmp_path: Path, capsys) -> str:
    """Runs ``command`` over ``images``: exit 1, no traceback, the good images processed and
    the bad ones listed as failed in the run's summary. Returns stderr."""
    model = tmp_path / "blobs.onnx"
    model.write_bytes(blob_model())
    out = tmp_path / "out"
    argv = {
        "detect": ["detect", str(model), *images, "--out", str(out), "--tile-size", "128", *FAST],
        "specular": ["specular", *images, "--out", str(out), "--quiet"],
        "fit": ["anomaly", "fit", *images, "--out", str(out / "b.safetensors"), "--no-tile",
                "--coreset-ratio", "0.25", *FAST],
        "predict": ["anomaly", "predict", str(bank), *images, "--out", str(out), *FAST],
    }[command]
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    if command == "fit":
        assert (out / "b.safetensors").is_file() and "2 image(s)" in cap.out
        return cap.err
    summary = json.loads((out / {"specular": "specular.json"}.get(command, "summary.json"))
                         .read_text())
    done = [r.get("path", r.get("image")) for r in summary["images"]]
    assert done == [str(good[0]), str(good[1])]
    assert sorted(f["path"] for f in summary["failed"]) == sorted(map(str, bad))
    return cap.err


@pytest.mark.parametrize("command", ["detect", "specular", "fit", "predict"])
def test_every_command_skips_bombs_and_processes_the_rest(bombs, small_bank, tmp_path,
                                                          command, capsys) -> None:
    good = _good_images(tmp_path, command)
    images = [str(good[0]), *map(str, bombs.values()), str(good[1])]
    err = _run_skipping(command, images, good, list(bombs.values()), small_bank, tmp_path,
                        capsys)
    for p in bombs.values():
        assert f"fissure: skipped {p}" in err
    assert err.count("not decoded") == 3


def test_inputs_reached_twice_are_processed_once(tmp_path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        cv2.imwrite(str(root / name), np.zeros((8, 8, 3), np.uint8))
    os.symlink(root, root / "sub" / "loop")  # root/sub/loop/sub/loop/... back to root
    found = list(fio.expand_inputs([str(root / "**" / "*.png")]))
    assert [p.resolve() for p in found] == [(root / "a.png").resolve(),
                                           (root / "sub" / "b.png").resolve()]
    # the same file named twice, or by a folder and by name: kept once, first occurrence
    again = list(fio.expand_inputs([str(root / "sub" / "b.png"), str(root / "sub"),
                                    str(root / "a.png"), str(root / "sub" / "loop" / "a.png")]))
    assert again == [root / "sub" / "b.png", root / "a.png"]


@pytest.mark.parametrize("command", ["detect", "specular", "fit", "predict"])
def test_every_command_skips_broken_files_and_processes_the_rest(small_bank, tmp_path, command,
                                                                 capsys) -> None:
    """Zero-byte, truncated PNG and JPEG, and a non-UTF-8 file name among good images: the
    broken ones are reported and skipped, the good ones processed (exit 1), no traceback."""
    good = _good_images(tmp_path, command)
    png = good[0].read_bytes()
    ok, jpg = cv2.imencode(".jpg", np.full((96, 96, 3), 90, np.uint8))
    assert ok
    broken = [tmp_path / "empty.png", tmp_path / "cut.png", tmp_path / "cut.jpg",
              Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9-cut.png")))]
    broken[0].write_bytes(b"")
    broken[1].write_bytes(png[: len(png) // 3])
    broken[2].write_bytes(jpg.tobytes()[:40])
    broken[3].write_bytes(png[:60])
    images = [str(good[0]), *map(str, broken), str(good[1])]
    err = _run_skipping(command, images, good, broken, small_bank, tmp_path, capsys)
    assert err.count("fissure: skipped") == len(broken)
