// SPDX-License-Identifier: Apache-2.0
// Tile preprocessing against a naive per-pixel reference: each output value computed on its own
// from OpenCV's resize formulas (no row caching, no plans), the letterbox placement, and the
// float32 normalisation; float16 conversion against a reference built from double arithmetic.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/dispatch.hpp"
#include "fissure/preprocess.hpp"
#include "half.hpp"

using fissure::index_t;

namespace {

std::mt19937_64& rng() {
    static std::mt19937_64 g(424242);
    return g;
}
int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng()); }

std::int16_t wq(float w) { return static_cast<std::int16_t>(std::lrint(w * 2048.f)); }

// One resized uint8 value of channel c at (dy, dx), straight from OpenCV's formulas.
int naive_resized(const fissure::Image8View& s, int dh, int dw, fissure::Interp interp, int dy,
                  int dx, int c) {
    auto px = [&](index_t y, index_t x) { return int(s.data[y * s.row_stride + x * 3 + c]); };
    if (s.rows == dh && s.cols == dw) return px(dy, dx);
    const double scale_x = 1.0 / (double(dw) / double(s.cols));
    const double scale_y = 1.0 / (double(dh) / double(s.rows));
    if (interp == fissure::Interp::nearest) {
        const index_t sx = std::min<index_t>(index_t(std::floor(dx * scale_x)), s.cols - 1);
        const index_t sy = std::min<index_t>(index_t(std::floor(dy * scale_y)), s.rows - 1);
        return px(sy, sx);
    }
    float fx = float((dx + 0.5) * scale_x - 0.5);
    index_t sx = index_t(std::floor(fx));
    fx -= float(sx);
    if (sx < 0) { sx = 0; fx = 0.f; }
    if (sx >= s.cols - 1) { sx = s.cols - 1; fx = 0.f; }
    const index_t sx1 = std::min<index_t>(sx + 1, s.cols - 1);
    float fy = float((dy + 0.5) * scale_y - 0.5);
    const index_t sy = index_t(std::floor(fy));
    fy -= float(sy);
    const index_t r0 = std::clamp<index_t>(sy, 0, s.rows - 1), r1 = std::clamp<index_t>(sy + 1, 0, s.rows - 1);
    const int a0 = wq(1.f - fx), a1 = wq(fx), b0 = wq(1.f - fy), b1 = wq(fy);
    const int h0 = px(r0, sx) * a0 + px(r0, sx1) * a1;
    const int h1 = px(r1, sx) * a0 + px(r1, sx1) * a1;
    const int v = ((((h0 >> 4) * b0) >> 16) + (((h1 >> 4) * b1) >> 16) + 2) >> 2;
    return std::clamp(v, 0, 255);
}

// Reference binary16 by exhaustive rounding in double: nearest representable, ties to even.
std::uint16_t naive_half(float f) {
    if (std::isnan(f)) return 0x7e00;
    const bool neg = std::signbit(f);
    const double a = std::fabs(double(f));
    std::uint16_t best = 0x7c00;  // inf
    if (a < 65520.0) {
        // Binary search over the ordered positive halves 0..0x7bff.
        auto val = [](int h) {
            const int e = h >> 10, m = h & 1023;
            return e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
        };
        int lo = 0, hi = 0x7bff;
        while (lo < hi) {  // smallest h with val(h) >= a
            const int mid = (lo + hi) / 2;
            if (val(mid) >= a) hi = mid; else lo = mid + 1;
        }
        int h = lo;
        if (h > 0) {
            const double up = val(h) - a, down = a - val(h - 1);
            if (down < up || (down == up && ((h - 1) & 1) == 0)) h = h - 1;
        }
        best = static_cast<std::uint16_t>(h);
    }
    return static_cast<std::uint16_t>(best | (neg ? 0x8000 : 0));
}

struct Case {
    std::vector<std::uint8_t> buf;
    fissure::Image8View img;
};

Case random_image(index_t rows, index_t cols, index_t pad_bytes) {
    Case c;
    const index_t stride = cols * 3 + pad_bytes;
    c.buf.resize(std::size_t(rows * stride));
    for (auto& b : c.buf) b = std::uint8_t(uniform(0, 255));
    c.img = {c.buf.data(), rows, cols, 3, stride};
    return c;
}

