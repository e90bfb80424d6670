// SPDX-License-Identifier: Apache-2.0
// Specular masks against naive per-pixel references: the threshold table against a brute-force
// search over OpenCV's S formula, the fused kernel on every SIMD path this CPU has (odd widths,
// strided and flipped rows, gray, threads), disc dilation against a direct OR over the disc,
// and the glare fractions against plain loops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/dispatch.hpp"
#include "fissure/specular.hpp"

using fissure::index_t;
using fissure::SimdLevel;

namespace {

std::mt19937_64& rng() {
    static std::mt19937_64 g(20261123);
    return g;
}
int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng()); }

std::vector<SimdLevel> levels() {
    std::vector<SimdLevel> out{SimdLevel::scalar};
    const int cpu = static_cast<int>(fissure::cpu_simd_level());
    if (fissure::cpu_simd_level() == SimdLevel::neon) return out;
    for (int l = 1; l <= cpu && l <= 3; ++l) out.push_back(static_cast<SimdLevel>(l));
    return out;
}

struct ForceLevel {
    explicit ForceLevel(SimdLevel l) { fissure::force_level(fissure::Family::specular, static_cast<int>(l)); }
    ~ForceLevel() { fissure::force_level(fissure::Family::specular, -1); }
};

// Naive glare test straight from OpenCV's formula.
bool naive_glare(int b, int g, int r, int v_min, int s_max) {
    const int v = std::max({b, g, r}), m = std::min({b, g, r});
    return v > v_min && fissure::opencv_hsv_saturation(v, v - m) < s_max;
}

// An image whose pixels sit near the default thresholds about half the time.
std::vector<std::uint8_t> random_image(index_t rows, index_t stride, index_t cols, int channels) {
    std::vector<std::uint8_t> img(static_cast<std::size_t>(rows * stride), 0);
    for (index_t y = 0; y < rows; ++y)
        for (index_t x = 0; x < cols; ++x) {
            std::uint8_t* p = &img[static_cast<std::size_t>(y * stride + x * channels)];
            if (uniform(0, 1)) {
                const int v = uniform(225, 255), spread = uniform(0, 40) * v / 255;
                for (int c = 0; c < channels; ++c) p[c] = static_cast<std::uint8_t>(v - uniform(0, spread));
                p[uniform(0, channels - 1)] = static_cast<std::uint8_t>(v);
            } else {
                for (int c = 0; c < channels; ++c) p[c] = static_cast<std::uint8_t>(uniform(0, 255));
            }
        }
    return img;
}

std::vector<std::uint8_t> naive_dilate(const std::vector<std::uint8_t>& m, index_t rows, index_t cols,
                                       int r) {
    const std::vector<int> half = fissure::disc_half_widths(r);
    std::vector<std::uint8_t> out(m.size(), 0);
    for (index_t y = 0; y < rows; ++y)
        for (index_t x = 0; x < cols; ++x) {
            bool any = false;
            for (int dy = -r; dy <= r && !any; ++dy) {
                const index_t yy = y + dy;
                if (yy < 0 || yy >= rows) continue;
                const int k = half[static_cast<std::size_t>(dy + r)];
                for (int dx = -k; dx <= k && !any; ++dx) {
                    const index_t xx = x + dx;
                    if (xx >= 0 && xx < cols && m[static_cast<std::size_t>(yy * cols + xx)]) any = true;
                }
            }
            out[static_cast<std::size_t>(y * cols + x)] = any;
        }
    return out;
}

}  // namespace

TEST(saturation_formula_properties) {
    for (int v = 1; v < 256; ++v) {
        CHECK(fissure::opencv_hsv_saturation(v, 0) == 0);
        CHECK(fissure::opencv_hsv_saturation(v, v) == 255);
        for (int d = 1; d <= v; ++d)
            CHECK(fissure::opencv_hsv_saturation(v, d) >= fissure::opencv_hsv_saturation(v, d - 1));
    }
    CHECK(fissure::opencv_hsv_saturation(0, 0) == 0);
    // Ties where OpenCV's table rounds down: 255 * 11 / 22 = 127.5 gives 127, not 128.
    CHECK(fissure::opencv_hsv_saturation(22, 11) == 127);
    CHECK(fissure::opencv_hsv_saturation(2, 1) == 128);
}

