// SPDX-License-Identifier: Apache-2.0
// The wide kNN's bfloat16 first pass (forced on, where the CPU has AVX512_BF16) against a
// double-precision brute force by direct differences: exact ties on small integers (the answer
// is unique: equal distances go to the lower id), queries equal to bank rows (distance 0),
// crowded candidates that fall back to the float32 path, float16 banks, thread counts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/dispatch.hpp"
#include "fissure/knn.hpp"

using fissure::FeatureMatrix;
using fissure::index_t;

namespace {

struct Bf16Guard {
    Bf16Guard() { prev = fissure::force_route(fissure::Route::knn_bf16, 1); }
    ~Bf16Guard() { fissure::force_route(fissure::Route::knn_bf16, prev); }
    int prev;
};

// (distance, id) of the k nearest, double precision direct differences, ties to the lower id.
void brute(const std::vector<float>& b, const std::vector<float>& q, index_t nb, index_t nq,
           index_t d, index_t k, std::vector<double>& D, std::vector<std::int64_t>& I) {
    D.assign(static_cast<std::size_t>(nq * k), 0.0);
    I.assign(static_cast<std::size_t>(nq * k), -1);
    std::vector<std::pair<double, index_t>> all(static_cast<std::size_t>(nb));
    for (index_t i = 0; i < nq; ++i) {
        for (index_t j = 0; j < nb; ++j) {
            double s = 0.0;
            for (index_t t = 0; t < d; ++t) {
                const double x = static_cast<double>(q[i * d + t]) - b[j * d + t];
                s += x * x;
            }
            all[j] = {s, j};
        }
        std::partial_sort(all.begin(), all.begin() + k, all.end());
        for (index_t t = 0; t < k; ++t) {
            D[i * k + t] = all[t].first;
            I[i * k + t] = all[t].second;
        }
    }
}

std::vector<float> integers(index_t n, int lo, int hi, unsigned seed) {
    std::mt19937 g(seed);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = static_cast<float>(lo + static_cast<int>(g() % static_cast<unsigned>(hi - lo + 1)));
    return v;
}

}  // namespace

TEST(bf16_integer_ties_are_exact) {
    if (!fissure::detail::knn_bf16_available()) return;
    Bf16Guard g;
    const index_t nb = 1000, nq = 70, d = 520, k = 10;
    auto b = integers(nb * d, -2, 2, 1);
    std::copy_n(b.begin(), 500 * d, b.begin() + 500 * d);  // every row twice
    auto q = integers(nq * d, -2, 2, 2);
    std::copy_n(b.begin() + 123 * d, d, q.begin());       // a query equal to rows 123 and 623
    std::vector<double> Dr;
    std::vector<std::int64_t> Ir;
    brute(b, q, nb, nq, d, k, Dr, Ir);
    for (int threads : {1, 2, 3}) {
        std::vector<float> D(static_cast<std::size_t>(nq * k));
        std::vector<std::int64_t> I(static_cast<std::size_t>(nq * k));
        fissure::knn_search(FeatureMatrix{b.data(), nb, d, false}, q.data(), nq, k, D.data(),
                            I.data(), threads);
        CHECK(I == Ir);
        bool same = true;
        for (std::size_t i = 0; i < D.size(); ++i) same = same && D[i] == static_cast<float>(Dr[i]);
        CHECK(same);
        CHECK(D[0] == 0.f && I[0] == 123 && I[1] == 623);
    }
}

TEST(bf16_crowded_queries_fall_back) {
    if (!fissure::detail::knn_bf16_available()) return;
    Bf16Guard g;
    // 4200 copies of one integer row (more than the 512 candidates a query may keep) and 100
    // other rows; queries on the other rows (no crowding) and near the copies (crowded).
    const index_t nb = 4300, nq = 20, d = 512, k = 3;
    auto one = integers(d, -3, 3, 3);
    std::vector<float> b(static_cast<std::size_t>(nb * d));
    for (index_t i = 0; i < 4200; ++i) std::copy(one.begin(), one.end(), b.begin() + i * d);
    const auto rest = integers(100 * d, -3, 3, 4);
    std::copy(rest.begin(), rest.end(), b.begin() + 4200 * d);
    std::vector<float> q(static_cast<std::size_t>(nq * d));
    for (index_t i = 0; i < nq; ++i) {
        const float* src = i < 10 ? b.data() + (4200 + 7 * i) * d : one.data();
        std::copy_n(src, d, q.begin() + i * d);
        q[i * d + static_cast<index_t>(i)] += 1.f;  // off by one in one column
    }
    std::vector<double> Dr;
    std::vector<std::int64_t> Ir;
    brute(b, q, nb, nq, d, k, Dr, Ir);
    std::vector<float> D(static_cast<std::size_t>(nq * k));
    std::vector<std::int64_t> I(static_cast<std::size_t>(nq * k));
    fissure::knn_search(FeatureMatrix{b.data(), nb, d, false}, q.data(), nq, k, D.data(),
                        I.data(), 2);
    CHECK(I == Ir);
    for (std::size_t i = 0; i < D.size(); ++i) CHECK(std::fabs(D[i] - Dr[i]) <= 1e-3);
}

TEST(bf16_float16_bank_equals_widened) {
    if (!fissure::detail::knn_bf16_available()) return;
    Bf16Guard g;
    const index_t nb = 700, nq = 65, d = 600, k = 4;
    // binary16 patterns of small integers and halves: exact in float32
    std::mt19937 gen(5);
    std::vector<std::uint16_t> bits(static_cast<std::size_t>(nb * d));
    std::vector<float> wide(bits.size());
    const std::uint16_t table[5] = {0xBC00u, 0xB800u, 0x0000u, 0x3800u, 0x3C00u};  // -1 -.5 0 .5 1
    const float vals[5] = {-1.f, -0.5f, 0.f, 0.5f, 1.f};
    for (std::size_t i = 0; i < bits.size(); ++i) {
        const unsigned r = gen() % 5u;
        bits[i] = table[r];
        wide[i] = vals[r];
    }
    auto q = integers(nq * d, -1, 1, 6);
    std::vector<float> D1(static_cast<std::size_t>(nq * k)), D2(D1.size());
    std::vector<std::int64_t> I1(D1.size()), I2(D1.size());
    fissure::knn_search(FeatureMatrix{bits.data(), nb, d, true}, q.data(), nq, k, D1.data(),
                        I1.data(), 2);
    fissure::knn_search(FeatureMatrix{wide.data(), nb, d, false}, q.data(), nq, k, D2.data(),
                        I2.data(), 2);
    CHECK(I1 == I2);
    CHECK(D1 == D2);
    std::vector<double> Dr;
    std::vector<std::int64_t> Ir;
    brute(wide, q, nb, nq, d, k, Dr, Ir);
    CHECK(I1 == Ir);
}

CHECK_MAIN()
