// SPDX-License-Identifier: Apache-2.0
/// @file specular.hpp
/// @brief Specular-highlight (glare) masks: OpenCV's 8-bit HSV rule computed in one fused pass,
///        disc dilation equal to cv2.dilate with MORPH_ELLIPSE, and the glare statistics the
///        pipelines use to drop or flag detections that sit on highlights.
///
/// The rule. A pixel is glare when, in OpenCV's 8-bit HSV (cv2.cvtColor(img, COLOR_BGR2HSV)),
/// V > v_min and S < s_max. V = max(B, G, R). OpenCV computes S with a fixed-point table:
///     S = (diff * sdiv[V] + 2048) >> 12,  diff = V - min(B, G, R),
///     sdiv[0] = 0, sdiv[v] = round(255 * 4096 / v) (v = 1..255),
/// which rounds differently from round(255 * diff / V) exactly where 255 * diff / V ends in .5
/// and sdiv[V] was rounded down (207 of the 32,896 (V, diff) pairs). S and V are symmetric in
/// the three channels, so BGR and RGB input give the same mask.
///
/// The kernel never builds an HSV image: per pixel it takes V and diff and tests diff < T[V],
/// where T[v] (the smallest diff whose S reaches s_max; 0 for v <= v_min) comes from the exact
/// formula above. The SIMD paths look T up 16 entries at a time with a byte shuffle, so they
/// cost one shuffle per 16 values of V above v_min (one for the default v_min = 240).
///
/// Dispatch: the row kernels exist for scalar, SSE4.1, AVX2 and AVX-512BW and are chosen at run
/// time: effective_level(Family::specular) (dispatch.hpp; FISSURE_SIMD lowers it). Every path is bit-exact with the others.
///
/// Threads: every entry point takes num_threads (<= 0: all cores) and runs row bands on the
/// core's pool; none keeps state between calls, so concurrent calls are safe.
#pragma once

#include <cstdint>
#include <vector>

#include "fissure/common.hpp"

namespace fissure {

/// A writable (rows, cols) byte plane; row y starts at data + y * row_stride.
struct Plane8 {
    std::uint8_t* data = nullptr;
    index_t rows = 0;
    index_t cols = 0;
    index_t row_stride = 0;
};

/// A read-only (rows, cols) byte plane (nonzero = set).
struct ConstPlane8 {
    const std::uint8_t* data = nullptr;
    index_t rows = 0;
    index_t cols = 0;
    index_t row_stride = 0;
};

/// Largest dilation radius (the row distances are kept in bytes).
constexpr int k_max_dilate_radius = 254;

/// OpenCV's 8-bit HSV saturation of a pixel with V = v and diff = V - min (0 <= diff <= v <= 255),
/// from the fixed-point table of cv::cvtColor(COLOR_BGR2HSV).
int opencv_hsv_saturation(int v, int diff);

/// T[v] for v = 0..255: a pixel with V = v and diff = V - min is glare iff diff < T[v].
/// T[v] = 0 for v <= v_min; T is all zero when v_min >= 255 or s_max <= 0 (nothing selected).
/// Throws InvalidArgument when v_min or s_max is outside 0..255.
std::vector<std::uint8_t> specular_threshold_table(int v_min, int s_max);

/// Glare mask of an 8-bit BGR/RGB (channels = 3) or grayscale (channels = 1) image:
/// out(y, x) = 1 when V > v_min and S < s_max in OpenCV's 8-bit HSV, else 0, then dilated by a
/// disc of radius `dilate` (see dilate_disc). A grayscale pixel has S = 0: it is glare when
/// V > v_min and s_max >= 1, exactly as the same image converted with GRAY2BGR.
/// `out` has image.rows x image.cols bytes (0 or 1), rows out_stride bytes apart.
/// One pass over the pixels, no HSV image; O(rows * cols), plus O(rows * cols * dilate / vector
/// width) for the dilation, fused into the same row bands. Throws InvalidArgument on bad input.
void specular_mask(const Image8View& image, int v_min, int s_max, int dilate, const Plane8& out,
                   int num_threads);

/// The half-width of OpenCV's MORPH_ELLIPSE structuring element of size (2r+1, 2r+1) on each of
/// its rows: element dy + r (dy = -r..r) is k such that columns -k..k are set on row dy.
/// Equal to cv::getStructuringElement: k = cvRound(r * sqrt((r*r - dy*dy) / (r*r))).
std::vector<int> disc_half_widths(int radius);

/// Dilates a binary plane (nonzero = set) by the disc of `radius`: dst(y, x) = 1 when some set
/// pixel (y + dy, x + dx) has |dx| <= half_width[dy]; pixels outside the plane never count
/// (cv2.dilate's default border). Equal to cv2.dilate(src, getStructuringElement(MORPH_ELLIPSE,
/// (2r+1, 2r+1))) > 0. src and dst must not overlap. O(rows * cols * radius / vector width):
/// each row's distance to its nearest set pixel is found once (a SIMD min-plus scan), then
/// each output row takes a min over the 2r+1 rows of the disc. Rows with no set pixel cost
/// nothing in the second step.
void dilate_disc(const ConstPlane8& src, int radius, const Plane8& dst, int num_threads);

/// For each box (xyxy float32; pixel region floor(x1)..ceil(x2) x floor(y1)..ceil(y2), as
/// fissure.masks.regions_from_boxes, clipped to the plane) the fraction of its pixels that are
/// set in `mask`; 0 for a box with no pixel inside the plane. Per-box row sums when the boxes
/// cover little of the image, else a summed-area table; out has boxes.n floats.
void glare_fraction_boxes(const ConstPlane8& mask, const BoxesView& boxes, float* out,
                          int num_threads);

/// For each box-local mask, the fraction of its set pixels that are also set in `glare`
/// (pixels of the mask outside the plane count as not glare); 0 for an empty mask.
/// O(sum of region areas). `masks` must have passed check_box_masks.
void glare_fraction_masks(const ConstPlane8& glare, const BoxMasksView& masks, float* out,
                          int num_threads);

}  // namespace fissure