TEST(threshold_table_brute_force) {
    // full[s][v]: the smallest diff with S(v, diff) >= s (diff <= v), by search.
    std::vector<std::vector<int>> full(256, std::vector<int>(256, 0));
    for (int v = 1; v < 256; ++v) {
        int d = 0;
        for (int s = 0; s < 256; ++s) {
            while (d <= v && fissure::opencv_hsv_saturation(v, d) < s) ++d;
            full[static_cast<std::size_t>(s)][static_cast<std::size_t>(v)] = d;
        }
    }
    auto check_pair = [&](int v_min, int s_max) {
        const auto t = fissure::specular_threshold_table(v_min, s_max);
        bool ok = t.size() == 256;
        for (int v = 0; v < 256 && ok; ++v) {
            const int want = v <= v_min ? 0 : full[static_cast<std::size_t>(s_max)][static_cast<std::size_t>(v)];
            ok = t[static_cast<std::size_t>(v)] == want;
        }
        CHECK(ok);
    };
    for (int v_min : {0, 1, 100, 239, 240, 241, 254, 255})
        for (int s = 0; s < 256; ++s) check_pair(v_min, s);
    for (int v_min = 0; v_min < 256; ++v_min)
        for (int s : {0, 1, 29, 30, 31, 128, 255}) check_pair(v_min, s);
    CHECK_THROWS(fissure::specular_threshold_table(-1, 30));
    CHECK_THROWS(fissure::specular_threshold_table(256, 30));
    CHECK_THROWS(fissure::specular_threshold_table(240, 256));
}

TEST(mask_all_pairs_every_path) {
    // One pixel per (V, min) pair, the middle channel random in between.
    const index_t rows = 256, cols = 256;
    std::vector<std::uint8_t> img(static_cast<std::size_t>(rows * cols * 3));
    for (int v = 0; v < 256; ++v)
        for (int m = 0; m < 256; ++m) {
            const int lo = std::min(m, v);
            std::uint8_t* p = &img[static_cast<std::size_t>((v * cols + m) * 3)];
            const int order = uniform(0, 2);
            p[order] = static_cast<std::uint8_t>(v);
            p[(order + 1) % 3] = static_cast<std::uint8_t>(lo);
            p[(order + 2) % 3] = static_cast<std::uint8_t>(uniform(lo, v));
        }
    std::vector<std::uint8_t> out(static_cast<std::size_t>(rows * cols));
    for (SimdLevel l : levels()) {
        ForceLevel force(l);
        CHECK(fissure::effective_level(fissure::Family::specular) == l);
        for (int v_min : {0, 17, 100, 200, 223, 224, 239, 240, 241, 254, 255})
            for (int s_max : {0, 1, 2, 29, 30, 31, 100, 254, 255}) {
                fissure::specular_mask({img.data(), rows, cols, 3, cols * 3}, v_min, s_max, 0,
                                       {out.data(), rows, cols, cols}, 1);
                bool ok = true;
                for (index_t i = 0; i < rows * cols && ok; ++i) {
                    const std::uint8_t* p = &img[static_cast<std::size_t>(3 * i)];
                    ok = out[static_cast<std::size_t>(i)] == naive_glare(p[0], p[1], p[2], v_min, s_max);
                }
                if (!ok) std::fprintf(stderr, "level %s v_min %d s_max %d\n", fissure::simd_name(l).c_str(), v_min, s_max);
                CHECK(ok);
            }
    }
}

