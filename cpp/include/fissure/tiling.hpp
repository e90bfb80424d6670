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

/// SAHI's get_auto_slice_params: slice size and overlap from the image's resolution class
/// and orientation. O(1).
SliceParams auto_slice_params(index_t height, index_t width);

/// The tile boxes, xyxy, in SAHI's order. O(number of tiles).
/// Throws InvalidArgument for non-positive sizes or an overlap not in [0, slice).
std::vector<std::array<index_t, 4>> slice_grid(index_t height, index_t width, const SliceParams& p);

}  // namespace fissure
