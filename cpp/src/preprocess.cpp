// SPDX-License-Identifier: Apache-2.0
// Tile preprocessing: OpenCV-compatible uint8 resampling of crops read in place, then a
// per-channel lookup table that normalises and writes NCHW planes. See preprocess.hpp.
#include "fissure/preprocess.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "fissure/parallel.hpp"
#include "half.hpp"

namespace fissure {

namespace {

constexpr int kCoefScale = 1 << 11;  // OpenCV's INTER_RESIZE_COEF_SCALE
constexpr index_t kBandRows = 32;    // output rows per task

std::string tile_str(const std::int64_t* t) {
    return "[" + std::to_string(t[0]) + ", " + std::to_string(t[1]) + ", " +
           std::to_string(t[2]) + ", " + std::to_string(t[3]) + "]";
}

std::int16_t coef(float w) {
    // OpenCV: saturate_cast<short>(w * INTER_RESIZE_COEF_SCALE), round half to even.
    return static_cast<std::int16_t>(std::nearbyint(w * static_cast<float>(kCoefScale)));
}

// How a (sh, sw) crop is resampled to (dh, dw): per output column the two source byte offsets
// and weights, per output row the two source rows and weights.
struct Plan {
    index_t sh = 0, sw = 0;
    int dh = 0, dw = 0;
    Interp interp = Interp::linear;
    bool identity = false;
    std::vector<int> x0, x1;           // byte offsets (pixel * 3) into a source row
    std::vector<std::int16_t> a0, a1;  // column weights (linear)
    std::vector<int> y0, y1;           // source rows (clamped)
    std::vector<std::int16_t> b0, b1;  // row weights (linear)

    Plan(index_t sh_, index_t sw_, int dh_, int dw_, Interp interp_)
        : sh(sh_), sw(sw_), dh(dh_), dw(dw_), interp(interp_) {
        identity = sh == dh && sw == dw;
        if (identity) return;
        x0.resize(dw); x1.resize(dw); y0.resize(dh); y1.resize(dh);
        // As cv::resize: inv_scale = dsize / ssize, scale = 1 / inv_scale, both in double.
        const double scale_x = 1.0 / (static_cast<double>(dw) / static_cast<double>(sw));
        const double scale_y = 1.0 / (static_cast<double>(dh) / static_cast<double>(sh));
        if (interp == Interp::nearest) {
            for (int dx = 0; dx < dw; ++dx) {
                const index_t sx = std::min<index_t>(
                    static_cast<index_t>(std::floor(dx * scale_x)), sw - 1);
                x0[dx] = x1[dx] = static_cast<int>(sx * 3);
            }
            for (int dy = 0; dy < dh; ++dy)
                y0[dy] = y1[dy] = static_cast<int>(std::min<index_t>(
                    static_cast<index_t>(std::floor(dy * scale_y)), sh - 1));
            return;
        }
        a0.resize(dw); a1.resize(dw); b0.resize(dh); b1.resize(dh);
        for (int dx = 0; dx < dw; ++dx) {
            float fx = static_cast<float>((dx + 0.5) * scale_x - 0.5);
            index_t sx = static_cast<index_t>(std::floor(fx));
            fx -= static_cast<float>(sx);
            if (sx < 0) { fx = 0.f; sx = 0; }
            if (sx >= sw - 1) { fx = 0.f; sx = sw - 1; }
            x0[dx] = static_cast<int>(sx * 3);
            x1[dx] = static_cast<int>(std::min<index_t>(sx + 1, sw - 1) * 3);
            a0[dx] = coef(1.f - fx);
            a1[dx] = coef(fx);
        }
        for (int dy = 0; dy < dh; ++dy) {
            float fy = static_cast<float>((dy + 0.5) * scale_y - 0.5);
            const index_t sy = static_cast<index_t>(std::floor(fy));
            fy -= static_cast<float>(sy);
            y0[dy] = static_cast<int>(std::clamp<index_t>(sy, 0, sh - 1));
            y1[dy] = static_cast<int>(std::clamp<index_t>(sy + 1, 0, sh - 1));
            b0[dy] = coef(1.f - fy);
            b1[dy] = coef(fy);
        }
    }
};

// Produces the resized rows of one crop, caching the two last horizontally filtered rows.
class RowSource {
public:
    RowSource(const Plan& plan, const std::uint8_t* crop, index_t stride)
        : plan_(plan), crop_(crop), stride_(stride) {
        if (!plan.identity) row8_.resize(static_cast<std::size_t>(plan.dw) * 3);
        if (!plan.identity && plan.interp == Interp::linear)
            for (auto& h : hbuf_) h.resize(static_cast<std::size_t>(plan.dw) * 3);
    }

