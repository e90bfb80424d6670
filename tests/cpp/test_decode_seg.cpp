// SPDX-License-Identifier: Apache-2.0
// Segmentation and DETR decoders against naive references: full-size logit planes, a full
// bilinear upsample to the model input, then per-pixel sampling; per-class probabilities and
// a stable sort for top-k.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/decode.hpp"

using fissure::index_t;

namespace {

// OpenCV INTER_LINEAR source taps for output index i of a src -> dst resize.
void taps(index_t src, index_t dst, index_t i, index_t& i0, index_t& i1, float& f) {
    const double scale = 1.0 / (static_cast<double>(dst) / static_cast<double>(src));
    f = static_cast<float>((static_cast<double>(i) + 0.5) * scale - 0.5);
    i0 = static_cast<index_t>(std::floor(f));
    f -= static_cast<float>(i0);
    if (i0 < 0) { i0 = 0; f = 0.f; }
    if (i0 >= src - 1) { i0 = src - 1; f = 0.f; }
    i1 = std::min(i0 + 1, src - 1);
}

// The whole (dh, dw) bilinear upsample of a (sh, sw) plane.
std::vector<float> upsample(const std::vector<float>& p, index_t sh, index_t sw, index_t dh,
                            index_t dw) {
    std::vector<float> out(static_cast<std::size_t>(dh * dw));
    for (index_t y = 0; y < dh; ++y)
        for (index_t x = 0; x < dw; ++x) {
            index_t x0, x1, y0, y1;
            float fx, fy;
            taps(sw, dw, x, x0, x1, fx);
            taps(sh, dh, y, y0, y1, fy);
            const float h0 = p[y0 * sw + x0] * (1.f - fx) + p[y0 * sw + x1] * fx;
            const float h1 = p[y1 * sw + x0] * (1.f - fx) + p[y1 * sw + x1] * fx;
            out[y * dw + x] = h0 * (1.f - fy) + h1 * fy;
        }
    return out;
}

struct RefDet {
    float box[4];
    float score;
    index_t cls, tile;
    std::int64_t x0, y0, w, h;
    std::vector<std::uint8_t> mask;
};

// Image box + mask sampled from an input-size map `up` at the image pixels' centres.
bool place(const fissure::TileTransform& tr, double mx1, double my1, double mx2, double my2,
           const std::vector<float>* up, int ih, int iw, RefDet& r) {
    const double mx[2] = {mx1, mx2}, my[2] = {my1, my2};
    for (int e = 0; e < 2; ++e) {
        double x = (mx[e] - tr.pad_x) / tr.rx + tr.x0;
        double y = (my[e] - tr.pad_y) / tr.ry + tr.y0;
        x = x < tr.x0 ? tr.x0 : (x > tr.x1 ? tr.x1 : x);
        y = y < tr.y0 ? tr.y0 : (y > tr.y1 ? tr.y1 : y);
        r.box[2 * e] = static_cast<float>(x);
        r.box[2 * e + 1] = static_cast<float>(y);
    }
    if (!(r.box[2] > r.box[0] && r.box[3] > r.box[1])) return false;
    if (up == nullptr) return true;
    r.x0 = static_cast<std::int64_t>(std::floor(r.box[0]));
    r.y0 = static_cast<std::int64_t>(std::floor(r.box[1]));
    r.w = static_cast<std::int64_t>(std::ceil(r.box[2])) - r.x0;
    r.h = static_cast<std::int64_t>(std::ceil(r.box[3])) - r.y0;
    r.mask.assign(static_cast<std::size_t>(r.w * r.h), 0);
    for (std::int64_t j = 0; j < r.h; ++j)
        for (std::int64_t i = 0; i < r.w; ++i) {
            const double xm = std::floor((r.x0 + i + 0.5 - tr.x0) * tr.rx + tr.pad_x);
            const double ym = std::floor((r.y0 + j + 0.5 - tr.y0) * tr.ry + tr.pad_y);
            if (xm < 0 || ym < 0 || xm >= iw || ym >= ih) continue;
            const float v = (*up)[static_cast<std::size_t>(ym) * iw + static_cast<std::size_t>(xm)];
            r.mask[j * r.w + i] = v > 0.f ? 1 : 0;
        }
    return true;
}

void compare(const fissure::Decoded& d, const std::vector<RefDet>& ref, bool masks) {
    CHECK(d.size() == static_cast<index_t>(ref.size()));
    CHECK(d.has_masks == masks);
    if (d.size() != static_cast<index_t>(ref.size())) return;
    for (std::size_t k = 0; k < ref.size(); ++k) {
        const RefDet& r = ref[k];
        for (int e = 0; e < 4; ++e) CHECK(d.boxes[4 * k + e] == r.box[e]);
        CHECK(d.scores[k] == r.score);
        CHECK(d.class_ids[k] == r.cls);
        CHECK(d.tile_index[k] == r.tile);
        if (!masks) continue;
        const std::int32_t* reg = d.masks.regions.data() + 4 * k;
        CHECK(reg[0] == r.x0 && reg[1] == r.y0 && reg[2] == r.w && reg[3] == r.h);
        const std::int64_t o0 = d.masks.offsets[k], o1 = d.masks.offsets[k + 1];
        CHECK(o1 - o0 == static_cast<std::int64_t>(r.mask.size()));
        if (o1 - o0 != static_cast<std::int64_t>(r.mask.size())) continue;
        std::int64_t diff = 0;
        for (std::int64_t i = 0; i < o1 - o0; ++i) diff += d.masks.data[o0 + i] != r.mask[i];
        CHECK(diff == 0);
    }
}

}  // namespace

