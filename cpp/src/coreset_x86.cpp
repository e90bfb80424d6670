// SPDX-License-Identifier: Apache-2.0
// x86 kernels of the greedy k-center pass: AVX2 and AVX-512, float32 and float16 rows. The
// arithmetic is the fixed order of coreset.hpp on every path (sub, mul, add: no FMA, which
// would round once instead of twice): AVX-512 keeps the 16 lanes in one register, AVX2 in two
// (lanes 0-7 and 8-15), and both fold them with the same tree, so every path selects the same
// points. Compiled for the portable baseline; functions carry target attributes and run only
// when dispatch picked them.
//
// The pruned pass (coreset.cpp) adds three kernels per ISA: the exact distance of one row with
// an early exit (same arithmetic as the pass, so the same value), the projected lower bound of
// a block of 16 points against the new centre (any rounding order: its error is bounded in the
// caller's threshold), and the double-precision projection of a row.
#include <cstdint>
#include <limits>

#include "coreset_kernels.hpp"
#include "simd.hpp"

namespace fissure::knn_detail {

#ifdef FISSURE_X86_KERNELS

namespace {

// The pass and the row distance are compiled without FMA (FISSURE_TARGET_*_F16C): FMA only
// where the rounding order is free (the lower bound, the projection: FISSURE_TARGET_*_FMA).

// Rows handled together (independent accumulator chains).
constexpr int kRows = 4;

// a2 = (a4[0] + a4[2], a4[1] + a4[3]); result a2[0] + a2[1].
FISSURE_TARGET_AVX2_F16C inline float fold4(__m128 a4) {
    const __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
    return _mm_cvtss_f32(_mm_add_ss(a2, _mm_shuffle_ps(a2, a2, 1)));
}

FISSURE_TARGET_AVX2_F16C inline float fold8(__m256 a8) {
    return fold4(_mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1)));
}

// ------------------------------------------------------------------------------------------
// AVX2: lanes 0-7 in lo, 8-15 in hi.
// ------------------------------------------------------------------------------------------

template <bool F16>
FISSURE_TARGET_AVX2_F16C inline void load16_avx2(const void* base, index_t off, index_t n, const float* c,
                                __m256& lo, __m256& hi) {
    if (n == 16) {
        if (F16) {
            const std::uint16_t* p = static_cast<const std::uint16_t*>(base) + off;
            lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
            hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
        } else {
            const float* p = static_cast<const float*>(base) + off;
            lo = _mm256_loadu_ps(p);
            hi = _mm256_loadu_ps(p + 8);
        }
        return;
    }
    alignas(32) float x[16];
    for (index_t l = 0; l < 16; ++l) {
        if (l < n)
            x[l] = F16 ? half_to_float(static_cast<const std::uint16_t*>(base)[off + l])
                       : static_cast<const float*>(base)[off + l];
        else
            x[l] = c[l];  // diff 0
    }
    lo = _mm256_load_ps(x);
    hi = _mm256_load_ps(x + 8);
}

template <bool F16>
FISSURE_TARGET_AVX2_F16C void kcenter_avx2_t(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                            float* min_d, float* best, index_t* best_idx) {
    const index_t d = m.cols;
    float bv = -std::numeric_limits<float>::infinity();
    index_t bi = -1;
    index_t i = lo;
    for (; i < hi; i += kRows) {
        const int rows = static_cast<int>(hi - i < kRows ? hi - i : kRows);
        __m256 alo[kRows], ahi[kRows];
        for (int r = 0; r < kRows; ++r) alo[r] = ahi[r] = _mm256_setzero_ps();
        for (index_t j = 0; j < d; j += 16) {
            const index_t n = d - j < 16 ? d - j : 16;
            const __m256 clo = _mm256_loadu_ps(c + j), chi = _mm256_loadu_ps(c + j + 8);
            for (int r = 0; r < rows; ++r) {
                __m256 xlo, xhi;
                load16_avx2<F16>(m.data, (i + r) * d + j, n, c + j, xlo, xhi);
                xlo = _mm256_sub_ps(xlo, clo);
                xhi = _mm256_sub_ps(xhi, chi);
                alo[r] = _mm256_add_ps(alo[r], _mm256_mul_ps(xlo, xlo));
                ahi[r] = _mm256_add_ps(ahi[r], _mm256_mul_ps(xhi, xhi));
            }
        }
        for (int r = 0; r < rows; ++r) {
            const float v = fold8(_mm256_add_ps(alo[r], ahi[r]));
            float md = min_d[i + r];
            if (v < md) md = v;
            min_d[i + r] = md;
            if (md > bv) {
                bv = md;
                bi = i + r;
            }
        }
    }
    *best = bv;
    *best_idx = bi;
}

