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

#include "fissure/dispatch.hpp"
#include "fissure/parallel.hpp"
#include "half.hpp"
#include "preprocess_kernels.hpp"

namespace fissure {

namespace preprocess_detail {
namespace {

// ------------------------------------------------------------------------------------------
// Scalar kernels (see preprocess_kernels.hpp)
// ------------------------------------------------------------------------------------------

void hlinear_scalar(const std::uint8_t* s, const int* xo, const std::int16_t* aw, int n,
                    std::int16_t* out) {
    for (int dx = 0; dx < n; ++dx) hlinear_px(s, xo[dx], xo[dx] + 3, aw + 6 * dx, out + 3 * dx);
}

void vlinear_scalar(const std::int16_t* s0, const std::int16_t* s1, std::int16_t b0,
                    std::int16_t b1, int n, std::uint8_t* d) {
    for (int k = 0; k < n; ++k) d[k] = vlinear_px(s0[k], s1[k], b0, b1);
}

}  // namespace

const Kernels& scalar_kernels() {
    static const Kernels k{hlinear_scalar, vlinear_scalar, norm_row<float>,
                           norm_row<std::uint16_t>};
    return k;
}

}  // namespace preprocess_detail

using preprocess_detail::Kernels;
using preprocess_detail::Norm;

namespace {

const Kernels& kernels() {
    const Kernels* k = nullptr;
    if (effective_level(Family::preprocess) >= SimdLevel::avx2)
        k = preprocess_detail::avx2_kernels();
    return k ? *k : preprocess_detail::scalar_kernels();
}

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

// OpenCV's source position of output index i along one axis for the two-tap kernel, as
// (index, fraction): INTER_LINEAR's centre mapping, or INTER_AREA's when it does not shrink
// (area_mode in cv::resize).
void tap(int i, double scale, double inv_scale, bool area_mode, index_t& si, float& f) {
    if (!area_mode) {
        f = static_cast<float>((i + 0.5) * scale - 0.5);
        si = static_cast<index_t>(std::floor(f));
        f -= static_cast<float>(si);
    } else {
        si = static_cast<index_t>(std::floor(i * scale));
        f = static_cast<float>((i + 1) - static_cast<double>(si + 1) * inv_scale);
        f = f <= 0.f ? 0.f : f - static_cast<float>(static_cast<index_t>(std::floor(f)));
    }
}

// OpenCV's computeResizeAreaTab: the (source index, weight) list of each output index, in
// order, for INTER_AREA shrinking by `scale` (> 1 or == 1).
void area_tab(index_t ssize, int dsize, double scale, std::vector<std::vector<std::pair<int, float>>>& tab) {
    tab.assign(static_cast<std::size_t>(dsize), {});
    for (int dx = 0; dx < dsize; ++dx) {
        auto& t = tab[static_cast<std::size_t>(dx)];
        const double fsx1 = dx * scale;
        const double fsx2 = fsx1 + scale;
        const double cell = std::min(scale, static_cast<double>(ssize) - fsx1);
        index_t sx1 = static_cast<index_t>(std::ceil(fsx1));
        index_t sx2 = static_cast<index_t>(std::floor(fsx2));
        sx2 = std::min<index_t>(sx2, ssize - 1);
        sx1 = std::min(sx1, sx2);
        if (static_cast<double>(sx1) - fsx1 > 1e-3)
            t.emplace_back(static_cast<int>(sx1 - 1),
                           static_cast<float>((static_cast<double>(sx1) - fsx1) / cell));
        for (index_t sx = sx1; sx < sx2; ++sx)
            t.emplace_back(static_cast<int>(sx), static_cast<float>(1.0 / cell));
        if (fsx2 - static_cast<double>(sx2) > 1e-3)
            t.emplace_back(static_cast<int>(sx2),
                           static_cast<float>(std::min(std::min(fsx2 - static_cast<double>(sx2), 1.0), cell) / cell));
    }
}

// cvRound (ties to even, the default rounding mode) of 0 <= x < 2^22 without a libm call:
// adding 1.5 * 2^23 leaves no fraction bits, so the sum is rounded to an integer.
inline int round_small(float x) {
    constexpr float kMagic = 12582912.f;
    return static_cast<int>((x + kMagic) - kMagic);
}

enum class Kind { identity, linear, nearest, area_fast, area };

// How a (sh, sw) crop is resampled to (dh, dw), with cv::resize's choice of algorithm:
//  * linear: the two-tap fixed-point kernel (INTER_LINEAR; INTER_AREA when it enlarges an axis);
//  * nearest: INTER_NEAREST;
//  * area_fast: INTER_AREA by integer factors (block means);
//  * area: INTER_AREA by other factors (OpenCV's float weight tables).
struct Plan {
    index_t sh = 0, sw = 0;
    int dh = 0, dw = 0;
    Kind kind = Kind::linear;
    // linear: byte offsets of the two source pixels, weights (a0, a1) x 3 per output pixel,
    // the SIMD-safe prefix; rows and row weights. nearest: x0 and y0 only.
    std::vector<int> x0, x1;
    std::vector<std::int16_t> aw;
    int n_simd = 0;
    std::vector<int> y0, y1;
    std::vector<std::int16_t> b0, b1;
    // area_fast: the factors.
    int kx = 1, ky = 1;
    // area: K taps per output pixel (byte offsets, weights; zero-weight padding), and per
    // output row the (source row, weight) taps yt[yo[dy] .. yo[dy + 1]).
    int K = 0;
    std::vector<int> xs;
    std::vector<float> xa;
    std::vector<int> yo, ys;
    std::vector<float> yb;