void check_against_naive(const fissure::PreprocessParams& p, const Case& c,
                         const std::vector<std::int64_t>& tiles, int threads) {
    const index_t n = index_t(tiles.size() / 4);
    const index_t plane = index_t(p.out_h) * p.out_w;
    std::vector<float> out32(std::size_t(n * 3 * plane));
    std::vector<std::uint16_t> out16(std::size_t(n * 3 * plane));
    void* out = p.dtype == fissure::OutDtype::float32 ? static_cast<void*>(out32.data())
                                                      : static_cast<void*>(out16.data());
    fissure::preprocess_tiles(c.img, {tiles.data(), n}, p, out, threads);
    int bad = 0;
    for (index_t t = 0; t < n; ++t) {
        const std::int64_t* b = &tiles[std::size_t(4 * t)];
        fissure::Image8View crop = c.img;
        crop.data = c.img.data + b[1] * c.img.row_stride + b[0] * 3;
        crop.rows = b[3] - b[1];
        crop.cols = b[2] - b[0];
        int dh = p.out_h, dw = p.out_w, top = 0, left = 0;
        if (p.mode == fissure::ResizeMode::letterbox) {
            const auto lb = fissure::letterbox_params(crop.rows, crop.cols, p.out_h, p.out_w);
            dh = lb.new_h; dw = lb.new_w; top = lb.pad_y; left = lb.pad_x;
        }
        for (int oc = 0; oc < 3; ++oc)
            for (int y = 0; y < p.out_h; ++y)
                for (int x = 0; x < p.out_w; ++x) {
                    const int ic = p.swap_rb ? 2 - oc : oc;
                    const bool inside = y >= top && y < top + dh && x >= left && x < left + dw;
                    const int v = inside ? naive_resized(crop, dh, dw, p.interp, y - top, x - left, ic)
                                         : p.pad_value;
                    const float f = (float(v) * p.scale - p.mean[oc]) / p.std[oc];
                    const std::size_t k = std::size_t(t * 3 * plane + oc * plane + index_t(y) * p.out_w + x);
                    const bool ok = p.dtype == fissure::OutDtype::float32
                                        ? std::memcmp(&out32[k], &f, 4) == 0
                                        : out16[k] == naive_half(f);
                    if (!ok) ++bad;
                }
    }
    CHECK(bad == 0);
    if (bad) std::fprintf(stderr, "  %d values differ\n", bad);
}

std::vector<std::int64_t> random_tiles(index_t rows, index_t cols, int n) {
    std::vector<std::int64_t> t;
    for (int i = 0; i < n; ++i) {
        const int tw = uniform(1, int(cols)), th = uniform(1, int(rows));
        const int x1 = uniform(0, int(cols) - tw), y1 = uniform(0, int(rows) - th);
        t.insert(t.end(), {x1, y1, x1 + tw, y1 + th});
    }
    t.insert(t.end(), {0, 0, cols, rows});  // the whole image, touching every border
    return t;
}

}  // namespace

TEST(float_to_half_matches_reference) {
    int bad = 0;
    std::vector<std::uint32_t> bits;
    for (int i = 0; i < 200000; ++i) bits.push_back(std::uint32_t(rng()()));
    for (std::uint32_t b = 0x33000000u - 2048; b < 0x33000000u + 2048; ++b) bits.push_back(b);
    for (std::uint32_t b = 0x38800000u - 4096; b < 0x38800000u + 4096; ++b) bits.push_back(b);
    for (std::uint32_t b = 0x477fe000u; b < 0x47800100u; ++b) bits.push_back(b);
    bits.push_back(0x7f800000u);
    bits.push_back(0);
    for (std::uint32_t b : bits)
        for (std::uint32_t s : {0u, 0x80000000u}) {
            float f;
            const std::uint32_t x = b | s;
            std::memcpy(&f, &x, 4);
            const std::uint16_t got = fissure::float_to_half(f);
            if (std::isnan(f) ? (got & 0x7c00) != 0x7c00 || (got & 0x3ff) == 0 : got != naive_half(f))
                ++bad;
        }
    CHECK(bad == 0);
}