void kcenter_avx2_fn(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                     float* min_d, float* best, index_t* best_idx) {
    if (m.f16)
        kcenter_avx2_t<true>(m, lo, hi, c, min_d, best, best_idx);
    else
        kcenter_avx2_t<false>(m, lo, hi, c, min_d, best, best_idx);
}

// One row, the same arithmetic as kcenter_avx2_t; checks the partial sum every 64 columns.
template <bool F16>
FISSURE_TARGET_AVX2_F16C float row_avx2_t(const FeatureMatrix& m, index_t i, const float* c, float bound) {
    const index_t d = m.cols;
    __m256 alo = _mm256_setzero_ps(), ahi = _mm256_setzero_ps();
    for (index_t j = 0; j < d; j += 16) {
        const index_t n = d - j < 16 ? d - j : 16;
        __m256 xlo, xhi;
        load16_avx2<F16>(m.data, i * d + j, n, c + j, xlo, xhi);
        xlo = _mm256_sub_ps(xlo, _mm256_loadu_ps(c + j));
        xhi = _mm256_sub_ps(xhi, _mm256_loadu_ps(c + j + 8));
        alo = _mm256_add_ps(alo, _mm256_mul_ps(xlo, xlo));
        ahi = _mm256_add_ps(ahi, _mm256_mul_ps(xhi, xhi));
        if ((j & 63) == 48 && j + 16 < d) {
            const float v = fold8(_mm256_add_ps(alo, ahi));
            if (v >= bound) return v;
        }
    }
    return fold8(_mm256_add_ps(alo, ahi));
}

float row_avx2_fn(const FeatureMatrix& m, index_t i, const float* c, float bound) {
    return m.f16 ? row_avx2_t<true>(m, i, c, bound) : row_avx2_t<false>(m, i, c, bound);
}

FISSURE_TARGET_AVX2_FMA inline __m256 load8h(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

FISSURE_TARGET_AVX2_FMA std::uint32_t lb_avx2_fn(const std::uint16_t* yb, std::size_t cstride,
                                  const float* yc, int k, const float* tau, float eps, float F,
                                  float H) {
    const __m256 e = _mm256_set1_ps(eps), f = _mm256_set1_ps(F), h = _mm256_set1_ps(H);
    __m256 t0 = _mm256_add_ps(_mm256_loadu_ps(tau), e);
    __m256 t1 = _mm256_add_ps(_mm256_loadu_ps(tau + 8), e);
    t0 = _mm256_fmadd_ps(_mm256_mul_ps(t0, t0), f, h);
    t1 = _mm256_fmadd_ps(_mm256_mul_ps(t1, t1), f, h);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (int i = 0; i < k; i += 8, yb += cstride) {
        for (int j = 0; j < 8; ++j) {
            const __m256 cj = _mm256_set1_ps(yc[i + j]);
            const __m256 d0 = _mm256_sub_ps(load8h(yb + j * 16), cj);
            const __m256 d1 = _mm256_sub_ps(load8h(yb + j * 16 + 8), cj);
            a0 = _mm256_fmadd_ps(d0, d0, a0);
            a1 = _mm256_fmadd_ps(d1, d1, a1);
        }
        const unsigned m0 =
            static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a0, t0, _CMP_LT_OQ)));
        const unsigned m1 =
            static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a1, t1, _CMP_LT_OQ)));
        const unsigned m = m0 | (m1 << 8);
        if (m == 0 || i + 8 == k) return m;
    }
    return 0;
}

