// SPDX-License-Identifier: Apache-2.0
// Box-local mask conversions against naive loops over explicit full canvases.
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "fissure/masks_convert.hpp"

using fissure::BoxMasks;
using fissure::index_t;

namespace {

std::mt19937_64& rng() {
    static std::mt19937_64 g(20261123);
    return g;
}
int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng()); }

// Random masks: regions anywhere (partly or wholly off a canvas of h x w), noise of random density.
BoxMasks random_masks(int n, int h, int w, bool inside) {
    BoxMasks m;
    for (int i = 0; i < n; ++i) {
        int x0, y0, rw, rh;
        if (inside) {
            x0 = uniform(0, w);
            y0 = uniform(0, h);
            rw = uniform(0, w - x0);
            rh = uniform(0, h - y0);
        } else {
            x0 = uniform(-5, w + 2);
            y0 = uniform(-5, h + 2);
            rw = uniform(0, w + 6);
            rh = uniform(0, h + 6);
        }
        const int density = uniform(0, 100);
        for (int k = 0; k < rw * rh; ++k) m.data.push_back(uniform(0, 99) < density ? 1 : 0);
        m.offsets.push_back(static_cast<std::int64_t>(m.data.size()));
        m.regions.insert(m.regions.end(), {x0, y0, rw, rh});
    }
    return m;
}

// Naive: mask i rendered onto an h x w canvas (row-major), pixels off the canvas dropped.
std::vector<std::uint8_t> render(const BoxMasks& m, index_t i, int h, int w) {
    std::vector<std::uint8_t> c(static_cast<size_t>(h) * w, 0);
    const auto* r = &m.regions[4 * i];
    for (int y = 0; y < r[3]; ++y)
        for (int x = 0; x < r[2]; ++x) {
            const int gx = r[0] + x, gy = r[1] + y;
            if (gx >= 0 && gx < w && gy >= 0 && gy < h && m.data[m.offsets[i] + y * r[2] + x])
                c[static_cast<size_t>(gy) * w + gx] = 1;
        }
    return c;
}

// Naive COCO runs of a row-major canvas, read column-major.
std::vector<std::int64_t> naive_runs(const std::vector<std::uint8_t>& c, int h, int w) {
    std::vector<std::int64_t> runs;
    std::uint8_t cur = 0;
    std::int64_t run = 0;
    for (int x = 0; x < w; ++x)
        for (int y = 0; y < h; ++y) {
            const std::uint8_t v = c[static_cast<size_t>(y) * w + x] != 0;
            if (v != cur) {
                runs.push_back(run);
                run = 0;
                cur = v;
            }
            ++run;
        }
    runs.push_back(run);
    return runs;
}

std::vector<std::uint8_t> bitmap(const BoxMasks& m, index_t i) {
    return {m.data.begin() + m.offsets[i], m.data.begin() + m.offsets[i + 1]};
}

}  // namespace

TEST(encode_runs_matches_canvas_runs) {
    for (int trial = 0; trial < 300; ++trial) {
        const int h = uniform(1, 12), w = uniform(1, 12);
        BoxMasks m = random_masks(6, h, w, false);
        fissure::check_box_masks(m.view(), static_cast<index_t>(m.data.size()));
        for (index_t i = 0; i < m.size(); ++i) {
            const auto* r = &m.regions[4 * i];
            std::vector<std::int64_t> ours;
            fissure::encode_runs(m.data.data() + m.offsets[i], r[0], r[1], r[2], r[3], h, w, ours);
            CHECK(ours == naive_runs(render(m, i, h, w), h, w));
        }
        const auto all = fissure::encode_runs_all(m.view(), h, w, 2);
        for (index_t i = 0; i < m.size(); ++i) {
            std::vector<std::int64_t> got(all.counts.begin() + all.offsets[i],
                                          all.counts.begin() + all.offsets[i + 1]);
            CHECK(got == naive_runs(render(m, i, h, w), h, w));
        }
    }
}

