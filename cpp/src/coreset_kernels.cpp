// SPDX-License-Identifier: Apache-2.0
// The greedy k-center's portable kernels (plain loops in the fixed order of coreset.hpp, which
// the compiler vectorises at the baseline) and the choice of a kernel set at run time.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "coreset_kernels.hpp"
#include "half.hpp"

namespace fissure::knn_detail {

namespace {

inline float tree16(const float* acc) {
    float a8[8], a4[4];
    for (int l = 0; l < 8; ++l) a8[l] = acc[l] + acc[l + 8];
    for (int l = 0; l < 4; ++l) a4[l] = a8[l] + a8[l + 4];
    const float a20 = a4[0] + a4[2], a21 = a4[1] + a4[3];
    return a20 + a21;
}

// Columns j .. j+15 of row i (fewer at the row's end) into the 16 lane sums of squared
// differences from c; lanes past the row's end take c itself (a difference of 0 adds +0).
template <bool F16>
inline void add_block16(const FeatureMatrix& m, index_t i, index_t j, const float* c,
                        float* acc) {
    const index_t d = m.cols;
    const index_t n = std::min<index_t>(16, d - j);
    float x[16];
    if (F16) {
        const std::uint16_t* src = static_cast<const std::uint16_t*>(m.data) + i * d + j;
        for (index_t l = 0; l < n; ++l) x[l] = half_to_float(src[l]);
    } else {
        const float* src = static_cast<const float*>(m.data) + i * d + j;
        for (index_t l = 0; l < n; ++l) x[l] = src[l];
    }
    for (index_t l = n; l < 16; ++l) x[l] = c[j + l];
    for (int l = 0; l < 16; ++l) {
        const float s = x[l] - c[j + l];
        acc[l] += s * s;
    }
}

template <bool F16>
void kcenter_generic_t(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                       float* min_d, float* best, index_t* best_idx) {
    const index_t d = m.cols;
    float bv = -std::numeric_limits<float>::infinity();
    index_t bi = -1;
    for (index_t i = lo; i < hi; ++i) {
        float acc[16] = {};
        index_t j = 0;
        if (!F16) {  // full blocks straight from the row (the loop the compiler vectorises)
            const float* row = static_cast<const float*>(m.data) + i * d;
            for (; j + 16 <= d; j += 16) {
                for (int l = 0; l < 16; ++l) {
                    const float s = row[j + l] - c[j + l];
                    acc[l] += s * s;
                }
            }
        }
        for (; j < d; j += 16) add_block16<F16>(m, i, j, c, acc);
        const float v = tree16(acc);
        float md = min_d[i];
        if (v < md) md = v;
        min_d[i] = md;
        if (md > bv) {
            bv = md;
            bi = i;
        }
    }
    *best = bv;
    *best_idx = bi;
}

void kcenter_generic_fn(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                        float* min_d, float* best, index_t* best_idx) {
    if (m.f16)
        kcenter_generic_t<true>(m, lo, hi, c, min_d, best, best_idx);
    else
        kcenter_generic_t<false>(m, lo, hi, c, min_d, best, best_idx);
}

// One row in the fixed order; the partial sum is checked every 64 columns (4 blocks of 16).
template <bool F16>
float row_generic_t(const FeatureMatrix& m, index_t i, const float* c, float bound) {
    const index_t d = m.cols;
    float acc[16] = {};
    for (index_t j = 0; j < d; j += 16) {
        add_block16<F16>(m, i, j, c, acc);
        if ((j & 63) == 48 && j + 16 < d) {
            const float v = tree16(acc);
            if (v >= bound) return v;
        }
    }
    return tree16(acc);
}

float row_generic_fn(const FeatureMatrix& m, index_t i, const float* c, float bound) {
    return m.f16 ? row_generic_t<true>(m, i, c, bound) : row_generic_t<false>(m, i, c, bound);
}

std::uint32_t lb_generic_fn(const std::uint16_t* yb, std::size_t cstride, const float* yc, int k,
                            const float* tau, float eps, float F, float H) {
    float acc[16] = {}, thr[16];
    for (int l = 0; l < 16; ++l) {
        const float t = tau[l] + eps;
        thr[l] = t * t * F + H;
    }
    for (int i = 0; i < k; i += 8, yb += cstride) {
        for (int j = 0; j < 8; ++j) {
            const float ci = yc[i + j];
            for (int l = 0; l < 16; ++l) {
                const float t = half_to_float(yb[j * 16 + l]) - ci;
                acc[l] += t * t;
            }
        }
        std::uint32_t mask = 0;
        for (int l = 0; l < 16; ++l)
            if (acc[l] < thr[l]) mask |= 1u << l;
        if (mask == 0 || i + 8 == k) return mask;  // the partial sums only grow
    }
    return 0;
}

void project_generic_fn(const double* qt, const double* v, index_t d, int k, double* y) {
    double acc[32] = {};
    for (index_t j = 0; j < d; ++j) {
        const double vj = v[j];
        const double* q = qt + j * k;
        for (int a = 0; a < k; ++a) acc[a] += vj * q[a];
    }
    for (int a = 0; a < k; ++a) y[a] = acc[a];
}

}  // namespace

const KcenterKernels& kcenter_generic() {
    static const KcenterKernels k{kcenter_generic_fn, row_generic_fn, lb_generic_fn,
                                  project_generic_fn};
    return k;
}

const KcenterKernels& kcenter_kernels() {
    const KcenterKernels* k = nullptr;
    switch (effective_level(Family::knn)) {
        case SimdLevel::avx512: k = kcenter_avx512(); break;
        case SimdLevel::avx2: k = kcenter_avx2(); break;
        default: break;
    }
    return k ? *k : kcenter_generic();
}

WidenFn widen_kernel() {
    const KnnKernels* k = nullptr;
    switch (effective_level(Family::knn)) {
        case SimdLevel::avx512: k = knn_avx512_kernels(); break;
        case SimdLevel::avx2: k = knn_avx2_kernels(); break;
        default: break;
    }
    return (k ? *k : knn_generic_kernels()).widen;
}

}  // namespace fissure::knn_detail