TEST(yolo_seg_matches_naive_full_planes) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::normal_distribution<float> nd(0.f, 1.f);
    const index_t b = 2, c = 3, m = 5, n = 70, dims = 4 + c + m, mh = 12, mw = 20;
    const int ih = 48, iw = 80;
    for (const bool v5 : {false, true}) {
        const index_t head = v5 ? 5 : 4, vdims = dims + (v5 ? 1 : 0);
        // channels-last rows (B, N, vdims)
        std::vector<float> out(static_cast<std::size_t>(b * n * vdims));
        for (index_t t = 0; t < b; ++t)
            for (index_t i = 0; i < n; ++i) {
                float* r = out.data() + (t * n + i) * vdims;
                r[0] = u(rng) * iw;
                r[1] = u(rng) * ih;
                r[2] = 2.f + u(rng) * iw / 2;
                r[3] = 2.f + u(rng) * ih / 2;
                for (index_t j = 4; j < head + c; ++j) r[j] = u(rng);
                for (index_t j = head + c; j < vdims; ++j) r[j] = nd(rng);
            }
        std::vector<float> protos(static_cast<std::size_t>(b * m * mh * mw));
        for (auto& v : protos) v = nd(rng);
        const std::vector<std::int64_t> tiles{0, 0, 160, 96, 300, 40, 340, 120};
        for (const auto mode : {fissure::ResizeMode::letterbox, fissure::ResizeMode::resize}) {
            fissure::DecodeGeometry g{tiles.data(), b, ih, iw, mode};
            const fissure::ProtoView pv{protos.data(), m, mh, mw};
            const float conf = 0.3f;
            fissure::Decoded d = v5 ? fissure::decode_yolov5_seg(out.data(), b, n, vdims, pv, g,
                                                                 conf, true, 2, false, false)
                                    : fissure::decode_yolo_seg(out.data(), b, vdims, n, false,
                                                               pv, g, conf, true, 2, false, false);
            std::vector<RefDet> ref;
            for (index_t t = 0; t < b; ++t) {
                const fissure::TileTransform tr = fissure::tile_transform(g, t);
                for (index_t i = 0; i < n; ++i) {
                    const float* r = out.data() + (t * n + i) * vdims;
                    const float obj = v5 ? r[4] : 1.f;
                    float s = v5 ? obj * r[head] : r[head];
                    index_t a = 0;
                    for (index_t j = 1; j < c; ++j) {
                        const float v = v5 ? obj * r[head + j] : r[head + j];
                        if (v > s) { s = v; a = j; }
                    }
                    if (!(s >= conf)) continue;
                    const float x1 = r[0] - r[2] * 0.5f, y1 = r[1] - r[3] * 0.5f;
                    const float x2 = r[0] + r[2] * 0.5f, y2 = r[1] + r[3] * 0.5f;
                    // full logit plane, cropped at proto resolution
                    std::vector<float> plane(static_cast<std::size_t>(mh * mw), 0.f);
                    const float rxp = static_cast<float>(static_cast<double>(mw) / iw);
                    const float ryp = static_cast<float>(static_cast<double>(mh) / ih);
                    for (index_t y = 0; y < mh; ++y)
                        for (index_t x = 0; x < mw; ++x) {
                            float acc = 0.f;
                            for (index_t k = 0; k < m; ++k)
                                acc += r[head + c + k] *
                                       protos[((t * m + k) * mh + y) * mw + x];
                            const bool keep = static_cast<float>(x) >= x1 * rxp &&
                                              static_cast<float>(x) < x2 * rxp &&
                                              static_cast<float>(y) >= y1 * ryp &&
                                              static_cast<float>(y) < y2 * ryp;
                            plane[y * mw + x] = keep ? acc : 0.f;
                        }
                    const std::vector<float> up = upsample(plane, mh, mw, ih, iw);
                    RefDet rd{};
                    rd.score = s;
                    rd.cls = a;
                    rd.tile = t;
                    if (place(tr, x1, y1, x2, y2, &up, ih, iw, rd)) ref.push_back(std::move(rd));
                }
            }
            CHECK(ref.size() > 10);
            compare(d, ref, true);
            // channels-first (v8 only) gives the same
            if (!v5) {
                std::vector<float> cf(out.size());
                for (index_t t = 0; t < b; ++t)
                    for (index_t i = 0; i < n; ++i)
                        for (index_t j = 0; j < vdims; ++j)
                            cf[(t * vdims + j) * n + i] = out[(t * n + i) * vdims + j];
                compare(fissure::decode_yolo_seg(cf.data(), b, vdims, n, true, pv, g, conf, true,
                                                 1, false, false),
                        ref, true);
            }
        }
    }
}