    /// Interleaved (dw * 3) uint8 pixels of output row dy of the resized crop.
    const std::uint8_t* row(int dy) {
        const Plan& p = plan_;
        if (p.identity) return src_row(dy);
        const int n = p.dw;
        std::uint8_t* out = row8_.data();
        if (p.interp == Interp::nearest) {
            const std::uint8_t* s = src_row(p.y0[dy]);
            for (int dx = 0; dx < n; ++dx) {
                const std::uint8_t* q = s + p.x0[dx];
                out[3 * dx] = q[0];
                out[3 * dx + 1] = q[1];
                out[3 * dx + 2] = q[2];
            }
            return out;
        }
        const int* s0 = hrow(p.y0[dy], p.y1[dy]);
        const int* s1 = hrow(p.y1[dy], p.y0[dy]);
        const int w0 = p.b0[dy], w1 = p.b1[dy];
        for (int k = 0; k < 3 * n; ++k) {
            // OpenCV's vectorised VResizeLinear for 8u: 16-bit high products, then >> 2.
            int v = (((s0[k] >> 4) * w0) >> 16) + (((s1[k] >> 4) * w1) >> 16);
            v = (v + 2) >> 2;
            out[k] = static_cast<std::uint8_t>(std::min(std::max(v, 0), 255));
        }
        return out;
    }

private:
    const std::uint8_t* src_row(index_t y) const { return crop_ + y * stride_; }

    // Horizontally filtered source row `sy` (x * 2048 fixed point), keeping row `keep` cached.
    const int* hrow(int sy, int keep) {
        for (int i = 0; i < 2; ++i)
            if (key_[i] == sy) return hbuf_[i].data();
        const int slot = key_[0] == keep ? 1 : 0;
        key_[slot] = sy;
        int* d = hbuf_[slot].data();
        const std::uint8_t* s = src_row(sy);
        const Plan& p = plan_;
        for (int dx = 0; dx < p.dw; ++dx) {
            const std::uint8_t* q0 = s + p.x0[dx];
            const std::uint8_t* q1 = s + p.x1[dx];
            const int a = p.a0[dx], b = p.a1[dx];
            d[3 * dx] = q0[0] * a + q1[0] * b;
            d[3 * dx + 1] = q0[1] * a + q1[1] * b;
            d[3 * dx + 2] = q0[2] * a + q1[2] * b;
        }
        return d;
    }