FISSURE_TARGET_AVX2_FMA void project_avx2_fn(const double* qt, const double* v, index_t d, int k, double* y) {
    // k is a multiple of 8 and at most 32
    __m256d acc[8];
    const int na = k / 4;
    for (int a = 0; a < na; ++a) acc[a] = _mm256_setzero_pd();
    for (index_t j = 0; j < d; ++j) {
        const __m256d vj = _mm256_set1_pd(v[j]);
        const double* q = qt + j * k;
        for (int a = 0; a < na; ++a) acc[a] = _mm256_fmadd_pd(vj, _mm256_loadu_pd(q + 4 * a), acc[a]);
    }
    for (int a = 0; a < na; ++a) _mm256_storeu_pd(y + 4 * a, acc[a]);
}

// ------------------------------------------------------------------------------------------
// AVX-512: the 16 lanes in one register; tails by masked loads (masked-off lanes are 0 and
// the padded centre is 0 there, so they add +0).
// ------------------------------------------------------------------------------------------

FISSURE_TARGET_AVX512_F16C inline float fold16(__m512 acc) {
    const __m256 a8 = _mm256_add_ps(
        _mm512_castps512_ps256(acc),
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    const __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
    const __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
    return _mm_cvtss_f32(_mm_add_ss(a2, _mm_shuffle_ps(a2, a2, 1)));
}

template <bool F16>
FISSURE_TARGET_AVX512_F16C inline __m512 load16_avx512(const void* base, index_t off, __mmask16 mask) {
    if (F16)
        return _mm512_cvtph_ps(
            _mm256_maskz_loadu_epi16(mask, static_cast<const std::uint16_t*>(base) + off));
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(base) + off);
}

template <bool F16>
FISSURE_TARGET_AVX512_F16C void kcenter_avx512_t(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                                float* min_d, float* best, index_t* best_idx) {
    const index_t d = m.cols;
    float bv = -std::numeric_limits<float>::infinity();
    index_t bi = -1;
    const index_t full = d / 16 * 16;
    const __mmask16 tail = static_cast<__mmask16>((1u << (d - full)) - 1u);
    index_t i = lo;
    for (; i < hi; i += kRows) {
        const int rows = static_cast<int>(hi - i < kRows ? hi - i : kRows);
        __m512 acc[kRows];
        for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
        if (rows == kRows) {
            for (index_t j = 0; j < full; j += 16) {
                const __m512 cj = _mm512_loadu_ps(c + j);
#pragma GCC unroll 4
                for (int r = 0; r < kRows; ++r) {
                    const __m512 x =
                        _mm512_sub_ps(load16_avx512<F16>(m.data, (i + r) * d + j, 0xFFFF), cj);
                    acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(x, x));
                }
            }
        } else {
            for (index_t j = 0; j < full; j += 16) {
                const __m512 cj = _mm512_loadu_ps(c + j);
                for (int r = 0; r < rows; ++r) {
                    const __m512 x =
                        _mm512_sub_ps(load16_avx512<F16>(m.data, (i + r) * d + j, 0xFFFF), cj);
                    acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(x, x));
                }
            }
        }
        if (tail) {
            const __m512 cj = _mm512_loadu_ps(c + full);
            for (int r = 0; r < rows; ++r) {
                const __m512 x =
                    _mm512_sub_ps(load16_avx512<F16>(m.data, (i + r) * d + full, tail), cj);
                acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(x, x));
            }
        }
        for (int r = 0; r < rows; ++r) {
            const float v = fold16(acc[r]);
            float md = min_d[i + r];
            if (v < md) md = v;
            min_d[i + r] = md;
            if (md > bv) {
                bv = md;
                bi = i + r;
            }
        }
    }
    *best = bv;
    *best_idx = bi;
}

// One row, the same arithmetic as kcenter_avx512_t; checks the partial sum every 64 columns.
template <bool F16>
FISSURE_TARGET_AVX512_F16C float row_avx512_t(const FeatureMatrix& m, index_t i, const float* c, float bound) {
    const index_t d = m.cols;
    const index_t full = d / 16 * 16;
    const __mmask16 tail = static_cast<__mmask16>((1u << (d - full)) - 1u);
    __m512 acc = _mm512_setzero_ps();
    const index_t base = i * d;
    for (index_t j = 0; j < full; j += 16) {
        const __m512 x =
            _mm512_sub_ps(load16_avx512<F16>(m.data, base + j, 0xFFFF), _mm512_loadu_ps(c + j));
        acc = _mm512_add_ps(acc, _mm512_mul_ps(x, x));
        if ((j & 63) == 48 && j + 16 < d) {
            const float v = fold16(acc);
            if (v >= bound) return v;
        }
    }
    if (tail) {
        const __m512 x =
            _mm512_sub_ps(load16_avx512<F16>(m.data, base + full, tail), _mm512_loadu_ps(c + full));
        acc = _mm512_add_ps(acc, _mm512_mul_ps(x, x));
    }
    return fold16(acc);
}

