// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the decoders (private to cpp/src).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fissure/decode.hpp"

namespace fissure::decode_detail {

/// Maps a model-pixel xyxy box to the image, clips it to the tile and appends it to `d`
/// unless it has no area (in float32) after clipping. Returns whether it was appended.
bool emit_box(Decoded& d, const TileTransform& tr, double mx1, double my1, double mx2, double my2,
              float score, std::int64_t cls, std::int64_t tile);

/// One tile per batch item, positive input size, every tile non-empty.
void check_batch(const DecodeGeometry& g, index_t batch);

/// Throws InvalidArgument at the first NaN.
void check_finite_nan(const float* p, std::size_t n, const char* name);

/// Labels foreground (p > threshold) with 8-connectivity: labels[i] = 0 for background,
/// 1..n for components ordered by their first pixel in raster order. Returns n.
std::int32_t label_components(const float* p, index_t h, index_t w, float threshold,
                              std::vector<std::int32_t>& labels);

/// Concatenates per-tile parts in order (and empties them).
Decoded concat(std::vector<Decoded>& parts);

/// Bilinear taps of an upsampling from `src` to `dst` samples along one axis, as OpenCV's
/// INTER_LINEAR (= PyTorch's bilinear, align_corners=False): output sample i reads
/// s[i0[i]] * (1 - f[i]) + s[i1[i]] * f[i]; the source coordinate (i + 0.5) * src / dst - 0.5 is
/// rounded to float, and clamped to the first / last sample at the borders.
struct Taps {
    std::vector<index_t> i0, i1;
    std::vector<float> f;
};
Taps linear_taps(index_t src, index_t dst);

/// The image-pixel region of a box (`regions_from_boxes`: floor / ceil of the float32 box) and,
/// for each of its columns / rows, the model-input pixel under the image pixel's centre
/// (-1 when that falls outside the input).
struct PixelMap {
    std::int64_t x0 = 0, y0 = 0, w = 0, h = 0;
    std::vector<index_t> cols, rows;
};
void pixel_map(const float* box, const TileTransform& tr, int input_h, int input_w, PixelMap& pm);

/// Appends a mask over pm's region to d.masks: pixel (i, j) is bit(cols[i], rows[j]) where both
/// are inside the input, else 0.
template <class Bit>
void append_mask(Decoded& d, const PixelMap& pm, Bit&& bit) {
    BoxMasks& bm = d.masks;
    const std::size_t start = bm.data.size();
    bm.data.resize(start + static_cast<std::size_t>(pm.w * pm.h), 0);
    std::uint8_t* out = bm.data.data() + start;
    for (std::int64_t j = 0; j < pm.h; ++j) {
        const index_t iy = pm.rows[static_cast<std::size_t>(j)];
        if (iy < 0) continue;
        std::uint8_t* row = out + j * pm.w;
        for (std::int64_t i = 0; i < pm.w; ++i) {
            const index_t ix = pm.cols[static_cast<std::size_t>(i)];
            if (ix >= 0 && bit(ix, iy)) row[i] = 1;
        }
    }
    bm.offsets.push_back(static_cast<std::int64_t>(bm.data.size()));
    bm.regions.insert(bm.regions.end(),
                      {static_cast<std::int32_t>(pm.x0), static_cast<std::int32_t>(pm.y0),
                       static_cast<std::int32_t>(pm.w), static_cast<std::int32_t>(pm.h)});
}

/// Bilinear value at output sample (ix, iy) of a source grid read through `at(x, y)`, in
/// OpenCV's order: the two rows are interpolated horizontally first, then blended vertically.
template <class At>
inline float bilinear_at(const Taps& tx, const Taps& ty, index_t ix, index_t iy, At&& at) {
    const auto sx = static_cast<std::size_t>(ix), sy = static_cast<std::size_t>(iy);
    const index_t x0 = tx.i0[sx], x1 = tx.i1[sx], y0 = ty.i0[sy], y1 = ty.i1[sy];
    const float fx = tx.f[sx], fy = ty.f[sy];
    const float ax = 1.0f - fx, ay = 1.0f - fy;
    const float h0 = at(x0, y0) * ax + at(x1, y0) * fx;
    const float h1 = at(x0, y1) * ax + at(x1, y1) * fx;
    return h0 * ay + h1 * fy;
}

}  // namespace fissure::decode_detail