    Plan(index_t sh_, index_t sw_, int dh_, int dw_, Interp interp)
        : sh(sh_), sw(sw_), dh(dh_), dw(dw_) {
        if (sh == dh && sw == dw) {
            kind = Kind::identity;
            return;
        }
        // As cv::resize: inv_scale = dsize / ssize, scale = 1 / inv_scale, both in double.
        const double inv_x = static_cast<double>(dw) / static_cast<double>(sw);
        const double inv_y = static_cast<double>(dh) / static_cast<double>(sh);
        const double scale_x = 1.0 / inv_x, scale_y = 1.0 / inv_y;
        if (interp == Interp::nearest) {
            kind = Kind::nearest;
            x0.resize(static_cast<std::size_t>(dw));
            y0.resize(static_cast<std::size_t>(dh));
            for (int dx = 0; dx < dw; ++dx)
                x0[dx] = static_cast<int>(std::min<index_t>(
                    static_cast<index_t>(std::floor(dx * scale_x)), sw - 1) * 3);
            for (int dy = 0; dy < dh; ++dy)
                y0[dy] = static_cast<int>(std::min<index_t>(
                    static_cast<index_t>(std::floor(dy * scale_y)), sh - 1));
            return;
        }
        if (interp == Interp::area && scale_x >= 1.0 && scale_y >= 1.0) {
            const double ix = std::nearbyint(scale_x), iy = std::nearbyint(scale_y);
            constexpr double eps = 2.220446049250313e-16;  // DBL_EPSILON
            if (std::abs(scale_x - ix) < eps && std::abs(scale_y - iy) < eps) {
                kind = Kind::area_fast;
                kx = static_cast<int>(ix);
                ky = static_cast<int>(iy);
                return;
            }
            kind = Kind::area;
            std::vector<std::vector<std::pair<int, float>>> xt, yt;
            area_tab(sw, dw, scale_x, xt);
            area_tab(sh, dh, scale_y, yt);
            for (const auto& t : xt) K = std::max(K, static_cast<int>(t.size()));
            xs.assign(static_cast<std::size_t>(dw) * K, 0);
            xa.assign(static_cast<std::size_t>(dw) * K, 0.f);
            for (int dx = 0; dx < dw; ++dx) {
                const auto& t = xt[static_cast<std::size_t>(dx)];
                for (int j = 0; j < K; ++j) {
                    const std::size_t k = static_cast<std::size_t>(dx) * K + j;
                    if (j < static_cast<int>(t.size())) {
                        xs[k] = t[static_cast<std::size_t>(j)].first * 3;
                        xa[k] = t[static_cast<std::size_t>(j)].second;
                    } else {  // + S * 0 leaves the float sum unchanged
                        xs[k] = t.empty() ? 0 : t.back().first * 3;
                    }
                }
            }
            yo.push_back(0);
            for (const auto& t : yt) {
                for (const auto& e : t) {
                    ys.push_back(e.first);
                    yb.push_back(e.second);
                }
                yo.push_back(static_cast<int>(ys.size()));
            }
            return;
        }
        kind = Kind::linear;
        const bool area_mode = interp == Interp::area;
        x0.resize(static_cast<std::size_t>(dw));
        x1.resize(static_cast<std::size_t>(dw));
        aw.resize(static_cast<std::size_t>(dw) * 6);
        for (int dx = 0; dx < dw; ++dx) {
            index_t sx;
            float fx;
            tap(dx, scale_x, inv_x, area_mode, sx, fx);
            if (sx < 0) { fx = 0.f; sx = 0; }
            if (sx >= sw - 1) { fx = 0.f; sx = sw - 1; }
            x0[dx] = static_cast<int>(sx * 3);
            x1[dx] = static_cast<int>(std::min<index_t>(sx + 1, sw - 1) * 3);
            const std::int16_t a0 = coef(1.f - fx), a1 = coef(fx);
            for (int c = 0; c < 3; ++c) {
                aw[6 * static_cast<std::size_t>(dx) + 2 * c] = a0;
                aw[6 * static_cast<std::size_t>(dx) + 2 * c + 1] = a1;
            }
        }
        // The SIMD kernels read 8 bytes at x0 and take the second pixel at x0 + 3.
        const index_t row_bytes = sw * 3;
        while (n_simd < dw && x0[n_simd] + 8 <= row_bytes &&
               (x1[n_simd] == x0[n_simd] + 3 || aw[6 * static_cast<std::size_t>(n_simd) + 1] == 0))
            ++n_simd;
        y0.resize(static_cast<std::size_t>(dh));
        y1.resize(static_cast<std::size_t>(dh));
        b0.resize(static_cast<std::size_t>(dh));
        b1.resize(static_cast<std::size_t>(dh));
        for (int dy = 0; dy < dh; ++dy) {
            index_t sy;
            float fy;
            tap(dy, scale_y, inv_y, area_mode, sy, fy);
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
    RowSource(const Plan& plan, const std::uint8_t* crop, index_t stride, const Kernels& k)
        : plan_(plan), crop_(crop), stride_(stride), k_(k) {
        const std::size_t n = static_cast<std::size_t>(plan.dw) * 3;
        if (plan.kind == Kind::identity) return;
        row8_.resize(n);
        if (plan.kind == Kind::linear)
            for (auto& h : h16_) h.resize(n);
        if (plan.kind == Kind::area) {
            for (auto& h : hf_) h.resize(n);
            sum_.resize(n);
        }
        if (plan.kind == Kind::area_fast)
            vsum_.resize(static_cast<std::size_t>(plan.dw) * plan.kx * 3);
    }

    /// Interleaved (dw * 3) uint8 pixels of output row dy of the resized crop.
    const std::uint8_t* row(int dy) {
        const Plan& p = plan_;
        std::uint8_t* out = row8_.data();
        switch (p.kind) {
            case Kind::identity: return src_row(dy);
            case Kind::nearest: {
                const std::uint8_t* s = src_row(p.y0[dy]);
                for (int dx = 0; dx < p.dw; ++dx) {
                    const std::uint8_t* q = s + p.x0[dx];
                    out[3 * dx] = q[0];
                    out[3 * dx + 1] = q[1];
                    out[3 * dx + 2] = q[2];
                }
                return out;
            }
            case Kind::linear: {
                const std::int16_t* s0 = hrow16(p.y0[dy]);
                const std::int16_t* s1 = hrow16(p.y1[dy]);
                k_.vlinear(s0, s1, p.b0[dy], p.b1[dy], 3 * p.dw, out);
                return out;
            }
            case Kind::area_fast: return area_fast_row(dy);
            case Kind::area: return area_row(dy);
        }
        return out;
    }

private:
    const std::uint8_t* src_row(index_t y) const { return crop_ + y * stride_; }

    // Which of two cache slots holds row sy; otherwise fills the slot not used last.
    template <class Fill>
    int cached(int sy, Fill fill) {
        for (int i = 0; i < 2; ++i)
            if (key_[i] == sy) {
                last_ = i;
                return i;
            }
        const int slot = 1 - last_;
        key_[slot] = sy;
        last_ = slot;
        fill(slot);
        return slot;
    }

    // Horizontally filtered source row sy (OpenCV's int sums >> 4, as int16).
    const std::int16_t* hrow16(int sy) {
        const int slot = cached(sy, [&](int i) {
            const Plan& p = plan_;
            const std::uint8_t* s = src_row(sy);
            std::int16_t* d = h16_[static_cast<std::size_t>(i)].data();
            k_.hlinear(s, p.x0.data(), p.aw.data(), p.n_simd, d);
            for (int dx = p.n_simd; dx < p.dw; ++dx)
                preprocess_detail::hlinear_px(s, p.x0[dx], p.x1[dx], p.aw.data() + 6 * dx,
                                              d + 3 * dx);
        });
        return h16_[static_cast<std::size_t>(slot)].data();
    }

    // INTER_AREA by integer factors: the mean of each kx x ky block, rounded as OpenCV does
    // ((sum + 2) >> 2 for 2 x 2, else cvRound(sum * (1.f / area))).
    const std::uint8_t* area_fast_row(int dy) {
        const Plan& p = plan_;
        const int n = p.dw * p.kx * 3;
        int* v = vsum_.data();
        std::fill(v, v + n, 0);
        for (int r = 0; r < p.ky; ++r) {
            const std::uint8_t* s = src_row(static_cast<index_t>(dy) * p.ky + r);
            for (int j = 0; j < n; ++j) v[j] += s[j];
        }
        std::uint8_t* out = row8_.data();
        const int area = p.kx * p.ky;
        if (p.kx == 2 && p.ky == 2) {
            for (int dx = 0; dx < p.dw; ++dx)
                for (int c = 0; c < 3; ++c)
                    out[3 * dx + c] = static_cast<std::uint8_t>(
                        (v[6 * dx + c] + v[6 * dx + 3 + c] + 2) >> 2);
            return out;
        }
        const float scale = 1.f / static_cast<float>(area);
        for (int dx = 0; dx < p.dw; ++dx)
            for (int c = 0; c < 3; ++c) {
                int sum = 0;
                for (int i = 0; i < p.kx; ++i) sum += v[3 * (dx * p.kx + i) + c];
                const int r = round_small(static_cast<float>(sum) * scale);
                out[3 * dx + c] = static_cast<std::uint8_t>(r > 255 ? 255 : r);
            }
        return out;
    }

    // INTER_AREA by other factors: OpenCV's ResizeArea_Invoker in float32, operation for
    // operation (per output value: the horizontal taps summed in order from 0, then the rows'
    // taps: sum = b * h, sum += b * h, ...; cvRound and saturation).
    const float* hrow_area(int sy) {
        const int slot = cached(sy, [&](int i) {
            const Plan& p = plan_;
            const std::uint8_t* s = src_row(sy);
            float* d = hf_[static_cast<std::size_t>(i)].data();
            const int K = p.K;
            for (int dx = 0; dx < p.dw; ++dx) {
                const int* xs = p.xs.data() + static_cast<std::size_t>(dx) * K;
                const float* xa = p.xa.data() + static_cast<std::size_t>(dx) * K;
                float t0 = 0.f, t1 = 0.f, t2 = 0.f;
                for (int j = 0; j < K; ++j) {
                    const std::uint8_t* q = s + xs[j];
                    t0 = t0 + static_cast<float>(q[0]) * xa[j];
                    t1 = t1 + static_cast<float>(q[1]) * xa[j];
                    t2 = t2 + static_cast<float>(q[2]) * xa[j];
                }
                d[3 * dx] = t0;
                d[3 * dx + 1] = t1;
                d[3 * dx + 2] = t2;
            }
        });
        return hf_[static_cast<std::size_t>(slot)].data();
    }

    const std::uint8_t* area_row(int dy) {
        const Plan& p = plan_;
        const int n = p.dw * 3;
        float* sum = sum_.data();
        for (int j = p.yo[dy]; j < p.yo[dy + 1]; ++j) {
            const float beta = p.yb[static_cast<std::size_t>(j)];
            const float* h = hrow_area(p.ys[static_cast<std::size_t>(j)]);
            if (j == p.yo[dy])
                for (int k = 0; k < n; ++k) sum[k] = beta * h[k];
            else
                for (int k = 0; k < n; ++k) sum[k] = sum[k] + beta * h[k];
        }
        std::uint8_t* out = row8_.data();
        for (int k = 0; k < n; ++k) {  // sums of non-negative terms, at most 255 * (1 + 1e-6)
            const int r = round_small(sum[k]);
            out[k] = static_cast<std::uint8_t>(r > 255 ? 255 : r);
        }
        return out;
    }

    const Plan& plan_;
    const std::uint8_t* crop_;
    index_t stride_;
    const Kernels& k_;
    std::vector<std::uint8_t> row8_;
    std::array<std::vector<std::int16_t>, 2> h16_;
    std::array<std::vector<float>, 2> hf_;
    std::vector<float> sum_;
    std::vector<int> vsum_;
    int key_[2] = {-1, -1};
    int last_ = 1;
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

Norm make_norm(const PreprocessParams& p) {
    Norm nm{};
    for (int c = 0; c < 3; ++c) {
        for (int v = 0; v < 256; ++v) {
            // numpy float32 order: (x * scale - mean) / std.
            const float x = (static_cast<float>(v) * p.scale - p.mean[c]) / p.std[c];
            nm.f32[c][v] = x;
            nm.f16[c][v] = float_to_half(x);
        }
        nm.mean[c] = p.mean[c];
        nm.std[c] = p.std[c];
    }
    nm.src_of[0] = p.swap_rb ? 2 : 0;
    nm.src_of[1] = 1;
    nm.src_of[2] = p.swap_rb ? 0 : 2;
    nm.scale = p.scale;
    nm.divide = !(p.std[0] == 1.f && p.std[1] == 1.f && p.std[2] == 1.f);
    return nm;
}

inline void norm_row(const Kernels& k, const std::uint8_t* s, int n, const Norm& nm, float* o0,
                     float* o1, float* o2) {
    k.norm_f32(s, n, nm, o0, o1, o2);
}
inline void norm_row(const Kernels& k, const std::uint8_t* s, int n, const Norm& nm,
                     std::uint16_t* o0, std::uint16_t* o1, std::uint16_t* o2) {
    k.norm_f16(s, n, nm, o0, o1, o2);
}
inline float pad_of(const Norm& nm, int c, int v, float*) { return nm.f32[c][v]; }
inline std::uint16_t pad_of(const Norm& nm, int c, int v, std::uint16_t*) { return nm.f16[c][v]; }

template <class T>
void run(const Image8View& img, const TilesView& tiles, const PreprocessParams& p, T* out,
         int num_threads) {
    const Norm nm = make_norm(p);
    const Kernels& kern = kernels();
    T pad[3];
    for (int c = 0; c < 3; ++c) pad[c] = pad_of(nm, c, p.pad_value, static_cast<T*>(nullptr));

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
            RowSource rows(plan, img.data + b[1] * img.row_stride + b[0] * 3, img.row_stride,
                           kern);
            T* base = out + t * 3 * plane;
            for (index_t y = r0; y < r1; ++y) {
                T* dst[3] = {base + y * W, base + plane + y * W, base + 2 * plane + y * W};
                const index_t dy = y - pl.top;
                if (dy < 0 || dy >= pl.dh) {
                    for (int c = 0; c < 3; ++c) std::fill(dst[c], dst[c] + W, pad[c]);
                    continue;
                }
                for (int c = 0; c < 3; ++c) {
                    std::fill(dst[c], dst[c] + pl.left, pad[c]);
                    std::fill(dst[c] + pl.left + pl.dw, dst[c] + W, pad[c]);
                }
                norm_row(kern, rows.row(static_cast<int>(dy)), pl.dw, nm, dst[0] + pl.left,
                         dst[1] + pl.left, dst[2] + pl.left);
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
    const Kernels& kern = kernels();
    const index_t bands = (out_h + kBandRows - 1) / kBandRows;
    const std::size_t row_bytes = static_cast<std::size_t>(out_w) * 3;
    parallel_for(0, bands, num_threads, 1, [&](index_t lo, index_t hi) {
        for (index_t band = lo; band < hi; ++band) {
            RowSource rows(plan, src.data, src.row_stride, kern);
            for (index_t y = band * kBandRows; y < std::min<index_t>(out_h, (band + 1) * kBandRows);
                 ++y)
                std::memcpy(dst + y * static_cast<index_t>(row_bytes),
                            rows.row(static_cast<int>(y)), row_bytes);
        }
    });
}

}  // namespace fissure
