"""fissure.slice_coco.slice_coco against SAHI's own ``sahi.slicing.slice_coco``.

The test builds a small COCO dataset: images of odd sizes (PNG and JPEG, one smaller than a
tile, one without annotations, one in a subfolder), box-only annotations (float and
integer), convex and concave polygons (a U shape whose clip is a MultiPolygon), a
self-intersecting polygon (made valid), annotations crossing tile edges, tiny ones below
``min_area_ratio`` and an RLE mask. Both run on it; the tile files (names, pixels), the
images list and every annotation must agree. RLE masks, which SAHI reduces to their bbox,
are checked against pycocotools decoding instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

sahi_slicing = pytest.importorskip("sahi.slicing")
pytest.importorskip("shapely")
cv2 = pytest.importorskip("cv2")
mask_utils = pytest.importorskip("pycocotools.mask")

from fissure.cli import main
from fissure.slice_coco import slice_coco

SLICE = {"slice_height": 256, "slice_width": 256, "overlap_height_ratio": 0.2,
         "overlap_width_ratio": 0.2}


def _rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _build(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(17)
    img_dir = root / "images"
    (img_dir / "sub").mkdir(parents=True)
    sizes = {"a.png": (530, 700), "b.jpg": (611, 1037), "sub/c.png": (200, 300),
             "d.png": (600, 600), "e.png": (517, 413)}
    images, anns = [], []
    for k, (name, (h, w)) in enumerate(sizes.items(), start=1):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(img_dir / name), img)
        images.append({"id": k * 10, "file_name": name, "height": h, "width": w})

    def add(image_id: int, cat: int, **kw: object) -> None:
        anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                     "iscrowd": 0, **kw})

    for image_id, (name, (h, w)) in zip((10, 20, 30, 50), [(n, s) for n, s in sizes.items()
                                                            if n != "d.png"]):
        for _ in range(12):  # boxes, float and integer, many across tile edges
            x, y = rng.uniform(0, w - 20), rng.uniform(0, h - 20)
            bw, bh = rng.uniform(3, min(180, w - x)), rng.uniform(3, min(180, h - y))
            if rng.random() < 0.5:
                x, y, bw, bh = float(int(x)), float(int(y)), float(max(1, int(bw))), float(
                    max(1, int(bh)))
            add(image_id, int(rng.choice([1, 3, 7])), bbox=[x, y, bw, bh], segmentation=[],
                area=bw * bh)
        for _ in range(10):  # convex-ish polygons
            cx, cy = rng.uniform(10, w - 10), rng.uniform(10, h - 10)
            r = rng.uniform(5, 120)
            t = np.sort(rng.uniform(0, 2 * np.pi, 7))
            xs = np.clip(cx + r * np.cos(t), 0, w)
            ys = np.clip(cy + r * np.sin(t), 0, h)
            poly = np.stack([xs, ys], 1).ravel().round(2).tolist()
            add(image_id, int(rng.choice([1, 3, 7])), segmentation=[poly],
                bbox=[float(xs.min()), float(ys.min()), float(np.ptp(xs)), float(np.ptp(ys))])
        # tiny ones
        add(image_id, 1, bbox=[200.0, 200.0, 2.0, 2.0])
        add(image_id, 3, segmentation=[[100, 100, 103, 100, 103, 103]], bbox=[100, 100, 3, 3])
    # concave U across the first vertical tile edge of a.png (x = 256): the clip by the
    # second tile (x >= 204) cuts the U's arms apart -> a MultiPolygon
    u = [150, 50, 330, 50, 330, 200, 300, 200, 300, 90, 240, 90, 240, 200, 150, 200]
    add(10, 7, segmentation=[u], bbox=[150, 50, 180, 150])
    # a polygon with two rings (two parts), and a self-intersecting bowtie (made valid)
    add(10, 1, segmentation=[[400, 300, 460, 300, 460, 360], [470, 380, 520, 380, 520, 430,
                                                                470, 430]])
    add(20, 3, segmentation=[[180, 180, 330, 330, 330, 180, 180, 330]],
        bbox=[180, 180, 150, 150])
    # an RLE mask on e.png, crossing tiles
    m = np.zeros((517, 413), dtype=bool)
    yy, xx = np.mgrid[:517, :413]
    m[(yy - 260) ** 2 + (xx - 200) ** 2 < 90 ** 2] = True
    m[10:40, 380:413] = True
    ys, xs = np.nonzero(m)
    add(50, 7, segmentation=_rle_of(m), iscrowd=1,
        bbox=[float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
        area=int(m.sum()))
    cats = [{"id": 7, "name": "scratch"}, {"id": 1, "name": "dent"}, {"id": 3, "name": "pit"}]
    path = root / "coco.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path, img_dir


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _build(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def sahi_out(dataset: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    ann, img = dataset
    out = tmp_path_factory.mktemp("sahi")
    coco, path = sahi_slicing.slice_coco(str(ann), str(img), "sliced", str(out), **SLICE)
    return coco, path, out


def _poly_area(seg: list, h: int, w: int) -> float:
    rings = [r for r in seg if len(r) >= 6]
    if not rings:
        return 0.0
    return float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(rings, h, w))))


def _compare(ours: dict, theirs: dict) -> None:
    assert ours["images"] == theirs["images"]
    assert ours["categories"] == theirs["categories"]
    assert len(ours["annotations"]) == len(theirs["annotations"])
    sizes = {im["id"]: (im["height"], im["width"]) for im in ours["images"]}
    for a, b in zip(ours["annotations"], theirs["annotations"]):
        for key in ("id", "image_id", "category_id", "iscrowd"):
            assert a[key] == b[key], (key, a, b)
        assert abs(a["area"] - b["area"]) <= 1, (a, b)
        assert len(a["bbox"]) == len(b["bbox"])
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=1e-6)
        h, w = sizes[a["image_id"]]
        assert abs(_poly_area(a["segmentation"], h, w)
                   - _poly_area(b["segmentation"], h, w)) <= 1, (a, b)
        # not required beyond the areas, but the same GEOS clip gives the same vertices
        assert a["segmentation"] == b["segmentation"]


def test_equals_sahi(dataset: tuple[Path, Path], sahi_out: tuple, tmp_path: Path) -> None:
    ann, img = dataset
    theirs, their_path, their_dir = sahi_out
    ours, path = slice_coco(str(ann), str(img), "sliced", str(tmp_path), rle_as_box=True,
                            **SLICE)
    assert path == str(tmp_path / "sliced_coco.json")
    assert json.loads(Path(path).read_text()) == ours
    _compare(ours, theirs)
    assert ours == json.loads(Path(their_path).read_text())  # exactly, as JSON
    # the tile files: the same names and the same pixels
    names = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png")
    assert names == sorted(im["file_name"] for im in ours["images"])
    assert names == sorted(p.name for p in their_dir.iterdir() if p.suffix == ".png")
    for name in names:
        a = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(their_dir / name), cv2.IMREAD_UNCHANGED)
        assert a.shape == b.shape and np.array_equal(a, b), name
    # the cases the dataset is meant to have did occur
    assert any(len(a["segmentation"]) > 1 for a in ours["annotations"])  # MultiPolygon clip
    assert any(im["file_name"].startswith("c_2_") for im in ours["images"])


def test_png_compression_same_pixels(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    ann, img = dataset
    a, _ = slice_coco(str(ann), str(img), "p", str(tmp_path / "l1"), **SLICE)
    b, _ = slice_coco(str(ann), str(img), "p", str(tmp_path / "l9"), png_compression=9,
                      num_workers=1, **SLICE)
    assert a == b
    for im in a["images"][::7]:
        x = cv2.imread(str(tmp_path / "l1" / im["file_name"]), cv2.IMREAD_UNCHANGED)
        y = cv2.imread(str(tmp_path / "l9" / im["file_name"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(x, y)


def test_ignore_negative_samples(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    ann, img = dataset
    theirs, _ = sahi_slicing.slice_coco(str(ann), str(img), "neg", None,
                                        ignore_negative_samples=True, **SLICE)
    ours, _ = slice_coco(str(ann), str(img), "neg", str(tmp_path),
                         ignore_negative_samples=True, rle_as_box=True, **SLICE)
    _compare(ours, theirs)
    kept = {a["image_id"] for a in ours["annotations"]}
    assert kept == {im["id"] for im in ours["images"]}
    # only the kept tiles are written (SAHI writes every tile)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        im["file_name"] for im in ours["images"])
    # without output_dir nothing is written and the path is "" (as SAHI)
    again, nopath = slice_coco(str(ann), str(img), "neg", None, ignore_negative_samples=True,
                               rle_as_box=True, **SLICE)
    assert nopath == "" and again == ours


def test_min_area_ratio_and_auto_slice(dataset: tuple[Path, Path]) -> None:
    ann, img = dataset
    for kw in ({"min_area_ratio": 0.5}, {"min_area_ratio": 0.0},
               {"slice_height": None, "slice_width": None},
               {"slice_height": 300, "slice_width": 200, "overlap_height_ratio": 0.0,
                "overlap_width_ratio": 0.35}):
        args = {**SLICE, **kw}
        theirs, _ = sahi_slicing.slice_coco(str(ann), str(img), "x", None, **args)
        ours, _ = slice_coco(str(ann), str(img), "x", None, rle_as_box=True, **args)
        _compare(ours, theirs)


def test_rle_masks_are_clipped(dataset: tuple[Path, Path]) -> None:
    """By default an RLE mask is decoded and cut per tile (SAHI keeps only its bbox):
    checked against pycocotools decoding and cropping the full mask."""
    ann, img = dataset
    coco = json.loads(ann.read_text())
    src = next(a for a in coco["annotations"] if isinstance(a.get("segmentation"), dict))
    full = mask_utils.decode(src["segmentation"]).astype(bool)
    total = int(full.sum())
    ours, _ = slice_coco(str(ann), str(img), "r", None, **SLICE)
    tiles = {im["id"]: im for im in ours["images"] if im["file_name"].startswith("e_4_")}
    got = [a for a in ours["annotations"] if isinstance(a["segmentation"], dict)]
    assert got
    expected_tiles = 0
    for im in tiles.values():
        x0, y0, x1, y1 = (int(v) for v in Path(im["file_name"]).stem.split("_")[-4:])
        crop = full[y0:y1, x0:x1]
        if crop.sum() and crop.sum() / total >= 0.1:
            expected_tiles += 1
    assert len(got) == expected_tiles
    for a in got:
        im = ours["images"][a["image_id"] - 1]
        x0, y0, x1, y1 = (int(v) for v in Path(im["file_name"]).stem.split("_")[-4:])
        crop = full[y0:y1, x0:x1]
        assert a["segmentation"]["size"] == [y1 - y0, x1 - x0]
        assert np.array_equal(mask_utils.decode(a["segmentation"]).astype(bool), crop)
        assert a["area"] == int(crop.sum())
        ys, xs = np.nonzero(crop)
        assert a["bbox"] == [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]
        assert a["iscrowd"] == 1 and a["category_id"] == 7


def test_yolo_labels(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    ann, img = dataset
    ours, _ = slice_coco(str(ann), str(img), "y", str(tmp_path), yolo=True, **SLICE)
    order = sorted(c["id"] for c in ours["categories"])  # class = index in sorted id order
    per_image: dict = {im["id"]: [] for im in ours["images"]}
    for a in ours["annotations"]:
        per_image[a["image_id"]].append(a)
    for im in ours["images"]:
        label = tmp_path / "labels" / (Path(im["file_name"]).stem + ".txt")
        rows = [line.split() for line in label.read_text().splitlines()]
        want = [a for a in per_image[im["id"]] if a["bbox"]]
        assert len(rows) == len(want)
        for row, a in zip(rows, want):
            x, y, w, h = a["bbox"]
            assert int(row[0]) == order.index(a["category_id"])
            np.testing.assert_allclose(
                [float(v) for v in row[1:]],
                [(x + w / 2) / im["width"], (y + h / 2) / im["height"], w / im["width"],
                 h / im["height"]], atol=1e-6)
    yaml = (tmp_path / "data.yaml").read_text()
    assert 'nc: 3' in yaml and '0: "dent"' in yaml and '2: "scratch"' in yaml


def test_negative_fraction(dataset: tuple[Path, Path]) -> None:
    ann, img = dataset
    full, _ = slice_coco(str(ann), str(img), "n", None, **SLICE)
    none, _ = slice_coco(str(ann), str(img), "n", None, negative_fraction=0.0, **SLICE)
    ign, _ = slice_coco(str(ann), str(img), "n", None, ignore_negative_samples=True, **SLICE)
    assert none == ign
    all_, _ = slice_coco(str(ann), str(img), "n", None, negative_fraction=1.0, **SLICE)
    assert all_ == full
    half1, _ = slice_coco(str(ann), str(img), "n", None, negative_fraction=0.5, seed=3, **SLICE)
    half2, _ = slice_coco(str(ann), str(img), "n", None, negative_fraction=0.5, seed=3, **SLICE)
    assert half1 == half2
    names = {im["file_name"] for im in half1["images"]}
    assert names <= {im["file_name"] for im in full["images"]}
    pos = {im["file_name"] for im in ign["images"]}
    n_neg = len(full["images"]) - len(pos)
    assert pos <= names and 0 < len(names - pos) < n_neg
    assert len(half1["annotations"]) == len(full["annotations"])
    with pytest.raises(ValueError, match="not both"):
        slice_coco(str(ann), str(img), "n", None, ignore_negative_samples=True,
                   negative_fraction=0.5)


def test_bad_input(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    ann, img = dataset
    with pytest.raises(FileNotFoundError, match="no such COCO"):
        slice_coco(str(tmp_path / "nope.json"), str(img), "x", str(tmp_path / "o"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid JSON"):
        slice_coco(str(bad), str(img), "x", str(tmp_path / "o"))
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="'images'"):
        slice_coco(str(bad), str(img), "x", str(tmp_path / "o"))
    coco = json.loads(ann.read_text())
    coco["images"].append({"id": 99, "file_name": "gone.png", "height": 10, "width": 10})
    bad.write_text(json.dumps(coco))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        slice_coco(str(bad), str(img), "x", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()  # nothing was written
    for kw in ({"slice_height": 0}, {"slice_width": -5}, {"overlap_height_ratio": 1.0},
               {"negative_fraction": 1.5}, {"png_compression": 10}, {"out_ext": "png"},
               {"num_workers": 0}):
        with pytest.raises(ValueError):
            slice_coco(str(ann), str(img), "x", None, **kw)
    # CLI: exit 2 with a message, 0 when done
    assert main(["slice-coco", str(bad), str(img), "--out", str(tmp_path / "o")]) == 2
    assert main(["slice-coco", str(ann), str(img), "--out", str(tmp_path / "o"),
                 "--slice-size", "0"]) == 2
    assert main(["slice-coco", str(tmp_path / "nope.json"), str(img), "--out",
                 str(tmp_path / "o")]) == 2
    assert main(["slice-coco", str(ann), str(img), "--out", str(tmp_path / "c"),
                 "--slice-size", "256", "--yolo", "--ignore-negative", "--quiet"]) == 0
    written = json.loads((tmp_path / "c" / "sliced_coco.json").read_text())
    assert written["images"] and (tmp_path / "c" / "data.yaml").is_file()
