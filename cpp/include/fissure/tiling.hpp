// SPDX-License-Identifier: Apache-2.0
/// @file tiling.hpp
/// @brief Slice grids equal to SAHI's get_slice_bboxes: overlap in pixels is
///        int(ratio * slice) (truncated), tiles walk row-major, and the last tile of each row
///        and column is snapped inward so that every tile keeps its full size.
#pragma once

#include <array>
#include <vector>

#include "fissure/common.hpp"

namespace fissure {

struct SliceParams {
    index_t slice_height = 0;
    index_t slice_width = 0;
    index_t overlap_height = 0;  ///< pixels
    index_t overlap_width = 0;   ///< pixels
};

/// Most tiles one grid may have (2^30: 32 GiB of int64 boxes); slice_grid refuses more.
constexpr index_t k_max_tiles = index_t{1} << 30;

/// SAHI's get_auto_slice_params: slice size and overlap from the image's resolution class
/// and orientation. O(1), exact for every positive int64 size (the area is never formed).
SliceParams auto_slice_params(index_t height, index_t width);

/// The tile boxes, xyxy, in SAHI's order. O(number of tiles); exact for every positive int64
/// size (no sum can overflow). Throws InvalidArgument for non-positive sizes, an overlap not
/// in [0, slice), or a grid of more than k_max_tiles tiles (counted before anything is built).
std::vector<std::array<index_t, 4>> slice_grid(index_t height, index_t width, const SliceParams& p);

}  // namespace fissure
