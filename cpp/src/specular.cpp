// SPDX-License-Identifier: Apache-2.0
// Specular masks: OpenCV's HSV rule as a threshold table, the scalar kernels, dispatch, the
// row-band driver that fuses masking and disc dilation, and the glare statistics.
#include "fissure/specular.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "fissure/parallel.hpp"
#include "specular_kernels.hpp"

namespace fissure {
namespace specular_detail {
namespace {

// ------------------------------------------------------------------------------------------
// Scalar kernels
// ------------------------------------------------------------------------------------------

void bgr_row_scalar(const std::uint8_t* src, index_t n, const Lut& lut, std::uint8_t* out) {
    for (index_t i = 0; i < n; ++i) out[i] = glare_pixel(src + 3 * i, lut);
}

bool row_dist_scalar(const std::uint8_t* m, index_t n, std::uint8_t cap, std::uint8_t* d) {
    bool any = false;
    unsigned run = cap;
    for (index_t i = 0; i < n; ++i) {
        if (m[i]) {
            run = 0;
            any = true;
        } else if (run < cap) {
            ++run;
        }
        d[i] = static_cast<std::uint8_t>(run);
    }
    if (!any) return false;
    run = cap;
    for (index_t i = n - 1; i >= 0; --i) {
        if (d[i] == 0) run = 0;
        else if (run < cap) ++run;
        if (run < d[i]) d[i] = static_cast<std::uint8_t>(run);
    }
    return true;
}

void vmin_scalar(std::uint8_t* acc, const std::uint8_t* a, const std::uint8_t* b, std::uint8_t k,
                 index_t n) {
    for (index_t i = 0; i < n; ++i) {
        const std::uint8_t x = std::min(a[i], b[i]);
        const std::uint8_t s = x > k ? static_cast<std::uint8_t>(x - k) : 0;
        acc[i] = std::min(acc[i], s);
    }
}

bool block_any_scalar(const std::uint8_t* row, index_t nb, std::uint8_t* blk) {
    bool any = false;
    for (index_t b = 0; b < nb; ++b) {
        std::uint8_t acc = 0;
        for (int i = 0; i < 64; ++i) acc |= row[64 * b + i];
        blk[b] = acc != 0;
        any = any || acc != 0;
    }
    return any;
}

void copy_out_scalar(std::uint8_t* dst, const std::uint8_t* src, index_t n, bool) {
    std::memcpy(dst, src, static_cast<std::size_t>(n));
}
void fence_none() {}

// Buffers for padded rows: 64-byte aligned, zero-initialised.
struct AlignedBytes {
    std::uint8_t* p = nullptr;
    explicit AlignedBytes(std::size_t n) {
        const std::size_t size = ((n + 63) / 64) * 64 + 64;
        p = static_cast<std::uint8_t*>(::operator new(size, std::align_val_t{64}));
        std::memset(p, 0, size);
    }
    ~AlignedBytes() { ::operator delete(p, std::align_val_t{64}); }
    AlignedBytes(const AlignedBytes&) = delete;
    AlignedBytes& operator=(const AlignedBytes&) = delete;
};

}  // namespace

const Kernels& scalar_kernels() {
    static const Kernels k{bgr_row_scalar, row_dist_scalar, vmin_scalar, block_any_scalar,
                           copy_out_scalar, fence_none};
    return k;
}

}  // namespace specular_detail

using specular_detail::Kernels;
using specular_detail::Lut;

namespace {

const Kernels& kernels() {
    using namespace specular_detail;
    const Kernels* k = nullptr;
    switch (effective_level(Family::specular)) {
        case SimdLevel::avx512: k = avx512_kernels(); break;
        case SimdLevel::avx2: k = avx2_kernels(); break;
        case SimdLevel::sse4: k = sse4_kernels(); break;
        default: break;
    }
    return k ? *k : scalar_kernels();
}

void check_thresholds(int v_min, int s_max) {
    if (v_min < 0 || v_min > 255)
        fail("v_min: expected an int in 0..255, got " + std::to_string(v_min));
    if (s_max < 0 || s_max > 255)
        fail("s_max: expected an int in 0..255, got " + std::to_string(s_max));
}

Lut make_lut(int v_min, int s_max) {
    Lut lut;
    const std::vector<std::uint8_t> t = specular_threshold_table(v_min, s_max);
    std::copy(t.begin(), t.end(), lut.table);
    if (v_min >= 255 || s_max <= 0) return lut;  // n_groups = 0: nothing is glare
    lut.base = static_cast<std::uint8_t>(v_min + 1);
    const int range = 255 - v_min;
    lut.n_groups = (range + 15) / 16;
    for (int g = 0; g < lut.n_groups; ++g)
        for (int i = 0; i < 16; ++i) {
            const int v = v_min + 1 + 16 * g + i;
            lut.groups[g][i] = v <= 255 ? t[v] : 0;
        }
    return lut;
}

index_t padded(index_t cols) {
    const index_t p = specular_detail::k_row_pad;
    return (cols + p - 1) / p * p;
}

// Rows per parallel chunk: about 8 chunks per thread, at least ~64 KiB of input each.
index_t row_grain(index_t rows, index_t row_bytes, int threads) {
    const index_t by_count = (rows + 8 * threads - 1) / (8 * threads);
    const index_t by_bytes = (65536 + row_bytes - 1) / std::max<index_t>(row_bytes, 1);
    return std::max<index_t>(1, std::max(by_count, by_bytes));
}

int threads_for(index_t pixels, int num_threads) {
    return pixels < 65536 ? 1 : resolve_threads(num_threads);
}

// The glare test of one image row into `out` (cols bytes, 0/1).
struct GlareRows {
    const Image8View& img;
    const Lut& lut;
    const Kernels& k;
    int v_min;
    bool any;  // false: nothing can be glare

