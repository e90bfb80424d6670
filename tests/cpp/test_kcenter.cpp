// SPDX-License-Identifier: Apache-2.0
// Greedy k-center's pruned pass against a naive loop written with the documented float32 order:
// the selection must be identical whether rows are skipped or not, on every SIMD path, thread
// count and projected width, on data that makes the skipping heavy (clusters, duplicates,
// exact ties on integer grids), at the extremes of the float32 range (subnormal squares,
// squared norms near the 4e37 limit), and at the block edges (N around multiples of 16).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/coreset.hpp"
#include "fissure/knn.hpp"
#include "half.hpp"
#include "knn_levels.hpp"

using fissure::FeatureMatrix;
using fissure::index_t;

namespace {

using knn_test::levels;
using knn_test::LevelGuard;

// The documented order: lane j % 16 sums its squares in sequence, then a fixed tree.
float fixed_sqdist(const float* x, const float* c, index_t d) {
    float acc[16] = {};
    for (index_t j = 0; j < d; ++j) {
        const float s = x[j] - c[j];
        const float sq = s * s;
        acc[j % 16] = acc[j % 16] + sq;
    }
    float a8[8], a4[4];
    for (int l = 0; l < 8; ++l) a8[l] = acc[l] + acc[l + 8];
    for (int l = 0; l < 4; ++l) a4[l] = a8[l] + a8[l + 4];
    const float a20 = a4[0] + a4[2], a21 = a4[1] + a4[3];
    return a20 + a21;
}

std::vector<std::int64_t> naive_kcenter(const std::vector<float>& x, index_t N, index_t d,
                                        index_t n, index_t start) {
    std::vector<float> mind(static_cast<std::size_t>(N), INFINITY);
    std::vector<std::int64_t> sel{start};
    while (static_cast<index_t>(sel.size()) < n) {
        mind[sel.back()] = -1.0f;
        const float* c = x.data() + sel.back() * d;
        index_t best = 0;
        for (index_t i = 0; i < N; ++i) {
            mind[i] = std::min(mind[i], fixed_sqdist(x.data() + i * d, c, d));
            if (mind[i] > mind[best]) best = i;
        }
        sel.push_back(best);
    }
    return sel;
}

// Clusters of `spread` around `centres` random points (scaled by `scale`), a share of exact
// duplicates.
std::vector<float> clusters(index_t N, index_t d, int centres, float spread, float scale,
                            unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> c(static_cast<std::size_t>(centres * d));
    for (auto& v : c) v = nd(gen) * 10.f;
    std::vector<float> x(static_cast<std::size_t>(N * d));
    for (index_t i = 0; i < N; ++i) {
        const index_t k = static_cast<index_t>(gen() % static_cast<unsigned>(centres));
        for (index_t j = 0; j < d; ++j) x[i * d + j] = (c[k * d + j] + nd(gen) * spread) * scale;
    }
    for (index_t t = 0; t < N / 20; ++t) {
        const index_t a = static_cast<index_t>(gen() % N), b = static_cast<index_t>(gen() % N);
        std::copy_n(x.begin() + b * d, d, x.begin() + a * d);
    }
    return x;
}

// Pruned (forced) and plain selections equal the naive loop; returns the pruned stats of the
// last level.
fissure::detail::KcenterStats check_all(const std::vector<float>& x, index_t N, index_t d,
                                        index_t n, index_t start, int k) {
    const auto want = naive_kcenter(x, N, d, n, start);
    fissure::detail::KcenterStats st{};
    for (int level : levels()) {
        LevelGuard g(level);
        for (int threads : {1, 2, 3}) {
            std::vector<std::int64_t> got(static_cast<std::size_t>(n));
            fissure::detail::kcenter_greedy_opts(FeatureMatrix{x.data(), N, d, false}, n, start,
                                                 got.data(), threads, 1, k, &st);
            CHECK(got == want);
        }
        std::vector<std::int64_t> plain(static_cast<std::size_t>(n));
        fissure::detail::kcenter_greedy_opts(FeatureMatrix{x.data(), N, d, false}, n, start,
                                             plain.data(), 2, 0, 0, nullptr);
        CHECK(plain == want);
    }
    return st;
}

}  // namespace

