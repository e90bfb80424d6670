"""``fissure anomaly fit``, ``predict`` and ``update``: PatchCore from the command line.

``fit`` learns a memory bank from defect-free images and writes it atomically (safetensors);
``update`` adds images or crops a person confirmed normal (false alarms) to a bank and writes
the grown, recalibrated bank atomically to a new file;
``predict`` scores images against a bank, or with an anomalib export (``.onnx`` / ``.xml``,
run tiled by :class:`fissure.anomaly.AnomalyModel`), and writes, per image, a JSON result and
a heatmap overlay, plus a ``summary.json``. Unreadable images are reported and skipped. Exit statuses:
0 all went well, 1 some inputs were skipped, 2 nothing could be done (bad options, an
input matching no file, a missing, corrupt or foreign bank). See docs/anomaly_cli.md.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_parser", "cmd_fit", "cmd_predict", "cmd_update"]

from ._common import (Images, add_overlay_format, add_run_args, add_runtime_args, error,
                      is_runtime_error, no_inputs, one_line, run_job)
from ..specular import glare_warning



def _finite_nonneg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


#: the files ``predict`` takes as an anomalib export rather than a memory bank
MODEL_SUFFIXES = (".onnx", ".xml")



def _setup_error(exc: BaseException) -> bool:
    """An error opening a bank or a backbone that ends the command with exit 2 (a bad file, a
    missing runtime, a device that is not there), not a bug."""
    from ..backends import BackendNotInstalledError

    return isinstance(exc, (OSError, BackendNotInstalledError)) or is_runtime_error(exc)


class _Feed:
    """The normal images of ``fit`` / ``update`` as the arrays PatchCore takes, counting the
    ones used: ``skip`` (PatchCore's ``on_error``) reports an image that failed and leaves it
    out (or re-raises when the run must stop); ``read_all`` once the stream is exhausted;
    ``warn(path, image)`` is called on each image before it is handed over."""

    def __init__(self, images: Images, stream: Iterator[tuple[Any, Path, np.ndarray]],
                 warn: Any = None) -> None:
        self.images, self.stream, self.warn = images, stream, warn
        self.used, self.read_all = 0, False
        self.current: Path | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, path, image in self.stream:
            self.current = path
            self.used += 1
            if self.warn is not None:
                self.warn(path, image)
            yield image
        self.read_all = True

    def skip(self, _image: Any, exc: Exception) -> None:
        if self.current is None or not self.images.fail(self.current, exc):
            raise exc
        self.used -= 1


def cmd_fit(args: argparse.Namespace) -> int:
    """``fissure anomaly fit``: reads the normal images, fits PatchCore and saves the bank.

    Returns the exit status: 0, 1 when some images were unreadable and skipped, 2 when none
    could be read or the options are invalid.
    """
    from ..anomaly import PatchCore

    out = Path(args.out)
    if out.is_dir():
        return error(f"--out: expected a memory-bank file name, got the folder {out}")
    images = Images(args.normals, "fit", args.quiet)
    if not images.paths:
        return no_inputs()
    t0 = time.perf_counter()
    pc = PatchCore(
        args.backbone, coreset_ratio=args.coreset_ratio, num_neighbors=args.neighbors,
        tile_size=None if args.no_tile else args.tile_size, overlap_ratio=args.overlap_ratio,
        input_size=args.input_size, scoring=args.scoring, specular=args.specular,
        intensity=None if args.intensity == "none" else args.intensity,
        specular_dilate=args.specular_dilate, threshold_margin=args.threshold_margin,
        bank_dtype=args.bank_dtype, backend=args.backend, device=args.device,
        num_threads=args.threads)
    try:
        pc.model  # noqa: B018  an unusable backbone or device: refused before any image is read
    except Exception as exc:
        if not _setup_error(exc):
            raise
        return error(f"cannot use the backbone: {one_line(exc)}")
    stream = iter(images)
    first = next(stream, None)
    if first is None:
        return error(f"none of the {len(images.paths)} normal image(s) could be read; "
                      "nothing to fit")
    def warn(path: Path, image: np.ndarray) -> None:
        line = None if args.specular else glare_warning(
            path, image, "--specular mask (when fitting; stored in the bank)", args.threads)
        if line:
            images.bar.write(line, file=sys.stderr)

    feed = _Feed(images, itertools.chain([first], stream), warn)
    try:
        pc.fit(feed, on_error=feed.skip)
    except Exception as exc:
        if not is_runtime_error(exc):
            raise
        return error(f"fit failed ({type(exc).__name__}: {one_line(exc)})")
    pc.save(out)
    dt = time.perf_counter() - t0
    st = pc.stats
    bank = pc.bank
    assert bank is not None
    print(f"fissure anomaly fit: {feed.used} image(s), {st.get('train_patches', '?')} patches -> "
          f"bank {bank.shape[0]} x {bank.shape[1]} ({bank.dtype.name}), thresholds: pixel "
          f"{pc.threshold:.4g}, image {pc.image_threshold:.4g}; {dt:.1f} s; written to {out}"
          + (f"; {len(images.skipped)} skipped" if images.skipped else ""))
    return 1 if images.skipped else 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``fissure anomaly predict``: scores images against a memory bank; writes per image
    ``NAME.json`` and ``NAME_heatmap.jpg`` (or ``.png``) and a ``summary.json``.

    Returns the exit status: 0, 1 when some images were skipped, 2 when the bank cannot be
    used or there is no input.
    """
    from ..jobs import AnomalyJob

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return error(f"--out: expected a folder, got the file {out}")
    is_model = Path(args.bank).suffix.lower() in MODEL_SUFFIXES
    if is_model and args.backbone is not None:
        return error("--backbone: only for a PatchCore memory bank; an anomalib export "
                     f"({args.bank}) holds its own backbone")
    if not is_model and (args.tile_size is not None or args.overlap_ratio is not None):
        return error("--tile-size / --overlap-ratio: only for an anomalib export (.onnx, "
                     ".xml); a memory bank keeps the tiling it was fitted with")
    inputs = Images(args.inputs, "predict", args.quiet)
    if not inputs.paths:
        return no_inputs()
    overrides: dict[str, Any] = {}
    if args.specular is not None:  # otherwise as the bank says (a model: off)
        overrides["specular"] = None if args.specular == "off" else args.specular
    if args.specular_dilate is not None:
        overrides["specular_dilate"] = args.specular_dilate
    options: dict[str, Any] = dict(backend=args.backend, device=args.device,
                                   num_threads=args.threads, **overrides)
    if is_model:
        if args.tile_size is not None:
            options["tile_size"] = args.tile_size
        if args.overlap_ratio is not None:
            options["overlap_ratio"] = args.overlap_ratio
    elif args.backbone is not None:
        options["backbone"] = args.backbone
    job = AnomalyJob(args.bank, threshold=args.threshold, image_threshold=args.image_threshold,
                     overlay=not args.no_overlay, overlay_format=args.overlay_format, **options)
    try:
        job.open()
    except Exception as exc:
        if not _setup_error(exc) and not (is_model and isinstance(exc, (ValueError, TypeError))):
            raise
        what = "the anomalib export" if is_model else "the memory bank"
        return error(f"cannot use {what}: {one_line(exc)}")
    return run_job(job, inputs, args, out)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def cmd_update(args: argparse.Namespace) -> int:
    """``fissure anomaly update``: adds confirmed-normal images or crops to a memory bank
    (:meth:`fissure.anomaly.PatchCore.update`) and writes the grown bank to ``--out``.

    Returns the exit status: 0, 1 when some images were unreadable or unusable (a crop
    smaller than 32 pixels) and skipped, 2 when the bank cannot be used, no image could be
    used, ``--out`` is the bank itself without ``--force``, or the options are invalid.
    """
    from ..anomaly import PatchCore

    out, src = Path(args.out), Path(args.bank)
    if out.is_dir():
        return error(f"--out: expected a memory-bank file name, got the folder {out}")
    if _same_file(src, out) and not args.force:
        return error(f"--out {out} is the bank being updated; write the updated bank to a new "
                     "file (keep the old one to go back to), or pass --force to replace it")
    if args.coreset_ratio is not None and not 0.0 < args.coreset_ratio <= 1.0:
        return error(f"--coreset-ratio: expected a number in (0, 1], got {args.coreset_ratio}")
    images = Images(args.normal, "update", args.quiet)
    if not images.paths:
        return no_inputs()
    t0 = time.perf_counter()
    try:
        pc = PatchCore.load(src, args.backbone, backend=args.backend, device=args.device,
                            num_threads=args.threads)
        pc.model  # noqa: B018  the bank's layers, the backbone, the device: before any image
    except Exception as exc:
        if not _setup_error(exc):
            raise
        return error(f"cannot use the memory bank: {one_line(exc)}")
    feed = _Feed(images, iter(images))
    try:
        pc.update(feed, coreset_ratio=args.coreset_ratio, on_error=feed.skip)
    except Exception as exc:
        if not is_runtime_error(exc):
            raise
        if feed.read_all and feed.used == 0:
            return error(f"none of the {len(images.paths)} normal image(s) could be used; "
                         "the bank was not updated")
        return error(f"update failed ({type(exc).__name__}: {one_line(exc)})")
    pc.save(out)
    dt = time.perf_counter() - t0
    st = pc.stats
    print(f"fissure anomaly update: {feed.used} image(s), {st['new_tiles']} tile(s), "
          f"{st['new_patches']} patches -> bank {st['bank_size_before']} -> {st['bank_size']} "
          f"rows, thresholds: pixel {st['threshold_before']:.4g} -> {pc.threshold:.4g}, image "
          f"{st['image_threshold_before']:.4g} -> {pc.image_threshold:.4g}; {dt:.1f} s; "
          f"written to {out}" + (f"; {len(images.skipped)} skipped" if images.skipped else ""))
    return 1 if images.skipped else 0


def add_parser(sub: Any) -> None:
    """Registers ``fissure anomaly fit|predict|update`` on the ``fissure`` command's subparsers."""
    p = sub.add_parser("anomaly", help="PatchCore anomaly detection: fit a memory bank on "
                       "normal images, predict heatmaps and defect regions",
                       description="PatchCore anomaly detection, trained on defect-free images.")
    acts = p.add_subparsers(dest="anomaly_command", metavar="ACTION")
    acts.required = True

    f = acts.add_parser("fit", help="learn a memory bank from normal (defect-free) images")
    f.add_argument("normals", nargs="+", metavar="NORMAL", help="image files, folders or globs")
    f.add_argument("--out", required=True, help="memory-bank file to write (.safetensors)")
    f.add_argument("--backbone", default=None,
                   help="ONNX backbone with feat8/feat16 outputs (default: the bundled "
                        "EfficientNet-Lite0)")
    f.add_argument("--coreset-ratio", type=float, default=0.01,
                   help="fraction of training patches kept in the bank (default 0.01; raise "
                        "it for few small images, see docs/anomaly_cli.md)")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--tile-size", type=int, default=512,
                   help="tile size in pixels; images are cut at native resolution (default 512)")
    g.add_argument("--no-tile", action="store_true", help="each image is one tile")
    f.add_argument("--overlap-ratio", type=float, default=0.25, help="tile overlap ratio (default 0.25)")
    f.add_argument("--input-size", type=int, default=None, metavar="N",
                   help="resize each tile to N x N before the backbone (default: native)")
    f.add_argument("--intensity", choices=["standardize", "none"], default="standardize",
                   help="standardize (default): each image mapped to mean 128, std 48 before "
                        "the backbone, so exposure that varies from shot to shot is not an "
                        "anomaly; none: the pixels as they come, where a change of the whole "
                        "image's brightness is itself a defect (stored in the bank)")
    f.add_argument("--neighbors", type=int, default=9,
                   help="b of anomalib's image-score reweighting (default 9)")
    f.add_argument("--scoring", choices=["anomalib", "max"], default="anomalib",
                   help="image score: anomalib's reweighted (default) or the plain maximum")
    f.add_argument("--specular", choices=["mask"], default=None,
                   help="predict with glare suppressed: patches touching glare score 0 and the "
                        "map is 0 under glare (stored in the bank)")
    f.add_argument("--specular-dilate", type=int, default=40, metavar="PX",
                   help="grow the glare mask by this radius (default 40; stored in the bank)")
    f.add_argument("--threshold-margin", type=float, default=0.25, metavar="M",
                   help="thresholds = largest held-out normal value x (1 + M) (default 0.25)")
    f.add_argument("--bank-dtype", choices=["float32", "float16"], default="float32")
    add_runtime_args(f)
    f.set_defaults(func=cmd_fit)

    q = acts.add_parser("predict", help="score images against a memory bank or with an "
                        "anomalib export: JSON and heatmaps")
    q.add_argument("bank", metavar="MODEL_OR_BANK",
                   help="memory-bank file written by 'fissure anomaly fit' (.safetensors), or "
                        "an anomalib export (.onnx, or OpenVINO IR .xml with its .bin)")
    q.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--backbone", default=None,
                   help="the backbone the bank was built with (default: the bundled one)")
    q.add_argument("--threshold", type=_finite_nonneg, default=None,
                   help="pixel threshold of the defect mask (default: the bank's calibrated one, "
                        "or the export's)")
    q.add_argument("--image-threshold", type=_finite_nonneg, default=None,
                   help="image-score threshold for is_anomalous (default: the bank's or the "
                        "export's)")
    q.add_argument("--specular", choices=["mask", "off"], default=None,
                   help="glare suppression on or off (default: as the bank was fitted; off "
                        "for an anomalib export)")
    q.add_argument("--specular-dilate", type=int, default=None, metavar="PX",
                   help="grow the glare mask by this radius (default: the bank's; 40 for an "
                        "anomalib export)")
    q.add_argument("--tile-size", type=int, default=None, metavar="N",
                   help="anomalib export only: N x N tiles (default: the model's input size)")
    q.add_argument("--overlap-ratio", type=float, default=None, metavar="R",
                   help="anomalib export only: tile overlap ratio (default 0.25)")
    q.add_argument("--no-overlay", action="store_true", help="write JSON only")
    add_overlay_format(q)
    add_runtime_args(q)
    add_run_args(q)
    q.set_defaults(func=cmd_predict)

    u = acts.add_parser("update", help="add images or crops a person confirmed normal (false "
                        "alarms) to a memory bank: the feedback loop")
    u.add_argument("bank", metavar="BANK", help="memory-bank file to update (.safetensors)")
    u.add_argument("--normal", nargs="+", required=True, metavar="NORMAL",
                   help="confirmed-normal image files, crops (>= 32 x 32 pixels), folders or "
                        "globs")
    u.add_argument("--out", required=True,
                   help="the updated memory-bank file to write (not BANK itself unless --force)")
    u.add_argument("--force", action="store_true",
                   help="allow --out to be BANK: replace it (atomically) with the updated bank")
    u.add_argument("--coreset-ratio", type=float, default=None,
                   help="fraction of the new patches added to the bank (default: the bank's "
                        "own ratio)")
    u.add_argument("--backbone", default=None,
                   help="the backbone the bank was built with (default: the bundled one)")
    add_runtime_args(u)
    u.set_defaults(func=cmd_update)
