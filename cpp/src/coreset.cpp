// SPDX-License-Identifier: Apache-2.0
// Greedy k-center coreset (see coreset.hpp): the driver, the portable pass, the dispatch.
// One pass per selected point: every row's squared distance to the new centre (the fixed
// float32 order of coreset.hpp), the running minimum, and the argmax of the minima, fused;
// rows are split into contiguous ranges over the threads and the per-thread maxima merged
// (ties: the lowest index). Selected rows carry min_d = -1 so they are never chosen again.
#include "fissure/coreset.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "fissure/parallel.hpp"
#include "knn_kernels.hpp"

namespace fissure {

namespace knn_detail {

namespace {

inline float tree16(const float* acc) {
    float a8[8], a4[4];
    for (int l = 0; l < 8; ++l) a8[l] = acc[l] + acc[l + 8];
    for (int l = 0; l < 4; ++l) a4[l] = a8[l] + a8[l + 4];
    const float a20 = a4[0] + a4[2], a21 = a4[1] + a4[3];
    return a20 + a21;
}

template <bool F16>
void kcenter_generic_t(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                       float* min_d, float* best, index_t* best_idx) {
    const index_t d = m.cols;
    float bv = -std::numeric_limits<float>::infinity();
    index_t bi = -1;
    float x[16];
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
        for (; j < d; j += 16) {
            const index_t n = std::min<index_t>(16, d - j);
            if (F16) {
                const std::uint16_t* src = static_cast<const std::uint16_t*>(m.data) + i * d + j;
                for (index_t l = 0; l < n; ++l) x[l] = half_to_float(src[l]);
            } else {
                const float* src = static_cast<const float*>(m.data) + i * d + j;
                for (index_t l = 0; l < n; ++l) x[l] = src[l];
            }
            for (index_t l = n; l < 16; ++l) x[l] = c[j + l];  // diff 0: adds +0, a no-op
            for (int l = 0; l < 16; ++l) {
                const float s = x[l] - c[j + l];
                acc[l] += s * s;
            }
        }
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

}  // namespace

KcenterFn kcenter_generic() { return kcenter_generic_fn; }

}  // namespace knn_detail

namespace {

knn_detail::KcenterFn kcenter_kernel() {
    using namespace knn_detail;
    KcenterFn f = nullptr;
    switch (detail::knn_simd_level()) {
        case SimdLevel::avx512: f = kcenter_avx512(); break;
        case SimdLevel::avx2: f = kcenter_avx2(); break;
        default: break;
    }
    return f ? f : kcenter_generic();
}

}  // namespace

void kcenter_greedy(const FeatureMatrix& f, index_t n, index_t start, std::int64_t* out,
                    int num_threads) {
    using knn_detail::half_to_float;
    if (f.rows < 1) fail("features: expected at least one row, got an empty array");
    if (f.cols < 1) fail("features: expected at least one column, got 0");
    if (n < 1) fail("n: expected n >= 1, got " + std::to_string(n));
    if (n > f.rows)
        fail("n: expected at most the number of rows (" + std::to_string(f.rows) + "), got " +
             std::to_string(n));
    if (start < 0 || start >= f.rows)
        fail("start_index: expected 0 <= start_index < " + std::to_string(f.rows) + ", got " +
             std::to_string(start));
    check_feature_rows(f, "features", nullptr, num_threads);

    const index_t N = f.rows, d = f.cols;
    const knn_detail::KcenterFn kern = kcenter_kernel();
    std::vector<float> min_d(static_cast<std::size_t>(N), std::numeric_limits<float>::infinity());
    std::vector<float> c(static_cast<std::size_t>(knn_detail::round_up(d, 16)), 0.f);
    // Threads only where a pass is long enough to pay for the hand-off (~32k elements each).
    const int T = resolve_threads(num_threads, std::max<index_t>(1, N * d / (index_t{1} << 15)));
    std::vector<index_t> bounds(static_cast<std::size_t>(T) + 1);
    for (int t = 0; t <= T; ++t) bounds[t] = N * t / T;
    std::vector<float> best(static_cast<std::size_t>(T));
    std::vector<index_t> best_idx(static_cast<std::size_t>(T));

    index_t cur = start;
    out[0] = start;
    for (index_t s = 1; s < n; ++s) {
        if (f.f16) {
            const std::uint16_t* r = static_cast<const std::uint16_t*>(f.data) + cur * d;
            for (index_t j = 0; j < d; ++j) c[j] = half_to_float(r[j]);
        } else {
            const float* r = static_cast<const float*>(f.data) + cur * d;
            std::copy(r, r + d, c.begin());
        }
        min_d[cur] = -1.0f;
        if (T == 1) {
            kern(f, 0, N, c.data(), min_d.data(), &best[0], &best_idx[0]);
        } else {
            run_parallel(T, [&](int t) {
                kern(f, bounds[t], bounds[t + 1], c.data(), min_d.data(), &best[t], &best_idx[t]);
            });
        }
        int bt = 0;
        for (int t = 1; t < T; ++t)
            if (best[t] > best[bt]) bt = t;
        cur = best_idx[bt];
        out[s] = cur;
    }
}

}  // namespace fissure