TEST(mask_odd_sizes_strides_threads) {
    for (SimdLevel l : levels()) {
        ForceLevel force(l);
        for (int trial = 0; trial < 60; ++trial) {
            const index_t rows = uniform(1, 40), cols = trial < 40 ? trial + 1 : uniform(1, 300);
            const int channels = trial % 5 == 4 ? 1 : 3;
            const index_t stride = cols * channels + uniform(0, 1) * uniform(1, 70);
            auto img = random_image(rows, stride, cols, channels);
            for (bool flip : {false, true}) {
                fissure::Image8View view{img.data(), rows, cols, channels, stride};
                if (flip) {  // rows read bottom up through a negative stride
                    view.data = img.data() + (rows - 1) * stride;
                    view.row_stride = -stride;
                }
                const index_t ostride = cols + uniform(0, 3);
                std::vector<std::uint8_t> out(static_cast<std::size_t>(rows * ostride), 7);
                const int v_min = uniform(0, 3) ? 240 : uniform(0, 255);
                const int s_max = uniform(0, 3) ? 30 : uniform(0, 255);
                fissure::specular_mask(view, v_min, s_max, 0, {out.data(), rows, cols, ostride},
                                       uniform(0, 1) ? 1 : 4);
                bool ok = true;
                for (index_t y = 0; y < rows; ++y)
                    for (index_t x = 0; x < cols; ++x) {
                        const std::uint8_t* p = view.data + y * view.row_stride + x * channels;
                        const bool want = channels == 3 ? naive_glare(p[0], p[1], p[2], v_min, s_max)
                                                        : naive_glare(p[0], p[0], p[0], v_min, s_max);
                        ok = ok && out[static_cast<std::size_t>(y * ostride + x)] == want;
                    }
                for (index_t y = 0; y < rows; ++y)  // nothing written past a row
                    for (index_t x = cols; x < ostride; ++x)
                        ok = ok && out[static_cast<std::size_t>(y * ostride + x)] == 7;
                CHECK(ok);
            }
        }
    }
}

TEST(mask_large_threads_agree) {
    const index_t rows = 301, cols = 1003;
    auto img = random_image(rows, cols * 3, cols, 3);
    std::vector<std::uint8_t> a(static_cast<std::size_t>(rows * cols)), b(a.size());
    for (int r : {0, 3, 9}) {
        fissure::specular_mask({img.data(), rows, cols, 3, cols * 3}, 240, 30, r, {a.data(), rows, cols, cols}, 1);
        fissure::specular_mask({img.data(), rows, cols, 3, cols * 3}, 240, 30, r, {b.data(), rows, cols, cols}, 8);
        CHECK(a == b);
    }
}

TEST(mask_long_flat_runs_streaming_misaligned) {
    // Whole contiguous images go to the kernels as one long row, written with non-temporal
    // stores after an unaligned head: check every offset class of the output pointer.
    const index_t rows = 700, cols = 1001;
    auto img = random_image(rows, cols * 3, cols, 3);
    std::vector<std::uint8_t> want(static_cast<std::size_t>(rows * cols));
    for (index_t i = 0; i < rows * cols; ++i) {
        const std::uint8_t* p = &img[static_cast<std::size_t>(3 * i)];
        want[static_cast<std::size_t>(i)] = naive_glare(p[0], p[1], p[2], 240, 30);
    }
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(rows * cols + 128));
    for (SimdLevel l : levels()) {
        ForceLevel force(l);
        for (int shift : {0, 1, 7, 16, 33, 63}) {
            std::fill(buf.begin(), buf.end(), std::uint8_t{9});
            std::uint8_t* out = buf.data() + shift;
            fissure::specular_mask({img.data(), rows, cols, 3, cols * 3}, 240, 30, 0,
                                   {out, rows, cols, cols}, 1);
            CHECK(std::equal(want.begin(), want.end(), out));
            CHECK(std::all_of(buf.begin(), buf.begin() + shift, [](std::uint8_t v) { return v == 9; }));
            CHECK(std::all_of(out + rows * cols, buf.data() + buf.size(), [](std::uint8_t v) { return v == 9; }));
        }
    }
}

