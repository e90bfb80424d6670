// SPDX-License-Identifier: Apache-2.0
// kNN search and greedy k-center against naive loops: a double-precision brute force with
// direct differences (ids must match on untied data, distances to float tolerance), and a
// plain k-center loop written with the documented float32 order (selection must match
// exactly), on every SIMD path this CPU has.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/coreset.hpp"
#include "fissure/knn.hpp"
#include "knn_levels.hpp"

using fissure::FeatureMatrix;
using fissure::index_t;

namespace {

using knn_test::levels;
using knn_test::LevelGuard;

std::vector<float> gaussian(index_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = nd(gen);
    return v;
}

// binary16 patterns of normal numbers in +-[2^-5, 2^5) and their values (by ldexp).
void random_halves(index_t n, unsigned seed, std::vector<std::uint16_t>& bits,
                   std::vector<float>& values) {
    std::mt19937 gen(seed);
    bits.resize(static_cast<std::size_t>(n));
    values.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
        const unsigned sign = gen() & 1u, exp = 10 + gen() % 10, mant = gen() % 1024;
        bits[i] = static_cast<std::uint16_t>((sign << 15) | (exp << 10) | mant);
        values[i] = static_cast<float>((sign ? -1.0 : 1.0) *
                                       std::ldexp(1.0 + mant / 1024.0, static_cast<int>(exp) - 15));
    }
}

// Brute force: (distance, id) sorted, in double with direct differences.
void naive_knn(const std::vector<float>& bank, index_t nb, const std::vector<float>& q, index_t nq,
               index_t d, index_t k, std::vector<double>& D, std::vector<std::int64_t>& I) {
    D.assign(static_cast<std::size_t>(nq * k), static_cast<double>(FLT_MAX));
    I.assign(static_cast<std::size_t>(nq * k), -1);
    std::vector<std::pair<double, index_t>> all(static_cast<std::size_t>(nb));
    for (index_t i = 0; i < nq; ++i) {
        for (index_t j = 0; j < nb; ++j) {
            double s = 0;
            for (index_t c = 0; c < d; ++c) {
                const double t = static_cast<double>(q[i * d + c]) - bank[j * d + c];
                s += t * t;
            }
            all[j] = {s, j};
        }
        std::sort(all.begin(), all.end());
        for (index_t t = 0; t < std::min(k, nb); ++t) {
            D[i * k + t] = all[t].first;
            I[i * k + t] = all[t].second;
        }
    }
}

void check_against_naive(index_t nb, index_t nq, index_t d, index_t k, int threads, unsigned seed) {
    const auto bank = gaussian(nb * d, seed), q = gaussian(nq * d, seed + 1);
    std::vector<double> Dr;
    std::vector<std::int64_t> Ir;
    naive_knn(bank, nb, q, nq, d, k, Dr, Ir);
    for (int level : levels()) {
        LevelGuard g(level);
        std::vector<float> D(static_cast<std::size_t>(nq * k));
        std::vector<std::int64_t> I(static_cast<std::size_t>(nq * k));
        fissure::knn_search(FeatureMatrix{bank.data(), nb, d, false}, q.data(), nq, k, D.data(),
                            I.data(), threads);
        CHECK(I == Ir);
        bool close = true;
        for (std::size_t t = 0; t < D.size(); ++t) {
            if (Ir[t] < 0) {
                close = close && D[t] == FLT_MAX;
            } else {
                // float32 expansion error: a few ulps of |q|^2 + |b|^2 (~2d here).
                close = close && std::fabs(D[t] - Dr[t]) <= 1e-5 * (4.0 * d) + 1e-4;
            }
        }
        CHECK(close);
    }
}

}  // namespace

TEST(knn_matches_brute_force_small) { check_against_naive(300, 40, 37, 5, 1, 1); }
TEST(knn_matches_brute_force_blocks) { check_against_naive(700, 260, 300, 3, -1, 2); }
TEST(knn_matches_brute_force_bank_split) { check_against_naive(1000, 2, 20, 4, 2, 3); }
TEST(knn_pads_when_bank_is_small) { check_against_naive(3, 7, 16, 5, 1, 4); }
TEST(knn_one_dim) { check_against_naive(50, 10, 1, 2, 1, 5); }

