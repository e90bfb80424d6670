// SPDX-License-Identifier: Apache-2.0
/// @file common.hpp
/// @brief Plain views over caller-owned memory, index types and error helpers shared by
///        every family of the fissure core. No Python headers here: the core is usable and
///        testable from C++ alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace fissure {

using index_t = std::int64_t;

/// (n, 4) float32 boxes, xyxy, C-contiguous (row stride 4).
struct BoxesView {
    const float* data = nullptr;
    index_t n = 0;
    const float* operator[](index_t i) const { return data + 4 * i; }
};

/// Box-local masks: mask i is a row-major (h_i, w_i) uint8 bitmap (0 or 1) covering the
/// integer pixel region [x0_i, x0_i + w_i) x [y0_i, y0_i + h_i) of the image. The bitmaps are
/// stored back to back in `data`; mask i starts at `offsets[i]` (offsets has n + 1 entries).
/// `regions` is (n, 4) int32: x0, y0, w, h.
struct BoxMasksView {
    const std::uint8_t* data = nullptr;
    const std::int64_t* offsets = nullptr;
    const std::int32_t* regions = nullptr;
    index_t n = 0;
};

/// An 8-bit image with `channels` interleaved bytes per pixel (1 or 3). Pixels within a row are
/// contiguous; row y starts at data + y * row_stride (the stride may be larger than
/// cols * channels, or negative for a flipped view).
struct Image8View {
    const std::uint8_t* data = nullptr;
    index_t rows = 0;
    index_t cols = 0;
    int channels = 3;
    index_t row_stride = 0;
};

/// Thrown for bad user input; maps to Python's ValueError.
using InvalidArgument = std::invalid_argument;

[[noreturn]] inline void fail(const std::string& msg) { throw InvalidArgument(msg); }

/// a * b for sizes (a, b >= 0); throws InvalidArgument naming `what` when the product does not
/// fit in int64 (a size that large cannot be allocated or indexed).
inline index_t checked_mul(index_t a, index_t b, const char* what) {
    if (a < 0 || b < 0 || (a != 0 && b > std::numeric_limits<index_t>::max() / a))
        fail(std::string(what) + ": size out of range (" + std::to_string(a) + " x " +
             std::to_string(b) + " does not fit in 64 bits)");
    return a * b;
}

/// v as int32 (masks' regions are int32); throws InvalidArgument naming `what` when out of range.
inline std::int32_t checked_int32(index_t v, const char* what) {
    if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
        fail(std::string(what) + ": " + std::to_string(v) +
             " is outside the int32 range supported for mask regions");
    return static_cast<std::int32_t>(v);
}

}  // namespace fissure
