// SPDX-License-Identifier: Apache-2.0
// Decoders against naive references: flood-fill components for probability maps, a plain
// per-candidate loop for YOLO outputs.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/decode.hpp"

using fissure::index_t;

namespace {

struct RefComp {
    index_t x0, y0, x1, y1, count;
    double sum;
    std::vector<std::uint8_t> mask;  // over [x0, x1) x [y0, y1)
};

// Naive 8-connected flood fill, components in raster order of their first pixel.
std::vector<RefComp> flood(const std::vector<float>& m, index_t h, index_t w, float thr) {
    std::vector<int> lab(static_cast<std::size_t>(h * w), 0);
    std::vector<RefComp> out;
    int next = 0;
    for (index_t y = 0; y < h; ++y)
        for (index_t x = 0; x < w; ++x) {
            if (!(m[y * w + x] > thr) || lab[y * w + x]) continue;
            ++next;
            std::vector<std::pair<index_t, index_t>> stack{{x, y}}, pix;
            lab[y * w + x] = next;
            while (!stack.empty()) {
                auto [cx, cy] = stack.back();
                stack.pop_back();
                pix.push_back({cx, cy});
                for (index_t dy = -1; dy <= 1; ++dy)
                    for (index_t dx = -1; dx <= 1; ++dx) {
                        const index_t nx = cx + dx, ny = cy + dy;
                        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                        if (!(m[ny * w + nx] > thr) || lab[ny * w + nx]) continue;
                        lab[ny * w + nx] = next;
                        stack.push_back({nx, ny});
                    }
            }
            RefComp c{w, h, -1, -1, 0, 0.0, {}};
            for (auto [px, py] : pix) {
                c.x0 = std::min(c.x0, px);
                c.y0 = std::min(c.y0, py);
                c.x1 = std::max(c.x1, px + 1);
                c.y1 = std::max(c.y1, py + 1);
                c.count += 1;
                c.sum += m[py * w + px];
            }
            c.mask.assign(static_cast<std::size_t>((c.x1 - c.x0) * (c.y1 - c.y0)), 0);
            for (auto [px, py] : pix) c.mask[(py - c.y0) * (c.x1 - c.x0) + (px - c.x0)] = 1;
            out.push_back(std::move(c));
        }
    return out;
}

}  // namespace

TEST(probability_map_matches_flood_fill) {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 20; ++trial) {
        const index_t h = 5 + trial * 3, w = 7 + trial * 2;
        std::vector<float> m(static_cast<std::size_t>(2 * h * w));
        std::uniform_real_distribution<float> u(0.f, 1.f);
        for (auto& v : m) v = u(rng);
        const std::vector<std::int64_t> tiles{10, 20, 10 + w, 20 + h, 0, 0, w, h};
        fissure::DecodeGeometry g{tiles.data(), 2, static_cast<int>(h), static_cast<int>(w),
                                  fissure::ResizeMode::none};
        fissure::ProbMapParams p;
        p.threshold = 0.55f;
        p.box_threshold = 0.0f;
        const fissure::Decoded d = fissure::decode_probability_map(m.data(), 2, h, w, g, p, 2);
        CHECK(d.size() > 0 && d.has_masks);
        index_t k = 0;
        for (index_t t = 0; t < 2; ++t) {
            const std::vector<float> one(m.begin() + t * h * w, m.begin() + (t + 1) * h * w);
            const auto ref = flood(one, h, w, p.threshold);
            for (const RefComp& c : ref) {
                CHECK(k < d.size());
                if (k >= d.size()) return;
                const float* b = d.boxes.data() + 4 * k;
                CHECK(d.tile_index[k] == t);
                CHECK(b[0] == static_cast<float>(c.x0 + tiles[4 * t]));
                CHECK(b[1] == static_cast<float>(c.y0 + tiles[4 * t + 1]));
                CHECK(b[2] == static_cast<float>(c.x1 + tiles[4 * t]));
                CHECK(b[3] == static_cast<float>(c.y1 + tiles[4 * t + 1]));
                CHECK(d.scores[k] == static_cast<float>(c.sum / static_cast<double>(c.count)));
                const std::int64_t o0 = d.masks.offsets[k], o1 = d.masks.offsets[k + 1];
                CHECK(o1 - o0 == static_cast<std::int64_t>(c.mask.size()));
                if (o1 - o0 == static_cast<std::int64_t>(c.mask.size()))
                    for (std::int64_t i = 0; i < o1 - o0; ++i)
                        CHECK(d.masks.data[o0 + i] == c.mask[i]);
                ++k;
            }
        }
        CHECK(k == d.size());
    }
}

