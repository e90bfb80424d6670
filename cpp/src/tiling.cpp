// SPDX-License-Identifier: Apache-2.0
#include "fissure/tiling.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace fissure {

namespace {

// Whether height * width <= limit, exactly (no product is formed: it may not fit in int64).
bool area_at_most(index_t height, index_t width, index_t limit) {
    return height <= limit / width;
}

// SAHI's walk along one axis of length L: tiles start at 0, s - o, 2 (s - o), ...; the first
// tile that reaches the end is snapped inward to [max(0, L - s), L). Every sum is compared
// before it is formed, so sizes up to INT64_MAX cannot overflow.
std::vector<std::pair<index_t, index_t>> axis_tiles(index_t L, index_t s, index_t o) {
    std::vector<std::pair<index_t, index_t>> out;
    index_t lo = 0;
    for (;;) {
        if (s >= L - lo) {  // lo + s >= L
            out.emplace_back(std::max<index_t>(0, L - s), L);
            return out;
        }
        out.emplace_back(lo, lo + s);
        lo = lo + s - o;  // < L, and > the previous lo (o < s)
    }
}

// The number of tiles axis_tiles makes, in O(1).
index_t axis_count(index_t L, index_t s, index_t o) {
    if (s >= L) return 1;
    const index_t step = s - o;  // >= 1
    const index_t rest = L - s;  // > 0
    return 1 + (rest / step + (rest % step != 0 ? 1 : 0));
}

}  // namespace

SliceParams auto_slice_params(index_t height, index_t width) {
    if (height <= 0 || width <= 0) fail("image height and width must be positive");
    // SAHI's resolution factor is expo - 1 for the smallest expo with 2^expo >= height * width;
    // its classes (factor <= 18, < 21, < 24, else) are thresholds on the product: <= 2^19,
    // <= 2^21, <= 2^24. Compared without forming the product, so every int64 size is exact
    // (SAHI's own loop runs with numpy int64 powers of two and never ends past 2^62).
    int slide = 4;
    double ratio = 0.4;
    if (area_at_most(height, width, index_t{1} << 19)) {
        slide = 0;  // low: one tile, overlap ratio 1 (SAHI's int 1: overlap = slice exactly)
    } else if (area_at_most(height, width, index_t{1} << 21)) {
        slide = 1; ratio = 0.8;
    } else if (area_at_most(height, width, index_t{1} << 24)) {
        slide = 2; ratio = 0.4;
    }
    // Orientation and split counts exactly as SAHI's calc_ratio_and_slice (its row/col naming
    // is kept: "horizontal" splits the width into 2 * slide).
    int split_row = 1, split_col = 1;
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
    if (slide == 0) {
        p.overlap_width = p.slice_width;
        p.overlap_height = p.slice_height;
    } else {  // int(slice * ratio) in Python floats: the same roundings as here
        p.overlap_width = static_cast<index_t>(static_cast<double>(p.slice_width) * ratio);
        p.overlap_height = static_cast<index_t>(static_cast<double>(p.slice_height) * ratio);
    }
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
    // The size of the grid, before anything is built.
    const index_t ny = axis_count(H, p.slice_height, p.overlap_height);
    const index_t nx = axis_count(W, p.slice_width, p.overlap_width);
    if (ny > k_max_tiles / nx)
        fail("the grid would have " + std::to_string(ny) + " x " + std::to_string(nx) +
             " tiles, more than the " + std::to_string(k_max_tiles) +
             " supported; use larger slices or smaller overlaps");
    // SAHI walks rows, and columns within a row; its snapping is per axis, so the grid is the
    // product of the two axes' tiles.
    const auto ys = axis_tiles(H, p.slice_height, p.overlap_height);
    const auto xs = axis_tiles(W, p.slice_width, p.overlap_width);
    std::vector<std::array<index_t, 4>> out;
    out.reserve(ys.size() * xs.size());
    for (const auto& y : ys)
        for (const auto& x : xs) out.push_back({x.first, y.first, x.second, y.second});
    return out;
}

}  // namespace fissure