TEST(resize_and_letterbox_match_naive) {
    int letterbox_runs = 0;
    for (int round = 0; round < 6; ++round) {
        const Case c = random_image(uniform(1, 90), uniform(1, 90), uniform(0, 5));
        const auto tiles = random_tiles(c.img.rows, c.img.cols, 5);
        for (auto mode : {fissure::ResizeMode::resize, fissure::ResizeMode::letterbox})
            for (auto interp : {fissure::Interp::linear, fissure::Interp::nearest})
                for (auto dt : {fissure::OutDtype::float32, fissure::OutDtype::float16}) {
                    fissure::PreprocessParams p;
                    p.out_h = uniform(1, 70);
                    p.out_w = uniform(1, 70);
                    p.mode = mode;
                    p.interp = interp;
                    p.dtype = dt;
                    p.swap_rb = uniform(0, 1);
                    p.pad_value = uniform(0, 255);
                    p.mean[0] = 0.4f; p.mean[1] = -3.f; p.mean[2] = 0.f;
                    p.std[0] = 0.2f; p.std[1] = 1.5f; p.std[2] = 0.01f;
                    if (mode == fissure::ResizeMode::letterbox) {
                        bool ok = true;  // skip tile sets with an empty letterboxed tile
                        try {
                            fissure::check_preprocess(c.img, {tiles.data(), index_t(tiles.size() / 4)}, p);
                        } catch (const std::exception&) { ok = false; }
                        if (!ok) continue;
                        ++letterbox_runs;
                    }
                    check_against_naive(p, c, tiles, round % 2 ? 1 : 3);
                }
    }
    CHECK(letterbox_runs >= 4);
}

// The same comparison with the kernels capped at each level (the x86 ones where the CPU has them).
TEST(every_simd_level_matches_naive) {
    for (auto level : {fissure::SimdLevel::scalar, fissure::SimdLevel::avx2}) {
        fissure::force_level(fissure::Family::preprocess, static_cast<int>(level));
        for (int round = 0; round < 4; ++round) {
            // Rows long enough for the vector loops (and their tails).
            const Case c = random_image(uniform(20, 120), uniform(40, 300), uniform(0, 5));
            const auto tiles = random_tiles(c.img.rows, c.img.cols, 4);
            for (auto dt : {fissure::OutDtype::float32, fissure::OutDtype::float16}) {
                fissure::PreprocessParams p;
                p.out_h = uniform(1, 90);
                p.out_w = uniform(17, 200);
                p.dtype = dt;
                p.swap_rb = round % 2;
                p.mean[0] = 0.4f; p.mean[1] = -3.f; p.mean[2] = 0.f;
                p.std[0] = 0.2f; p.std[1] = round < 2 ? 1.f : 1.5f; p.std[2] = 0.01f;
                check_against_naive(p, c, tiles, 2);
            }
        }
    }
    fissure::force_level(fissure::Family::preprocess, -1);
}

TEST(identity_and_mode_none) {
    const Case c = random_image(50, 60, 7);
    std::vector<std::int64_t> tiles{0, 0, 20, 10, 40, 40, 60, 50};
    fissure::PreprocessParams p;
    p.out_h = 10;
    p.out_w = 20;
    p.mode = fissure::ResizeMode::none;
    check_against_naive(p, c, tiles, 2);
    std::vector<std::int64_t> wrong{0, 0, 21, 10};
    std::vector<float> out(3 * 200);
    CHECK_THROWS(fissure::preprocess_tiles(c.img, {wrong.data(), 1}, p, out.data()));
}

TEST(errors) {
    const Case c = random_image(20, 20, 0);
    std::vector<float> out(3 * 64);
    fissure::PreprocessParams p;
    p.out_h = p.out_w = 8;
    std::vector<std::int64_t> outside{0, 0, 21, 5}, empty{3, 3, 3, 9}, neg{-1, 0, 5, 5};
    CHECK_THROWS(fissure::preprocess_tiles(c.img, {outside.data(), 1}, p, out.data()));
    CHECK_THROWS(fissure::preprocess_tiles(c.img, {empty.data(), 1}, p, out.data()));
    CHECK_THROWS(fissure::preprocess_tiles(c.img, {neg.data(), 1}, p, out.data()));
    std::vector<std::int64_t> ok{0, 0, 5, 5};
    p.std[1] = 0.f;
    CHECK_THROWS(fissure::preprocess_tiles(c.img, {ok.data(), 1}, p, out.data()));
    p.std[1] = 1.f;
    p.pad_value = 300;
    CHECK_THROWS(fissure::preprocess_tiles(c.img, {ok.data(), 1}, p, out.data()));
    CHECK_THROWS(fissure::letterbox_params(1, 5000, 640, 640));
    const auto lb = fissure::letterbox_params(480, 640, 640, 640);
    CHECK(lb.r == 1.0 && lb.pad_x == 0 && lb.pad_y == 80 && lb.new_w == 640 && lb.new_h == 480);
}

CHECK_MAIN()