TEST(yolo_matches_plain_loop) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    const index_t b = 3, c = 4, n = 97, dims = 4 + c;
    std::vector<float> out(static_cast<std::size_t>(b * dims * n));
    for (auto& v : out) v = u(rng) * 64.f;
    for (index_t t = 0; t < b; ++t)
        for (index_t j = 4; j < dims; ++j)
            for (index_t i = 0; i < n; ++i) out[(t * dims + j) * n + i] /= 64.f;
    const std::vector<std::int64_t> tiles{0, 0, 128, 64, 100, 100, 164, 228, 5, 5, 69, 69};
    fissure::DecodeGeometry g{tiles.data(), b, 64, 64, fissure::ResizeMode::letterbox};
    const fissure::Decoded d = fissure::decode_yolo(out.data(), b, dims, n, true, g, 0.5f, 2);
    CHECK(d.size() > 10);
    index_t k = 0;
    for (index_t t = 0; t < b; ++t) {
        const fissure::TileTransform tr = fissure::tile_transform(g, t);
        for (index_t i = 0; i < n; ++i) {
            auto at = [&](index_t j) { return out[(t * dims + j) * n + i]; };
            float s = at(4);
            index_t a = 0;
            for (index_t j = 1; j < c; ++j)
                if (at(4 + j) > s) { s = at(4 + j); a = j; }
            if (s < 0.5f) continue;
            const float hw = at(2) * 0.5f, hh = at(3) * 0.5f;
            const double mx[2] = {at(0) - hw, at(0) + hw}, my[2] = {at(1) - hh, at(1) + hh};
            float bx[4];
            for (int e = 0; e < 2; ++e) {
                double x = (mx[e] - tr.pad_x) / tr.rx + tr.x0;
                double y = (my[e] - tr.pad_y) / tr.ry + tr.y0;
                x = x < tr.x0 ? tr.x0 : (x > tr.x1 ? tr.x1 : x);
                y = y < tr.y0 ? tr.y0 : (y > tr.y1 ? tr.y1 : y);
                bx[2 * e] = static_cast<float>(x);
                bx[2 * e + 1] = static_cast<float>(y);
            }
            if (!(bx[2] > bx[0] && bx[3] > bx[1])) continue;
            CHECK(k < d.size());
            if (k >= d.size()) return;
            for (int e = 0; e < 4; ++e) CHECK(d.boxes[4 * k + e] == bx[e]);
            CHECK(d.scores[k] == s);
            CHECK(d.class_ids[k] == a);
            CHECK(d.tile_index[k] == t);
            ++k;
        }
    }
    CHECK(k == d.size());
}

TEST(errors) {
    std::vector<float> m(16, 0.f);
    const std::vector<std::int64_t> tiles{0, 0, 4, 4};
    fissure::DecodeGeometry g{tiles.data(), 1, 4, 4, fissure::ResizeMode::none};
    fissure::ProbMapParams p;
    CHECK_THROWS(fissure::decode_probability_map(m.data(), 2, 2, 4, g, p));  // 2 maps, 1 tile
    m[5] = std::nanf("");
    CHECK_THROWS(fissure::decode_probability_map(m.data(), 1, 4, 4, g, p));
    CHECK_THROWS(fissure::decode_yolo(m.data(), 1, 4, 4, true, g, 0.1f));  // no classes
    const std::vector<std::int64_t> empty_tile{0, 0, 0, 4};
    fissure::DecodeGeometry ge{empty_tile.data(), 1, 4, 4, fissure::ResizeMode::resize};
    std::vector<float> ok(16, 0.f);
    CHECK_THROWS(fissure::decode_probability_map(ok.data(), 1, 4, 4, ge, p));
}

CHECK_MAIN()
