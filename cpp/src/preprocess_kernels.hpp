// SPDX-License-Identifier: Apache-2.0
// Internal to the preprocessing family: the per-ISA row kernels of the resize and the
// normalisation. The scalar kernels live in preprocess.cpp, the x86 ones in preprocess_x86.cpp
// (each function compiled for its ISA with a target attribute; the translation unit itself
// stays at the portable baseline). Every kernel computes exactly what the scalar one does.
#pragma once

#include <cstdint>
#include <type_traits>

#include "fissure/common.hpp"
#include "fissure/dispatch.hpp"

namespace fissure::preprocess_detail {

/// Horizontal pass of OpenCV's fixed-point INTER_LINEAR on a 3-channel row, for output pixels
/// [0, n): out[3 dx + c] = (s[xo[dx] + c] * a0 + s[xo[dx] + 3 + c] * a1) >> 4 as int16, where
/// aw[6 dx ..] = (a0, a1, a0, a1, a0, a1). Only the low 4 bits that OpenCV's vertical pass
/// drops are dropped. Every pixel in [0, n) has xo[dx] + 8 <= the row's bytes (the kernels read
/// 8 bytes at xo[dx]); its second pixel is xo[dx] + 3, or a1 == 0.
using HLinearFn = void (*)(const std::uint8_t* s, const int* xo, const std::int16_t* aw, int n,
                           std::int16_t* out);

/// Vertical pass: d[k] = sat_u8((((s0[k] * b0) >> 16) + ((s1[k] * b1) >> 16) + 2) >> 2) for
/// k < n (OpenCV's vectorised VResizeLinearVec_32s8u on the >> 4 rows).
using VLinearFn = void (*)(const std::int16_t* s0, const std::int16_t* s1, std::int16_t b0,
                           std::int16_t b1, int n, std::uint8_t* d);

/// How the resampled uint8 pixels become model input values. The table holds, per output
/// channel c, ((float)v * scale - mean[c]) / std[c] (float32 or binary16 bits); the SIMD
/// kernels compute the same float32 operations instead of looking them up.
struct Norm {
    float f32[3][256];
    std::uint16_t f16[3][256];
    int src_of[3];   ///< input channel of output channel c (0..2)
    float scale;
    float mean[3];
    float std[3];
    bool divide;     ///< some std != 1 (x / 1 == x, so the division is skipped otherwise)
};

/// n interleaved 3-byte pixels -> three planes (output channels 0, 1, 2).
using NormF32Fn = void (*)(const std::uint8_t* s, int n, const Norm& nm, float* o0, float* o1,
                           float* o2);
using NormF16Fn = void (*)(const std::uint8_t* s, int n, const Norm& nm, std::uint16_t* o0,
                           std::uint16_t* o1, std::uint16_t* o2);

struct Kernels {
    HLinearFn hlinear = nullptr;
    VLinearFn vlinear = nullptr;
    NormF32Fn norm_f32 = nullptr;
    NormF16Fn norm_f16 = nullptr;
};

// The scalar bodies, shared by every kernel's tail.
inline void hlinear_px(const std::uint8_t* s, int xo0, int xo1, const std::int16_t* aw,
                       std::int16_t* out) {
    const int a = aw[0], b = aw[1];
    for (int c = 0; c < 3; ++c)
        out[c] = static_cast<std::int16_t>((s[xo0 + c] * a + s[xo1 + c] * b) >> 4);
}

inline std::uint8_t vlinear_px(int s0, int s1, int b0, int b1) {
    int v = ((s0 * b0) >> 16) + ((s1 * b1) >> 16);
    v = (v + 2) >> 2;
    return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

/// The scalar normalisation of n pixels into the three planes, from the tables: float32
/// (T = float) or binary16 bits (T = std::uint16_t). Channel 1 is never swapped.
template <typename T>
inline void norm_row(const std::uint8_t* s, int n, const Norm& nm, T* o0, T* o1, T* o2) {
    const auto& tab = [&nm]() -> const auto& {
        if constexpr (std::is_same_v<T, float>)
            return nm.f32;
        else
            return nm.f16;
    }();
    const int c0 = nm.src_of[0], c2 = nm.src_of[2];
    for (int x = 0; x < n; ++x) {
        const std::uint8_t* q = s + 3 * x;
        o0[x] = tab[0][q[c0]];
        o1[x] = tab[1][q[1]];
        o2[x] = tab[2][q[c2]];
    }
}

const Kernels& scalar_kernels();
/// nullptr where not compiled in (other architectures).
const Kernels* avx2_kernels();

}  // namespace fissure::preprocess_detail