    const Plan& plan_;
    const std::uint8_t* crop_;
    index_t stride_;
    std::vector<std::uint8_t> row8_;
    std::array<std::vector<int>, 2> hbuf_;
    int key_[2] = {-1, -1};
};

// Where tile t's resized pixels go inside the model input.
struct Placement {
    int dh, dw, top, left;
};

Placement placement(const PreprocessParams& p, index_t th, index_t tw) {
    if (p.mode == ResizeMode::letterbox) {
        const Letterbox lb = letterbox_params(th, tw, p.out_h, p.out_w);
        return {lb.new_h, lb.new_w, lb.pad_y, lb.pad_x};
    }
    return {p.out_h, p.out_w, 0, 0};
}

template <class T>
struct Lut {
    T v[3][256];
};

template <class T>
void build_lut(const PreprocessParams& p, Lut<T>& lut) {
    for (int c = 0; c < 3; ++c)
        for (int v = 0; v < 256; ++v) {
            // numpy float32 order: (x * scale - mean) / std.
            const float x = (static_cast<float>(v) * p.scale - p.mean[c]) / p.std[c];
            if constexpr (std::is_same_v<T, float>) lut.v[c][v] = x;
            else lut.v[c][v] = float_to_half(x);
        }
}

template <class T>
void run(const Image8View& img, const TilesView& tiles, const PreprocessParams& p, T* out,
         int num_threads) {
    Lut<T> lut;
    build_lut(p, lut);
    const int src_of[3] = {p.swap_rb ? 2 : 0, 1, p.swap_rb ? 0 : 2};

    // One plan per distinct tile size.
    std::vector<Plan> plans;
    std::vector<int> plan_of(static_cast<std::size_t>(tiles.n));
    std::vector<Placement> place_of(static_cast<std::size_t>(tiles.n));
    for (index_t t = 0; t < tiles.n; ++t) {
        const std::int64_t* b = tiles.data + 4 * t;
        const index_t th = b[3] - b[1], tw = b[2] - b[0];
        const Placement pl = placement(p, th, tw);
        place_of[t] = pl;
        int found = -1;
        for (std::size_t i = 0; i < plans.size(); ++i)
            if (plans[i].sh == th && plans[i].sw == tw && plans[i].dh == pl.dh &&
                plans[i].dw == pl.dw) {
                found = static_cast<int>(i);
                break;
            }
        if (found < 0) {
            plans.emplace_back(th, tw, pl.dh, pl.dw, p.interp);
            found = static_cast<int>(plans.size()) - 1;
        }
        plan_of[t] = found;
    }

    const index_t H = p.out_h, W = p.out_w, plane = H * W;
    const index_t bands = (H + kBandRows - 1) / kBandRows;
    parallel_for(0, tiles.n * bands, num_threads, 1, [&](index_t lo, index_t hi) {
        for (index_t item = lo; item < hi; ++item) {
            const index_t t = item / bands;
            const index_t r0 = (item % bands) * kBandRows, r1 = std::min(H, r0 + kBandRows);
            const std::int64_t* b = tiles.data + 4 * t;
            const Plan& plan = plans[static_cast<std::size_t>(plan_of[t])];
            const Placement pl = place_of[t];
            RowSource rows(plan, img.data + b[1] * img.row_stride + b[0] * 3, img.row_stride);
            T* base = out + t * 3 * plane;
            for (index_t y = r0; y < r1; ++y) {
                T* dst[3] = {base + y * W, base + plane + y * W, base + 2 * plane + y * W};
                const index_t dy = y - pl.top;
                if (dy < 0 || dy >= pl.dh) {
                    for (int c = 0; c < 3; ++c) std::fill(dst[c], dst[c] + W, lut.v[c][p.pad_value]);
                    continue;
                }
                for (int c = 0; c < 3; ++c) {
                    std::fill(dst[c], dst[c] + pl.left, lut.v[c][p.pad_value]);
                    std::fill(dst[c] + pl.left + pl.dw, dst[c] + W, lut.v[c][p.pad_value]);
                }
                const std::uint8_t* s = rows.row(static_cast<int>(dy));
                T* o0 = dst[0] + pl.left;
                T* o1 = dst[1] + pl.left;
                T* o2 = dst[2] + pl.left;
                const T* l0 = lut.v[0];
                const T* l1 = lut.v[1];
                const T* l2 = lut.v[2];
                const int c0 = src_of[0], c2 = src_of[2];
                for (int x = 0; x < pl.dw; ++x) {
                    const std::uint8_t* q = s + 3 * x;
                    o0[x] = l0[q[c0]];
                    o1[x] = l1[q[1]];
                    o2[x] = l2[q[c2]];
                }
            }
        }
    });
}

}  // namespace

Letterbox letterbox_params(index_t tile_h, index_t tile_w, int out_h, int out_w) {
    if (tile_h <= 0 || tile_w <= 0)
        fail("letterbox: expected a non-empty tile, got " + std::to_string(tile_h) + " x " +
             std::to_string(tile_w));
    if (out_h <= 0 || out_w <= 0)
        fail("letterbox: expected a positive input size, got " + std::to_string(out_h) + " x " +
             std::to_string(out_w));
    Letterbox lb;
    lb.r = std::min(static_cast<double>(out_h) / static_cast<double>(tile_h),
                    static_cast<double>(out_w) / static_cast<double>(tile_w));
    lb.new_w = static_cast<int>(std::nearbyint(static_cast<double>(tile_w) * lb.r));
    lb.new_h = static_cast<int>(std::nearbyint(static_cast<double>(tile_h) * lb.r));
    if (lb.new_w <= 0 || lb.new_h <= 0)
        fail("letterbox: a " + std::to_string(tile_h) + " x " + std::to_string(tile_w) +
             " tile scaled by " + std::to_string(lb.r) + " is empty");
    const double dw = (out_w - lb.new_w) / 2.0, dh = (out_h - lb.new_h) / 2.0;
    lb.pad_x = static_cast<int>(std::nearbyint(dw - 0.1));
    lb.pad_y = static_cast<int>(std::nearbyint(dh - 0.1));
    return lb;
}

void check_preprocess(const Image8View& img, const TilesView& tiles, const PreprocessParams& p) {
    if (img.channels != 3) fail("image: expected 3 channels, got " + std::to_string(img.channels));
    if (img.rows <= 0 || img.cols <= 0) fail("image: expected a non-empty image");
    if (p.out_h <= 0 || p.out_w <= 0 || p.out_h > 65535 || p.out_w > 65535)
        fail("input_size: expected (h, w) in 1..65535, got (" + std::to_string(p.out_h) + ", " +
             std::to_string(p.out_w) + ")");
    if (p.pad_value < 0 || p.pad_value > 255)
        fail("pad_value: expected 0..255, got " + std::to_string(p.pad_value));
    if (!std::isfinite(p.scale)) fail("scale: expected a finite number");
    for (int c = 0; c < 3; ++c) {
        if (!std::isfinite(p.mean[c])) fail("mean: expected finite values");
        if (!std::isfinite(p.std[c]) || p.std[c] == 0.f)
            fail("std: expected finite nonzero values, got " + std::to_string(p.std[c]) +
                 " for channel " + std::to_string(c));
    }
    for (index_t t = 0; t < tiles.n; ++t) {
        const std::int64_t* b = tiles.data + 4 * t;
        if (b[0] < 0 || b[1] < 0 || b[2] > img.cols || b[3] > img.rows)
            fail("tiles: tile " + std::to_string(t) + " " + tile_str(b) +
                 " is outside the image (expected 0 <= x1 < x2 <= " + std::to_string(img.cols) +
                 ", 0 <= y1 < y2 <= " + std::to_string(img.rows) + ")");
        if (b[2] <= b[0] || b[3] <= b[1])
            fail("tiles: tile " + std::to_string(t) + " " + tile_str(b) +
                 " is empty (expected x1 < x2 and y1 < y2)");
        const index_t th = b[3] - b[1], tw = b[2] - b[0];
        if (p.mode == ResizeMode::none && (th != p.out_h || tw != p.out_w))
            fail("tiles: mode 'none' expects every tile to be " + std::to_string(p.out_h) + " x " +
                 std::to_string(p.out_w) + " (h x w), tile " + std::to_string(t) + " " +
                 tile_str(b) + " is " + std::to_string(th) + " x " + std::to_string(tw));
        if (p.mode == ResizeMode::letterbox) (void)letterbox_params(th, tw, p.out_h, p.out_w);
        if (th > (1 << 30) || tw > (1 << 29)) fail("tiles: tile too large");
    }
}

void preprocess_tiles(const Image8View& img, const TilesView& tiles, const PreprocessParams& p,
                      void* out, int num_threads) {
    check_preprocess(img, tiles, p);
    if (tiles.n == 0) return;
    if (p.dtype == OutDtype::float32)
        run(img, tiles, p, static_cast<float*>(out), num_threads);
    else
        run(img, tiles, p, static_cast<std::uint16_t*>(out), num_threads);
}

void resize_u8(const Image8View& src, int out_h, int out_w, Interp interp, std::uint8_t* dst,
               int num_threads) {
    if (src.channels != 3) fail("image: expected 3 channels, got " + std::to_string(src.channels));
    if (src.rows <= 0 || src.cols <= 0) fail("image: expected a non-empty image");
    if (out_h <= 0 || out_w <= 0) fail("resize: expected a positive output size");
    const Plan plan(src.rows, src.cols, out_h, out_w, interp);
    const index_t bands = (out_h + kBandRows - 1) / kBandRows;
    const std::size_t row_bytes = static_cast<std::size_t>(out_w) * 3;
    parallel_for(0, bands, num_threads, 1, [&](index_t lo, index_t hi) {
        for (index_t band = lo; band < hi; ++band) {
            RowSource rows(plan, src.data, src.row_stride);
            for (index_t y = band * kBandRows; y < std::min<index_t>(out_h, (band + 1) * kBandRows);
                 ++y)
                std::memcpy(dst + y * static_cast<index_t>(row_bytes),
                            rows.row(static_cast<int>(y)), row_bytes);
        }
    });
}

}  // namespace fissure
