// SPDX-License-Identifier: Apache-2.0
// Probability-map decoder (DBNet-style): threshold, 8-connected components by two-pass
// union-find labelling, then a box, a mean-probability score and a box-local mask per
// component.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "decode_detail.hpp"
#include "fissure/decode.hpp"
#include "fissure/parallel.hpp"

namespace fissure {

namespace {

struct Component {
    index_t x_min, y_min, x_max, y_max;
    index_t count = 0;
    double sum = 0.0;
};

std::int32_t find_root(std::vector<std::int32_t>& parent, std::int32_t a) {
    while (parent[static_cast<std::size_t>(a)] != a) {
        const std::int32_t p = parent[static_cast<std::size_t>(a)];
        parent[static_cast<std::size_t>(a)] = parent[static_cast<std::size_t>(p)];  // halving
        a = p;
    }
    return a;
}

// Unites the sets of a and b; the smaller label becomes the root, so a component's root is
// the provisional label of its first pixel in raster order.
std::int32_t unite(std::vector<std::int32_t>& parent, std::int32_t a, std::int32_t b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a == b) return a;
    if (a < b) { parent[static_cast<std::size_t>(b)] = a; return a; }
    parent[static_cast<std::size_t>(a)] = b;
    return b;
}

}  // namespace

namespace decode_detail {

/// Labels foreground (p > threshold) with 8-connectivity: labels[i] = 0 for background,
/// 1..n for components ordered by their first pixel in raster order. Returns n.
std::int32_t label_components(const float* p, index_t h, index_t w, float threshold,
                              std::vector<std::int32_t>& labels) {
    labels.assign(static_cast<std::size_t>(h * w), 0);
    std::vector<std::int32_t> parent{0};
    for (index_t y = 0; y < h; ++y) {
        const float* row = p + y * w;
        std::int32_t* lab = labels.data() + y * w;
        const std::int32_t* up = y > 0 ? lab - w : nullptr;
        for (index_t x = 0; x < w; ++x) {
            if (!(row[x] > threshold)) continue;
            std::int32_t l = 0;
            auto take = [&](std::int32_t n) {
                if (n == 0) return;
                l = l == 0 ? find_root(parent, n) : unite(parent, l, n);
            };
            if (x > 0) take(lab[x - 1]);
            if (up) {
                if (x > 0) take(up[x - 1]);
                take(up[x]);
                if (x + 1 < w) take(up[x + 1]);
            }
            if (l == 0) {
                if (parent.size() >= static_cast<std::size_t>(INT32_MAX))
                    fail("maps: too many components in one map");
                l = static_cast<std::int32_t>(parent.size());
                parent.push_back(l);
            }
            lab[x] = l;
        }
    }
    // Compact labels in increasing provisional order (= raster order of first pixels).
    std::vector<std::int32_t> final_label(parent.size(), 0);
    std::int32_t n = 0;
    for (std::size_t l = 1; l < parent.size(); ++l) {
        const std::int32_t r = find_root(parent, static_cast<std::int32_t>(l));
        final_label[l] = r == static_cast<std::int32_t>(l) ? ++n : final_label[static_cast<std::size_t>(r)];
    }
    for (auto& v : labels) v = final_label[static_cast<std::size_t>(v)];
    return n;
}

}  // namespace decode_detail