TEST(pruned_clusters_every_width) {
    for (int k : {8, 16, 24, 32}) {
        const index_t d = std::max<index_t>(2 * k, 40);
        const auto x = clusters(1600, d, 25, 0.4f, 1.f, 100u + static_cast<unsigned>(k));
        const auto st = check_all(x, 1600, d, 300, 17, k);
        CHECK(st.pruned_steps > 0);
        CHECK(st.rows_computed < 300 * 1600 / 4);  // most rows skipped
    }
}

TEST(pruned_block_edges) {
    // N one below, at and one past multiples of the 16-row block; start at the last row.
    for (index_t N : {63, 64, 65, 255, 257}) {
        const auto x = clusters(N, 24, 5, 0.3f, 1.f, static_cast<unsigned>(N));
        check_all(x, N, 24, std::min<index_t>(N, 40), N - 1, 8);
        check_all(x, N, 24, N, 0, 8);  // every row: the last picks are exact ties
    }
}

TEST(pruned_integer_grids) {
    // Exact distances (sums below 2^24): equal and off-by-one distances everywhere.
    std::mt19937 gen(5);
    std::vector<float> x(static_cast<std::size_t>(1200 * 16));
    for (auto& v : x) v = static_cast<float>(gen() % 200);
    for (index_t i = 600; i < 1200; ++i)
        std::copy_n(x.begin() + static_cast<index_t>(gen() % 600) * 16, 16, x.begin() + i * 16);
    check_all(x, 1200, 16, 900, 4, 8);
    // a line and a square lattice inside the first coordinates: the projection keeps the
    // whole distance, so the bound is tight
    std::vector<float> line(static_cast<std::size_t>(3000 * 16), 0.f);
    for (index_t i = 0; i < 3000; ++i) line[i * 16] = static_cast<float>(i);
    check_all(line, 3000, 16, 700, 0, 8);
    std::vector<float> lat(static_cast<std::size_t>(2500 * 16), 0.f);
    for (index_t i = 0; i < 2500; ++i) {
        lat[i * 16] = static_cast<float>(i % 50) * 30.f;
        lat[i * 16 + 1] = static_cast<float>(i / 50) * 30.f;
    }
    check_all(lat, 2500, 16, 800, 1234, 8);
}

TEST(pruned_extreme_scales) {
    // 1e-22: squared differences are subnormal (or flush to zero); 1e17 with 32 columns:
    // squared norms near the 4e37 limit.
    for (float scale : {1e-22f, 1e-19f, 1e-6f, 1e6f, 1e17f}) {
        const auto x = clusters(900, 32, 12, 0.3f, scale / 30.f, 77u);
        check_all(x, 900, 32, 200, 3, 8);
    }
}

TEST(pruned_float16_equals_widened) {
    const auto x = clusters(1500, 48, 20, 0.5f, 0.1f, 9u);
    std::vector<std::uint16_t> bits(x.size());
    std::vector<float> wide(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        bits[i] = fissure::float_to_half(x[i]);
        const unsigned e = (bits[i] >> 10) & 0x1Fu, m = bits[i] & 0x3FFu;
        const double mag = e ? std::ldexp(1024.0 + m, static_cast<int>(e) - 25)
                             : std::ldexp(static_cast<double>(m), -24);
        wide[i] = static_cast<float>((bits[i] & 0x8000u) ? -mag : mag);
    }
    const auto want = naive_kcenter(wide, 1500, 48, 250, 0);
    for (int level : levels()) {
        LevelGuard g(level);
        std::vector<std::int64_t> got(250);
        fissure::detail::kcenter_greedy_opts(FeatureMatrix{bits.data(), 1500, 48, true}, 250, 0,
                                             got.data(), 2, 1, 16, nullptr);
        CHECK(got == want);
    }
}

TEST(pruned_degenerate_rows) {
    // Every row identical: the basis comes from a zero covariance; picks go in index order.
    std::vector<float> same(static_cast<std::size_t>(100 * 20), 2.5f);
    check_all(same, 100, 20, 60, 7, 8);
    // Rows differing in one column only.
    std::vector<float> one(static_cast<std::size_t>(500 * 20), 1.f);
    for (index_t i = 0; i < 500; ++i) one[i * 20 + 13] = static_cast<float>((i * 37) % 101);
    check_all(one, 500, 20, 150, 0, 8);
}

CHECK_MAIN()