TEST(detr_matches_naive) {
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::normal_distribution<float> nd(-1.f, 2.f);
    const index_t b = 2, q = 40, c = 5, mh = 10, mw = 14;
    const int ih = 40, iw = 56;
    std::vector<float> boxes(static_cast<std::size_t>(b * q * 4)), logits(b * q * c),
        masks(static_cast<std::size_t>(b * q * mh * mw));
    for (std::size_t i = 0; i < boxes.size(); i += 4) {
        boxes[i] = u(rng);
        boxes[i + 1] = u(rng);
        boxes[i + 2] = 0.02f + 0.4f * u(rng);
        boxes[i + 3] = 0.02f + 0.4f * u(rng);
    }
    for (auto& v : logits) v = nd(rng);
    for (auto& v : masks) v = nd(rng) + 1.f;
    const std::vector<std::int64_t> tiles{0, 0, 112, 80, 50, 60, 100, 160};
    fissure::DecodeGeometry g{tiles.data(), b, ih, iw, fissure::ResizeMode::resize};
    for (const auto score : {fissure::DetrScore::sigmoid, fissure::DetrScore::softmax})
        for (const index_t top_k : {index_t{0}, index_t{25}}) {
            const index_t cc = score == fissure::DetrScore::softmax ? c - 1 : c;
            fissure::DetrParams p;
            p.score = score;
            p.top_k = top_k;
            const float conf = 0.2f;
            const fissure::Decoded d = fissure::decode_detr(boxes.data(), logits.data(), b, q, c,
                                                            masks.data(), mh, mw, g, conf, p, 2);
            std::vector<RefDet> ref;
            for (index_t t = 0; t < b; ++t) {
                const fissure::TileTransform tr = fissure::tile_transform(g, t);
                std::vector<float> pr(static_cast<std::size_t>(q * cc));
                for (index_t i = 0; i < q; ++i) {
                    const float* l = logits.data() + (t * q + i) * c;
                    double mx = l[0], sum = 0.0;
                    for (index_t k = 0; k < c; ++k) mx = std::max(mx, static_cast<double>(l[k]));
                    for (index_t k = 0; k < c; ++k) sum += std::exp(l[k] - mx);
                    for (index_t k = 0; k < cc; ++k)
                        pr[i * cc + k] = score == fissure::DetrScore::sigmoid
                                             ? static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(l[k]))))
                                             : static_cast<float>(std::exp(l[k] - mx) / sum);
                }
                std::vector<std::pair<index_t, index_t>> pairs;  // (query, class)
                if (top_k == 0) {
                    for (index_t i = 0; i < q; ++i) {
                        index_t a = 0;
                        for (index_t k = 1; k < cc; ++k)
                            if (pr[i * cc + k] > pr[i * cc + a]) a = k;
                        pairs.push_back({i, a});
                    }
                } else {
                    std::vector<index_t> idx(pr.size());
                    std::iota(idx.begin(), idx.end(), index_t{0});
                    std::stable_sort(idx.begin(), idx.end(),
                                     [&](index_t x, index_t y) { return pr[x] > pr[y]; });
                    for (index_t j = 0; j < top_k; ++j) pairs.push_back({idx[j] / cc, idx[j] % cc});
                }
                for (const auto& [i, a] : pairs) {
                    const float s = pr[i * cc + a];
                    if (!(s >= conf)) continue;
                    const float* bx = boxes.data() + (t * q + i) * 4;
                    const std::vector<float> plane(masks.begin() + (t * q + i) * mh * mw,
                                                   masks.begin() + (t * q + i + 1) * mh * mw);
                    const std::vector<float> up = upsample(plane, mh, mw, ih, iw);
                    RefDet rd{};
                    rd.score = s;
                    rd.cls = a;
                    rd.tile = t;
                    if (place(tr, static_cast<double>(bx[0] - 0.5f * bx[2]) * iw,
                              static_cast<double>(bx[1] - 0.5f * bx[3]) * ih,
                              static_cast<double>(bx[0] + 0.5f * bx[2]) * iw,
                              static_cast<double>(bx[1] + 0.5f * bx[3]) * ih, &up, ih, iw, rd))
                        ref.push_back(std::move(rd));
                }
            }
            CHECK(ref.size() > 5);
            compare(d, ref, true);
        }
}