TEST(disc_half_widths_opencv) {
    CHECK((fissure::disc_half_widths(0) == std::vector<int>{0}));
    CHECK((fissure::disc_half_widths(1) == std::vector<int>{0, 1, 0}));
    CHECK((fissure::disc_half_widths(2) == std::vector<int>{0, 2, 2, 2, 0}));
    CHECK((fissure::disc_half_widths(3) == std::vector<int>{0, 2, 3, 3, 3, 2, 0}));
    CHECK_THROWS(fissure::disc_half_widths(-1));
}

TEST(dilate_against_naive) {
    for (SimdLevel l : levels()) {
        ForceLevel force(l);
        for (int trial = 0; trial < 120; ++trial) {
            const int r = trial % 14;
            const index_t rows = uniform(1, 50), cols = uniform(1, 150);
            const int density = uniform(0, 4) == 0 ? uniform(0, 100) : uniform(0, 3);
            std::vector<std::uint8_t> m(static_cast<std::size_t>(rows * cols));
            for (auto& v : m) v = uniform(0, 299) < density ? static_cast<std::uint8_t>(uniform(1, 255)) : 0;
            std::vector<std::uint8_t> out(m.size(), 9);
            fissure::dilate_disc({m.data(), rows, cols, cols}, r, {out.data(), rows, cols, cols},
                                 uniform(0, 1) ? 1 : 3);
            CHECK(out == naive_dilate(m, rows, cols, r));
        }
        // Large enough for several bands on several threads.
        const index_t rows = 400, cols = 500;
        std::vector<std::uint8_t> m(static_cast<std::size_t>(rows * cols));
        for (auto& v : m) v = uniform(0, 999) < 3;
        for (int r : {1, 7, 20}) {
            std::vector<std::uint8_t> out(m.size());
            fissure::dilate_disc({m.data(), rows, cols, cols}, r, {out.data(), rows, cols, cols}, 4);
            CHECK(out == naive_dilate(m, rows, cols, r));
        }
    }
    std::vector<std::uint8_t> m(4), out(4);
    CHECK_THROWS(fissure::dilate_disc({m.data(), 2, 2, 2}, 255, {out.data(), 2, 2, 2}, 1));
    CHECK_THROWS(fissure::dilate_disc({m.data(), 2, 2, 2}, -1, {out.data(), 2, 2, 2}, 1));
}

TEST(mask_with_dilation_is_mask_then_dilate) {
    for (SimdLevel l : levels()) {
        ForceLevel force(l);
        for (int trial = 0; trial < 30; ++trial) {
            const index_t rows = uniform(1, 60), cols = uniform(1, 120);
            auto img = random_image(rows, cols * 3, cols, 3);
            const int r = uniform(1, 10);
            std::vector<std::uint8_t> plain(static_cast<std::size_t>(rows * cols)), fused(plain.size());
            fissure::Image8View view{img.data(), rows, cols, 3, cols * 3};
            fissure::specular_mask(view, 240, 30, 0, {plain.data(), rows, cols, cols}, 1);
            fissure::specular_mask(view, 240, 30, r, {fused.data(), rows, cols, cols}, 3);
            CHECK(fused == naive_dilate(plain, rows, cols, r));
        }
    }
}