float row_avx512_fn(const FeatureMatrix& m, index_t i, const float* c, float bound) {
    return m.f16 ? row_avx512_t<true>(m, i, c, bound) : row_avx512_t<false>(m, i, c, bound);
}

FISSURE_TARGET_AVX512_FMA inline __m512 load16h(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

FISSURE_TARGET_AVX512_FMA std::uint32_t lb_avx512_fn(const std::uint16_t* yb, std::size_t cstride,
                                      const float* yc, int k, const float* tau, float eps, float F,
                                      float H) {
    __m512 t = _mm512_add_ps(_mm512_loadu_ps(tau), _mm512_set1_ps(eps));
    t = _mm512_fmadd_ps(_mm512_mul_ps(t, t), _mm512_set1_ps(F), _mm512_set1_ps(H));
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (int i = 0; i < k; i += 8, yb += cstride) {
        for (int j = 0; j < 8; j += 2) {
            const __m512 d0 = _mm512_sub_ps(load16h(yb + j * 16), _mm512_set1_ps(yc[i + j]));
            const __m512 d1 =
                _mm512_sub_ps(load16h(yb + j * 16 + 16), _mm512_set1_ps(yc[i + j + 1]));
            a0 = _mm512_fmadd_ps(d0, d0, a0);
            a1 = _mm512_fmadd_ps(d1, d1, a1);
        }
        // the partial sums only grow: stop once no lane can be a candidate
        const __mmask16 m = _mm512_cmp_ps_mask(_mm512_add_ps(a0, a1), t, _CMP_LT_OQ);
        if (m == 0 || i + 8 == k) return m;
    }
    return 0;
}

FISSURE_TARGET_AVX512_FMA void project_avx512_fn(const double* qt, const double* v, index_t d, int k, double* y) {
    // k is a multiple of 8 and at most 32
    __m512d acc[4];
    const int na = k / 8;
    for (int a = 0; a < na; ++a) acc[a] = _mm512_setzero_pd();
    for (index_t j = 0; j < d; ++j) {
        const __m512d vj = _mm512_set1_pd(v[j]);
        const double* q = qt + j * k;
        for (int a = 0; a < na; ++a) acc[a] = _mm512_fmadd_pd(vj, _mm512_loadu_pd(q + 8 * a), acc[a]);
    }
    for (int a = 0; a < na; ++a) _mm512_storeu_pd(y + 8 * a, acc[a]);
}

void kcenter_avx512_fn(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                       float* min_d, float* best, index_t* best_idx) {
    // float32 rows that are not 64-byte aligned (numpy's buffers usually sit at 16 mod 64)
    // would split every 64-byte load over two cache lines; the two-register AVX2 loop is
    // faster there, and its arithmetic is the same.
    const bool aligned = reinterpret_cast<std::uintptr_t>(m.data) % 64 == 0 && m.cols % 16 == 0;
    if (m.f16)
        kcenter_avx512_t<true>(m, lo, hi, c, min_d, best, best_idx);
    else if (aligned)
        kcenter_avx512_t<false>(m, lo, hi, c, min_d, best, best_idx);
    else
        kcenter_avx2_t<false>(m, lo, hi, c, min_d, best, best_idx);
}

}  // namespace

const KcenterKernels* kcenter_avx2() {
    static const KcenterKernels k{kcenter_avx2_fn, row_avx2_fn, lb_avx2_fn, project_avx2_fn};
    return &k;
}
const KcenterKernels* kcenter_avx512() {
    static const KcenterKernels k{kcenter_avx512_fn, row_avx512_fn, lb_avx512_fn,
                                  project_avx512_fn};
    return &k;
}

#else

const KcenterKernels* kcenter_avx2() { return nullptr; }
const KcenterKernels* kcenter_avx512() { return nullptr; }

#endif

}  // namespace fissure::knn_detail
