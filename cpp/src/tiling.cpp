// SPDX-License-Identifier: Apache-2.0
#include "fissure/tiling.hpp"

#include <algorithm>
#include <string>

namespace fissure {

SliceParams auto_slice_params(index_t height, index_t width) {
    if (height <= 0 || width <= 0) fail("image height and width must be positive");
    const index_t resolution = height * width;
    int expo = 0;
    while ((index_t{1} << expo) < resolution) ++expo;
    const int factor = expo - 1;
    // Orientation and split counts exactly as SAHI's calc_ratio_and_slice (its row/col naming
    // is kept: "horizontal" splits the width into 2 * slide).
    int split_row = 1, split_col = 1;
    double ratio = 1.0;
    int slide = 0;
    if (factor <= 18) {
        slide = 0;
    } else if (factor < 21) {
        slide = 1; ratio = 0.8;
    } else if (factor < 24) {
        slide = 2; ratio = 0.4;
    } else {
        slide = 4; ratio = 0.4;
    }
    if (slide > 0) {
        if (width < height) {          // vertical
            split_row = slide; split_col = slide * 2;
        } else if (width > height) {   // horizontal
            split_row = slide * 2; split_col = slide;
        } else {
            split_row = slide; split_col = slide;
        }
    }
    SliceParams p;
    p.slice_height = height / split_col;
    p.slice_width = width / split_row;
    p.overlap_width = static_cast<index_t>(static_cast<double>(p.slice_width) * ratio);
    p.overlap_height = static_cast<index_t>(static_cast<double>(p.slice_height) * ratio);
    return p;
}

std::vector<std::array<index_t, 4>> slice_grid(index_t H, index_t W, const SliceParams& p) {
    if (H <= 0 || W <= 0)
        fail("image height and width must be positive, got " + std::to_string(H) + "x" + std::to_string(W));
    if (p.slice_height <= 0 || p.slice_width <= 0) fail("slice height and width must be positive");
    // An overlap equal to the slice is allowed only when one tile covers the axis (SAHI's
    // auto mode for small images); otherwise the walk would never advance.
    const bool h_ok = p.overlap_height >= 0 && (p.overlap_height < p.slice_height || p.slice_height >= H);
    const bool w_ok = p.overlap_width >= 0 && (p.overlap_width < p.slice_width || p.slice_width >= W);
    if (!h_ok || !w_ok) fail("overlap must be in [0, slice) pixels");
    std::vector<std::array<index_t, 4>> out;
    index_t y_min = 0, y_max = 0;
    while (y_max < H) {
        index_t x_min = 0, x_max = 0;
        y_max = y_min + p.slice_height;
        while (x_max < W) {
            x_max = x_min + p.slice_width;
            if (y_max > H || x_max > W) {
                x_max = std::min(W, x_max);
                y_max = std::min(H, y_max);
                x_min = std::max<index_t>(0, x_max - p.slice_width);
                y_min = std::max<index_t>(0, y_max - p.slice_height);
            }
            out.push_back({x_min, y_min, x_max, y_max});
            x_min = x_max - p.overlap_width;
        }
        y_min = y_max - p.overlap_height;
    }
    return out;
}

}  // namespace fissure
