// SPDX-License-Identifier: Apache-2.0
// x86 kernels of the preprocessing family (AVX2 + F16C). Each function carries its own target
// attribute and has internal linkage; the translation unit is compiled for the portable
// baseline and nothing here runs unless dispatch (preprocess.cpp) picked it after checking the
// CPU. Every kernel gives exactly the scalar kernel's output (preprocess.cpp):
//
//  * hlinear, 4 output pixels per 128-bit lane: one 8-byte load per pixel holds its two
//    source pixels (p0 at xo, p1 at xo + 3); byte shuffles spread them into 16-bit
//    (p0[c], p1[c]) pairs in output order, and pmaddwd with the (a0, a1) pairs gives the exact
//    int32 sums, shifted right by 4 and packed to int16 (all values fit: <= 255 * 2048 >> 4).
//  * vlinear: pmulhw of the int16 rows by the row weights, add, (+ 2) >> 2, packus: the
//    instruction sequence of OpenCV's VResizeLinearVec_32s8u.
//  * norm: 16 pixels split into channel planes by byte shuffles, widened to float32, then
//    (x * scale - mean) / std with one IEEE operation each (the table's operations, so the
//    same values), float16 by vcvtps2ph with round to nearest even.
#include "simd.hpp"
#include "preprocess_kernels.hpp"

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace fissure::preprocess_detail {

#ifdef FISSURE_X86_KERNELS

namespace {

inline std::int64_t load64(const std::uint8_t* p) {
    std::int64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

constexpr std::int8_t Z = -128;  // pshufb: zero

// hlinear shuffles: 4 pixels' (p0, p1) byte pairs from Q01 = [px0 | px1], Q23 = [px2 | px3].
alignas(16) constexpr std::int8_t k_h0[16] = {0, Z, 3, Z, 1, Z, 4, Z, 2, Z, 5, Z, 8, Z, 11, Z};
alignas(16) constexpr std::int8_t k_h1a[16] = {9, Z, 12, Z, 10, Z, 13, Z, Z, Z, Z, Z, Z, Z, Z, Z};
alignas(16) constexpr std::int8_t k_h1b[16] = {Z, Z, Z, Z, Z, Z, Z, Z, 0, Z, 3, Z, 1, Z, 4, Z};
alignas(16) constexpr std::int8_t k_h2[16] = {2, Z, 5, Z, 8, Z, 11, Z, 9, Z, 12, Z, 10, Z, 13, Z};

// channel planes of 16 interleaved pixels (simd.hpp)
constexpr const auto& k_planes = simd::k_plane_shuffles;

FISSURE_TARGET_AVX2 inline __m128i ld128(const void* p) {
    return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// [w + i .. + 8 | w + 24 + i .. + 8]: the weights of pixels 0-3 and 4-7 of a group of 8.
FISSURE_TARGET_AVX2 inline __m256i load2(const std::int16_t* w, int i) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(ld128(w + i)), ld128(w + 24 + i), 1);
}

FISSURE_TARGET_AVX2 inline __m256i pair256(const std::uint8_t* s, int a, int b, int c, int d) {
    // [s+a | s+b || s+c | s+d], 8 bytes each
    return _mm256_set_epi64x(load64(s + d), load64(s + c), load64(s + b), load64(s + a));
}

FISSURE_TARGET_AVX2 void hlinear_avx2(const std::uint8_t* s, const int* xo,
                                      const std::int16_t* aw, int n, std::int16_t* out) {
    const __m256i h0 = _mm256_broadcastsi128_si256(ld128(k_h0));
    const __m256i h1a = _mm256_broadcastsi128_si256(ld128(k_h1a));
    const __m256i h1b = _mm256_broadcastsi128_si256(ld128(k_h1b));
    const __m256i h2 = _mm256_broadcastsi128_si256(ld128(k_h2));
    int dx = 0;
    for (; dx + 8 <= n; dx += 8) {
        const int* o = xo + dx;
        const __m256i q01 = pair256(s, o[0], o[1], o[4], o[5]);
        const __m256i q23 = pair256(s, o[2], o[3], o[6], o[7]);
        const std::int16_t* w = aw + 6 * dx;  // 24 weights per 4 pixels
        const __m256i w0 = load2(w, 0);
        const __m256i w1 = load2(w, 8);
        const __m256i w2 = load2(w, 16);
        const __m256i r0 = _mm256_madd_epi16(_mm256_shuffle_epi8(q01, h0), w0);
        const __m256i r1 = _mm256_madd_epi16(
            _mm256_or_si256(_mm256_shuffle_epi8(q01, h1a), _mm256_shuffle_epi8(q23, h1b)), w1);
        const __m256i r2 = _mm256_madd_epi16(_mm256_shuffle_epi8(q23, h2), w2);
        const __m256i p01 = _mm256_packs_epi32(_mm256_srai_epi32(r0, 4), _mm256_srai_epi32(r1, 4));
        const __m256i p22 = _mm256_packs_epi32(_mm256_srai_epi32(r2, 4), _mm256_srai_epi32(r2, 4));
        std::int16_t* d = out + 3 * dx;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm256_castsi256_si128(p01));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 8), _mm256_castsi256_si128(p22));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 12), _mm256_extracti128_si256(p01, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 20), _mm256_extracti128_si256(p22, 1));
    }
    for (; dx < n; ++dx) hlinear_px(s, xo[dx], xo[dx] + 3, aw + 6 * dx, out + 3 * dx);
}

