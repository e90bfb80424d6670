// SPDX-License-Identifier: Apache-2.0
// The scheduler: batches fed through the two buffers equal a single preprocess_tiles call over
// all tiles (itself tested against a naive reference in test_preprocess.cpp), the protocol's
// errors.
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/scheduler.hpp"

using fissure::index_t;

namespace {

struct Setup {
    std::vector<std::uint8_t> pixels;
    fissure::Image8View img;
    std::vector<std::int64_t> tiles;
    fissure::PreprocessParams p;
};

Setup make(index_t rows, index_t cols, int tile, int out) {
    Setup s;
    std::mt19937 g(7);
    s.pixels.resize(static_cast<std::size_t>(rows * cols * 3));
    for (auto& v : s.pixels) v = static_cast<std::uint8_t>(g() & 255u);
    s.img = {s.pixels.data(), rows, cols, 3, cols * 3};
    for (index_t y = 0; y + tile <= rows; y += tile / 2)
        for (index_t x = 0; x + tile <= cols; x += tile / 2)
            s.tiles.insert(s.tiles.end(), {x, y, x + tile, y + tile});
    s.p.out_h = out;
    s.p.out_w = out;
    return s;
}

}  // namespace

TEST(feeder_equals_single_call) {
    for (index_t bs : {1, 2, 3, 4, 16}) {
        Setup s = make(97, 131, 40, 24);
        const index_t T = static_cast<index_t>(s.tiles.size() / 4);
        const std::size_t per = 3 * 24 * 24;
        std::vector<float> ref(static_cast<std::size_t>(T) * per);
        fissure::preprocess_tiles(s.img, {s.tiles.data(), T}, s.p, ref.data());
        std::vector<float> a(static_cast<std::size_t>(bs) * per), b(a.size());
        fissure::BatchFeeder f(s.img, s.tiles, s.p, bs, a.data(), b.data());
        CHECK(f.num_batches() == (T + bs - 1) / bs);
        f.start(0);
        index_t done = 0;
        for (index_t k = 0; k < f.num_batches(); ++k) {
            const int slot = f.wait(k);
            CHECK(slot == static_cast<int>(k % 2));
            f.start(k + 1);
            const float* buf = slot == 0 ? a.data() : b.data();
            const index_t n = f.batch_count(k);
            CHECK(std::memcmp(buf, ref.data() + static_cast<std::size_t>(done) * per,
                              static_cast<std::size_t>(n) * per * sizeof(float)) == 0);
            done += n;
        }
        CHECK(done == T);
    }
}

TEST(feeder_protocol_errors) {
    Setup s = make(64, 64, 32, 8);
    std::vector<float> a(3 * 8 * 8), b(3 * 8 * 8);
    CHECK_THROWS(fissure::BatchFeeder(s.img, s.tiles, s.p, 0, a.data(), b.data()));
    CHECK_THROWS(fissure::BatchFeeder(s.img, s.tiles, s.p, 1, a.data(), a.data()));
    std::vector<std::int64_t> bad = {0, 0, 65, 10};
    CHECK_THROWS(fissure::BatchFeeder(s.img, bad, s.p, 1, a.data(), b.data()));
    fissure::BatchFeeder f(s.img, s.tiles, s.p, 1, a.data(), b.data());
    f.start(0);
    CHECK_THROWS(f.start(2));
    CHECK(f.wait(0) == 0);
    CHECK_THROWS(f.wait(-1));
    CHECK_THROWS(f.batch_count(f.num_batches()));
    f.start(1);
    f.drain();  // the destructor's path: waits, forgets
    CHECK(f.wait(1) == 1);  // not pending any more: runs on the caller
}

CHECK_MAIN()