TEST(knn_ties_go_to_lower_ids) {
    // Every bank row equals one of 3 prototypes: equal distances, ids must ascend in each tie.
    const index_t d = 24, nb = 90, nq = 30, k = 7;
    const auto proto = gaussian(3 * d, 9), q = gaussian(nq * d, 10);
    std::vector<float> bank(static_cast<std::size_t>(nb * d));
    for (index_t j = 0; j < nb; ++j)
        std::copy(proto.begin() + (j % 3) * d, proto.begin() + (j % 3 + 1) * d, bank.begin() + j * d);
    for (int level : levels()) {
        LevelGuard g(level);
        std::vector<float> D(static_cast<std::size_t>(nq * k));
        std::vector<std::int64_t> I(static_cast<std::size_t>(nq * k));
        fissure::knn_search(FeatureMatrix{bank.data(), nb, d, false}, q.data(), nq, k, D.data(),
                            I.data(), -1);
        for (index_t i = 0; i < nq; ++i) {
            // the nearest prototype p: ids p, p+3, p+6, ... in order
            const std::int64_t p = I[i * k];
            CHECK(p < 3);
            for (index_t t = 0; t < k; ++t) {
                CHECK(I[i * k + t] == p + 3 * t);
                CHECK(D[i * k + t] == D[i * k]);
            }
        }
    }
}

TEST(knn_float16_bank_equals_widened_float32) {
    const index_t nb = 400, nq = 50, d = 70, k = 3;
    std::vector<std::uint16_t> bits;
    std::vector<float> wide;
    random_halves(nb * d, 11, bits, wide);
    const auto q = gaussian(nq * d, 12);
    for (int level : levels()) {
        LevelGuard g(level);
        std::vector<float> D16(static_cast<std::size_t>(nq * k)), D32(D16.size());
        std::vector<std::int64_t> I16(D16.size()), I32(D16.size());
        fissure::knn_search(FeatureMatrix{bits.data(), nb, d, true}, q.data(), nq, k, D16.data(),
                            I16.data(), -1);
        fissure::knn_search(FeatureMatrix{wide.data(), nb, d, false}, q.data(), nq, k, D32.data(),
                            I32.data(), -1);
        CHECK(I16 == I32);
        CHECK(D16 == D32);
    }
}

TEST(knn_same_result_any_thread_count) {
    const index_t nb = 900, nq = 500, d = 33, k = 4;
    const auto bank = gaussian(nb * d, 13), q = gaussian(nq * d, 14);
    std::vector<float> D1(static_cast<std::size_t>(nq * k)), D2(D1.size());
    std::vector<std::int64_t> I1(D1.size()), I2(D1.size());
    fissure::knn_search(FeatureMatrix{bank.data(), nb, d, false}, q.data(), nq, k, D1.data(),
                        I1.data(), 1);
    fissure::knn_search(FeatureMatrix{bank.data(), nb, d, false}, q.data(), nq, k, D2.data(),
                        I2.data(), 8);
    CHECK(I1 == I2);
    CHECK(D1 == D2);
}

TEST(knn_rejects_bad_input) {
    std::vector<float> bank(20, 1.f), q(4, 0.f), D(4);
    std::vector<std::int64_t> I(4);
    CHECK_THROWS(fissure::knn_search(FeatureMatrix{bank.data(), 5, 4, false}, q.data(), 1, 0,
                                     D.data(), I.data(), 1));
    CHECK_THROWS(fissure::knn_search(FeatureMatrix{bank.data(), 0, 4, false}, q.data(), 1, 1,
                                     D.data(), I.data(), 1));
    bank[7] = std::nanf("");
    CHECK_THROWS(fissure::knn_search(FeatureMatrix{bank.data(), 5, 4, false}, q.data(), 1, 1,
                                     D.data(), I.data(), 1));
    bank[7] = 1e20f;  // squared norm overflows
    CHECK_THROWS(fissure::knn_search(FeatureMatrix{bank.data(), 5, 4, false}, q.data(), 1, 1,
                                     D.data(), I.data(), 1));
    bank[7] = 1.f;
    q[2] = INFINITY;
    CHECK_THROWS(fissure::knn_search(FeatureMatrix{bank.data(), 5, 4, false}, q.data(), 1, 1,
                                     D.data(), I.data(), 1));
}