FISSURE_TARGET_AVX2 void vlinear_avx2(const std::int16_t* s0, const std::int16_t* s1,
                                      std::int16_t b0, std::int16_t b1, int n, std::uint8_t* d) {
    const __m256i vb0 = _mm256_set1_epi16(b0), vb1 = _mm256_set1_epi16(b1);
    const __m256i two = _mm256_set1_epi16(2);
    int k = 0;
    for (; k + 32 <= n; k += 32) {
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s0 + k));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s0 + k + 16));
        const __m256i y0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s1 + k));
        const __m256i y1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s1 + k + 16));
        __m256i a = _mm256_adds_epi16(_mm256_mulhi_epi16(x0, vb0), _mm256_mulhi_epi16(y0, vb1));
        __m256i b = _mm256_adds_epi16(_mm256_mulhi_epi16(x1, vb0), _mm256_mulhi_epi16(y1, vb1));
        a = _mm256_srai_epi16(_mm256_adds_epi16(a, two), 2);
        b = _mm256_srai_epi16(_mm256_adds_epi16(b, two), 2);
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), p);
    }
    for (; k + 8 <= n; k += 8) {
        const __m128i x = ld128(s0 + k), y = ld128(s1 + k);
        __m128i a = _mm_adds_epi16(_mm_mulhi_epi16(x, _mm256_castsi256_si128(vb0)),
                                   _mm_mulhi_epi16(y, _mm256_castsi256_si128(vb1)));
        a = _mm_srai_epi16(_mm_adds_epi16(a, _mm256_castsi256_si128(two)), 2);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d + k), _mm_packus_epi16(a, a));
    }
    for (; k < n; ++k) d[k] = vlinear_px(s0[k], s1[k], b0, b1);
}

// The three channel planes of 16 pixels at s.
FISSURE_TARGET_AVX2 inline void planes16(const std::uint8_t* s, __m128i pl[3]) {
    const __m128i x0 = ld128(s), x1 = ld128(s + 16), x2 = ld128(s + 32);
    for (int c = 0; c < 3; ++c)
        pl[c] = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(x0, ld128(k_planes.m[3 * c])),
                                          _mm_shuffle_epi8(x1, ld128(k_planes.m[3 * c + 1]))),
                             _mm_shuffle_epi8(x2, ld128(k_planes.m[3 * c + 2])));
}

// (x * scale - mean) / std on 8 uint8 values (the low 8 bytes of v).
FISSURE_TARGET_AVX2 inline __m256 norm8(__m128i v, __m256 scale, __m256 mean, __m256 sd,
                                        bool divide) {
    __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
    x = _mm256_sub_ps(_mm256_mul_ps(x, scale), mean);
    return divide ? _mm256_div_ps(x, sd) : x;
}

// One row into the three channel planes, float32 (T = float) or IEEE half (T = uint16_t,
// rounded to nearest even as the scalar table is); the tail through the scalar tables.
template <typename T>
FISSURE_TARGET_AVX2_F16C void norm_avx2(const std::uint8_t* s, int n, const Norm& nm, T* o0,
                                        T* o1, T* o2) {
    T* o[3] = {o0, o1, o2};
    const __m256 scale = _mm256_set1_ps(nm.scale);
    __m256 mean[3], sd[3];
    for (int c = 0; c < 3; ++c) {
        mean[c] = _mm256_set1_ps(nm.mean[c]);
        sd[c] = _mm256_set1_ps(nm.std[c]);
    }
    int x = 0;
    for (; x + 16 <= n; x += 16) {
        __m128i pl[3];
        planes16(s + 3 * x, pl);
        for (int c = 0; c < 3; ++c) {
            const __m128i v = pl[nm.src_of[c]];
            const __m256 lo = norm8(v, scale, mean[c], sd[c], nm.divide);
            const __m256 hi = norm8(_mm_srli_si128(v, 8), scale, mean[c], sd[c], nm.divide);
            if constexpr (std::is_same_v<T, float>) {
                _mm256_storeu_ps(o[c] + x, lo);
                _mm256_storeu_ps(o[c] + x + 8, hi);
            } else {
                constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
                _mm_storeu_si128(reinterpret_cast<__m128i*>(o[c] + x), _mm256_cvtps_ph(lo, kRne));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(o[c] + x + 8),
                                 _mm256_cvtps_ph(hi, kRne));
            }
        }
    }
    norm_row<T>(s + 3 * x, n - x, nm, o0 + x, o1 + x, o2 + x);  // the tail
}

}  // namespace

const Kernels* avx2_kernels() {
    static const Kernels k{hlinear_avx2, vlinear_avx2, norm_avx2<float>,
                           norm_avx2<std::uint16_t>};
    return &k;
}

#else

const Kernels* avx2_kernels() { return nullptr; }

#endif

}  // namespace fissure::preprocess_detail