TEST(glare_fractions_against_loops) {
    const index_t rows = 90, cols = 130;
    std::vector<std::uint8_t> m(static_cast<std::size_t>(rows * cols));
    for (auto& v : m) v = uniform(0, 3) == 0 ? 1 : 0;
    auto naive_box = [&](const float* b) {
        auto cl = [](double v, index_t hi) { return std::min<double>(std::max<double>(v, 0), static_cast<double>(hi)); };
        const index_t x0 = static_cast<index_t>(cl(std::floor(b[0]), cols)), y0 = static_cast<index_t>(cl(std::floor(b[1]), rows));
        const index_t x1 = static_cast<index_t>(cl(std::ceil(b[2]), cols)), y1 = static_cast<index_t>(cl(std::ceil(b[3]), rows));
        index_t c = 0, a = 0;
        for (index_t y = y0; y < y1; ++y)
            for (index_t x = x0; x < x1; ++x) {
                ++a;
                c += m[static_cast<std::size_t>(y * cols + x)] != 0;
            }
        return a ? static_cast<float>(static_cast<double>(c) / static_cast<double>(a)) : 0.0f;
    };
    for (int n : {1, 10, 400}) {  // 400 big boxes cover the image many times: summed-area path
        std::vector<float> boxes;
        for (int i = 0; i < n; ++i) {
            const float x1 = static_cast<float>(uniform(-200, 1400)) / 10, y1 = static_cast<float>(uniform(-200, 1000)) / 10;
            const float w = n == 400 ? static_cast<float>(uniform(500, 1400)) / 10 : static_cast<float>(uniform(0, 600)) / 10;
            const float h = n == 400 ? static_cast<float>(uniform(500, 900)) / 10 : static_cast<float>(uniform(0, 400)) / 10;
            boxes.insert(boxes.end(), {x1, y1, x1 + w, y1 + h});
        }
        std::vector<float> out(static_cast<std::size_t>(n), -1);
        fissure::glare_fraction_boxes({m.data(), rows, cols, cols}, {boxes.data(), n}, out.data(), 2);
        bool ok = true;
        for (int i = 0; i < n; ++i) ok = ok && out[static_cast<std::size_t>(i)] == naive_box(&boxes[static_cast<std::size_t>(4 * i)]);
        CHECK(ok);
    }
    // Box-local masks, some partly outside the plane.
    std::vector<std::uint8_t> data;
    std::vector<std::int64_t> offsets{0};
    std::vector<std::int32_t> regions;
    std::vector<float> want;
    for (int i = 0; i < 50; ++i) {
        const int x0 = uniform(-20, 140), y0 = uniform(-20, 100), w = uniform(0, 40), h = uniform(0, 40);
        index_t set = 0, both = 0;
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const std::uint8_t b = uniform(0, 2) == 0;
                data.push_back(b);
                const int gx = x0 + x, gy = y0 + y;
                set += b;
                if (b && gx >= 0 && gy >= 0 && gx < cols && gy < rows && m[static_cast<std::size_t>(gy * cols + gx)]) ++both;
            }
        offsets.push_back(static_cast<std::int64_t>(data.size()));
        regions.insert(regions.end(), {x0, y0, w, h});
        want.push_back(set ? static_cast<float>(static_cast<double>(both) / static_cast<double>(set)) : 0.0f);
    }
    std::vector<float> out(50, -1);
    fissure::glare_fraction_masks({m.data(), rows, cols, cols}, {data.data(), offsets.data(), regions.data(), 50}, out.data(), 2);
    CHECK(out == want);
}

TEST(bad_input_throws) {
    std::vector<std::uint8_t> img(12), out(4);
    fissure::Plane8 o{out.data(), 2, 2, 2};
    CHECK_THROWS(fissure::specular_mask({img.data(), 2, 2, 2, 4}, 240, 30, 0, o, 1));
    CHECK_THROWS(fissure::specular_mask({img.data(), 2, 2, 3, 6}, 256, 30, 0, o, 1));
    CHECK_THROWS(fissure::specular_mask({img.data(), 2, 2, 3, 6}, 240, -1, 0, o, 1));
    CHECK_THROWS(fissure::specular_mask({img.data(), 2, 2, 3, 6}, 240, 30, 255, o, 1));
    CHECK_THROWS(fissure::specular_mask({img.data(), 0, 2, 3, 6}, 240, 30, 0, o, 1));
    CHECK_THROWS(fissure::specular_mask({img.data(), 2, 2, 3, 6}, 240, 30, 0, {out.data(), 2, 1, 2}, 1));
}

CHECK_MAIN()
