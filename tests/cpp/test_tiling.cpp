// SPDX-License-Identifier: Apache-2.0
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "check.hpp"
#include "fissure/parallel.hpp"
#include "fissure/tiling.hpp"

using fissure::index_t;

// Closed-form reference: per-axis starts, then the product in row-major order.
static std::vector<index_t> starts(index_t L, index_t s, index_t o) {
    std::vector<index_t> v;
    if (L <= s) { v.push_back(0); return v; }
    for (index_t x = 0;; x += s - o) {
        if (x + s >= L) { v.push_back(L - s); break; }
        v.push_back(x);
    }
    return v;
}

TEST(grid_matches_closed_form) {
    for (index_t H : {1, 100, 640, 641, 1000, 2048, 4000})
        for (index_t W : {1, 333, 640, 1000, 6000})
            for (index_t s : {64, 256, 512, 640})
                for (index_t o : {index_t{0}, s / 5, s / 2}) {
                    auto g = fissure::slice_grid(H, W, {s, s, o, o});
                    auto ys = starts(H, s, o), xs = starts(W, s, o);
                    CHECK(g.size() == ys.size() * xs.size());
                    size_t k = 0;
                    for (auto y : ys)
                        for (auto x : xs) {
                            if (k >= g.size()) break;
                            CHECK(g[k][0] == x && g[k][1] == y);
                            CHECK(g[k][2] == std::min(W, x + s) && g[k][3] == std::min(H, y + s));
                            ++k;
                        }
                }
}

TEST(known_examples) {
    auto g = fissure::slice_grid(1000, 1000, {512, 512, 102, 102});
    CHECK(g.size() == 9);
    CHECK(g[1][0] == 410 && g[2][0] == 488);
    CHECK(fissure::slice_grid(4000, 6000, {640, 640, 160, 160}).size() == 104);
    auto p = fissure::auto_slice_params(1080, 1920);
    CHECK(p.overlap_width == 768 && p.overlap_height == 864 && p.slice_width == 960 && p.slice_height == 1080);
}

TEST(bad_input_throws) {
    CHECK_THROWS(fissure::slice_grid(0, 10, {4, 4, 0, 0}));
    CHECK_THROWS(fissure::slice_grid(10, 10, {0, 4, 0, 0}));
    CHECK_THROWS(fissure::slice_grid(100, 100, {10, 10, 10, 0}));
    CHECK_THROWS(fissure::slice_grid(100, 100, {10, 10, -1, 0}));
}

TEST(huge_sizes_are_exact_and_prompt) {
    const index_t M = std::numeric_limits<index_t>::max();
    // 2^31 x (2^31 + 1): the area passes 2^62 (SAHI's numpy loop never ends there); ultra-high.
    auto p = fissure::auto_slice_params(index_t{1} << 31, (index_t{1} << 31) + 1);
    CHECK(p.slice_height == (index_t{1} << 31) / 4 && p.slice_width == ((index_t{1} << 31) + 1) / 8);
    p = fissure::auto_slice_params(M, M);  // area 2^126: square, 4 x 4
    CHECK(p.slice_height == M / 4 && p.slice_width == M / 4);
    CHECK(p.overlap_width == static_cast<index_t>(static_cast<double>(M / 4) * 0.4));
    p = fissure::auto_slice_params(1 << 19, 1);  // exactly 2^19: low
    CHECK(p.slice_height == (1 << 19) && p.overlap_height == (1 << 19));
    p = fissure::auto_slice_params((1 << 19) + 1, 1);  // medium, vertical
    CHECK(p.slice_height == ((1 << 19) + 1) / 2 && p.slice_width == 1);
    // Sums near INT64_MAX never overflow.
    auto g = fissure::slice_grid(M, M, {M - 1, M - 1, (M - 1) / 2, (M - 1) / 2});
    CHECK(g.size() == 4);
    CHECK(g[3][0] == 1 && g[3][1] == 1 && g[3][2] == M && g[3][3] == M);
    // Too many tiles: refused before anything is built.
    CHECK_THROWS(fissure::slice_grid(index_t{1} << 40, index_t{1} << 40, {640, 640, 0, 0}));
    CHECK_THROWS(fissure::slice_grid(M, M, {1, 1, 0, 0}));
    CHECK_THROWS(fissure::slice_grid(1 << 15, (1 << 15) + 1, {1, 1, 0, 0}));  // 2^30 + 2^15 tiles
    CHECK(fissure::checked_mul(index_t{1} << 31, index_t{1} << 31, "x") == index_t{1} << 62);
    CHECK_THROWS(fissure::checked_mul(index_t{1} << 32, index_t{1} << 31, "x"));
    CHECK_THROWS(fissure::checked_int32(index_t{1} << 31, "x"));
}

TEST(cancel_token_stops_parallel_work) {
    std::atomic<int> checks{0};
    fissure::CancelToken token([&] { return ++checks >= 3; }, std::chrono::nanoseconds(0));
    fissure::CancelScope scope(&token);
    std::atomic<long long> chunks{0};
    bool cancelled = false;
    try {
        fissure::parallel_for(0, 1 << 20, 4, 1, [&](index_t, index_t) {
            fissure::cancel_point();
            ++chunks;
        });
    } catch (const fissure::Cancelled&) {
        cancelled = true;
    }
    CHECK(cancelled);
    CHECK(token.cancelled());
    CHECK(chunks.load() < (1 << 20));
    // The pool still works afterwards, and without a token nothing is cancelled.
    fissure::CancelScope none(nullptr);
    std::atomic<long long> sum{0};
    fissure::parallel_for(0, 1000, 4, 1, [&](index_t lo, index_t) {
        fissure::cancel_point();
        sum += lo;
    });
    CHECK(sum.load() == 999LL * 1000 / 2);
}

TEST(parallel_for_sums_and_rethrows) {
    std::atomic<long long> sum{0};
    fissure::parallel_for(0, 100000, -1, 7, [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) sum += i;
    });
    CHECK(sum.load() == 100000LL * 99999 / 2);
    CHECK_THROWS(fissure::parallel_for(0, 1000, 4, 1, [&](index_t lo, index_t) {
        if (lo == 500) throw std::invalid_argument("boom");
    }));
}

CHECK_MAIN()
