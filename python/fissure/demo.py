"""``fissure demo``: the built-in example.

Generates the tile predictions a detector would make on a 6000x4000 inspection photo (small
defects seen by several overlapping 640-px tiles, with jittered duplicates), merges them
with SAHI's default postprocess (greedy NMM, IOS 0.5, per class), checks the merged
detections against the planted defects, and prints what it did.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

__all__ = ["add_parser", "make_tile_predictions", "run_demo"]


def make_tile_predictions(
    height: int = 4000,
    width: int = 6000,
    n_defects: int = 400,
    slice_size: int = 640,
    overlap: float = 0.2,
    n_classes: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """Planted defects and what a tiled detector reports for them.

    Every tile that fully contains a defect reports it with a few pixels of jitter and a
    tile-dependent score; a defect cut by a tile border is reported by that tile clipped to
    the tile (a partial box), as real tiled detectors do.
    """
    from .tiling import slice_grid

    rng = np.random.default_rng(seed)
    tiles = slice_grid(height, width, slice_size, slice_size, overlap, overlap)
    wh = rng.uniform(8, 60, size=(n_defects, 2))
    xy = rng.uniform(0, 1, size=(n_defects, 2)) * (np.array([width, height]) - wh)
    truth = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    truth_cls = rng.integers(0, n_classes, size=n_defects)
    boxes, scores, cls, tile_of = [], [], [], []
    for t, (tx0, ty0, tx1, ty1) in enumerate(tiles):
        ix0 = np.maximum(truth[:, 0], tx0)
        iy0 = np.maximum(truth[:, 1], ty0)
        ix1 = np.minimum(truth[:, 2], tx1)
        iy1 = np.minimum(truth[:, 3], ty1)
        seen = (ix1 - ix0 > 4) & (iy1 - iy0 > 4)
        k = int(seen.sum())
        if not k:
            continue
        b = np.stack([ix0[seen], iy0[seen], ix1[seen], iy1[seen]], axis=1)
        b = b + rng.normal(0, 1.5, size=b.shape)
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], tx0, tx1)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], ty0, ty1)
        boxes.append(b)
        scores.append(rng.uniform(0.3, 0.95, size=k))
        cls.append(truth_cls[seen])
        tile_of.append(np.full(k, t))
    return {
        "image_shape": (height, width),
        "tiles": tiles,
        "truth_boxes": truth,
        "truth_class_ids": truth_cls,
        "boxes": np.concatenate(boxes).astype(np.float32),
        "scores": np.concatenate(scores).astype(np.float32),
        "class_ids": np.concatenate(cls).astype(np.int64),
        "tile_index": np.concatenate(tile_of),
    }


def _match(pred: np.ndarray, truth: np.ndarray, thr: float = 0.5) -> int:
    """Planted defects recovered by some merged box with IoU >= thr (greedy, one-to-one)."""
    if len(pred) == 0 or len(truth) == 0:
        return 0
    x0 = np.maximum(pred[:, None, 0], truth[None, :, 0])
    y0 = np.maximum(pred[:, None, 1], truth[None, :, 1])
    x1 = np.minimum(pred[:, None, 2], truth[None, :, 2])
    y1 = np.minimum(pred[:, None, 3], truth[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    ap = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    at = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    iou = inter / (ap[:, None] + at[None, :] - inter)
    used = np.zeros(len(truth), bool)
    found = 0
    for i in np.argsort(-iou.max(axis=1)):
        j = int(np.argmax(np.where(used, -1, iou[i])))
        if iou[i, j] >= thr and not used[j]:
            used[j] = True
            found += 1
    return found


def run_demo(seed: int = 0, n_defects: int = 400, num_threads: int = -1) -> dict[str, Any]:
    """Runs the example and returns a report (what ``fissure demo`` prints)."""
    from .merge import greedy_nmm, nms

    data = make_tile_predictions(n_defects=n_defects, seed=seed)
    t0 = time.perf_counter()
    merged = greedy_nmm(
        data["boxes"], data["scores"], data["class_ids"],
        threshold=0.5, metric="ios", num_threads=num_threads,
    )
    t_merge = time.perf_counter() - t0
    t0 = time.perf_counter()
    kept = nms(data["boxes"], data["scores"], data["class_ids"], threshold=0.5, metric="iou",
               num_threads=num_threads)
    t_nms = time.perf_counter() - t0
    truth = data["truth_boxes"]
    return {
        "image": f"{data['image_shape'][1]}x{data['image_shape'][0]}",
        "tiles": len(data["tiles"]),
        "planted_defects": len(truth),
        "tile_predictions": len(data["boxes"]),
        "greedy_nmm": {
            "detections": len(merged),
            "recovered_iou50": _match(merged.boxes, truth),
            "seconds": t_merge,
        },
        "nms": {
            "detections": len(kept),
            "recovered_iou50": _match(data["boxes"][kept], truth),
            "seconds": t_nms,
        },
    }


def _cmd_demo(args: argparse.Namespace) -> int:
    r = run_demo(seed=args.seed, n_defects=args.defects, num_threads=args.threads)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"fissure demo: {r['planted_defects']} small defects planted on a {r['image']} image")
    print(f"  {r['tiles']} tiles of 640 px (overlap 0.2) reported {r['tile_predictions']} "
          "predictions (defects seen by several tiles, some cut by tile borders)")
    g, n = r["greedy_nmm"], r["nms"]
    print(f"  greedy NMM (IOS 0.5, per class): {g['detections']} detections, "
          f"{g['recovered_iou50']}/{r['planted_defects']} defects recovered at IoU>=0.5, "
          f"{g['seconds'] * 1e3:.1f} ms")
    print(f"  NMS (IOU 0.5, per class):        {n['detections']} detections, "
          f"{n['recovered_iou50']}/{r['planted_defects']} defects recovered at IoU>=0.5, "
          f"{n['seconds'] * 1e3:.1f} ms")
    print("  merging rejoins defects cut by tile borders; NMS keeps the partial boxes.")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="merge a built-in example of tiled predictions and report")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--defects", type=int, default=400, help="number of planted defects")
    p.add_argument("--threads", type=int, default=-1, help="-1 = all cores")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_demo)