TEST(seg_errors) {
    std::vector<float> out(static_cast<std::size_t>(1 * 10 * 8), 0.f);
    std::vector<float> protos(static_cast<std::size_t>(1 * 6 * 4 * 4), 0.f);
    const std::vector<std::int64_t> tiles{0, 0, 16, 16};
    fissure::DecodeGeometry g{tiles.data(), 1, 16, 16, fissure::ResizeMode::none};
    // 10 values = 4 + C + 6 leaves C = 0
    CHECK_THROWS(fissure::decode_yolo_seg(out.data(), 1, 10, 8, true,
                                          fissure::ProtoView{protos.data(), 6, 4, 4}, g, 0.1f,
                                          true));
    CHECK_THROWS(fissure::decode_yolov5_seg(out.data(), 1, 8, 10,
                                            fissure::ProtoView{protos.data(), 5, 4, 4}, g, 0.1f,
                                            true));
    protos[3] = std::nanf("");
    CHECK_THROWS(fissure::decode_yolo_seg(out.data(), 1, 10, 8, true,
                                          fissure::ProtoView{protos.data(), 5, 4, 4}, g, 0.1f,
                                          true));
    std::vector<float> bx(8, 0.5f), lg(4, 0.f);
    fissure::DetrParams p;
    p.score = fissure::DetrScore::softmax;
    // softmax needs a no-object class: C = 1 is refused
    CHECK_THROWS(fissure::decode_detr(bx.data(), lg.data(), 1, 2, 1, nullptr, 0, 0, g, 0.1f, p));
    lg[1] = INFINITY;
    CHECK_THROWS(fissure::decode_detr(bx.data(), lg.data(), 1, 2, 2, nullptr, 0, 0, g, 0.1f, p));
    p.score = fissure::DetrScore::sigmoid;
    const fissure::Decoded d = fissure::decode_detr(bx.data(), lg.data(), 1, 2, 2, nullptr, 0, 0,
                                                    g, 0.9f, p);
    CHECK(d.size() == 1 && d.class_ids[0] == 1 && d.scores[0] == 1.f);
    p.top_k = -1;
    CHECK_THROWS(fissure::decode_detr(bx.data(), lg.data(), 1, 2, 2, nullptr, 0, 0, g, 0.1f, p));
}

CHECK_MAIN()
