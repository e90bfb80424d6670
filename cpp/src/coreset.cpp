// SPDX-License-Identifier: Apache-2.0
// Greedy k-center coreset (see coreset.hpp): the driver and the plain pass. The pruned pass
// is coreset_pruned.cpp (its projection basis coreset_basis.cpp), the portable kernels and
// the kernel choice coreset_kernels.cpp, the x86 kernels coreset_x86.cpp.
//
// Plain pass (small problems, narrow features): per selected point, every row's squared
// distance to the new centre (the fixed float32 order of coreset.hpp), the running minimum and
// the argmax of the minima, fused; rows split into contiguous ranges over the threads and the
// per-thread maxima merged (ties: the lowest index). Selected rows carry min_d = -1.
#include "fissure/coreset.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "coreset_detail.hpp"
#include "fissure/parallel.hpp"

namespace fissure {

using knn_detail::KcenterKernels;

namespace detail {

void kcenter_greedy_opts(const FeatureMatrix& f, index_t n, index_t start, std::int64_t* out,
                         int num_threads, int prune, int k_override, KcenterStats* stats) {
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
    const KcenterKernels& kern = knn_detail::kcenter_kernels();
    std::vector<float> c(static_cast<std::size_t>(knn_detail::round_up(d, 16)), 0.f);
    auto load_centre = [&](index_t i) { coreset_detail::load_row(f, i, c.data()); };
    // Threads only where a pass is long enough to pay for the hand-off (~32k elements each).
    const int T = resolve_threads(num_threads, std::max<index_t>(1, N * d / (index_t{1} << 15)));
    std::vector<index_t> bounds(static_cast<std::size_t>(T) + 1);
    for (int t = 0; t <= T; ++t) bounds[t] = N * t / T;
    std::vector<float> best(static_cast<std::size_t>(T));
    std::vector<index_t> best_idx(static_cast<std::size_t>(T));
    KcenterStats st{};

    int k = k_override > 0 ? k_override : (d >= 128 ? 32 : (d >= 64 ? 16 : (d >= 16 ? 8 : 0)));
    if (k > 32 || k % 8 != 0 || k > d) k = 0;
    const bool use_pruning = prune == 1 ? k > 0 : (prune != 0 && k > 0 && n >= 16 && N >= 64);

    index_t cur = start;
    out[0] = start;
    if (!use_pruning) {
        std::vector<float> min_d(static_cast<std::size_t>(N),
                                 std::numeric_limits<float>::infinity());
        for (index_t s = 1; s < n; ++s) {
            cancel_point();  // on the calling thread, between steps
            load_centre(cur);
            min_d[cur] = -1.0f;
            if (T == 1) {
                kern.pass(f, 0, N, c.data(), min_d.data(), &best[0], &best_idx[0]);
            } else {
                run_parallel(T, [&](int t) {
                    kern.pass(f, bounds[t], bounds[t + 1], c.data(), min_d.data(), &best[t],
                              &best_idx[t]);
                });
            }
            int bt = 0;
            for (int t = 1; t < T; ++t)
                if (best[t] > best[bt]) bt = t;
            cur = best_idx[bt];
            out[s] = cur;
            st.plain_steps += 1;
            st.rows_computed += N;
        }
        if (stats) *stats = st;
        return;
    }
    coreset_detail::pruned_greedy(f, kern, k, n, start, out, num_threads, T, st);
    if (stats) *stats = st;
}

}  // namespace detail

void kcenter_greedy(const FeatureMatrix& f, index_t n, index_t start, std::int64_t* out,
                    int num_threads) {
    detail::kcenter_greedy_opts(f, n, start, out, num_threads, -1, 0, nullptr);
}

}  // namespace fissure
