// SPDX-License-Identifier: Apache-2.0
// x86 kernels of the kNN family: AVX2+FMA and AVX-512 micro-kernels over the packed layouts
// of knn.cpp, and F16C float16 widening. Each function carries its own target attribute and
// has internal linkage; the translation unit is compiled for the portable baseline and nothing
// here runs unless dispatch (knn.cpp) picked it after checking the CPU.
//
// Micro-kernel (BLIS-style outer products, no horizontal sums): for each k, the 16 (32) bank
// values of the packed panel(s) are loaded once, each of the kMR = 6 query values is
// broadcast and multiplied into its accumulator row with FMA:
//   AVX-512: 6 x 32 tile = 12 zmm accumulators, 2 loads + 6 broadcasts per 12 FMAs;
//   AVX2:    6 x 16 tile = 12 ymm accumulators, 2 loads + 6 broadcasts per 12 FMAs.
#include "knn_kernels.hpp"
#include "simd.hpp"

namespace fissure::knn_detail {

#ifdef FISSURE_X86_KERNELS

namespace {

// ------------------------------------------------------------------------------------------
// AVX2 + FMA
// ------------------------------------------------------------------------------------------

FISSURE_TARGET_AVX2_FMA void micro_avx2(const float* qp, const float* bp, index_t kc, float* c, index_t ldc, int,
                        bool accumulate) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
           a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
    for (index_t kk = 0; kk < kc; ++kk) {
        const __m256 b0 = _mm256_loadu_ps(bp + kk * kNP);
        const __m256 b1 = _mm256_loadu_ps(bp + kk * kNP + 8);
        const float* a = qp + kk * kMR;
        __m256 q = _mm256_broadcast_ss(a + 0);
        a00 = _mm256_fmadd_ps(q, b0, a00);
        a01 = _mm256_fmadd_ps(q, b1, a01);
        q = _mm256_broadcast_ss(a + 1);
        a10 = _mm256_fmadd_ps(q, b0, a10);
        a11 = _mm256_fmadd_ps(q, b1, a11);
        q = _mm256_broadcast_ss(a + 2);
        a20 = _mm256_fmadd_ps(q, b0, a20);
        a21 = _mm256_fmadd_ps(q, b1, a21);
        q = _mm256_broadcast_ss(a + 3);
        a30 = _mm256_fmadd_ps(q, b0, a30);
        a31 = _mm256_fmadd_ps(q, b1, a31);
        q = _mm256_broadcast_ss(a + 4);
        a40 = _mm256_fmadd_ps(q, b0, a40);
        a41 = _mm256_fmadd_ps(q, b1, a41);
        q = _mm256_broadcast_ss(a + 5);
        a50 = _mm256_fmadd_ps(q, b0, a50);
        a51 = _mm256_fmadd_ps(q, b1, a51);
    }
    const __m256 acc[kMR][2] = {{a00, a01}, {a10, a11}, {a20, a21},
                                {a30, a31}, {a40, a41}, {a50, a51}};
    for (int r = 0; r < kMR; ++r) {
        float* cr = c + r * ldc;
        __m256 v0 = acc[r][0], v1 = acc[r][1];
        if (accumulate) {
            v0 = _mm256_add_ps(_mm256_loadu_ps(cr), v0);
            v1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), v1);
        }
        _mm256_storeu_ps(cr, v0);
        _mm256_storeu_ps(cr + 8, v1);
    }
}