// ---------------------------------------------------------------------------------------------
// Greedy k-center
// ---------------------------------------------------------------------------------------------

namespace {

// The documented order: 16 lanes, lane l sums (x_j - c_j)^2 for j = l (mod 16) in order, then
// the tree (l, l+8), (l, l+4), (l, l+2), (0, 1).
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
    std::vector<bool> taken(static_cast<std::size_t>(N), false);
    std::vector<std::int64_t> sel{start};
    taken[start] = true;
    while (static_cast<index_t>(sel.size()) < n) {
        const float* c = x.data() + sel.back() * d;
        index_t best = -1;
        for (index_t i = 0; i < N; ++i) {
            mind[i] = std::min(mind[i], fixed_sqdist(x.data() + i * d, c, d));
            if (!taken[i] && (best < 0 || mind[i] > mind[best])) best = i;
        }
        sel.push_back(best);
        taken[best] = true;
    }
    return sel;
}

void check_kcenter(const std::vector<float>& x, index_t N, index_t d, index_t n, index_t start) {
    const auto want = naive_kcenter(x, N, d, n, start);
    for (int level : levels()) {
        LevelGuard g(level);
        for (int threads : {1, 3}) {
            std::vector<std::int64_t> got(static_cast<std::size_t>(n));
            fissure::kcenter_greedy(FeatureMatrix{x.data(), N, d, false}, n, start, got.data(),
                                    threads);
            CHECK(got == want);
        }
    }
}

}  // namespace

TEST(kcenter_matches_naive_random) {
    check_kcenter(gaussian(1500 * 45, 21), 1500, 45, 120, 7);
    check_kcenter(gaussian(900 * 128, 22), 900, 128, 90, 0);
    check_kcenter(gaussian(300 * 3, 23), 300, 3, 300, 299);
}

TEST(kcenter_matches_naive_with_duplicates) {
    // Integer grid points in {0,1,2}^4: many exact ties and fewer distinct points than n.
    std::mt19937 gen(24);
    std::vector<float> x(400 * 4);
    for (auto& v : x) v = static_cast<float>(gen() % 3);
    check_kcenter(x, 400, 4, 150, 5);
}

TEST(kcenter_float16_equals_widened) {
    const index_t N = 700, d = 50, n = 60;
    std::vector<std::uint16_t> bits;
    std::vector<float> wide;
    random_halves(N * d, 25, bits, wide);
    const auto want = naive_kcenter(wide, N, d, n, 3);
    for (int level : levels()) {
        LevelGuard g(level);
        std::vector<std::int64_t> got(static_cast<std::size_t>(n));
        fissure::kcenter_greedy(FeatureMatrix{bits.data(), N, d, true}, n, 3, got.data(), -1);
        CHECK(got == want);
    }
}

TEST(kcenter_rejects_bad_input) {
    std::vector<float> x(40, 0.5f);
    std::vector<std::int64_t> out(20);
    const FeatureMatrix m{x.data(), 10, 4, false};
    CHECK_THROWS(fissure::kcenter_greedy(m, 0, 0, out.data(), 1));
    CHECK_THROWS(fissure::kcenter_greedy(m, 11, 0, out.data(), 1));
    CHECK_THROWS(fissure::kcenter_greedy(m, 2, 10, out.data(), 1));
    CHECK_THROWS(fissure::kcenter_greedy(m, 2, -1, out.data(), 1));
    x[5] = std::nanf("");
    CHECK_THROWS(fissure::kcenter_greedy(m, 2, 0, out.data(), 1));
}

CHECK_MAIN()
