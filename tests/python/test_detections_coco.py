"""Detections.to_coco and coco_dataset against pycocotools: RLE decoded by pycocotools equals
the dense masks, areas equal pycocotools' areas, and COCOeval scores perfect predictions 1."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from fissure import BoxMasks, Detections
from oracles import mask_reference as ref
from fissure.detection.detections import coco_dataset

mask_api = pytest.importorskip("pycocotools.mask")


def box_crop(full: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Numpy oracle: each full mask keeps only its box's pixel region (floor/ceil, clipped)."""
    out = np.zeros_like(full)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(np.float64)):
        xa, ya = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        xb, yb = min(int(np.ceil(x2)), full.shape[2]), min(int(np.ceil(y2)), full.shape[1])
        if xa < xb and ya < yb:
            out[i, ya:yb, xa:xb] = full[i, ya:yb, xa:xb]
    return out


def make(rng: np.random.Generator, n: int, H: int, W: int, names=("crack", "pit", "scratch")):
    full = ref.random_full_masks(rng, n, H, W)
    boxes = np.clip(ref.random_boxes_for(rng, full), 0, [W, H, W, H]).astype(np.float32)
    d = Detections(boxes, rng.uniform(0.05, 1, n), rng.integers(0, len(names), n),
                   BoxMasks.from_full(full, boxes), list(names))
    return d, box_crop(full, boxes)


@pytest.mark.parametrize(("H", "W"), [(1, 1), (37, 53), (64, 40)])
def test_segmentation_decodes_to_the_dense_masks(rng: np.random.Generator, H: int, W: int) -> None:
    d, dense = make(rng, 30, H, W)
    anns = d.to_coco(image_id=7, start_id=100)
    assert len(anns) == len(d)
    anns = json.loads(json.dumps(anns))  # JSON-serialisable, and still right after a round trip
    for i, a in enumerate(anns):
        assert a["id"] == 100 + i and a["image_id"] == 7 and a["iscrowd"] == 0
        assert a["category_id"] == int(d.class_ids[i])
        seg = a["segmentation"]
        assert seg["size"] == [H, W] and isinstance(seg["counts"], str)
        rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        np.testing.assert_array_equal(mask_api.decode(rle).astype(bool), dense[i])
        assert a["area"] == float(mask_api.area(rle)) == float(dense[i].sum())
        want = mask_api.encode(np.asfortranarray(dense[i].astype(np.uint8)))
        assert seg["counts"] == want["counts"].decode("ascii")
        x1, y1, x2, y2 = d.boxes[i].astype(np.float64)
        assert a["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        assert a["score"] == float(d.scores[i])


def test_boxes_only_and_category_map(rng: np.random.Generator) -> None:
    d, _ = make(rng, 5, 20, 30)
    d = d._replace(masks=None)
    anns = d.to_coco(category_ids={0: 11, 1: 12, 2: 13}, iscrowd=1)
    for a, b, c in zip(anns, d.boxes.astype(np.float64), d.class_ids):
        assert "segmentation" not in a and a["iscrowd"] == 1
        assert a["category_id"] == 11 + int(c)
        assert a["area"] == pytest.approx((b[2] - b[0]) * (b[3] - b[1]))
    json.dumps(anns)
    with pytest.raises(ValueError, match="no category for class ids"):
        d.to_coco(category_ids={0: 1})
    with pytest.raises(TypeError, match="category_ids"):
        d.to_coco(category_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="iscrowd"):
        d.to_coco(iscrowd=2)
    with pytest.raises(TypeError, match="image_id"):
        d.to_coco(image_id=1.5)
    assert Detections.empty().to_coco() == []


def test_masks_without_image_shape_are_refused() -> None:
    m = BoxMasks.from_crops([[0, 0, 2, 2]], [np.ones((2, 2), bool)])
    with pytest.raises(ValueError, match="image_shape"):
        Detections([[0, 0, 2, 2]], [1.0], [0], m).to_coco()


def test_dataset_loads_in_pycocotools_and_perfect_results_score_one(
    rng: np.random.Generator,
) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sets, _denses = zip(*[make(rng, n, 60, 80, ("a", "b")) for n in (12, 9)])
    # keep detections big enough for COCO's area ranges, and non-empty masks
    sets = [d[(d.area > 0) & (d.box_area > 4)] for d in sets]
    ds = coco_dataset(["one.png", {"file_name": "two.png", "id": 42}], sets)
    ds = json.loads(json.dumps(ds))
    assert [im["id"] for im in ds["images"]] == [1, 42]
    assert ds["images"][0] == {"file_name": "one.png", "id": 1, "height": 60, "width": 80}
    assert ds["categories"] == [{"id": 0, "name": "a", "supercategory": ""},
                                {"id": 1, "name": "b", "supercategory": ""}]
    assert [a["id"] for a in ds["annotations"]] == list(range(1, 1 + sum(map(len, sets))))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ds
        gt.createIndex()
        for a in ds["annotations"]:
            d = sets[0] if a["image_id"] == 1 else sets[1]
            k = a["id"] - 1 if a["image_id"] == 1 else a["id"] - 1 - len(sets[0])
            np.testing.assert_array_equal(gt.annToMask(a).astype(bool),
                                          d.masks.to_full()[k])
        results = [r for d, im in zip(sets, (1, 42)) for r in d.to_coco(im)]
        for r in results:
            del r["id"]
        for iou in ("segm", "bbox"):
            ev = COCOeval(gt, gt.loadRes(results), iou)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0)


def test_dataset_arguments() -> None:
    d = Detections([[0, 0, 2, 2]], [1.0], [3], image_shape=(5, 6))
    ds = coco_dataset([{"file_name": "x"}], [d], {3: "dent", 4: "unused"},
                      category_ids={3: 1, 4: 2})
    assert ds["categories"] == [{"id": 1, "name": "dent", "supercategory": ""},
                                {"id": 2, "name": "unused", "supercategory": ""}]
    assert ds["annotations"][0]["category_id"] == 1
    assert coco_dataset(["x"], [d])["categories"] == [{"id": 3, "name": "3", "supercategory": ""}]
    with pytest.raises(ValueError, match="one per image"):
        coco_dataset(["a", "b"], [d])
    with pytest.raises(ValueError, match="do not match"):
        coco_dataset([{"file_name": "x", "width": 7, "height": 5}], [d])
    with pytest.raises(TypeError, match="file name or a dict"):
        coco_dataset([3], [d])
    with pytest.raises(ValueError, match="no category"):
        coco_dataset(["x"], [d], category_ids={0: 1})