TEST(decode_runs_crops_the_canvas) {
    for (int trial = 0; trial < 300; ++trial) {
        const int h = uniform(1, 12), w = uniform(1, 12);
        BoxMasks m = random_masks(4, h, w, false);
        BoxMasks targets = random_masks(4, h, w, false);  // only their regions are used
        for (index_t i = 0; i < m.size(); ++i) {
            const auto canvas = render(m, i, h, w);
            const auto runs = naive_runs(canvas, h, w);
            const auto* t = &targets.regions[4 * i];
            std::vector<std::uint8_t> out(static_cast<size_t>(t[2]) * t[3], 7);
            fissure::decode_runs(runs.data(), static_cast<index_t>(runs.size()), h, w, t[0], t[1],
                                 t[2], t[3], out.data());
            bool same = true;
            for (int y = 0; y < t[3]; ++y)
                for (int x = 0; x < t[2]; ++x) {
                    const int gx = t[0] + x, gy = t[1] + y;
                    const std::uint8_t want =
                        gx >= 0 && gx < w && gy >= 0 && gy < h ? canvas[static_cast<size_t>(gy) * w + gx] : 0;
                    same = same && out[static_cast<size_t>(y) * t[2] + x] == want;
                }
            CHECK(same);
            std::int32_t tight[4];
            fissure::runs_tight_region(runs.data(), static_cast<index_t>(runs.size()), h, w, tight);
            int xs = w, ys = h, xe = -1, ye = -1;
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x)
                    if (canvas[static_cast<size_t>(y) * w + x]) {
                        xs = std::min(xs, x), xe = std::max(xe, x);
                        ys = std::min(ys, y), ye = std::max(ye, y);
                    }
            if (xe < 0)
                CHECK(tight[0] == 0 && tight[1] == 0 && tight[2] == 0 && tight[3] == 0);
            else
                CHECK(tight[0] == xs && tight[1] == ys && tight[2] == xe - xs + 1 && tight[3] == ye - ys + 1);
        }
    }
}

TEST(decode_runs_all_tight_roundtrip) {
    const int h = 23, w = 31;
    BoxMasks m = random_masks(50, h, w, true);
    std::vector<std::vector<std::int64_t>> runs(50);
    std::vector<fissure::RunsRef> refs;
    for (index_t i = 0; i < 50; ++i) {
        runs[i] = naive_runs(render(m, i, h, w), h, w);
        refs.push_back({runs[i].data(), static_cast<index_t>(runs[i].size())});
    }
    const BoxMasks given = fissure::decode_runs_all(refs, h, w, m.regions.data(), 2);
    CHECK(given.data == m.data && given.regions == m.regions && given.offsets == m.offsets);
    const BoxMasks tight = fissure::decode_runs_all(refs, h, w, nullptr, 2);
    for (index_t i = 0; i < 50; ++i) CHECK(render(tight, i, h, w) == render(m, i, h, w));
}

TEST(local_runs_roundtrip) {
    BoxMasks m = random_masks(80, 17, 9, false);
    const auto runs = fissure::encode_local_runs_all(m.view(), 2);
    std::vector<fissure::RunsRef> refs;
    for (index_t i = 0; i < m.size(); ++i)
        refs.push_back({runs.counts.data() + runs.offsets[i], runs.offsets[i + 1] - runs.offsets[i]});
    const BoxMasks back = fissure::decode_local_runs_all(refs, m.regions.data(), 2);
    CHECK(back.data == m.data && back.regions == m.regions);
}

TEST(counts_string_known_values) {
    // Strings produced by pycocotools.mask.encode.
    const std::vector<std::int64_t> a{0, 2, 2, 2, 10};
    std::string s;
    fissure::coco_counts_to_string(a.data(), 5, s);
    CHECK(s == "02208");
    const std::vector<std::int64_t> b{0, 1, 2400999, 3, 148997};
    s.clear();
    fissure::coco_counts_to_string(b.data(), 5, s);
    CHECK(s == "01WgXY22nhXkM");
    CHECK(fissure::coco_counts_from_string(s.data(), s.size()) == b);
    for (int trial = 0; trial < 500; ++trial) {
        std::vector<std::int64_t> c(static_cast<size_t>(uniform(1, 30)));
        const int bits = uniform(1, 40);
        for (auto& v : c) v = static_cast<std::int64_t>(rng()() >> (64 - bits));
        std::string t;
        fissure::coco_counts_to_string(c.data(), static_cast<index_t>(c.size()), t);
        CHECK(fissure::coco_counts_from_string(t.data(), t.size()) == c);
        for (char ch : t) CHECK(ch >= '0' && ch <= 'o');
    }
}

