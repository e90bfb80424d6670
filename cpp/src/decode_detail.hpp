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

}  // namespace fissure::decode_detail