FISSURE_TARGET_AVX2_FMA void widen_avx2(const std::uint16_t* src, float* dst, index_t n) {
    index_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i,
                         _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
    for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

// ------------------------------------------------------------------------------------------
// AVX-512
// ------------------------------------------------------------------------------------------

template <int NPAN>
FISSURE_TARGET_AVX512_FMA inline void micro_avx512_t(const float* qp, const float* bp, index_t kc, float* c,
                                     index_t ldc, bool accumulate) {
    __m512 x0[kMR], x1[kMR];
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
        x0[r] = _mm512_setzero_ps();
        x1[r] = _mm512_setzero_ps();
    }
    const float* bp1 = bp + kc * kNP;
    for (index_t kk = 0; kk < kc; ++kk) {
        const __m512 b0 = _mm512_loadu_ps(bp + kk * kNP);
        __m512 b1 = b0;
        if (NPAN == 2) b1 = _mm512_loadu_ps(bp1 + kk * kNP);
        const float* a = qp + kk * kMR;
#pragma GCC unroll 6
        for (int r = 0; r < kMR; ++r) {
            const __m512 q = _mm512_set1_ps(a[r]);
            x0[r] = _mm512_fmadd_ps(q, b0, x0[r]);
            if (NPAN == 2) x1[r] = _mm512_fmadd_ps(q, b1, x1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
        float* cr = c + r * ldc;
        __m512 v0 = x0[r];
        if (accumulate) v0 = _mm512_add_ps(_mm512_loadu_ps(cr), v0);
        _mm512_storeu_ps(cr, v0);
        if (NPAN == 2) {
            __m512 v1 = x1[r];
            if (accumulate) v1 = _mm512_add_ps(_mm512_loadu_ps(cr + kNP), v1);
            _mm512_storeu_ps(cr + kNP, v1);
        }
    }
}

FISSURE_TARGET_AVX512_FMA void micro_avx512(const float* qp, const float* bp, index_t kc, float* c, index_t ldc,
                            int npanels, bool accumulate) {
    if (npanels == 2)
        micro_avx512_t<2>(qp, bp, kc, c, ldc, accumulate);
    else
        micro_avx512_t<1>(qp, bp, kc, c, ldc, accumulate);
}

FISSURE_TARGET_AVX512_FMA void widen_avx512(const std::uint16_t* src, float* dst, index_t n) {
    index_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(
                                      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
    if (i < n) {
        const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

// ------------------------------------------------------------------------------------------
// AVX512_BF16: the bfloat16 first pass (knn_bf16.cpp). 6 x 32 tile, vdpbf16ps: each k-step
// takes a pair of dimensions, 2 loads + 6 broadcasts per 12 instructions, twice the
// multiply-adds of the float32 kernel per instruction.
// ------------------------------------------------------------------------------------------

template <int NPAN>
FISSURE_TARGET_AVX512_BF16 inline void micro_bf16_t(const std::uint32_t* qp, const std::uint32_t* bp, index_t kp,
                                 float* c, index_t ldc, bool accumulate) {
    __m512 x0[kMR], x1[kMR];
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
        x0[r] = _mm512_setzero_ps();
        x1[r] = _mm512_setzero_ps();
    }
    const std::uint32_t* bp1 = bp + kp * kNP;
    for (index_t p = 0; p < kp; ++p) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * kNP);
        __m512bh b1 = b0;
        if (NPAN == 2) b1 = (__m512bh)_mm512_loadu_si512(bp1 + p * kNP);
        const std::uint32_t* a = qp + p * kMR;
#pragma GCC unroll 6
        for (int r = 0; r < kMR; ++r) {
            const __m512bh q = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
            x0[r] = _mm512_dpbf16_ps(x0[r], q, b0);
            if (NPAN == 2) x1[r] = _mm512_dpbf16_ps(x1[r], q, b1);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
        float* cr = c + r * ldc;
        __m512 v0 = x0[r];
        if (accumulate) v0 = _mm512_add_ps(_mm512_loadu_ps(cr), v0);
        _mm512_storeu_ps(cr, v0);
        if (NPAN == 2) {
            __m512 v1 = x1[r];
            if (accumulate) v1 = _mm512_add_ps(_mm512_loadu_ps(cr + kNP), v1);
            _mm512_storeu_ps(cr + kNP, v1);
        }
    }
}

FISSURE_TARGET_AVX512_BF16 void micro_bf16(const std::uint32_t* qp, const std::uint32_t* bp, index_t kp, float* c,
                        index_t ldc, int npanels, bool accumulate) {
    if (npanels == 2)
        micro_bf16_t<2>(qp, bp, kp, c, ldc, accumulate);
    else
        micro_bf16_t<1>(qp, bp, kp, c, ldc, accumulate);
}

FISSURE_TARGET_AVX512_BF16 void to_bf16_avx512(const float* x, const float* mu, index_t n, std::uint32_t* out) {
    const __m512 tiny = _mm512_set1_ps(0x1p-126f);
    index_t i = 0;
    for (; i < n; i += 32) {
        const index_t m = n - i < 32 ? n - i : 32;
        const __mmask16 m0 = static_cast<__mmask16>(m >= 16 ? 0xFFFF : (1u << m) - 1u);
        const __mmask16 m1 = static_cast<__mmask16>(m >= 32 ? 0xFFFF : m > 16 ? (1u << (m - 16)) - 1u : 0u);
        __m512 v0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m0, x + i), _mm512_maskz_loadu_ps(m0, mu + i));
        __m512 v1 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m1, x + i + 16),
                                  _mm512_maskz_loadu_ps(m1, mu + i + 16));
        v0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(v0), tiny, _CMP_GE_OQ), v0);
        v1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(v1), tiny, _CMP_GE_OQ), v1);
        // 32 bf16 in element order: the low 16 from v0, the high 16 from v1
        const __m512i h = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
        const index_t pairs = (m + 1) / 2;
        _mm512_mask_storeu_epi32(out + i / 2, static_cast<__mmask16>(pairs >= 16 ? 0xFFFF : (1u << pairs) - 1u), h);
    }
}

