// SPDX-License-Identifier: Apache-2.0
#include "fissure/embed.hpp"

#include <algorithm>
#include <string>

#include "fissure/parallel.hpp"

namespace fissure {
namespace {

// torch's area_pixel_compute_source_index for align_corners=False with an explicit size:
// scale = in / out (float), src = scale * (dst + 0.5) - 0.5, clamped at 0.
struct Tap {
    index_t i0, i1;
    float l0, l1;
};

std::vector<Tap> taps(index_t in, index_t out) {
    std::vector<Tap> t(static_cast<std::size_t>(out));
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    for (index_t d = 0; d < out; ++d) {
        float src = scale * (static_cast<float>(d) + 0.5f) - 0.5f;
        if (src < 0.f) src = 0.f;
        index_t i0 = static_cast<index_t>(src);
        if (i0 > in - 1) i0 = in - 1;
        const index_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
        const float l1 = src - static_cast<float>(i0);
        t[static_cast<std::size_t>(d)] = {i0, i1, 1.f - l1, l1};
    }
    return t;
}

// 3x3 (pool x pool) box sum with zero padding, divided by pool * pool.
void avg_pool(const float* src, index_t h, index_t w, int pool, float* dst, float* tmp) {
    const index_t r = pool / 2;
    const float inv = 1.0f / static_cast<float>(pool * pool);
    for (index_t y = 0; y < h; ++y) {
        const float* s = src + y * w;
        float* t = tmp + y * w;
        for (index_t x = 0; x < w; ++x) {
            float acc = 0.f;
            const index_t lo = std::max<index_t>(0, x - r), hi = std::min<index_t>(w - 1, x + r);
            for (index_t k = lo; k <= hi; ++k) acc += s[k];
            t[x] = acc;
        }
    }
    for (index_t y = 0; y < h; ++y) {
        const index_t lo = std::max<index_t>(0, y - r), hi = std::min<index_t>(h - 1, y + r);
        float* d = dst + y * w;
        for (index_t x = 0; x < w; ++x) d[x] = 0.f;
        for (index_t k = lo; k <= hi; ++k) {
            const float* t = tmp + k * w;
            for (index_t x = 0; x < w; ++x) d[x] += t[x];
        }
        for (index_t x = 0; x < w; ++x) d[x] *= inv;
    }
}

}  // namespace

void embed_patches(const std::vector<FeatureMapView>& layers, index_t out_h, index_t out_w,
                   int pool, float* out, int num_threads) {
    if (layers.empty()) throw InvalidArgument("features: expected at least one feature map");
    if (out_h < 1 || out_w < 1) throw InvalidArgument("embed: expected a positive output grid");
    if (pool < 1 || pool % 2 == 0)
        throw InvalidArgument("pool: expected an odd window >= 1, got " + std::to_string(pool));
    const index_t B = layers[0].batch;
    index_t D = 0;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const FeatureMapView& L = layers[i];
        if (L.batch != B)
            throw InvalidArgument("features: every map must have the same batch (" +
                                  std::to_string(B) + "), map " + std::to_string(i) + " has " +
                                  std::to_string(L.batch));
        if (L.batch < 1 || L.channels < 1 || L.height < 1 || L.width < 1 || L.data == nullptr)
            throw InvalidArgument("features: map " + std::to_string(i) + " is empty");
        D += L.channels;
    }
    // Work items: (b, layer, channel) planes, each writing its own column of the output.
    struct Item {
        index_t b;
        std::size_t layer;
        index_t c;
        index_t col;
    };
    std::vector<Item> items;
    std::vector<std::vector<Tap>> ty(layers.size()), tx(layers.size());
    index_t col0 = 0;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        ty[i] = taps(layers[i].height, out_h);
        tx[i] = taps(layers[i].width, out_w);
        for (index_t b = 0; b < B; ++b)
            for (index_t c = 0; c < layers[i].channels; ++c) items.push_back({b, i, c, col0 + c});
        col0 += layers[i].channels;
    }
    parallel_for(0, static_cast<index_t>(items.size()), num_threads, 8, [&](index_t lo, index_t hi) {
        std::vector<float> pooled, tmp;
        for (index_t k = lo; k < hi; ++k) {
            const Item& it = items[static_cast<std::size_t>(k)];
            const FeatureMapView& L = layers[it.layer];
            const index_t h = L.height, w = L.width;
            const float* src = L.data + ((it.b * L.channels + it.c) * h) * w;
            const float* plane = src;
            if (pool > 1) {
                pooled.resize(static_cast<std::size_t>(h * w));
                tmp.resize(static_cast<std::size_t>(h * w));
                avg_pool(src, h, w, pool, pooled.data(), tmp.data());
                plane = pooled.data();
            }
            float* dst = out + (it.b * out_h * out_w) * D + it.col;
            if (h == out_h && w == out_w) {
                for (index_t p = 0; p < h * w; ++p) dst[p * D] = plane[p];
                continue;
            }
            const auto& TY = ty[it.layer];
            const auto& TX = tx[it.layer];
            for (index_t y = 0; y < out_h; ++y) {
                const Tap& a = TY[static_cast<std::size_t>(y)];
                const float* r0 = plane + a.i0 * w;
                const float* r1 = plane + a.i1 * w;
                float* drow = dst + (y * out_w) * D;
                for (index_t x = 0; x < out_w; ++x) {
                    const Tap& t = TX[static_cast<std::size_t>(x)];
                    // torch's order: h0lambda * (w0lambda * p00 + w1lambda * p01) +
                    //                h1lambda * (w0lambda * p10 + w1lambda * p11)
                    const float v = a.l0 * (t.l0 * r0[t.i0] + t.l1 * r0[t.i1]) +
                                    a.l1 * (t.l0 * r1[t.i0] + t.l1 * r1[t.i1]);
                    drow[x * D] = v;
                }
            }
        }
    });
}

}  // namespace fissure