    void operator()(index_t y, std::uint8_t* out) const {
        const std::uint8_t* row = img.data + y * img.row_stride;
        if (!any) {
            std::memset(out, 0, static_cast<std::size_t>(img.cols));
        } else if (img.channels == 3) {
            k.bgr_row(row, img.cols, lut, out);
        } else {
            const std::uint8_t vm = static_cast<std::uint8_t>(v_min);
            for (index_t x = 0; x < img.cols; ++x) out[x] = row[x] > vm;
        }
    }
};

// A binary plane's row copied into the padded scratch row.
struct PlaneRows {
    const ConstPlane8& src;
    void operator()(index_t y, std::uint8_t* out) const {
        std::memcpy(out, src.data + y * src.row_stride, static_cast<std::size_t>(src.cols));
    }
};

// Dilates output rows [y0, y1) by the disc. `rows_of(y, buf)` writes mask row y (nonzero =
// set) into a zero-padded scratch row.
//
// Each needed source row (the band plus r rows of halo on each side) is produced once and
// kept in a ring of 2r + 1 rows with
//   - its active 64-byte column blocks: those within reach = ceil(r / 64) blocks of a block
//     holding a set byte (every pixel of any other block is more than r columns from all set
//     bytes, so the row cannot reach it), as runs of consecutive blocks;
//   - inside those runs, each byte's distance to the nearest set byte of the row, capped at
//     r + 1 (the distance scans start saturated at a run's ends: nothing within r lies
//     beyond).
// An output pixel is set when some row dy of the disc has distance <= half_width(dy), i.e. the
// min over the rows of sat_sub(distance, half_width(dy)) is 0. That min is only computed over
// the blocks active in some row of the disc, and each row only over its own active runs;
// every other block of the output is written as zeros. Sparse highlights thus cost little
// more than the rows' block scans.
template <class Rows>
void dilate_band(index_t y0, index_t y1, index_t rows, index_t cols, int r,
                 const std::vector<int>& half, const Kernels& k, const Rows& rows_of,
                 const Plane8& dst) {
    constexpr index_t B = 64;
    const index_t wp = padded(cols), nb = wp / B, reach = (r + B - 1) / B;
    const int ring_n = 2 * r + 1;
    specular_detail::AlignedBytes ring(static_cast<std::size_t>(wp) * ring_n);
    // Source rows are produced in batches: back-to-back rows of the image keep the memory
    // stream going (one row at a time, with dilation work in between, stalls on every row).
    constexpr index_t batch = 16;
    specular_detail::AlignedBytes scratch(static_cast<std::size_t>(wp * batch));
    index_t batch_lo = 0, batch_hi = 0;  // rows held in scratch
    specular_detail::AlignedBytes acc(static_cast<std::size_t>(wp));
    // Output rows are assembled in L1 and copied out; large outputs bypass the cache.
    specular_detail::AlignedBytes orow(static_cast<std::size_t>(wp));
    const bool stream = rows * cols >= (index_t{1} << 22);
    std::vector<std::uint8_t> act(static_cast<std::size_t>(nb * ring_n), 0);
    std::vector<std::uint8_t> blk(static_cast<std::size_t>(nb + 2 * reach), 0);
    std::vector<std::uint8_t> uni(static_cast<std::size_t>(nb));
    std::uint8_t* const bp = blk.data() + reach;
    std::vector<std::vector<std::pair<index_t, index_t>>> runs(static_cast<std::size_t>(ring_n));
    specular_detail::AlignedBytes zero_row(static_cast<std::size_t>(wp));
    const std::uint8_t* const zeros = zero_row.p;
    const auto cap = static_cast<std::uint8_t>(r + 1);
    auto idx = [&](index_t j) { return static_cast<std::size_t>(j % ring_n); };
    auto slot = [&](index_t j) { return ring.p + (j % ring_n) * wp; };
    auto act_of = [&](index_t j) { return act.data() + (j % ring_n) * nb; };

    index_t next = std::max<index_t>(0, y0 - r);
    for (index_t y = y0; y < y1; ++y) {
        const index_t need = std::min(rows - 1, y + r);
        for (; next <= need; ++next) {
            if (next >= batch_hi) {
                batch_lo = next;
                batch_hi = std::min(std::min(rows, y1 + r), next + batch);
                for (index_t j = batch_lo; j < batch_hi; ++j)
                    rows_of(j, scratch.p + (j - batch_lo) * wp);
            }
            const std::uint8_t* src = scratch.p + (next - batch_lo) * wp;
            auto& rr = runs[idx(next)];
            rr.clear();
            std::uint8_t* a = act_of(next);
            if (!k.block_any(src, nb, bp)) {
                std::memset(a, 0, static_cast<std::size_t>(nb));
                continue;
            }
            // a[b] = OR of blk[b - reach .. b + reach]; blk has `reach` zeros on either side.
            std::memcpy(a, bp, static_cast<std::size_t>(nb));
            for (index_t s = 1; s <= reach; ++s)
                for (index_t b = 0; b < nb; ++b) a[b] |= bp[b - s] | bp[b + s];
            for (index_t b = 0; b < nb;) {
                if (!a[b]) {
                    ++b;
                    continue;
                }
                index_t e = b + 1;
                while (e < nb && a[e]) ++e;
                rr.emplace_back(b, e);
                k.row_dist(src + b * B, (e - b) * B, cap, slot(next) + b * B);
                b = e;
            }
        }

        std::uint8_t* const final_out = dst.data + y * dst.row_stride;
        std::uint8_t* const out = orow.p;
        const index_t j0 = std::max<index_t>(0, y - r);
        bool touched = false;
        for (index_t j = j0; j <= need && !touched; ++j) touched = !runs[idx(j)].empty();
        if (!touched) {
            if (stream) k.copy_out(final_out, zeros, cols, true);
            else std::memset(final_out, 0, static_cast<std::size_t>(cols));
            continue;
        }
        // Blocks active in some row of the disc: acc starts at cap there, the output at 0
        // elsewhere.
        std::fill(uni.begin(), uni.end(), std::uint8_t{0});
        for (index_t j = j0; j <= need; ++j) {
            if (runs[idx(j)].empty()) continue;
            const std::uint8_t* a = act_of(j);
            for (index_t b = 0; b < nb; ++b) uni[static_cast<std::size_t>(b)] |= a[b];
        }
        for (index_t b = 0; b < nb;) {
            index_t e = b + 1;
            const std::uint8_t on = uni[static_cast<std::size_t>(b)];
            while (e < nb && uni[static_cast<std::size_t>(e)] == on) ++e;
            const index_t x0 = b * B, x1 = std::min(cols, e * B);
            if (on) std::memset(acc.p + x0, cap, static_cast<std::size_t>((e - b) * B));
            else if (x1 > x0) std::memset(out + x0, 0, static_cast<std::size_t>(x1 - x0));
            b = e;
        }
        for (index_t j = j0; j <= need; ++j) {
            const auto& rr = runs[idx(j)];
            if (rr.empty()) continue;
            const auto kk = static_cast<std::uint8_t>(half[static_cast<std::size_t>(j - y + r)]);
            const std::uint8_t* d = slot(j);
            for (const auto& run : rr)
                k.vmin(acc.p + run.first * B, d + run.first * B, d + run.first * B, kk,
                       (run.second - run.first) * B);
        }
        const std::uint8_t* ap = acc.p;
        for (index_t b = 0; b < nb;) {
            if (!uni[static_cast<std::size_t>(b)]) {
                ++b;
                continue;
            }
            index_t e = b + 1;
            while (e < nb && uni[static_cast<std::size_t>(e)]) ++e;
            const index_t x1 = std::min(cols, e * B);
            for (index_t x = b * B; x < x1; ++x) out[x] = ap[x] == 0;
            b = e;
        }
        k.copy_out(final_out, out, cols, stream);
    }
    if (stream) k.fence();
}

// Runs dilate_band over the rows in parallel bands. A band recomputes r rows of halo on each
// side, so bands are kept at least 4r rows tall.
template <class Rows>
void dilate_all(index_t rows, index_t cols, int r, const Rows& rows_of, const Plane8& dst,
                int num_threads) {
    const std::vector<int> half = disc_half_widths(r);
    const Kernels& k = kernels();
    const int threads = threads_for(rows * cols, num_threads);
    index_t band = rows;
    if (threads > 1)
        band = std::max<index_t>({(rows + 4 * threads - 1) / (4 * threads), 4 * index_t{r}, 16});
    parallel_for(0, rows, threads, band, [&](index_t lo, index_t hi) {
        dilate_band(lo, hi, rows, cols, r, half, k, rows_of, dst);
    });
}

// Read-only planes: any row stride is fine (0: a broadcast row, negative: flipped rows).
void check_plane(const ConstPlane8& p, const char* name) {
    if (p.rows < 0 || p.cols < 0) fail(std::string(name) + ": negative size");
    if ((p.rows > 0 && p.cols > 0) && !p.data) fail(std::string(name) + ": null data");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

int opencv_hsv_saturation(int v, int diff) {
    if (v <= 0) return 0;
    // cv::RGB2HSV_b: sdiv_table[v] = saturate_cast<int>((255 << 12) / (1. * v)), then
    // s = (diff * sdiv_table[v] + (1 << 11)) >> 12. (255 << 12) / v never ends in exactly .5
    // for v <= 255, so the rounding mode of saturate_cast does not matter.
    const long sdiv = std::lround(static_cast<double>(255 << 12) / v);
    return static_cast<int>((diff * sdiv + (1 << 11)) >> 12);
}

std::vector<std::uint8_t> specular_threshold_table(int v_min, int s_max) {
    check_thresholds(v_min, s_max);
    std::vector<std::uint8_t> t(256, 0);
    if (s_max == 0) return t;
    // S(v, d) >= s_max  <=>  d * sdiv[v] >= s_max * 4096 - 2048: T[v] is the smallest such d.
    // d = v always qualifies (S = 255), so T[v] <= v fits a byte.
    const long k = static_cast<long>(s_max) * 4096 - 2048;
    for (int v = v_min + 1; v <= 255; ++v) {
        const long sdiv = std::lround(static_cast<double>(255 << 12) / v);
        const long d = std::min<long>((k + sdiv - 1) / sdiv, v);
        t[static_cast<std::size_t>(v)] = static_cast<std::uint8_t>(d);
    }
    return t;
}

std::vector<int> disc_half_widths(int radius) {
    if (radius < 0) fail("radius: expected >= 0, got " + std::to_string(radius));
    std::vector<int> half(static_cast<std::size_t>(2 * radius + 1), 0);
    const double r = radius;
    const double inv_r2 = radius ? 1.0 / (r * r) : 0.0;
    for (int dy = -radius; dy <= radius; ++dy) {
        // cv::getStructuringElement(MORPH_ELLIPSE): dx = saturate_cast<int>(c * sqrt(...)),
        // a round-half-to-even of the double.
        const double dx = r * std::sqrt((r * r - static_cast<double>(dy) * dy) * inv_r2);
        half[static_cast<std::size_t>(dy + radius)] = static_cast<int>(std::nearbyint(dx));
    }
    return half;
}

// ---------------------------------------------------------------------------------------------
// Masks
// ---------------------------------------------------------------------------------------------

void specular_mask(const Image8View& image, int v_min, int s_max, int dilate, const Plane8& out,
                   int num_threads) {
    check_thresholds(v_min, s_max);
    if (image.channels != 1 && image.channels != 3)
        fail("image: expected 1 (gray) or 3 (BGR/RGB) channels, got " +
             std::to_string(image.channels));
    if (image.rows <= 0 || image.cols <= 0)
        fail("image: expected a non-empty image, got " + std::to_string(image.rows) + " x " +
             std::to_string(image.cols));
    if (!image.data || !out.data) fail("specular_mask: null data");
    // Any row stride reads fine (0 for a broadcast row, negative for flipped rows).
    if (out.rows != image.rows || out.cols != image.cols)
        fail("out: expected " + std::to_string(image.rows) + " x " + std::to_string(image.cols) +
             ", got " + std::to_string(out.rows) + " x " + std::to_string(out.cols));
    if (dilate < 0 || dilate > k_max_dilate_radius)
        fail("dilate: expected a radius in 0.." + std::to_string(k_max_dilate_radius) + ", got " +
             std::to_string(dilate));

    const Lut lut = make_lut(v_min, s_max);
    const Kernels& k = kernels();
    const GlareRows glare{image, lut, k, v_min, lut.n_groups > 0};
    const index_t rows = image.rows, cols = image.cols;

    if (!glare.any) {  // nothing can be glare, dilated or not
        for (index_t y = 0; y < rows; ++y)
            std::memset(out.data + y * out.row_stride, 0, static_cast<std::size_t>(cols));
        return;
    }
    if (dilate > 0) {
        dilate_all(rows, cols, dilate, glare, out, num_threads);
        return;
    }
    const int threads = threads_for(rows * cols, num_threads);
    const index_t grain = row_grain(rows, cols * image.channels, threads);
    // Rows that follow each other in memory (input and output) are one long row to the kernel.
    const bool flat = image.channels == 3 && image.row_stride == 3 * cols &&
                      out.row_stride == cols;
    parallel_for(0, rows, threads, grain, [&](index_t lo, index_t hi) {
        if (flat) {
            k.bgr_row(image.data + lo * image.row_stride, (hi - lo) * cols, lut,
                      out.data + lo * out.row_stride);
            return;
        }
        for (index_t y = lo; y < hi; ++y) glare(y, out.data + y * out.row_stride);
    });
}

void dilate_disc(const ConstPlane8& src, int radius, const Plane8& dst, int num_threads) {
    check_plane(src, "mask");
    if (radius < 0 || radius > k_max_dilate_radius)
        fail("radius: expected 0.." + std::to_string(k_max_dilate_radius) + ", got " +
             std::to_string(radius));
    if (dst.rows != src.rows || dst.cols != src.cols)
        fail("out: expected the mask's shape");
    if (src.rows == 0 || src.cols == 0) return;
    if (!dst.data) fail("dilate_disc: null output");
    if (radius == 0) {
        for (index_t y = 0; y < src.rows; ++y) {
            const std::uint8_t* s = src.data + y * src.row_stride;
            std::uint8_t* d = dst.data + y * dst.row_stride;
            for (index_t x = 0; x < src.cols; ++x) d[x] = s[x] != 0;
        }
        return;
    }
    dilate_all(src.rows, src.cols, radius, PlaneRows{src}, dst, num_threads);
}

// ---------------------------------------------------------------------------------------------
// Glare statistics
// ---------------------------------------------------------------------------------------------

namespace {

index_t count_set(const std::uint8_t* p, index_t n) {
    index_t total = 0;
    while (n > 0) {  // blocks short enough for a 32-bit count that the compiler vectorises
        const index_t m = std::min<index_t>(n, index_t{1} << 20);
        std::uint32_t c = 0;
        for (index_t i = 0; i < m; ++i) c += p[i] != 0;
        total += c;
        p += m;
        n -= m;
    }
    return total;
}

index_t count_both(const std::uint8_t* a, const std::uint8_t* b, index_t n) {
    std::uint32_t c = 0;  // n is one mask row: < 2^31
    for (index_t i = 0; i < n; ++i) c += (a[i] != 0) & (b[i] != 0);
    return c;
}

// The pixel region of a box, clipped to the plane: [x0, x1) x [y0, y1), possibly empty.
struct Rect {
    index_t x0, y0, x1, y1;
    index_t area() const { return (x1 - x0) * (y1 - y0); }
};

Rect box_rect(const float* b, index_t rows, index_t cols) {
    auto clampd = [](double v, index_t hi) -> index_t {
        if (!(v > 0)) return 0;  // NaN and negatives
        if (v >= static_cast<double>(hi)) return hi;
        return static_cast<index_t>(v);
    };
    const index_t x0 = clampd(std::floor(static_cast<double>(b[0])), cols);
    const index_t y0 = clampd(std::floor(static_cast<double>(b[1])), rows);
    const index_t x1 = std::max(x0, clampd(std::ceil(static_cast<double>(b[2])), cols));
    const index_t y1 = std::max(y0, clampd(std::ceil(static_cast<double>(b[3])), rows));
    return {x0, y0, x1, y1};
}

}  // namespace

void glare_fraction_boxes(const ConstPlane8& mask, const BoxesView& boxes, float* out,
                          int num_threads) {
    check_plane(mask, "mask");
    if (boxes.n < 0) fail("boxes: negative count");
    if (boxes.n == 0) return;
    if (!boxes.data || !out) fail("glare_fraction_boxes: null data");
    const index_t rows = mask.rows, cols = mask.cols;
    std::vector<Rect> rects(static_cast<std::size_t>(boxes.n));
    double total_area = 0;
    for (index_t i = 0; i < boxes.n; ++i) {
        rects[static_cast<std::size_t>(i)] = box_rect(boxes[i], rows, cols);
        total_area += static_cast<double>(rects[static_cast<std::size_t>(i)].area());
    }
    const double pixels = static_cast<double>(rows) * static_cast<double>(cols);
    const int threads = resolve_threads(num_threads);
    // Summed-area table (4 bytes a pixel) only when the boxes would read the image many times.
    const bool use_sat = total_area > 4.0 * pixels && pixels < 4.0e9;
    if (!use_sat) {
        const index_t grain = std::max<index_t>(
            1, static_cast<index_t>(boxes.n * 65536.0 / std::max(total_area, 1.0)));
        parallel_for(0, boxes.n, total_area < 1 << 18 ? 1 : threads, grain,
                     [&](index_t lo, index_t hi) {
                         for (index_t i = lo; i < hi; ++i) {
                             const Rect& r = rects[static_cast<std::size_t>(i)];
                             const index_t area = r.area();
                             index_t c = 0;
                             for (index_t y = r.y0; y < r.y1; ++y)
                                 c += count_set(mask.data + y * mask.row_stride + r.x0, r.x1 - r.x0);
                             out[i] = area > 0 ? static_cast<float>(static_cast<double>(c) /
                                                                    static_cast<double>(area))
                                               : 0.0f;
                         }
                     });
        return;
    }
    const index_t w1 = cols + 1;
    std::vector<std::uint32_t> sat(static_cast<std::size_t>((rows + 1) * w1), 0);
    // Row prefix sums, then columns accumulated down in parallel strips.
    parallel_for(0, rows, threads, row_grain(rows, cols * 4, threads), [&](index_t lo, index_t hi) {
        for (index_t y = lo; y < hi; ++y) {
            const std::uint8_t* m = mask.data + y * mask.row_stride;
            std::uint32_t* s = sat.data() + (y + 1) * w1;
            std::uint32_t acc = 0;
            for (index_t x = 0; x < cols; ++x) {
                acc += m[x] != 0;
                s[x + 1] = acc;
            }
        }
    });
    parallel_for(0, w1, threads, std::max<index_t>(256, w1 / (4 * threads) + 1),
                 [&](index_t lo, index_t hi) {
                     for (index_t y = 1; y <= rows; ++y) {
                         std::uint32_t* s = sat.data() + y * w1;
                         const std::uint32_t* p = s - w1;
                         for (index_t x = lo; x < hi; ++x) s[x] += p[x];
                     }
                 });
    parallel_for(0, boxes.n, threads, 4096, [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const Rect& r = rects[static_cast<std::size_t>(i)];
            const index_t area = r.area();
            if (area <= 0) {
                out[i] = 0.0f;
                continue;
            }
            auto at = [&](index_t y, index_t x) {
                return static_cast<std::int64_t>(sat[static_cast<std::size_t>(y * w1 + x)]);
            };
            const std::int64_t c = at(r.y1, r.x1) - at(r.y0, r.x1) - at(r.y1, r.x0) + at(r.y0, r.x0);
            out[i] = static_cast<float>(static_cast<double>(c) / static_cast<double>(area));
        }
    });
}

void glare_fraction_masks(const ConstPlane8& glare, const BoxMasksView& masks, float* out,
                          int num_threads) {
    check_plane(glare, "mask");
    if (masks.n == 0) return;
    if (!out || !masks.offsets || !masks.regions) fail("glare_fraction_masks: null data");
    const index_t rows = glare.rows, cols = glare.cols;
    const index_t total = masks.offsets[masks.n];
    const int threads = total < (1 << 18) ? 1 : resolve_threads(num_threads);
    const index_t grain =
        std::max<index_t>(1, static_cast<index_t>(masks.n * 65536.0 / std::max<index_t>(total, 1)));
    parallel_for(0, masks.n, threads, grain, [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = masks.regions + 4 * i;
            const index_t x0 = r[0], y0 = r[1], w = r[2], h = r[3];
            const std::uint8_t* bm = masks.data + masks.offsets[i];
            const index_t set = count_set(bm, w * h);
            if (set == 0) {
                out[i] = 0.0f;
                continue;
            }
            const index_t cx0 = std::max<index_t>(0, x0), cx1 = std::min(cols, x0 + w);
            const index_t cy0 = std::max<index_t>(0, y0), cy1 = std::min(rows, y0 + h);
            index_t both = 0;
            if (cx1 > cx0)
                for (index_t y = cy0; y < cy1; ++y)
                    both += count_both(bm + (y - y0) * w + (cx0 - x0),
                                       glare.data + y * glare.row_stride + cx0, cx1 - cx0);
            out[i] = static_cast<float>(static_cast<double>(both) / static_cast<double>(set));
        }
    });
}

}  // namespace fissure
