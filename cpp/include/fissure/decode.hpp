// SPDX-License-Identifier: Apache-2.0
/// @file decode.hpp
/// @brief Output decoders: turn a batch of model outputs (one batch item per tile) into
///        detections in image coordinates. Every decoder undoes the tile's letterbox or resize,
///        clips to the tile, drops boxes with no area after clipping and keeps
///        `score >= conf_threshold`. Results are ordered by tile, then by the decoder's own
///        candidate order (anchor / query / component index). NaN in an output throws.
#pragma once

#include <cstdint>
#include <vector>

#include "fissure/common.hpp"
#include "fissure/masks.hpp"
#include "fissure/preprocess.hpp"

namespace fissure {

/// How batch item t of a model output maps back to the image: tile t is
/// tiles[4t .. 4t+4) = x0, y0, x1, y1 (int64), preprocessed into (input_h, input_w) with `mode`.
struct DecodeGeometry {
    const std::int64_t* tiles = nullptr;
    index_t n = 0;
    int input_h = 640;
    int input_w = 640;
    ResizeMode mode = ResizeMode::resize;
};

/// Model-pixel -> image-pixel transform of one tile:
/// x_img = (x - pad_x) / rx + x0, y_img = (y - pad_y) / ry + y0 (double precision).
struct TileTransform {
    double rx = 1.0, ry = 1.0;
    double pad_x = 0.0, pad_y = 0.0;
    double x0 = 0.0, y0 = 0.0, x1 = 0.0, y1 = 0.0;  ///< the tile, for clipping
};

/// The transform of tile t (letterbox uses letterbox_params; resize uses input/tile per axis;
/// none is a pure shift). Throws InvalidArgument for an empty tile.
TileTransform tile_transform(const DecodeGeometry& g, index_t t);

/// Decoded detections of a whole batch (owning).
struct Decoded {
    std::vector<float> boxes;  ///< 4 per detection, xyxy, image coordinates
    std::vector<float> scores;
    std::vector<std::int64_t> class_ids;
    std::vector<std::int64_t> tile_index;
    bool has_masks = false;
    BoxMasks masks;  ///< box-local, in image pixels, when has_masks
    index_t size() const { return static_cast<index_t>(scores.size()); }
};

struct ProbMapParams {
    float threshold = 0.3f;      ///< a pixel is foreground when p > threshold
    float box_threshold = 0.5f;  ///< a component is kept when mean p >= box_threshold
    index_t min_area = 1;        ///< components with fewer map pixels are dropped
    bool masks = true;           ///< emit a box-local mask per component
};

/// DBNet-style probability maps: `maps` is (B, H, W) float32, C-contiguous. Each map is
/// binarised (p > threshold) and labelled with 8-connectivity; each component gives the box of
/// its pixels ([min, max + 1) in map pixels, scaled to the model input by input/map size),
/// score = mean probability over the component, class 0 and, when asked, a mask over the
/// image pixels of its box (each image pixel takes the label of the map pixel under its
/// centre). Components are ordered by their first pixel in raster order.
Decoded decode_probability_map(const float* maps, index_t batch, index_t h, index_t w,
                               const DecodeGeometry& g, const ProbMapParams& p,
                               int num_threads = -1);

/// YOLOv8 / YOLO11 detection: (B, 4 + C, N) when `channels_first`, else (B, N, 4 + C);
/// cx, cy, w, h in model pixels, then C class scores; score = max, class = first argmax.
Decoded decode_yolo(const float* out, index_t batch, index_t dims, index_t n, bool channels_first,
                    const DecodeGeometry& g, float conf_threshold, int num_threads = -1);

/// End-to-end (B, K, 6): x1, y1, x2, y2 (model pixels), score, class.
Decoded decode_end_to_end(const float* out, index_t batch, index_t k, const DecodeGeometry& g,
                          float conf_threshold, int num_threads = -1);

/// YOLOv5 (B, N, 5 + C): cx, cy, w, h, objectness, C class scores;
/// score = max over classes of objectness * class score, class = first argmax.
Decoded decode_yolov5(const float* out, index_t batch, index_t n, index_t dims,
                      const DecodeGeometry& g, float conf_threshold, int num_threads = -1);

/// Mask prototypes of a segmentation model, (B, M, mh, mw) float32 C-contiguous: batch item b's
/// prototype k is protos[((b * M + k) * mh) * mw ...].
struct ProtoView {
    const float* data = nullptr;
    index_t m = 0, h = 0, w = 0;
};

/// YOLOv8 / YOLO11 segmentation: `out` is (B, 4 + C + M, N) when `channels_first`, else
/// (B, N, 4 + C + M): cx, cy, w, h (model pixels), C class scores, M mask coefficients; score =
/// max class score, class = first argmax. With `masks`, each kept detection gets a box-local
/// mask with Ultralytics' process_mask(upsample=True) semantics, evaluated only where needed:
/// logits = coefficients . protos (float32, k ascending), zeroed outside the box scaled to proto
/// pixels (proto pixel p kept when x1 * mw / input_w <= p < x2 * mw / input_w, per axis),
/// upsampled bilinearly (align_corners=False, OpenCV/PyTorch sampling) to the model input, set
/// where > 0; each image pixel of the detection's region takes the value of the model-input
/// pixel under its centre (0 outside the input).
Decoded decode_yolo_seg(const float* out, index_t batch, index_t dims, index_t n,
                        bool channels_first, const ProtoView& protos, const DecodeGeometry& g,
                        float conf_threshold, bool masks, int num_threads = -1,
                        bool crop_input = true, bool drop_empty = true);

/// YOLOv5 segmentation: `out` is (B, N, 5 + C + M): cx, cy, w, h, objectness, C class scores,
/// M mask coefficients; score = max of objectness * class score; masks as decode_yolo_seg.
Decoded decode_yolov5_seg(const float* out, index_t batch, index_t n, index_t dims,
                          const ProtoView& protos, const DecodeGeometry& g, float conf_threshold,
                          bool masks, int num_threads = -1, bool crop_input = true,
                          bool drop_empty = true);

/// End-to-end segmentation (YOLO26-seg): `out` is (B, K, 6 + M): x1, y1, x2, y2, score, class
/// (model-input pixels), then M mask coefficients; masks as decode_yolo_seg.
Decoded decode_end_to_end_seg(const float* out, index_t batch, index_t k, index_t dims,
                              const ProtoView& protos, const DecodeGeometry& g,
                              float conf_threshold, bool masks, int num_threads = -1,
                              bool crop_input = true, bool drop_empty = true);

enum class DetrScore {
    sigmoid,  ///< p = sigmoid(logit) per class (RF-DETR, Deformable DETR)
    softmax,  ///< p = softmax over all C logits; the last class is "no object" and never wins
};

struct DetrParams {
    DetrScore score = DetrScore::sigmoid;
    /// 0: one detection per query (score = max class probability, class = first argmax), in
    /// query order. k > 0: RF-DETR's postprocess, the k best (query, class) pairs over all
    /// queries and classes, in descending probability (ties: lower query, then lower class).
    index_t top_k = 0;
};

/// DETR-style outputs: `boxes` (B, Q, 4) cx, cy, w, h normalised to [0, 1] of the model input,
/// `logits` (B, Q, C). Probabilities are computed in double and rounded to float32. Optional
/// `mask_logits` (B, Q, mh, mw) (nullptr for none): upsampled bilinearly (align_corners=False) to
/// the model input, set where > 0, sampled at the image pixels' centres over each detection's
/// region (not cropped to the box in model space).
Decoded decode_detr(const float* boxes, const float* logits, index_t batch, index_t q, index_t c,
                    const float* mask_logits, index_t mh, index_t mw, const DecodeGeometry& g,
                    float conf_threshold, const DetrParams& p, int num_threads = -1);

}  // namespace fissure