TEST(corrupt_input_throws) {
    CHECK_THROWS(fissure::coco_counts_from_string("4d", 2));     // ends inside a number
    CHECK_THROWS(fissure::coco_counts_from_string("4 ", 2));     // bad character
    CHECK_THROWS(fissure::coco_counts_from_string("ooooooooooooo0", 14));  // too long
    const std::vector<std::int64_t> short_runs{3, 4}, negative{5, -1, 16}, zero{};
    std::vector<std::uint8_t> out(20);
    CHECK_THROWS(fissure::decode_runs(short_runs.data(), 2, 4, 5, 0, 0, 5, 4, out.data()));
    CHECK_THROWS(fissure::decode_runs(negative.data(), 3, 4, 5, 0, 0, 5, 4, out.data()));
    CHECK_THROWS(fissure::decode_runs(zero.data(), 0, 4, 5, 0, 0, 5, 4, out.data()));
    std::int32_t reg[4];
    CHECK_THROWS(fissure::runs_tight_region(short_runs.data(), 2, 4, 5, reg));

    BoxMasks m = random_masks(3, 5, 5, true);
    CHECK_THROWS(fissure::check_box_masks(m.view(), static_cast<index_t>(m.data.size()) + 1));
    auto bad = m;
    bad.offsets[1] += 1;
    CHECK_THROWS(fissure::check_box_masks(bad.view(), static_cast<index_t>(bad.data.size())));
    bad = m;
    bad.regions[2] = -1;
    CHECK_THROWS(fissure::check_box_masks(bad.view(), static_cast<index_t>(bad.data.size())));
    const std::int32_t outside[4] = {3, 0, 3, 1};
    std::vector<std::uint8_t> plane(16);
    CHECK_THROWS(fissure::crop_dense(plane.data(), 1, 4, 4, outside, nullptr, 1));
    const index_t idx[1] = {3};
    CHECK_THROWS(fissure::gather(m.view(), idx, 1, 1));
}

TEST(dense_crop_and_tight_regions) {
    const int n = 40, h = 19, w = 27;
    std::vector<std::uint8_t> u8(static_cast<size_t>(n) * h * w, 0);
    std::vector<float> f32(u8.size(), 0.f);
    std::vector<std::int32_t> src, shifts;
    for (int i = 0; i < n; ++i) {
        const int x0 = uniform(0, w - 1), y0 = uniform(0, h - 1);
        const int x1 = uniform(x0, w), y1 = uniform(y0, h);
        const int density = uniform(0, 100);
        for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x) {
                const size_t k = (static_cast<size_t>(i) * h + y) * w + x;
                u8[k] = uniform(0, 99) < density ? static_cast<std::uint8_t>(uniform(1, 255)) : 0;
                f32[k] = static_cast<float>(uniform(0, 100)) / 100.f;
            }
        const int rx = uniform(0, w), ry = uniform(0, h);
        src.insert(src.end(), {rx, ry, uniform(0, w - rx), uniform(0, h - ry)});
        shifts.insert(shifts.end(), {uniform(-50, 50), uniform(-50, 50)});
    }
    std::vector<std::int32_t> tu(4 * n), tf(4 * n);
    fissure::dense_tight_regions(u8.data(), n, h, w, tu.data(), 2);
    fissure::dense_tight_regions(f32.data(), n, h, w, 0.5f, tf.data(), 2);
    const BoxMasks cu = fissure::crop_dense(u8.data(), n, h, w, src.data(), shifts.data(), 2);
    const BoxMasks cf = fissure::crop_dense(f32.data(), n, h, w, 0.5f, src.data(), nullptr, 2);
    for (int i = 0; i < n; ++i) {
        int xs[2] = {w, w}, ys[2] = {h, h}, xe[2] = {-1, -1}, ye[2] = {-1, -1};
        bool crop_ok = true;
        const auto* r = &src[4 * i];
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const size_t k = (static_cast<size_t>(i) * h + y) * w + x;
                const bool set[2] = {u8[k] != 0, f32[k] > 0.5f};
                for (int t = 0; t < 2; ++t)
                    if (set[t]) xs[t] = std::min(xs[t], x), xe[t] = std::max(xe[t], x),
                                ys[t] = std::min(ys[t], y), ye[t] = std::max(ye[t], y);
                if (x >= r[0] && x < r[0] + r[2] && y >= r[1] && y < r[1] + r[3]) {
                    const size_t o = static_cast<size_t>(y - r[1]) * r[2] + (x - r[0]);
                    crop_ok = crop_ok && cu.data[cu.offsets[i] + o] == set[0] &&
                              cf.data[cf.offsets[i] + o] == set[1];
                }
            }
        CHECK(crop_ok);
        CHECK(cu.regions[4 * i] == r[0] + shifts[2 * i] && cu.regions[4 * i + 1] == r[1] + shifts[2 * i + 1]);
        CHECK(cf.regions[4 * i] == r[0] && cf.regions[4 * i + 2] == r[2] && cf.regions[4 * i + 3] == r[3]);
        const std::vector<std::int32_t>* got[2] = {&tu, &tf};
        for (int t = 0; t < 2; ++t) {
            const auto* g = got[t]->data() + 4 * i;
            if (xe[t] < 0)
                CHECK(g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 0);
            else
                CHECK(g[0] == xs[t] && g[1] == ys[t] && g[2] == xe[t] - xs[t] + 1 && g[3] == ye[t] - ys[t] + 1);
        }
    }
}