FISSURE_TARGET_AVX512_BF16 void row_stats_avx512(const float* x, const float* mu, index_t n, std::uint32_t* out,
                              float* s) {
    const __m512 tiny = _mm512_set1_ps(0x1p-126f);
    __m512 sq = _mm512_setzero_ps(), e2 = sq, vv = sq;
    for (index_t i = 0; i < n; i += 32) {
        const index_t m = n - i < 32 ? n - i : 32;
        const __mmask16 m0 = static_cast<__mmask16>(m >= 16 ? 0xFFFF : (1u << m) - 1u);
        const __mmask16 m1 = static_cast<__mmask16>(m >= 32 ? 0xFFFF : m > 16 ? (1u << (m - 16)) - 1u : 0u);
        const __m512 v0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m0, x + i), _mm512_maskz_loadu_ps(m0, mu + i));
        const __m512 v1 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m1, x + i + 16),
                                        _mm512_maskz_loadu_ps(m1, mu + i + 16));
        const __m512 w0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(v0), tiny, _CMP_GE_OQ), v0);
        const __m512 w1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(v1), tiny, _CMP_GE_OQ), v1);
        const __m512i h = (__m512i)_mm512_cvtne2ps_pbh(w1, w0);
        const index_t pairs = (m + 1) / 2;
        _mm512_mask_storeu_epi32(out + i / 2, static_cast<__mmask16>(pairs >= 16 ? 0xFFFF : (1u << pairs) - 1u), h);
        // back to float32: the bf16 values exactly (the high halves of the words)
        const __m512 y0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
        const __m512 y1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
        sq = _mm512_fmadd_ps(y0, y0, _mm512_fmadd_ps(y1, y1, sq));
        const __m512 r0 = _mm512_sub_ps(y0, v0), r1 = _mm512_sub_ps(y1, v1);
        e2 = _mm512_fmadd_ps(r0, r0, _mm512_fmadd_ps(r1, r1, e2));
        vv = _mm512_fmadd_ps(v0, v0, _mm512_fmadd_ps(v1, v1, vv));
    }
    s[0] = _mm512_reduce_add_ps(sq);
    s[1] = _mm512_reduce_add_ps(e2);
    s[2] = _mm512_reduce_add_ps(vv);
}

FISSURE_TARGET_AVX512_BF16 std::uint32_t survivors_avx512(const float* c, const float* bsq, const float* bn,
                                       const float* be, index_t n, float qsq, float qn, float qe,
                                       float cl, float tiny, float thr) {
    const __mmask16 m = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1u);
    const __m512 A = _mm512_fmadd_ps(_mm512_set1_ps(-2.0f), _mm512_maskz_loadu_ps(m, c),
                                     _mm512_add_ps(_mm512_set1_ps(qsq), _mm512_maskz_loadu_ps(m, bsq)));
    const __m512 S = _mm512_add_ps(_mm512_set1_ps(qn), _mm512_maskz_loadu_ps(m, bn));
    const __m512 e = _mm512_add_ps(_mm512_set1_ps(qe), _mm512_maskz_loadu_ps(m, be));
    __m512 El = _mm512_fmadd_ps(_mm512_set1_ps(cl), S, _mm512_mul_ps(_mm512_set1_ps(2.002f), e));
    El = _mm512_fmadd_ps(S, El, _mm512_fmadd_ps(_mm512_mul_ps(e, e), _mm512_set1_ps(1.001f),
                                                 _mm512_set1_ps(tiny)));
    // survive unless A - El > thr
    return _mm512_mask_cmp_ps_mask(m, _mm512_sub_ps(A, El), _mm512_set1_ps(thr), _CMP_LE_OQ) |
           _mm512_mask_cmp_ps_mask(m, _mm512_sub_ps(A, El), _mm512_set1_ps(thr), _CMP_UNORD_Q);
}

}  // namespace

const KnnBf16Kernels* knn_bf16_kernels() {
    static const KnnBf16Kernels k{micro_bf16, to_bf16_avx512, row_stats_avx512, survivors_avx512};
    return cpu_features().avx512_bf16 && effective_level(Family::knn) == SimdLevel::avx512
               ? &k
               : nullptr;
}

const KnnKernels* knn_avx2_kernels() {
    static const KnnKernels k{micro_avx2, 1, widen_avx2};
    return &k;
}
const KnnKernels* knn_avx512_kernels() {
    static const KnnKernels k{micro_avx512, 2, widen_avx512};
    return &k;
}

#else

const KnnBf16Kernels* knn_bf16_kernels() { return nullptr; }
const KnnKernels* knn_avx2_kernels() { return nullptr; }
const KnnKernels* knn_avx512_kernels() { return nullptr; }

#endif

}  // namespace fissure::knn_detail
