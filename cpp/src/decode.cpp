// SPDX-License-Identifier: Apache-2.0
// Output decoders: geometry, per-tile collection and the box-regression decoders (YOLOv8/11,
// end-to-end, YOLOv5). The probability-map decoder lives in decode_probmap.cpp.
#include "fissure/decode.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "decode_detail.hpp"
#include "fissure/parallel.hpp"

namespace fissure {

TileTransform tile_transform(const DecodeGeometry& g, index_t t) {
    const std::int64_t* b = g.tiles + 4 * t;
    const index_t tw = b[2] - b[0], th = b[3] - b[1];
    if (tw <= 0 || th <= 0)
        fail("tiles: tile " + std::to_string(t) + " is empty: [" + std::to_string(b[0]) + ", " +
             std::to_string(b[1]) + ", " + std::to_string(b[2]) + ", " + std::to_string(b[3]) + "]");
    TileTransform tr;
    tr.x0 = static_cast<double>(b[0]);
    tr.y0 = static_cast<double>(b[1]);
    tr.x1 = static_cast<double>(b[2]);
    tr.y1 = static_cast<double>(b[3]);
    switch (g.mode) {
        case ResizeMode::letterbox: {
            const Letterbox lb = letterbox_params(th, tw, g.input_h, g.input_w);
            tr.rx = tr.ry = lb.r;
            tr.pad_x = lb.pad_x;
            tr.pad_y = lb.pad_y;
            break;
        }
        case ResizeMode::resize:
            tr.rx = static_cast<double>(g.input_w) / static_cast<double>(tw);
            tr.ry = static_cast<double>(g.input_h) / static_cast<double>(th);
            break;
        case ResizeMode::none:
            break;
    }
    return tr;
}

namespace decode_detail {

bool emit_box(Decoded& d, const TileTransform& tr, double mx1, double my1, double mx2, double my2,
              float score, std::int64_t cls, std::int64_t tile) {
    const double x1 = std::clamp((mx1 - tr.pad_x) / tr.rx + tr.x0, tr.x0, tr.x1);
    const double y1 = std::clamp((my1 - tr.pad_y) / tr.ry + tr.y0, tr.y0, tr.y1);
    const double x2 = std::clamp((mx2 - tr.pad_x) / tr.rx + tr.x0, tr.x0, tr.x1);
    const double y2 = std::clamp((my2 - tr.pad_y) / tr.ry + tr.y0, tr.y0, tr.y1);
    const float fx1 = static_cast<float>(x1), fy1 = static_cast<float>(y1);
    const float fx2 = static_cast<float>(x2), fy2 = static_cast<float>(y2);
    if (!(fx2 > fx1 && fy2 > fy1)) return false;
    d.boxes.insert(d.boxes.end(), {fx1, fy1, fx2, fy2});
    d.scores.push_back(score);
    d.class_ids.push_back(cls);
    d.tile_index.push_back(tile);
    return true;
}

void check_batch(const DecodeGeometry& g, index_t batch) {
    if (g.n != batch)
        fail("tiles: expected one tile per batch item (" + std::to_string(batch) + "), got " +
             std::to_string(g.n));
    if (g.input_h <= 0 || g.input_w <= 0) fail("input_size: expected positive sizes");
    for (index_t t = 0; t < g.n; ++t) (void)tile_transform(g, t);
}

void check_finite_nan(const float* p, std::size_t n, const char* name) {
    for (std::size_t i = 0; i < n; ++i)
        if (std::isnan(p[i]))
            fail(std::string(name) + ": expected no NaN, got NaN at flat index " + std::to_string(i));
}

Decoded concat(std::vector<Decoded>& parts) {
    Decoded out;
    std::size_t n = 0, md = 0;
    bool masks = false;
    for (auto& p : parts) {
        n += p.scores.size();
        md += p.masks.data.size();
        masks = masks || p.has_masks;
    }
    out.has_masks = masks;
    out.boxes.reserve(4 * n);
    out.scores.reserve(n);
    out.class_ids.reserve(n);
    out.tile_index.reserve(n);
    if (masks) {
        out.masks.data.reserve(md);
        out.masks.regions.reserve(4 * n);
        out.masks.offsets.reserve(n + 1);
    }
    for (auto& p : parts) {
        out.boxes.insert(out.boxes.end(), p.boxes.begin(), p.boxes.end());
        out.scores.insert(out.scores.end(), p.scores.begin(), p.scores.end());
        out.class_ids.insert(out.class_ids.end(), p.class_ids.begin(), p.class_ids.end());
        out.tile_index.insert(out.tile_index.end(), p.tile_index.begin(), p.tile_index.end());
        if (masks) {
            const std::int64_t base = out.masks.offsets.back();
            for (std::size_t i = 1; i < p.masks.offsets.size(); ++i)
                out.masks.offsets.push_back(base + p.masks.offsets[i]);
            out.masks.data.insert(out.masks.data.end(), p.masks.data.begin(), p.masks.data.end());
            out.masks.regions.insert(out.masks.regions.end(), p.masks.regions.begin(),
                                     p.masks.regions.end());
        }
        p = Decoded{};
    }
    return out;
}

}  // namespace decode_detail

using decode_detail::check_batch;
using decode_detail::check_finite_nan;
using decode_detail::concat;
using decode_detail::emit_box;

Decoded decode_yolo(const float* out, index_t batch, index_t dims, index_t n, bool channels_first,
                    const DecodeGeometry& g, float conf_threshold, int num_threads) {
    if (dims < 5) fail("output: expected at least 5 values per candidate (4 box + classes), got " +
                       std::to_string(dims));
    check_batch(g, batch);
    check_finite_nan(out, static_cast<std::size_t>(batch * dims * n), "output");
    const index_t classes = dims - 4;
    std::vector<Decoded> parts(static_cast<std::size_t>(batch));
    parallel_for(0, batch, num_threads, 1, [&](index_t lo, index_t hi) {
        std::vector<float> best;
        std::vector<std::int64_t> arg;
        for (index_t b = lo; b < hi; ++b) {
            const TileTransform tr = tile_transform(g, b);
            Decoded& d = parts[static_cast<std::size_t>(b)];
            const float* o = out + b * dims * n;
            if (channels_first) {
                best.assign(static_cast<std::size_t>(n), -std::numeric_limits<float>::infinity());
                arg.assign(static_cast<std::size_t>(n), 0);
                for (index_t c = 0; c < classes; ++c) {
                    const float* row = o + (4 + c) * n;
                    for (index_t i = 0; i < n; ++i)
                        if (row[i] > best[static_cast<std::size_t>(i)]) {
                            best[static_cast<std::size_t>(i)] = row[i];
                            arg[static_cast<std::size_t>(i)] = c;
                        }
                }
                for (index_t i = 0; i < n; ++i) {
                    const float s = best[static_cast<std::size_t>(i)];
                    if (!(s >= conf_threshold)) continue;
                    const float cx = o[i], cy = o[n + i], w = o[2 * n + i], h = o[3 * n + i];
                    emit_box(d, tr, cx - w * 0.5f, cy - h * 0.5f, cx + w * 0.5f, cy + h * 0.5f, s,
                             arg[static_cast<std::size_t>(i)], b);
                }
            } else {
                for (index_t i = 0; i < n; ++i) {
                    const float* r = o + i * dims;
                    float s = r[4];
                    index_t a = 0;
                    for (index_t c = 1; c < classes; ++c)
                        if (r[4 + c] > s) { s = r[4 + c]; a = c; }
                    if (!(s >= conf_threshold)) continue;
                    const float cx = r[0], cy = r[1], w = r[2], h = r[3];
                    emit_box(d, tr, cx - w * 0.5f, cy - h * 0.5f, cx + w * 0.5f, cy + h * 0.5f, s,
                             a, b);
                }
            }
        }
    });
    return concat(parts);
}

Decoded decode_end_to_end(const float* out, index_t batch, index_t k, const DecodeGeometry& g,
                          float conf_threshold, int num_threads) {
    check_batch(g, batch);
    check_finite_nan(out, static_cast<std::size_t>(batch * k * 6), "output");
    std::vector<Decoded> parts(static_cast<std::size_t>(batch));
    parallel_for(0, batch, num_threads, 1, [&](index_t lo, index_t hi) {
        for (index_t b = lo; b < hi; ++b) {
            const TileTransform tr = tile_transform(g, b);
            Decoded& d = parts[static_cast<std::size_t>(b)];
            for (index_t i = 0; i < k; ++i) {
                const float* r = out + (b * k + i) * 6;
                if (!(r[4] >= conf_threshold)) continue;
                const float c = r[5];
                if (!std::isfinite(c) || c < 0.0f || c > 9.0e15f)
                    fail("output: class of detection " + std::to_string(i) + " in batch item " +
                         std::to_string(b) + " is not a valid class id: " + std::to_string(c));
                emit_box(d, tr, r[0], r[1], r[2], r[3], r[4],
                         static_cast<std::int64_t>(std::lround(c)), b);
            }
        }
    });
    return concat(parts);
}

Decoded decode_yolov5(const float* out, index_t batch, index_t n, index_t dims,
                      const DecodeGeometry& g, float conf_threshold, int num_threads) {
    if (dims < 6) fail("output: expected at least 6 values per candidate (4 box, objectness, "
                       "classes), got " + std::to_string(dims));
    check_batch(g, batch);
    check_finite_nan(out, static_cast<std::size_t>(batch * dims * n), "output");
    const index_t classes = dims - 5;
    std::vector<Decoded> parts(static_cast<std::size_t>(batch));
    parallel_for(0, batch, num_threads, 1, [&](index_t lo, index_t hi) {
        for (index_t b = lo; b < hi; ++b) {
            const TileTransform tr = tile_transform(g, b);
            Decoded& d = parts[static_cast<std::size_t>(b)];
            for (index_t i = 0; i < n; ++i) {
                const float* r = out + (b * n + i) * dims;
                const float obj = r[4];
                float s = obj * r[5];
                index_t a = 0;
                for (index_t c = 1; c < classes; ++c) {
                    const float v = obj * r[5 + c];
                    if (v > s) { s = v; a = c; }
                }
                if (!(s >= conf_threshold)) continue;
                const float cx = r[0], cy = r[1], w = r[2], h = r[3];
                emit_box(d, tr, cx - w * 0.5f, cy - h * 0.5f, cx + w * 0.5f, cy + h * 0.5f, s, a,
                         b);
            }
        }
    });
    return concat(parts);
}

}  // namespace fissure
