"""
fissure's private C++ core. Use the public fissure package instead.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
class BatchFeeder:
    """
    Multi-buffered tile preprocessing: batch b + 1 is prepared in the background while the caller runs the model on batch b (buffers slot0, slot1, *more_slots used round-robin).
    """
    def __init__(self, image: numpy.ndarray, tiles: numpy.typing.NDArray[numpy.int64], slot0: numpy.ndarray, slot1: numpy.ndarray, batch_size: typing.SupportsInt | typing.SupportsIndex, input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str = 'resize', interpolation: str = 'linear', pad_value: typing.SupportsInt | typing.SupportsIndex = 114, rgb: bool = True, scale: typing.SupportsFloat | typing.SupportsIndex = 0.003921568859368563, mean: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"] = [0.0, 0.0, 0.0], std: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"] = [1.0, 1.0, 1.0], num_threads: typing.SupportsInt | typing.SupportsIndex = -1, more_slots: collections.abc.Sequence[numpy.ndarray] = []) -> None:
        ...
    def batch_count(self, b: typing.SupportsInt | typing.SupportsIndex) -> int:
        """
        Tiles in batch b.
        """
    def close(self) -> None:
        """
        Waits for background work and releases the image.
        """
    def start(self, b: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Starts batch b in the background (into slot b % num_slots).
        """
    def wait(self, b: typing.SupportsInt | typing.SupportsIndex) -> int:
        """
        Waits for batch b and returns its slot (b % num_slots).
        """
    @property
    def batch_size(self) -> int:
        ...
    @property
    def num_batches(self) -> int:
        ...
    @property
    def num_slots(self) -> int:
        ...
    @property
    def num_tiles(self) -> int:
        ...
def _float_to_half(x: numpy.typing.NDArray[numpy.float32]) -> numpy.typing.NDArray[numpy.uint16]:
    """
    Test hook: binary16 bits of each float32 (flattened), rounded to nearest even.
    """
