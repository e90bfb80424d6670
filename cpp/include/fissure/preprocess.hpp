// SPDX-License-Identifier: Apache-2.0
/// @file preprocess.hpp
/// @brief Tile preprocessing: crop (read in place), resize or letterbox, channel swap,
///        scale/mean/std and HWC -> NCHW, float32 or float16, into a caller-owned batch buffer.
///
/// Resampling reproduces OpenCV's cv2.resize on uint8 images:
///  * linear: OpenCV's fixed-point INTER_LINEAR. Source x = (dx + 0.5) * (sw / dw) - 0.5 in
///    double, cast to float; weights (1 - f, f) * 2048 rounded to int16 (11 coefficient bits);
///    columns clamped with the weight zeroed at the borders, rows clamped with the weights kept.
///    The horizontal pass is exact integer arithmetic. The vertical pass combines two rows as
///    OpenCV's vectorised path does: ((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16), then
///    (+ 2) >> 2 and saturation. OpenCV's scalar tail rounds (S0 * b0 + S1 * b1 + 2^21) >> 22
///    instead; the two never differ by more than one level.
///    cv2 5.1 uses the vectorised rounding for every value; so does this kernel (bit-exact).
///  * nearest: OpenCV's INTER_NEAREST, sx = min(floor(dx * (sw / dw)), sw - 1).
///  * area: OpenCV's INTER_AREA: integer factors on both axes (shrinking or keeping) are block
///    means ((s + 2) >> 2 for 2 x 2, else cvRound(s * (1.f / area))); other shrinking factors
///    use OpenCV's float32 area tables and accumulation order; enlarging an axis falls back to
///    the two-tap kernel above with INTER_AREA's source mapping, as cv::resize does.
///  * equal sizes copy the pixels.
///
/// Normalisation is a per-channel 256-entry table built in float32 with numpy's operation
/// order, ((float)v * scale - mean[c]) / std[c], and for float16 converted with round to
/// nearest even; it is exact against numpy float32 arithmetic on the resized uint8 pixels.
///
/// Letterbox geometry is Ultralytics' LetterBox (center=True, scaleup=True, auto=False):
///     r = min(out_h / th, out_w / tw); new_w = round(tw * r), new_h = round(th * r);
///     dw = (out_w - new_w) / 2, dh = (out_h - new_h) / 2;
///     left = round(dw - 0.1), top = round(dh - 0.1)   (round half to even, as Python's round)
/// The resized tile sits at (left, top); everything else is pad_value (before normalisation).
#pragma once

#include <cstdint>

#include "fissure/common.hpp"

namespace fissure {

enum class ResizeMode : int { resize = 0, letterbox = 1, none = 2 };
enum class Interp : int { linear = 0, nearest = 1, area = 2 };
enum class OutDtype : int { float32 = 0, float16 = 1 };

struct PreprocessParams {
    int out_h = 640;
    int out_w = 640;
    ResizeMode mode = ResizeMode::resize;
    Interp interp = Interp::linear;
    int pad_value = 114;     ///< 0..255, in input pixel units
    bool swap_rb = true;     ///< output channel c takes input channel 2 - c (BGR -> RGB)
    float scale = 1.0f / 255.0f;
    float mean[3] = {0.f, 0.f, 0.f};  ///< per output channel
    float std[3] = {1.f, 1.f, 1.f};   ///< per output channel, nonzero
    OutDtype dtype = OutDtype::float32;
};

/// (T, 4) int64 xyxy tiles, C-contiguous.
struct TilesView {
    const std::int64_t* data = nullptr;
    index_t n = 0;
};

struct Letterbox {
    double r = 1.0;   ///< scale from tile to model pixels
    int new_w = 0;    ///< size of the resized tile inside the model input
    int new_h = 0;
    int pad_x = 0;    ///< left padding
    int pad_y = 0;    ///< top padding
};

/// Ultralytics' letterbox geometry for a (tile_h, tile_w) tile into (out_h, out_w).
/// Throws InvalidArgument when a size is not positive or the resized tile would be empty.
Letterbox letterbox_params(index_t tile_h, index_t tile_w, int out_h, int out_w);

/// Checks the parameters and every tile against the image; throws InvalidArgument naming
/// what was expected and what came.
void check_preprocess(const Image8View& image, const TilesView& tiles, const PreprocessParams& p);

/// Writes T x 3 x out_h x out_w values (float, or float16 bits as uint16) to `out`,
/// C-contiguous NCHW. Runs tiles x row bands on the core's pool. Calls check_preprocess.
void preprocess_tiles(const Image8View& image, const TilesView& tiles, const PreprocessParams& p,
                      void* out, int num_threads = -1);

/// Resizes one 3-channel uint8 image to (out_h, out_w) as cv2.resize does (the kernel above,
/// without normalisation). `dst` is C-contiguous (out_h, out_w, 3).
void resize_u8(const Image8View& src, int out_h, int out_w, Interp interp, std::uint8_t* dst,
               int num_threads = -1);

}  // namespace fissure