Decoded decode_probability_map(const float* maps, index_t batch, index_t h, index_t w,
                               const DecodeGeometry& g, const ProbMapParams& p, int num_threads) {
    if (h <= 0 || w <= 0) fail("maps: expected non-empty maps");
    if (h * w >= static_cast<index_t>(INT32_MAX)) fail("maps: a map has too many pixels");
    decode_detail::check_batch(g, batch);
    decode_detail::check_finite_nan(maps, static_cast<std::size_t>(batch * h * w), "maps");
    std::vector<Decoded> parts(static_cast<std::size_t>(batch));
    // Map pixel -> model input pixel.
    const double sx = static_cast<double>(g.input_w) / static_cast<double>(w);
    const double sy = static_cast<double>(g.input_h) / static_cast<double>(h);
    parallel_for(0, batch, num_threads, 1, [&](index_t lo, index_t hi) {
        std::vector<std::int32_t> labels;
        std::vector<Component> comps;
        std::vector<index_t> col_map, row_map;
        for (index_t b = lo; b < hi; ++b) {
            const float* m = maps + b * h * w;
            const TileTransform tr = tile_transform(g, b);
            Decoded& d = parts[static_cast<std::size_t>(b)];
            d.has_masks = p.masks;
            const std::int32_t n = decode_detail::label_components(m, h, w, p.threshold, labels);
            comps.assign(static_cast<std::size_t>(n), Component{w, h, -1, -1});
            for (index_t y = 0; y < h; ++y)
                for (index_t x = 0; x < w; ++x) {
                    const std::int32_t l = labels[static_cast<std::size_t>(y * w + x)];
                    if (l == 0) continue;
                    Component& c = comps[static_cast<std::size_t>(l - 1)];
                    c.x_min = std::min(c.x_min, x);
                    c.x_max = std::max(c.x_max, x);
                    c.y_min = std::min(c.y_min, y);
                    c.y_max = std::max(c.y_max, y);
                    c.count += 1;
                    c.sum += static_cast<double>(m[y * w + x]);
                }
            for (std::int32_t l = 1; l <= n; ++l) {
                const Component& c = comps[static_cast<std::size_t>(l - 1)];
                if (c.count < p.min_area) continue;
                const float score = static_cast<float>(c.sum / static_cast<double>(c.count));
                if (!(score >= p.box_threshold)) continue;
                if (!decode_detail::emit_box(d, tr, static_cast<double>(c.x_min) * sx,
                                             static_cast<double>(c.y_min) * sy,
                                             static_cast<double>(c.x_max + 1) * sx,
                                             static_cast<double>(c.y_max + 1) * sy, score, 0, b))
                    continue;
                if (!p.masks) continue;
                const float* bx = d.boxes.data() + d.boxes.size() - 4;
                const double fx0 = std::floor(static_cast<double>(bx[0]));
                const double fy0 = std::floor(static_cast<double>(bx[1]));
                const auto rx0 = static_cast<std::int64_t>(fx0);
                const auto ry0 = static_cast<std::int64_t>(fy0);
                const auto rw = static_cast<std::int64_t>(std::ceil(static_cast<double>(bx[2])) - fx0);
                const auto rh = static_cast<std::int64_t>(std::ceil(static_cast<double>(bx[3])) - fy0);
                if (rx0 < INT32_MIN || rx0 > INT32_MAX || ry0 < INT32_MIN || ry0 > INT32_MAX ||
                    rw > INT32_MAX || rh > INT32_MAX)
                    fail("tiles: a mask region does not fit int32 coordinates");
                // Image pixel centre -> model pixel -> map pixel (-1 when outside the map).
                col_map.resize(static_cast<std::size_t>(rw));
                row_map.resize(static_cast<std::size_t>(rh));
                for (std::int64_t i = 0; i < rw; ++i) {
                    const double xm = (static_cast<double>(rx0 + i) + 0.5 - tr.x0) * tr.rx + tr.pad_x;
                    const double xp = std::floor(xm / sx);
                    col_map[static_cast<std::size_t>(i)] = xp >= 0 && xp < static_cast<double>(w) ? static_cast<index_t>(xp) : -1;
                }
                for (std::int64_t j = 0; j < rh; ++j) {
                    const double ym = (static_cast<double>(ry0 + j) + 0.5 - tr.y0) * tr.ry + tr.pad_y;
                    const double yp = std::floor(ym / sy);
                    row_map[static_cast<std::size_t>(j)] = yp >= 0 && yp < static_cast<double>(h) ? static_cast<index_t>(yp) : -1;
                }
                BoxMasks& bm = d.masks;
                const std::size_t start = bm.data.size();
                bm.data.resize(start + static_cast<std::size_t>(rw * rh), 0);
                std::uint8_t* out = bm.data.data() + start;
                for (std::int64_t j = 0; j < rh; ++j) {
                    const index_t yp = row_map[static_cast<std::size_t>(j)];
                    if (yp < 0) continue;
                    const std::int32_t* lrow = labels.data() + yp * w;
                    for (std::int64_t i = 0; i < rw; ++i) {
                        const index_t xp = col_map[static_cast<std::size_t>(i)];
                        out[j * rw + i] = xp >= 0 && lrow[xp] == l ? 1 : 0;
                    }
                }
                bm.offsets.push_back(static_cast<std::int64_t>(bm.data.size()));
                bm.regions.insert(bm.regions.end(),
                                  {static_cast<std::int32_t>(rx0), static_cast<std::int32_t>(ry0),
                                   static_cast<std::int32_t>(rw), static_cast<std::int32_t>(rh)});
            }
        }
    });
    Decoded out = decode_detail::concat(parts);
    out.has_masks = p.masks;
    return out;
}

}  // namespace fissure