TEST(reframe_gather_paste_areas_bounds) {
    const int h = 21, w = 16;
    BoxMasks m = random_masks(60, h, w, false);
    BoxMasks t = random_masks(60, h, w, false);
    const BoxMasks moved = fissure::reframe(m.view(), t.regions.data(), 2);
    // reframed onto a canvas covering everything, each mask equals the original restricted to
    // the new region
    const int H = h + 20, W = w + 20;
    BoxMasks ms = m, mv = moved;
    for (index_t i = 0; i < m.size(); ++i) {
        ms.regions[4 * i] += 10, ms.regions[4 * i + 1] += 10;
        mv.regions[4 * i] += 10, mv.regions[4 * i + 1] += 10;
    }
    std::vector<std::uint8_t> pasted(static_cast<size_t>(m.size()) * h * w, 0);
    fissure::paste_dense(m.view(), h, w, pasted.data(), 2);
    std::vector<std::int64_t> area(m.size());
    fissure::areas(m.view(), area.data(), 2);
    std::vector<std::int32_t> bounds(4 * m.size());
    fissure::tight_bounds(m.view(), bounds.data(), 2);
    for (index_t i = 0; i < m.size(); ++i) {
        const auto a = render(ms, i, H, W), b = render(mv, i, H, W);
        const auto* r = &mv.regions[4 * i];
        bool ok = true;
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) {
                const bool in = x >= r[0] && x < r[0] + r[2] && y >= r[1] && y < r[1] + r[3];
                ok = ok && b[static_cast<size_t>(y) * W + x] == (in ? a[static_cast<size_t>(y) * W + x] : 0);
            }
        CHECK(ok);
        const auto full = render(m, i, h, w);
        CHECK(std::equal(full.begin(), full.end(), pasted.begin() + i * h * w));
        std::int64_t count = 0;
        const auto bm = bitmap(m, i);
        for (auto v : bm) count += v != 0;
        CHECK(area[i] == count);
        const auto* q = &m.regions[4 * i];
        int xs = INT32_MAX, ys = INT32_MAX, xe = INT32_MIN, ye = INT32_MIN;
        for (int y = 0; y < q[3]; ++y)
            for (int x = 0; x < q[2]; ++x)
                if (bm[static_cast<size_t>(y) * q[2] + x])
                    xs = std::min(xs, q[0] + x), xe = std::max(xe, q[0] + x + 1),
                    ys = std::min(ys, q[1] + y), ye = std::max(ye, q[1] + y + 1);
        const auto* g = &bounds[4 * i];
        if (count == 0)
            CHECK(g[0] == q[0] && g[1] == q[1] && g[2] == q[0] && g[3] == q[1]);
        else
            CHECK(g[0] == xs && g[1] == ys && g[2] == xe && g[3] == ye);
    }
    std::vector<index_t> idx{5, 0, 5, 59};
    const BoxMasks g = fissure::gather(m.view(), idx.data(), 4, 2);
    for (int k = 0; k < 4; ++k) {
        CHECK(bitmap(g, k) == bitmap(m, idx[k]));
        CHECK(std::equal(g.regions.begin() + 4 * k, g.regions.begin() + 4 * k + 4, m.regions.begin() + 4 * idx[k]));
    }
}

TEST(area_counts_long_masks) {
    BoxMasks m;
    m.data.assign(100000, 1);
    for (size_t k = 0; k < m.data.size(); k += 3) m.data[k] = 0;
    m.offsets.push_back(100000);
    m.regions = {0, 0, 1000, 100};
    std::int64_t a = 0;
    fissure::areas(m.view(), &a, 1);
    CHECK(a == 100000 - 33334);
}

CHECK_MAIN()
