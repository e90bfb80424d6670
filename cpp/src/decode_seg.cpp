// SPDX-License-Identifier: Apache-2.0
// Segmentation decoders with mask prototypes (YOLOv8 / YOLO11 and YOLOv5 "-seg" exports), plus
// the pieces every mask decoder shares: bilinear taps and the image-pixel -> model-pixel map.
// Masks are evaluated only over each detection's own region: no full-size mask is built.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "decode_detail.hpp"
#include "fissure/decode.hpp"
#include "fissure/parallel.hpp"

namespace fissure {

namespace decode_detail {

Taps linear_taps(index_t src, index_t dst) {
    Taps t;
    t.i0.resize(static_cast<std::size_t>(dst));
    t.i1.resize(static_cast<std::size_t>(dst));
    t.f.resize(static_cast<std::size_t>(dst));
    // OpenCV: scale = 1 / (dst / src) in double, fx = float((i + 0.5) * scale - 0.5).
    const double scale = 1.0 / (static_cast<double>(dst) / static_cast<double>(src));
    for (index_t i = 0; i < dst; ++i) {
        float fx = static_cast<float>((static_cast<double>(i) + 0.5) * scale - 0.5);
        auto sx = static_cast<index_t>(std::floor(fx));
        fx -= static_cast<float>(sx);
        if (sx < 0) {
            fx = 0.0f;
            sx = 0;
        }
        if (sx >= src - 1) {
            fx = 0.0f;
            sx = src - 1;
        }
        const auto k = static_cast<std::size_t>(i);
        t.i0[k] = sx;
        t.i1[k] = std::min<index_t>(sx + 1, src - 1);
        t.f[k] = fx;
    }
    return t;
}

void pixel_map(const float* box, const TileTransform& tr, int input_h, int input_w, PixelMap& pm) {
    const double fx0 = std::floor(static_cast<double>(box[0]));
    const double fy0 = std::floor(static_cast<double>(box[1]));
    const double fw = std::ceil(static_cast<double>(box[2])) - fx0;
    const double fh = std::ceil(static_cast<double>(box[3])) - fy0;
    constexpr double lo = std::numeric_limits<std::int32_t>::min();
    constexpr double hi = std::numeric_limits<std::int32_t>::max();
    if (fx0 < lo || fx0 > hi || fy0 < lo || fy0 > hi || fw > hi || fh > hi)
        fail("tiles: a mask region does not fit int32 coordinates");
    pm.x0 = static_cast<std::int64_t>(fx0);
    pm.y0 = static_cast<std::int64_t>(fy0);
    pm.w = static_cast<std::int64_t>(fw);
    pm.h = static_cast<std::int64_t>(fh);
    pm.cols.resize(static_cast<std::size_t>(pm.w));
    pm.rows.resize(static_cast<std::size_t>(pm.h));
    for (std::int64_t i = 0; i < pm.w; ++i) {
        const double xm = (static_cast<double>(pm.x0 + i) + 0.5 - tr.x0) * tr.rx + tr.pad_x;
        const double xp = std::floor(xm);
        pm.cols[static_cast<std::size_t>(i)] =
            xp >= 0 && xp < static_cast<double>(input_w) ? static_cast<index_t>(xp) : -1;
    }
    for (std::int64_t j = 0; j < pm.h; ++j) {
        const double ym = (static_cast<double>(pm.y0 + j) + 0.5 - tr.y0) * tr.ry + tr.pad_y;
        const double yp = std::floor(ym);
        pm.rows[static_cast<std::size_t>(j)] =
            yp >= 0 && yp < static_cast<double>(input_h) ? static_cast<index_t>(yp) : -1;
    }
}

}  // namespace decode_detail

namespace {

using decode_detail::append_mask;
using decode_detail::bilinear_at;
using decode_detail::emit_box;
using decode_detail::PixelMap;
using decode_detail::Taps;

void check_protos(const ProtoView& p, index_t batch) {
    if (p.data == nullptr && batch > 0) fail("protos: expected an array");
    if (p.m <= 0 || p.h <= 0 || p.w <= 0)
        fail("protos: expected shape (B, M, mh, mw) with M, mh, mw >= 1, got M = " +
             std::to_string(p.m) + ", mh = " + std::to_string(p.h) + ", mw = " + std::to_string(p.w));
    decode_detail::check_finite_nan(p.data, static_cast<std::size_t>(batch * p.m * p.h * p.w),
                                    "protos");
}

/// What a seg decoder does with masks.
struct SegOptions {
    bool masks = true;        ///< build masks at all
    bool crop_input = true;   ///< crop at input resolution (Ultralytics >= 8.4.100), else proto
    bool drop_empty = true;   ///< drop detections whose mask is empty (Ultralytics >= 8.4.0)
};

/// Scratch and shared tables of one worker.
struct SegScratch {
    PixelMap pm;
    std::vector<float> win;
    std::vector<float> coeff;
    std::vector<float> best_row;  // channels-first YOLO: per-candidate class maxima
    std::vector<index_t> arg_row;
};

/// Removes the detection just emitted (its box, score, class and tile).
void pop_last(Decoded& d) {
    d.boxes.resize(d.boxes.size() - 4);
    d.scores.pop_back();
    d.class_ids.pop_back();
    d.tile_index.pop_back();
}

/// The input pixels [lo, hi) whose index i satisfies b1 <= i < b2 (float32 compares, as
/// Ultralytics' crop_mask on an arange), clamped to [0, n).
void pixel_span(float b1, float b2, index_t n, index_t& lo, index_t& hi) {
    const double c1 = std::ceil(static_cast<double>(b1)), c2 = std::ceil(static_cast<double>(b2));
    lo = static_cast<index_t>(std::clamp(c1, 0.0, static_cast<double>(n)));
    hi = static_cast<index_t>(std::clamp(c2, 0.0, static_cast<double>(n)));
    if (hi < lo) hi = lo;
}

/// Appends the mask of the detection just emitted into d (its box is the last one), from
/// the M coefficients in s.coeff and model-pixel box (x1, y1, x2, y2), with Ultralytics'
/// process_mask(upsample=True) evaluated at the input pixels the region samples:
/// - crop_input (Ultralytics >= 8.4.100): the logits upsampled bilinearly to the input, > 0,
///   kept at the input pixels i with x1 <= i < x2 (likewise in y);
/// - else (earlier): zeroed outside the box at proto resolution, then upsampled, > 0.
/// Returns false, appending nothing, when drop_empty and no input pixel of the mask is set
/// (Ultralytics >= 8.4.0 drops such detections).
bool seg_mask(Decoded& d, const TileTransform& tr, const DecodeGeometry& g, const ProtoView& P,
              index_t b, float x1, float y1, float x2, float y2, const Taps& tx, const Taps& ty,
              bool crop_input, bool drop_empty, SegScratch& s) {
    PixelMap& pm = s.pm;
    decode_detail::pixel_map(d.boxes.data() + d.boxes.size() - 4, tr, g.input_h, g.input_w, pm);
    // Kept at proto resolution [k0, k1) (proto crop), or the input pixels [c0, c1) (input crop).
    index_t kx0 = 0, kx1 = P.w, ky0 = 0, ky1 = P.h;
    index_t cx0 = 0, cx1 = g.input_w, cy0 = 0, cy1 = g.input_h;
    if (crop_input) {
        pixel_span(x1, x2, g.input_w, cx0, cx1);
        pixel_span(y1, y2, g.input_h, cy0, cy1);
    } else {
        // proto pixel p is kept when box_lo * ratio <= p < box_hi * ratio (float32, as
        // Ultralytics multiplies the float box by mw / input_w)
        const auto rxp = static_cast<float>(static_cast<double>(P.w) / static_cast<double>(g.input_w));
        const auto ryp = static_cast<float>(static_cast<double>(P.h) / static_cast<double>(g.input_h));
        const float bx1 = x1 * rxp, bx2 = x2 * rxp, by1 = y1 * ryp, by2 = y2 * ryp;
        while (kx0 < kx1 && !(static_cast<float>(kx0) >= bx1)) ++kx0;
        while (kx1 > kx0 && !(static_cast<float>(kx1 - 1) < bx2)) --kx1;
        while (ky0 < ky1 && !(static_cast<float>(ky0) >= by1)) ++ky0;
        while (ky1 > ky0 && !(static_cast<float>(ky1 - 1) < by2)) --ky1;
        // the input pixels whose taps reach the kept window (elsewhere the value is 0)
        while (cx0 < cx1 && tx.i1[static_cast<std::size_t>(cx0)] < kx0) ++cx0;
        while (cx1 > cx0 && tx.i0[static_cast<std::size_t>(cx1 - 1)] >= kx1) --cx1;
        while (cy0 < cy1 && ty.i1[static_cast<std::size_t>(cy0)] < ky0) ++cy0;
        while (cy1 > cy0 && ty.i0[static_cast<std::size_t>(cy1 - 1)] >= ky1) --cy1;
        if (kx0 >= kx1 || ky0 >= ky1) cx1 = cx0;  // nothing kept
    }
    if (cx0 >= cx1 || cy0 >= cy1) {
        if (drop_empty) return false;
        append_mask(d, pm, [](index_t, index_t) { return false; });
        return true;
    }
    // The proto window the input pixels [c0, c1) read (taps are monotonic).
    const index_t xlo = tx.i0[static_cast<std::size_t>(cx0)];
    const index_t xhi = tx.i1[static_cast<std::size_t>(cx1 - 1)];
    const index_t ylo = ty.i0[static_cast<std::size_t>(cy0)];
    const index_t yhi = ty.i1[static_cast<std::size_t>(cy1 - 1)];
    const index_t ww = xhi - xlo + 1, wh = yhi - ylo + 1;
    s.win.assign(static_cast<std::size_t>(ww * wh), 0.0f);
    const index_t ax0 = std::max(xlo, kx0), ax1 = std::min(xhi + 1, kx1);
    const index_t ay0 = std::max(ylo, ky0), ay1 = std::min(yhi + 1, ky1);
    if (ax0 < ax1 && ay0 < ay1) {
        const index_t plane = P.h * P.w;
        const float* base = P.data + b * P.m * plane;
        for (index_t k = 0; k < P.m; ++k) {
            const float c = s.coeff[static_cast<std::size_t>(k)];
            const float* pk = base + k * plane;
            for (index_t y = ay0; y < ay1; ++y) {
                const float* src = pk + y * P.w;
                float* dst = s.win.data() + (y - ylo) * ww - xlo;
                for (index_t x = ax0; x < ax1; ++x) dst[x] += c * src[x];
            }
        }
    }
    const float* win = s.win.data();
    const auto value = [&](index_t ix, index_t iy) {
        return bilinear_at(tx, ty, ix, iy, [&](index_t x, index_t y) {
            return win[(y - ylo) * ww + (x - xlo)];
        });
    };
    if (drop_empty) {
        bool any = false;
        for (index_t iy = cy0; iy < cy1 && !any; ++iy)
            for (index_t ix = cx0; ix < cx1; ++ix)
                if (value(ix, iy) > 0.0f) {
                    any = true;
                    break;
                }
        if (!any) return false;
    }
    append_mask(d, pm, [&](index_t ix, index_t iy) {
        return ix >= cx0 && ix < cx1 && iy >= cy0 && iy < cy1 && value(ix, iy) > 0.0f;
    });
    return true;
}

}  // namespace

namespace {

/// The checks both YOLO seg heads start with; returns the class count C of a candidate laid
/// out as `head` box values (4: xywh; 5: xywh + objectness), C scores, M coefficients.
index_t seg_classes(const float* out, index_t batch, index_t dims, index_t n, index_t head,
                    const ProtoView& protos, const DecodeGeometry& g) {
    const index_t classes = dims - head - protos.m;
    if (classes < 1)
        fail("output: expected " + std::to_string(head) +
             " + C + M values per candidate with C >= 1 and M = " + std::to_string(protos.m) +
             " (the protos' channels), got " + std::to_string(dims));
    decode_detail::check_batch(g, batch);
    check_protos(protos, batch);
    decode_detail::check_finite_nan(out, static_cast<std::size_t>(batch * dims * n), "output");
    return classes;
}

/// Runs image(b, tr, d, s) for each image of the batch on the pool (per-worker scratch, with
/// s.coeff sized M) and concatenates the per-image results.
template <class Image>
Decoded decode_seg_batch(index_t batch, const ProtoView& protos, const DecodeGeometry& g,
                         bool masks, int num_threads, const Image& image) {
    std::vector<Decoded> parts(static_cast<std::size_t>(batch));
    parallel_for(0, batch, num_threads, 1, [&](index_t lo, index_t hi) {
        SegScratch s;
        s.coeff.resize(static_cast<std::size_t>(protos.m));
        for (index_t b = lo; b < hi; ++b) {
            const TileTransform tr = tile_transform(g, b);
            Decoded& d = parts[static_cast<std::size_t>(b)];
            d.has_masks = masks;
            image(b, tr, d, s);
        }
    });
    Decoded res = decode_detail::concat(parts);
    res.has_masks = masks;
    return res;
}

/// The proto taps of a seg decode (empty without masks).
struct SegTaps {
    Taps x, y;
    SegTaps(const ProtoView& protos, const DecodeGeometry& g, bool masks) {
        if (masks) {
            x = decode_detail::linear_taps(protos.w, g.input_w);
            y = decode_detail::linear_taps(protos.h, g.input_h);
        }
    }
};

/// Emits the detection (x1, y1, x2, y2) with its score and class and, with masks, its mask
/// from the M coefficients coeff(k); drops it again when its mask is empty and o.drop_empty.
template <class Coeff>
void emit_xyxy(Decoded& d, const TileTransform& tr, const DecodeGeometry& g, const ProtoView& P,
               index_t b, float x1, float y1, float x2, float y2, float score, std::int64_t cls,
               const SegOptions& o, const SegTaps& t, SegScratch& s, const Coeff& coeff) {
    if (!emit_box(d, tr, x1, y1, x2, y2, score, cls, b) || !o.masks) return;
    for (index_t k = 0; k < P.m; ++k) s.coeff[static_cast<std::size_t>(k)] = coeff(k);
    if (!seg_mask(d, tr, g, P, b, x1, y1, x2, y2, t.x, t.y, o.crop_input, o.drop_empty, s))
        pop_last(d);
}

/// Emits the detection (cx, cy, w, h) with its score and class and, with masks, its mask from
/// the M coefficients coeff(k).
template <class Coeff>
void emit_seg(Decoded& d, const TileTransform& tr, const DecodeGeometry& g, const ProtoView& P,
              index_t b, float cx, float cy, float w, float h, float score, index_t cls,
              const SegOptions& o, const SegTaps& t, SegScratch& s, const Coeff& coeff) {
    const float x1 = cx - w * 0.5f, y1 = cy - h * 0.5f;
    const float x2 = cx + w * 0.5f, y2 = cy + h * 0.5f;
    emit_xyxy(d, tr, g, P, b, x1, y1, x2, y2, score, cls, o, t, s, coeff);
}

}  // namespace

Decoded decode_yolo_seg(const float* out, index_t batch, index_t dims, index_t n,
                        bool channels_first, const ProtoView& protos, const DecodeGeometry& g,
                        float conf_threshold, bool masks, int num_threads, bool crop_input,
                        bool drop_empty) {
    const index_t classes = seg_classes(out, batch, dims, n, 4, protos, g);
    const SegOptions opts{masks, crop_input, drop_empty};
    const SegTaps taps(protos, g, masks);
    return decode_seg_batch(batch, protos, g, masks, num_threads, [&](index_t b,
                                                                      const TileTransform& tr,
                                                                      Decoded& d, SegScratch& s) {
        const float* o = out + b * dims * n;
        // Value v of candidate i is r[v * sv] with r = o + i * si.
        const index_t sv = channels_first ? n : 1, si = channels_first ? 1 : dims;
        std::vector<float>& best_row = s.best_row;
        std::vector<index_t>& arg_row = s.arg_row;
        if (channels_first) {  // class maxima row by row (contiguous reads)
            best_row.assign(static_cast<std::size_t>(n), -std::numeric_limits<float>::infinity());
            arg_row.assign(static_cast<std::size_t>(n), 0);
            for (index_t c = 0; c < classes; ++c) {
                const float* row = o + (4 + c) * n;
                for (index_t i = 0; i < n; ++i)
                    if (row[i] > best_row[static_cast<std::size_t>(i)]) {
                        best_row[static_cast<std::size_t>(i)] = row[i];
                        arg_row[static_cast<std::size_t>(i)] = c;
                    }
            }
        }
        for (index_t i = 0; i < n; ++i) {
            const float* r = o + i * si;
            float best;
            index_t arg = 0;
            if (channels_first) {
                best = best_row[static_cast<std::size_t>(i)];
                arg = arg_row[static_cast<std::size_t>(i)];
            } else {
                best = r[4];
                for (index_t c = 1; c < classes; ++c)
                    if (r[4 + c] > best) {
                        best = r[4 + c];
                        arg = c;
                    }
            }
            if (!(best >= conf_threshold)) continue;
            emit_seg(d, tr, g, protos, b, r[0], r[sv], r[2 * sv], r[3 * sv], best, arg, opts,
                     taps, s, [&](index_t k) { return r[(4 + classes + k) * sv]; });
        }
    });
}

Decoded decode_yolov5_seg(const float* out, index_t batch, index_t n, index_t dims,
                          const ProtoView& protos, const DecodeGeometry& g, float conf_threshold,
                          bool masks, int num_threads, bool crop_input, bool drop_empty) {
    const index_t classes = seg_classes(out, batch, dims, n, 5, protos, g);
    const SegOptions opts{masks, crop_input, drop_empty};
    const SegTaps taps(protos, g, masks);
    return decode_seg_batch(batch, protos, g, masks, num_threads, [&](index_t b,
                                                                      const TileTransform& tr,
                                                                      Decoded& d, SegScratch& s) {
        for (index_t i = 0; i < n; ++i) {
            const float* r = out + (b * n + i) * dims;
            const float obj = r[4];
            float best = obj * r[5];
            index_t arg = 0;
            for (index_t c = 1; c < classes; ++c) {
                const float v = obj * r[5 + c];
                if (v > best) {
                    best = v;
                    arg = c;
                }
            }
            if (!(best >= conf_threshold)) continue;
            emit_seg(d, tr, g, protos, b, r[0], r[1], r[2], r[3], best, arg, opts, taps, s,
                     [&](index_t k) { return r[5 + classes + k]; });
        }
    });
}

Decoded decode_end_to_end_seg(const float* out, index_t batch, index_t k, index_t dims,
                              const ProtoView& protos, const DecodeGeometry& g,
                              float conf_threshold, bool masks, int num_threads, bool crop_input,
                              bool drop_empty) {
    if (dims != 6 + protos.m)
        fail("output: expected 6 + M values per detection with M = " + std::to_string(protos.m) +
             " (the protos' channels), got " + std::to_string(dims));
    decode_detail::check_batch(g, batch);
    check_protos(protos, batch);
    decode_detail::check_finite_nan(out, static_cast<std::size_t>(batch * k * dims), "output");
    const SegTaps taps(protos, g, masks);
    const SegOptions opts{masks, crop_input, drop_empty};
    return decode_seg_batch(batch, protos, g, masks, num_threads, [&](index_t b,
                                                                      const TileTransform& tr,
                                                                      Decoded& d, SegScratch& s) {
        for (index_t i = 0; i < k; ++i) {
            const float* r = out + (b * k + i) * dims;
            if (!(r[4] >= conf_threshold)) continue;
            const float c = r[5];
            if (!std::isfinite(c) || c < 0.0f || c > 9.0e15f)
                fail("output: class of detection " + std::to_string(i) + " in batch item " +
                     std::to_string(b) + " is not a valid class id: " + std::to_string(c));
            emit_xyxy(d, tr, g, protos, b, r[0], r[1], r[2], r[3], r[4],
                      static_cast<std::int64_t>(std::lround(c)), opts, taps, s,
                      [&](index_t m) { return r[6 + m]; });
        }
    });
}

}  // namespace fissure
