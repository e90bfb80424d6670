// SPDX-License-Identifier: Apache-2.0
/// @file masks_convert.hpp
/// @brief Conversions of box-local masks (BoxMasksView, see common.hpp): from dense per-image or
///        per-tile planes, onto new regions, to dense planes, and to and from run-length codes
///        (COCO's column-major runs over the full image, its compressed counts string, and
///        the same runs scoped to each mask's own region).
///
/// Conventions shared by every function here:
/// - A region is four int32 values x0, y0, w, h; it covers columns [x0, x0 + w) and rows
///   [y0, y0 + h). Sizes are >= 0; a zero-size region holds an empty bitmap.
/// - Bitmaps hold 0 or 1; any nonzero byte reads as set.
/// - Dense planes are n row-major (height, width) planes back to back. A uint8 plane pixel is
///   set when nonzero, a float plane pixel when it is > threshold (NaN is never set).
/// - Functions taking a view assume check_box_masks() has accepted it.
/// - Bad input throws InvalidArgument (ValueError in Python); nothing writes out of bounds.
/// - num_threads follows resolve_threads(): <= 0 means all cores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fissure/common.hpp"
#include "fissure/masks.hpp"

namespace fissure {

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

/// Checks the layout of a view against the size of its data buffer: regions have sizes >= 0,
/// offsets[0] == 0, offsets[i + 1] - offsets[i] == w_i * h_i and offsets[n] == data_size.
/// O(n); does not read the bitmaps. Throws InvalidArgument naming the first bad mask.
void check_box_masks(const BoxMasksView& m, index_t data_size);

/// Writes the n + 1 prefix sums of region areas into `offsets` and returns the total.
/// Throws on a negative size.
index_t region_offsets(const std::int32_t* regions, index_t n, std::int64_t* offsets);

// ---------------------------------------------------------------------------------------------
// Dense planes -> box-local masks
// ---------------------------------------------------------------------------------------------

/// Tight region (x0, y0, w, h) of the set pixels of each of n dense (height, width) planes,
/// in plane coordinates; an empty plane gives (0, 0, 0, 0). Reads every pixel once.
void dense_tight_regions(const std::uint8_t* planes, index_t n, index_t height, index_t width,
                         std::int32_t* regions, int num_threads);
void dense_tight_regions(const float* planes, index_t n, index_t height, index_t width,
                         float threshold, std::int32_t* regions, int num_threads);

/// Crops plane i to src_regions[i] (plane coordinates, must lie inside the plane) and places
/// the result at that region shifted by shifts[i] = (dx, dy) (nullptr: no shift). This is the
/// per-tile path: planes are a model's masks at tile resolution, shifts the tile origins.
/// Reads only the pixels inside each region. O(sum of region areas).
BoxMasks crop_dense(const std::uint8_t* planes, index_t n, index_t height, index_t width,
                    const std::int32_t* src_regions, const std::int32_t* shifts, int num_threads);
BoxMasks crop_dense(const float* planes, index_t n, index_t height, index_t width,
                    float threshold, const std::int32_t* src_regions, const std::int32_t* shifts,
                    int num_threads);

// ---------------------------------------------------------------------------------------------
// Box-local -> box-local, dense, statistics
// ---------------------------------------------------------------------------------------------

/// Moves each mask onto new_regions[i] (image coordinates, sizes >= 0): pixels inside both the
/// old and the new region are copied, the rest of the new bitmap is zero. Clipping, tightening,
/// padding and re-boxing are all this. O(sum of new areas).
BoxMasks reframe(const BoxMasksView& m, const std::int32_t* new_regions, int num_threads);

/// Copies the masks at `index` (n_index entries in [0, m.n)) into a new set, in that order.
BoxMasks gather(const BoxMasksView& m, const index_t* index, index_t n_index, int num_threads);

/// ORs mask i into plane i of `out`, n row-major (height, width) uint8 planes that the caller
/// has zeroed; pixels outside the plane are dropped.
void paste_dense(const BoxMasksView& m, index_t height, index_t width, std::uint8_t* out,
                 int num_threads);

/// Set pixels per mask: out has n entries.
void areas(const BoxMasksView& m, std::int64_t* out, int num_threads);

/// Tight bounds of each mask's set pixels in image coordinates, xyxy with exclusive ends:
/// out[4i..4i+4) = x_min, y_min, x_max + 1, y_max + 1. An empty mask gives the zero-size box
/// (x0, y0, x0, y0) at its region's origin.
void tight_bounds(const BoxMasksView& m, std::int32_t* out, int num_threads);

// ---------------------------------------------------------------------------------------------
// Run-length codes
// ---------------------------------------------------------------------------------------------

/// Column-major run lengths, as COCO (pycocotools' rleEncode) counts them: pixels are visited
/// column by column, top to bottom; the first count is the number of leading zeros (0 when the
/// first pixel is set), counts then alternate between runs of ones and zeros, no count after
/// the first is zero, and they sum to the canvas area.
///
/// encode_runs() counts the bitmap of region (x0, y0, w, h) as if it were pasted on an
/// otherwise empty (canvas_h, canvas_w) canvas, without building the canvas: runs of zeros
/// outside the region are arithmetic. Pixels of the region outside the canvas are dropped.
/// A region's own runs (CompactMask's crop-scoped codes) are the case canvas == region,
/// x0 = y0 = 0. Appends to `out`. O(area of the region inside the canvas).
void encode_runs(const std::uint8_t* bitmap, std::int32_t x0, std::int32_t y0, std::int32_t w,
                 std::int32_t h, index_t canvas_h, index_t canvas_w, std::vector<std::int64_t>& out);

/// Writes the (h, w) bitmap of region (x0, y0, w, h) of the canvas that `counts` encode
/// (column-major runs, as above; zero-length runs anywhere are accepted). The region may
/// reach outside the canvas; those pixels are zero. O(number of runs + area of the region).
/// Throws when a count is negative or the counts do not sum to canvas_h * canvas_w.
void decode_runs(const std::int64_t* counts, index_t m, index_t canvas_h, index_t canvas_w,
                 std::int32_t x0, std::int32_t y0, std::int32_t w, std::int32_t h,
                 std::uint8_t* out);

/// Tight region (x0, y0, w, h) of the set pixels that `counts` encode on the canvas, (0, 0, 0, 0)
/// when none is set. Same checks as decode_runs(). O(number of runs).
void runs_tight_region(const std::int64_t* counts, index_t m, index_t canvas_h, index_t canvas_w,
                       std::int32_t* region);

/// COCO's compressed counts string (pycocotools' rleToString): each count, minus the count two
/// places before it from the fourth on, is written little-endian in 5-bit groups, one char
/// each ('0' + group, + 32 when more groups follow), the last group carrying the sign in bit 4.
/// Appends to `out`.
void coco_counts_to_string(const std::int64_t* counts, index_t m, std::string& out);

/// Decodes a compressed counts string (pycocotools' rleFrString). Throws InvalidArgument for a
/// character outside '0'..'o', a string that ends inside a number, or a value over 2^60.
/// The counts are not checked against a canvas here (decode_runs() does that).
std::vector<std::int64_t> coco_counts_from_string(const char* s, std::size_t len);

/// Runs of several masks, CSR: mask i's counts are counts[offsets[i] .. offsets[i + 1]).
struct RunsCSR {
    std::vector<std::int64_t> counts;
    std::vector<std::int64_t> offsets{0};
};

/// encode_runs() for every mask on one (canvas_h, canvas_w) canvas (COCO, full image).
RunsCSR encode_runs_all(const BoxMasksView& m, index_t canvas_h, index_t canvas_w,
                        int num_threads);
/// encode_runs() for every mask over its own region (crop-scoped codes).
RunsCSR encode_local_runs_all(const BoxMasksView& m, int num_threads);
/// COCO compressed strings for every mask on one canvas.
std::vector<std::string> encode_coco_strings(const BoxMasksView& m, index_t canvas_h,
                                             index_t canvas_w, int num_threads);

/// One mask's counts: a pointer and a length (not owned).
struct RunsRef {
    const std::int64_t* counts = nullptr;
    index_t m = 0;
};

/// Decodes n masks from runs on one (canvas_h, canvas_w) canvas straight into box-local
/// bitmaps over `regions` (image coordinates, any placement), or, when regions is nullptr, over
/// the tight region of each mask's set pixels. Never builds a canvas.
BoxMasks decode_runs_all(const std::vector<RunsRef>& runs, index_t canvas_h, index_t canvas_w,
                         const std::int32_t* regions, int num_threads);

/// Decodes crop-scoped runs: mask i's runs cover its own region (regions[i], sizes >= 0).
BoxMasks decode_local_runs_all(const std::vector<RunsRef>& runs, const std::int32_t* regions,
                               int num_threads);

}  // namespace fissure
