// SPDX-License-Identifier: Apache-2.0
// DETR-style decoder (DETR, Deformable DETR, RF-DETR): normalised cxcywh boxes per query, class
// logits through a sigmoid or a softmax with a trailing no-object class, optional per-query mask
// logits upsampled bilinearly and sampled over each detection's region.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "decode_detail.hpp"
#include "fissure/decode.hpp"
#include "fissure/parallel.hpp"

namespace fissure {

namespace {

/// Class probabilities of one query (the first `out.size()` classes), float32 from double math.
void query_probs(const float* l, index_t c, DetrScore score, float* out, index_t n_out) {
    if (score == DetrScore::sigmoid) {
        for (index_t k = 0; k < n_out; ++k)
            out[k] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(l[k]))));
        return;
    }
    double m = static_cast<double>(l[0]);
    for (index_t k = 1; k < c; ++k) m = std::max(m, static_cast<double>(l[k]));
    double sum = 0.0;
    for (index_t k = 0; k < c; ++k) sum += std::exp(static_cast<double>(l[k]) - m);
    for (index_t k = 0; k < n_out; ++k)
        out[k] = static_cast<float>(std::exp(static_cast<double>(l[k]) - m) / sum);
}

}  // namespace

Decoded decode_detr(const float* boxes, const float* logits, index_t batch, index_t q, index_t c,
                    const float* mask_logits, index_t mh, index_t mw, const DecodeGeometry& g,
                    float conf_threshold, const DetrParams& p, int num_threads) {
    if (c < 1) fail("logits: expected at least one class, got C = " + std::to_string(c));
    if (p.score == DetrScore::softmax && c < 2)
        fail("logits: score='softmax' expects C >= 2 (the classes and a trailing no-object "
             "class), got C = " + std::to_string(c));
    if (p.top_k < 0) fail("top_k: expected >= 0, got " + std::to_string(p.top_k));
    const bool masks = mask_logits != nullptr;
    if (masks && (mh <= 0 || mw <= 0))
        fail("masks: expected shape (B, Q, mh, mw) with mh, mw >= 1");
    decode_detail::check_batch(g, batch);
    decode_detail::check_finite_nan(boxes, static_cast<std::size_t>(batch * q * 4), "boxes");
    decode_detail::check_finite_nan(logits, static_cast<std::size_t>(batch * q * c), "logits");
    if (p.score == DetrScore::softmax)
        for (std::size_t i = 0, e = static_cast<std::size_t>(batch * q * c); i < e; ++i)
            if (!std::isfinite(logits[i]))
                fail("logits: score='softmax' expects finite logits, got " +
                     std::to_string(logits[i]) + " at flat index " + std::to_string(i));
    if (masks)
        decode_detail::check_finite_nan(mask_logits, static_cast<std::size_t>(batch * q * mh * mw),
                                        "masks");
    decode_detail::Taps tx, ty;
    if (masks) {
        tx = decode_detail::linear_taps(mw, g.input_w);
        ty = decode_detail::linear_taps(mh, g.input_h);
    }
    const index_t cc = p.score == DetrScore::softmax ? c - 1 : c;  // classes that can win
    std::vector<Decoded> parts(static_cast<std::size_t>(batch));
    parallel_for(0, batch, num_threads, 1, [&](index_t lo, index_t hi) {
        std::vector<float> probs;
        std::vector<index_t> order;
        decode_detail::PixelMap pm;
        for (index_t b = lo; b < hi; ++b) {
            const TileTransform tr = tile_transform(g, b);
            Decoded& d = parts[static_cast<std::size_t>(b)];
            d.has_masks = masks;
            auto emit = [&](index_t i, index_t cls, float score) {
                if (!(score >= conf_threshold)) return;
                const float* bx = boxes + (b * q + i) * 4;
                const float cx = bx[0], cy = bx[1], w = bx[2], h = bx[3];
                const double sx = g.input_w, sy = g.input_h;
                if (!decode_detail::emit_box(d, tr, static_cast<double>(cx - 0.5f * w) * sx,
                                             static_cast<double>(cy - 0.5f * h) * sy,
                                             static_cast<double>(cx + 0.5f * w) * sx,
                                             static_cast<double>(cy + 0.5f * h) * sy, score, cls,
                                             b) ||
                    !masks)
                    return;
                decode_detail::pixel_map(d.boxes.data() + d.boxes.size() - 4, tr, g.input_h,
                                         g.input_w, pm);
                const float* map = mask_logits + (b * q + i) * mh * mw;
                decode_detail::append_mask(d, pm, [&](index_t ix, index_t iy) {
                    return decode_detail::bilinear_at(tx, ty, ix, iy, [&](index_t x, index_t y) {
                               return map[y * mw + x];
                           }) > 0.0f;
                });
            };
            const float* L = logits + b * q * c;
            if (p.top_k == 0) {
                probs.resize(static_cast<std::size_t>(cc));
                for (index_t i = 0; i < q; ++i) {
                    query_probs(L + i * c, c, p.score, probs.data(), cc);
                    index_t arg = 0;
                    for (index_t k = 1; k < cc; ++k)
                        if (probs[static_cast<std::size_t>(k)] > probs[static_cast<std::size_t>(arg)])
                            arg = k;
                    emit(i, arg, probs[static_cast<std::size_t>(arg)]);
                }
                continue;
            }
            // RF-DETR: top k over all (query, class) pairs.
            const index_t total = q * cc;
            probs.resize(static_cast<std::size_t>(total));
            for (index_t i = 0; i < q; ++i)
                query_probs(L + i * c, c, p.score, probs.data() + i * cc, cc);
            const index_t k = std::min(p.top_k, total);
            order.resize(static_cast<std::size_t>(total));
            std::iota(order.begin(), order.end(), index_t{0});
            std::partial_sort(order.begin(), order.begin() + k, order.end(),
                              [&](index_t a, index_t z) {
                                  const float pa = probs[static_cast<std::size_t>(a)];
                                  const float pz = probs[static_cast<std::size_t>(z)];
                                  return pa > pz || (pa == pz && a < z);
                              });
            for (index_t j = 0; j < k; ++j) {
                const index_t f = order[static_cast<std::size_t>(j)];
                emit(f / cc, f % cc, probs[static_cast<std::size_t>(f)]);
            }
        }
    });
    Decoded res = decode_detail::concat(parts);
    res.has_masks = masks;
    return res;
}

}  // namespace fissure