def _kcenter_greedy_opts(features: numpy.ndarray, n: typing.SupportsInt | typing.SupportsIndex, start_index: typing.SupportsInt | typing.SupportsIndex = 0, num_threads: typing.SupportsInt | typing.SupportsIndex = -1, prune: typing.SupportsInt | typing.SupportsIndex = -1, k: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[numpy.typing.NDArray[numpy.int64], dict]:
    """
    Test hook: kcenter_greedy with the pruning forced on (1) or off (0) or chosen (-1) and the projected width k (0: chosen); returns (indices, stats). The selection is the same whatever they are.
    """
def _knn_bf16_available() -> bool:
    """
    Whether this CPU (and the SIMD cap) allows the bfloat16 first pass.
    """
def _knn_force_bf16(mode: str) -> str:
    """
    Test hook: the bfloat16 first pass of kNN searches: 'on' wherever the CPU has AVX512_BF16, 'off', or 'auto' (rows x width >= 50,000 x (k + 1), width >= 8, >= 64 queries, >= 256 rows); returns the previous mode.
    """
def _knn_force_simd(level: str) -> str:
    """
    Test hook: caps the kNN and k-center kernels at a SIMD level ('none' removes the cap); returns the previous cap.
    """
def _knn_search_stats(bank: numpy.ndarray, queries: numpy.ndarray, k: typing.SupportsInt | typing.SupportsIndex = 1, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    Test hook: knn_search and what it did: (D, I, {bf16_queries, fp32_queries, direct_queries}).
    """
def _parallel_selftest(n: typing.SupportsInt | typing.SupportsIndex, fail_at: typing.SupportsInt | typing.SupportsIndex = -1) -> int:
    ...
def _preprocess_force_simd(level: str) -> str:
    """
    Test hook: caps the preprocessing (resize, normalise) kernels at a SIMD level ('none' removes the cap); returns the previous cap.
    """
def _resize_u8(image: numpy.ndarray, out_h: typing.SupportsInt | typing.SupportsIndex, out_w: typing.SupportsInt | typing.SupportsIndex, interpolation: str = 'linear', num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.uint8]:
    """
    Test hook: the preprocessing kernel's uint8 resize alone, (out_h, out_w, 3).
    """
def _specular_force_simd(level: str) -> str:
    """
    Test hook: caps the specular kernels at a SIMD level ('none' removes the cap); returns the previous cap.
    """
def areas(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.int64]:
    """
    Set pixels per mask, (n,) int64.
    """
def auto_slice_params(height: typing.SupportsInt | typing.SupportsIndex, width: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, int, int]:
    """
    SAHI's get_auto_slice_params: (x_overlap, y_overlap, slice_width, slice_height).
    """
def build_info() -> dict:
    ...
def check_box_masks(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32]) -> None:
    """
    Checks the layout of a set of box-local masks; raises ValueError naming the problem.
    """
def coco_counts_from_string(s: bytes) -> numpy.typing.NDArray[numpy.int64]:
    """
    Run lengths (int64) of a COCO compressed counts string.
    """
def coco_counts_to_string(counts: numpy.typing.NDArray[numpy.int64]) -> bytes:
    """
    COCO's compressed counts string of int64 run lengths.
    """
def cpu_simd_level() -> str:
    """
    The best SIMD path this CPU supports.
    """
def crop_dense(planes: numpy.ndarray, src_regions: numpy.typing.NDArray[numpy.int32], shifts: numpy.typing.NDArray[numpy.int32] | None = None, threshold: typing.SupportsFloat | typing.SupportsIndex = 0.5, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    Crops dense planes to regions (plane coordinates) and shifts them: (data, offsets, regions).
    """
def decode_coco(counts: list, height: typing.SupportsInt | typing.SupportsIndex, width: typing.SupportsInt | typing.SupportsIndex, regions: numpy.typing.NDArray[numpy.int32] | None = None, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    Decodes COCO counts (bytes strings or int64 arrays) into box-local masks over regions, or tight regions when None: (data, offsets, regions).
    """
def decode_detr(boxes: numpy.typing.NDArray[numpy.float32], logits: numpy.typing.NDArray[numpy.float32], mask_logits: numpy.typing.NDArray[numpy.float32] | None, tiles: numpy.typing.NDArray[numpy.int64], input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str, conf_threshold: typing.SupportsFloat | typing.SupportsIndex, score: str, top_k: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    DETR-style boxes (B, Q, 4) normalised cxcywh, logits (B, Q, C), optional mask logits (B, Q, mh, mw) -> (boxes, scores, class_ids, tile_index, masks).
    """
def decode_end_to_end(output: numpy.typing.NDArray[numpy.float32], tiles: numpy.typing.NDArray[numpy.int64], input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str, conf_threshold: typing.SupportsFloat | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    End-to-end (B, K, 6) -> (boxes, scores, class_ids, tile_index, None).
    """
def decode_end_to_end_seg(output: numpy.typing.NDArray[numpy.float32], protos: numpy.typing.NDArray[numpy.float32], tiles: numpy.typing.NDArray[numpy.int64], input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str, conf_threshold: typing.SupportsFloat | typing.SupportsIndex, masks: bool, num_threads: typing.SupportsInt | typing.SupportsIndex = -1, crop: str = 'input', drop_empty: bool = True) -> tuple:
    """
    End-to-end seg (B, K, 6+M) and protos (B, M, mh, mw) -> (boxes, scores, class_ids, tile_index, masks).
    """
def decode_local_runs(counts: numpy.typing.NDArray[numpy.int64], run_offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    Decodes crop-scoped column-major runs (CSR) over their regions: (data, offsets, regions).
    """
def decode_probability_map(maps: numpy.typing.NDArray[numpy.float32], tiles: numpy.typing.NDArray[numpy.int64], input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str, threshold: typing.SupportsFloat | typing.SupportsIndex, box_threshold: typing.SupportsFloat | typing.SupportsIndex, min_area: typing.SupportsInt | typing.SupportsIndex, masks: bool, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    (B, H, W) float32 probability maps -> (boxes, scores, class_ids, tile_index, masks).
    """
def decode_yolo(output: numpy.typing.NDArray[numpy.float32], tiles: numpy.typing.NDArray[numpy.int64], input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str, channels_first: bool, conf_threshold: typing.SupportsFloat | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    YOLOv8/11 (B, 4+C, N) or (B, N, 4+C) -> (boxes, scores, class_ids, tile_index, None).
    """
def decode_yolo_seg(output: numpy.typing.NDArray[numpy.float32], protos: numpy.typing.NDArray[numpy.float32], tiles: numpy.typing.NDArray[numpy.int64], input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str, channels_first: bool, conf_threshold: typing.SupportsFloat | typing.SupportsIndex, masks: bool, num_threads: typing.SupportsInt | typing.SupportsIndex = -1, crop: str = 'input', drop_empty: bool = True) -> tuple:
    """
    YOLOv8/11-seg (B, 4+C+M, N) or (B, N, 4+C+M) and protos (B, M, mh, mw) -> (boxes, scores, class_ids, tile_index, masks).
    """
def decode_yolov5(output: numpy.typing.NDArray[numpy.float32], tiles: numpy.typing.NDArray[numpy.int64], input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str, conf_threshold: typing.SupportsFloat | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    YOLOv5 (B, N, 5+C) -> (boxes, scores, class_ids, tile_index, None).
    """
def decode_yolov5_seg(output: numpy.typing.NDArray[numpy.float32], protos: numpy.typing.NDArray[numpy.float32], tiles: numpy.typing.NDArray[numpy.int64], input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str, conf_threshold: typing.SupportsFloat | typing.SupportsIndex, masks: bool, num_threads: typing.SupportsInt | typing.SupportsIndex = -1, crop: str = 'input', drop_empty: bool = True) -> tuple:
    """
    YOLOv5-seg (B, N, 5+C+M) and protos (B, M, mh, mw) -> (boxes, scores, class_ids, tile_index, masks).
    """
def dense_tight_regions(planes: numpy.ndarray, threshold: typing.SupportsFloat | typing.SupportsIndex = 0.5, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.int32]:
    """
    Tight (n, 4) int32 regions x0, y0, w, h of dense planes; (0, 0, 0, 0) when empty.
    """
def dilate_disc(mask: numpy.ndarray, radius: typing.SupportsInt | typing.SupportsIndex, out: numpy.ndarray | None = None, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.ndarray:
    """
    (H, W) bool: a bool/uint8 mask dilated by OpenCV's MORPH_ELLIPSE disc of the radius.
    """
def disc_half_widths(radius: typing.SupportsInt | typing.SupportsIndex) -> list[int]:
    """
    Half-width of each row (dy = -r..r) of OpenCV's MORPH_ELLIPSE element of size 2r+1.
    """
def embed_patches(features: collections.abc.Sequence[numpy.ndarray], out_h: typing.SupportsInt | typing.SupportsIndex, out_w: typing.SupportsInt | typing.SupportsIndex, pool: typing.SupportsInt | typing.SupportsIndex = 3, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.float32]:
    """
    (B, out_h, out_w, sum C) float32: each (B, C, H, W) map average-pooled (pool x pool, zero padding counted) and resampled bilinearly (align_corners=False) to the grid.
    """
def encode_coco(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], height: typing.SupportsInt | typing.SupportsIndex, width: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> list:
    """
    COCO RLE dicts (compressed counts) over a (height, width) image, as pycocotools.mask.encode gives them.
    """
def encode_local_runs(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64]]:
    """
    Column-major runs of each mask over its own region, CSR: (counts int64, run_offsets int64).
    """
def encode_runs(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], height: typing.SupportsInt | typing.SupportsIndex, width: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64]]:
    """
    COCO column-major runs over a (height, width) image, CSR: (counts int64, run_offsets int64).
    """
def gather(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], index: numpy.typing.NDArray[numpy.int64], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    The masks at index, in that order: (data, offsets, regions).
    """
def glare_fraction_boxes(mask: numpy.ndarray, boxes: numpy.typing.NDArray[numpy.float32], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.float32]:
    """
    (n,) float32 fraction of each box's pixel region (clipped to the mask) that is set.
    """
def glare_fraction_masks(mask: numpy.ndarray, data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.float32]:
    """
    (n,) float32 fraction of each box-local mask's set pixels that are set in `mask`.
    """
def greedy_nmm(boxes: numpy.typing.NDArray[numpy.float32], scores: numpy.typing.NDArray[numpy.float32], class_ids: numpy.typing.NDArray[numpy.int64] | None = None, metric: str = 'ios', threshold: typing.SupportsFloat | typing.SupportsIndex = 0.5, match: str = 'ge', class_agnostic: bool = False, order: numpy.typing.NDArray[numpy.int64] | None = None, mask_data: numpy.typing.NDArray[numpy.uint8] | None = None, mask_offsets: numpy.typing.NDArray[numpy.int64] | None = None, mask_regions: numpy.typing.NDArray[numpy.int32] | None = None, mask_metric: bool = False, recheck: str = 'sahi', num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    -> (boxes (M,4) f32, scores (M,) f32, class_ids (M,) i64, keep (M,) i64, group_offsets (M+1,) i64, members (K,) i64, dropped (D,) i64, mask_data, mask_offsets, mask_regions) where the mask arrays are None unless masks were given.
    """
def hardware_threads() -> int:
    """
    Threads used for num_threads=-1 (FISSURE_NUM_THREADS overrides the core count).
    """
def kcenter_greedy(features: numpy.ndarray, n: typing.SupportsInt | typing.SupportsIndex, start_index: typing.SupportsInt | typing.SupportsIndex = 0, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.int64]:
    """
    (n,) int64 greedy k-center selection over (N, d) float32/float16 features.
    """
def knn_search(bank: numpy.ndarray, queries: numpy.ndarray, k: typing.SupportsInt | typing.SupportsIndex = 1, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64]]:
    """
    (D, I): the k nearest bank rows of each query in squared L2, as faiss IndexFlatL2.search: (nq, k) float32 ascending and (nq, k) int64 (-1 and FLT_MAX past the bank's size).
    """
def knn_simd_level() -> str:
    """
    The SIMD path the kNN and k-center kernels use now.
    """
def letterbox_params(tile_h: typing.SupportsInt | typing.SupportsIndex, tile_w: typing.SupportsInt | typing.SupportsIndex, input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex) -> tuple[float, int, int, int, int]:
    """
    Ultralytics letterbox geometry: (r, new_w, new_h, pad_x, pad_y).
    """
def nmm(boxes: numpy.typing.NDArray[numpy.float32], scores: numpy.typing.NDArray[numpy.float32], class_ids: numpy.typing.NDArray[numpy.int64] | None = None, metric: str = 'ios', threshold: typing.SupportsFloat | typing.SupportsIndex = 0.5, match: str = 'ge', class_agnostic: bool = False, order: numpy.typing.NDArray[numpy.int64] | None = None, mask_data: numpy.typing.NDArray[numpy.uint8] | None = None, mask_offsets: numpy.typing.NDArray[numpy.int64] | None = None, mask_regions: numpy.typing.NDArray[numpy.int32] | None = None, mask_metric: bool = False, recheck: str = 'sahi', num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    -> (boxes (M,4) f32, scores (M,) f32, class_ids (M,) i64, keep (M,) i64, group_offsets (M+1,) i64, members (K,) i64, dropped (D,) i64, mask_data, mask_offsets, mask_regions) where the mask arrays are None unless masks were given.
    """
def nms(boxes: numpy.typing.NDArray[numpy.float32], scores: numpy.typing.NDArray[numpy.float32], class_ids: numpy.typing.NDArray[numpy.int64] | None = None, metric: str = 'iou', threshold: typing.SupportsFloat | typing.SupportsIndex = 0.5, match: str = 'ge', class_agnostic: bool = False, order: numpy.typing.NDArray[numpy.int64] | None = None, mask_data: numpy.typing.NDArray[numpy.uint8] | None = None, mask_offsets: numpy.typing.NDArray[numpy.int64] | None = None, mask_regions: numpy.typing.NDArray[numpy.int32] | None = None, mask_metric: bool = False, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.int64]:
    """
    Kept indices (K,) int64 in SAHI's output order. Arrays: boxes (N,4) f32, scores (N,) f32, class_ids (N,) i64, order (N,) i64, masks as uint8 data, int64 offsets (N+1,), int32 regions (N,4).
    """
def opencv_hsv_saturation(v: typing.SupportsInt | typing.SupportsIndex, diff: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    OpenCV's 8-bit HSV saturation for V = v and diff = V - min.
    """
def paste_dense(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], out: numpy.ndarray, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> None:
    """
    ORs mask i into plane i of out, an (n, height, width) bool/uint8 array; clips.
    """
def preprocess_simd_level() -> str:
    """
    The SIMD path the preprocessing (resize, normalise) kernels use now.
    """
def preprocess_tiles(image: numpy.ndarray, tiles: numpy.typing.NDArray[numpy.int64], out: numpy.ndarray, input_h: typing.SupportsInt | typing.SupportsIndex, input_w: typing.SupportsInt | typing.SupportsIndex, mode: str = 'resize', interpolation: str = 'linear', pad_value: typing.SupportsInt | typing.SupportsIndex = 114, rgb: bool = True, scale: typing.SupportsFloat | typing.SupportsIndex = 0.003921568859368563, mean: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"] = [0.0, 0.0, 0.0], std: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"] = [1.0, 1.0, 1.0], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.ndarray:
    """
    Fills `out` (T, 3, input_h, input_w) float32/float16 with the tiles of an (H, W, 3) uint8 image, resized as cv2.resize, channel-swapped, (x * scale - mean) / std; returns `out`.
    """
def reframe(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], new_regions: numpy.typing.NDArray[numpy.int32], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple:
    """
    Moves each mask onto a new region (copying the overlap): (data, offsets, regions).
    """
def simd_level() -> str:
    """
    The SIMD path the core selected at run time (FISSURE_SIMD can lower it).
    """
def slice_grid(height: typing.SupportsInt | typing.SupportsIndex, width: typing.SupportsInt | typing.SupportsIndex, slice_height: typing.SupportsInt | typing.SupportsIndex, slice_width: typing.SupportsInt | typing.SupportsIndex, overlap_height: typing.SupportsInt | typing.SupportsIndex, overlap_width: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int64]:
    """
    Tile boxes (T, 4) int64 xyxy; overlaps in pixels.
    """
def specular_mask(image: numpy.ndarray, v_min: typing.SupportsInt | typing.SupportsIndex = 240, s_max: typing.SupportsInt | typing.SupportsIndex = 30, dilate: typing.SupportsInt | typing.SupportsIndex = 0, out: numpy.ndarray | None = None, num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.ndarray:
    """
    (H, W) bool glare mask of an (H, W, 3) uint8 BGR/RGB or (H, W) gray image: V > v_min and S < s_max in OpenCV's 8-bit HSV, dilated by a disc of radius `dilate`.
    """
def specular_simd_level() -> str:
    """
    The SIMD path the specular kernels use now.
    """
def specular_threshold_table(v_min: typing.SupportsInt | typing.SupportsIndex, s_max: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.uint8]:
    """
    (256,) uint8 T: a pixel with V = v, diff = V - min is glare iff diff < T[v].
    """
def tight_bounds(data: numpy.typing.NDArray[numpy.uint8], offsets: numpy.typing.NDArray[numpy.int64], regions: numpy.typing.NDArray[numpy.int32], num_threads: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.int32]:
    """
    Tight xyxy (exclusive ends) int32 bounds of the set pixels; empty -> (x0, y0, x0, y0).
    """
__version__: str = '0.1.0'
