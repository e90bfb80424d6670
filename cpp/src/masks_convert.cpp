// SPDX-License-Identifier: Apache-2.0
// Box-local masks: layout checks, dense planes -> box-local bitmaps, re-framing, gathering,
// pasting, areas and tight bounds. Run-length codes live in masks_convert_rle.cpp.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "fissure/masks_convert.hpp"
#include "fissure/parallel.hpp"
#include "masks_convert_detail.hpp"

namespace fissure {

using detail::grain_for;
using detail::threads_for;

namespace {

constexpr std::int64_t kI32Max = std::numeric_limits<std::int32_t>::max();
constexpr std::int64_t kI32Min = std::numeric_limits<std::int32_t>::min();

std::string region_str(const std::int32_t* r) {
    return "(x0=" + std::to_string(r[0]) + ", y0=" + std::to_string(r[1]) +
           ", w=" + std::to_string(r[2]) + ", h=" + std::to_string(r[3]) + ")";
}

// First and last set index of a uint8 row, or -1 when none is set. Scans 8 bytes at a time.
inline index_t first_set(const std::uint8_t* p, index_t n) {
    index_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, p + i, 8);
        if (word) break;
    }
    for (; i < n; ++i)
        if (p[i]) return i;
    return -1;
}
inline index_t last_set(const std::uint8_t* p, index_t n) {
    index_t i = n;
    for (; i >= 8; i -= 8) {
        std::uint64_t word;
        std::memcpy(&word, p + i - 8, 8);
        if (word) break;
    }
    for (; i > 0; --i)
        if (p[i - 1]) return i - 1;
    return -1;
}
inline index_t first_set(const float* p, index_t n, float t) {
    for (index_t i = 0; i < n; ++i)
        if (p[i] > t) return i;
    return -1;
}
inline index_t last_set(const float* p, index_t n, float t) {
    for (index_t i = n; i > 0; --i)
        if (p[i - 1] > t) return i - 1;
    return -1;
}

// Tight bounds of one row-major (h, w) plane with row stride `stride`: writes x_min, y_min,
// x_max + 1, y_max + 1 (exclusive) and returns false when nothing is set.
template <class Row>
bool plane_bounds(index_t h, Row&& row_extent, index_t* b) {
    index_t xmin = std::numeric_limits<index_t>::max(), xmax = -1, ymin = -1, ymax = -1;
    for (index_t y = 0; y < h; ++y) {
        index_t lo, hi;
        if (!row_extent(y, xmin, xmax, lo, hi)) continue;
        if (ymin < 0) ymin = y;
        ymax = y;
        xmin = std::min(xmin, lo);
        xmax = std::max(xmax, hi);
    }
    if (ymin < 0) return false;
    b[0] = xmin;
    b[1] = ymin;
    b[2] = xmax + 1;
    b[3] = ymax + 1;
    return true;
}

// Row extent of a uint8 row: once some bounds are known, only the parts outside them need a
// search for new extremes; the middle needs only an "any set" answer.
inline bool row_extent_u8(const std::uint8_t* p, index_t w, index_t xmin, index_t xmax,
                          index_t& lo, index_t& hi) {
    if (xmax < 0) {
        lo = first_set(p, w);
        if (lo < 0) return false;
        hi = last_set(p, w);
        return true;
    }
    lo = first_set(p, xmin);
    const index_t tail = last_set(p + xmax + 1, w - xmax - 1);
    hi = tail >= 0 ? xmax + 1 + tail : -1;
    if (lo >= 0 || hi >= 0) {
        if (lo < 0) lo = xmin;
        if (hi < 0) hi = xmax;
        return true;
    }
    if (first_set(p + xmin, xmax - xmin + 1) >= 0) {
        lo = xmin;
        hi = xmax;
        return true;
    }
    return false;
}

inline bool row_extent_f32(const float* p, index_t w, float t, index_t xmin, index_t xmax,
                           index_t& lo, index_t& hi) {
    if (xmax < 0) {
        lo = first_set(p, w, t);
        if (lo < 0) return false;
        hi = last_set(p, w, t);
        return true;
    }
    lo = first_set(p, xmin, t);
    const index_t tail = last_set(p + xmax + 1, w - xmax - 1, t);
    hi = tail >= 0 ? xmax + 1 + tail : -1;
    if (lo >= 0 || hi >= 0) {
        if (lo < 0) lo = xmin;
        if (hi < 0) hi = xmax;
        return true;
    }
    if (first_set(p + xmin, xmax - xmin + 1, t) >= 0) {
        lo = xmin;
        hi = xmax;
        return true;
    }
    return false;
}

void check_plane_args(index_t n, index_t height, index_t width) {
    if (n < 0 || height < 0 || width < 0)
        fail("dense masks: expected sizes >= 0, got n=" + std::to_string(n) +
             ", height=" + std::to_string(height) + ", width=" + std::to_string(width));
}

template <class T, class Set>
BoxMasks crop_dense_impl(const T* planes, index_t n, index_t height, index_t width,
                         const std::int32_t* src_regions, const std::int32_t* shifts,
                         int num_threads, Set&& is_set) {
    check_plane_args(n, height, width);
    BoxMasks out;
    out.regions.resize(static_cast<std::size_t>(4 * n));
    for (index_t i = 0; i < n; ++i) {
        const std::int32_t* r = src_regions + 4 * i;
        if (r[2] < 0 || r[3] < 0 || r[0] < 0 || r[1] < 0 ||
            std::int64_t{r[0]} + r[2] > width || std::int64_t{r[1]} + r[3] > height)
            fail("crop region " + std::to_string(i) + ": expected a region inside the (" +
                 std::to_string(height) + ", " + std::to_string(width) + ") mask, got " +
                 region_str(r));
        const std::int64_t dx = shifts ? shifts[2 * i] : 0, dy = shifts ? shifts[2 * i + 1] : 0;
        const std::int64_t x0 = r[0] + dx, y0 = r[1] + dy;
        if (x0 < kI32Min || y0 < kI32Min || x0 + r[2] > kI32Max || y0 + r[3] > kI32Max)
            fail("crop region " + std::to_string(i) + ": shifted region leaves the int32 range");
        std::int32_t* o = out.regions.data() + 4 * i;
        o[0] = static_cast<std::int32_t>(x0);
        o[1] = static_cast<std::int32_t>(y0);
        o[2] = r[2];
        o[3] = r[3];
    }
    out.offsets.resize(static_cast<std::size_t>(n + 1));
    const index_t total = region_offsets(out.regions.data(), n, out.offsets.data());
    out.data.resize(static_cast<std::size_t>(total));
    const std::int64_t plane = height * width;
    parallel_for(0, n, threads_for(num_threads, total), grain_for(n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = src_regions + 4 * i;
            const T* src = planes + i * plane + std::int64_t{r[1]} * width + r[0];
            std::uint8_t* dst = out.data.data() + out.offsets[i];
            const index_t w = r[2];
            for (index_t y = 0; y < r[3]; ++y, src += width, dst += w)
                for (index_t x = 0; x < w; ++x) dst[x] = is_set(src[x]);
        }
    });
    return out;
}

}  // namespace

void check_box_masks(const BoxMasksView& m, index_t data_size) {
    if (m.n < 0) fail("masks: expected a count >= 0, got " + std::to_string(m.n));
    if (!m.offsets) fail("masks: offsets are missing");
    if (m.n > 0 && !m.regions) fail("masks: regions are missing");
    if (m.offsets[0] != 0)
        fail("masks: expected offsets[0] == 0, got " + std::to_string(m.offsets[0]));
    for (index_t i = 0; i < m.n; ++i) {
        const std::int32_t* r = m.regions + 4 * i;
        if (r[2] < 0 || r[3] < 0)
            fail("masks: region " + std::to_string(i) + " has a negative size: " + region_str(r));
        if (std::int64_t{r[0]} + r[2] > kI32Max || std::int64_t{r[1]} + r[3] > kI32Max)
            fail("masks: region " + std::to_string(i) + " ends past the int32 range: " +
                 region_str(r));
        const std::int64_t want = m.offsets[i] + std::int64_t{r[2]} * r[3];
        if (m.offsets[i + 1] != want)
            fail("masks: expected offsets[" + std::to_string(i + 1) + "] == " +
                 std::to_string(want) + " for region " + region_str(r) + ", got " +
                 std::to_string(m.offsets[i + 1]));
    }
    if (m.offsets[m.n] != data_size)
        fail("masks: expected " + std::to_string(m.offsets[m.n]) + " bytes of bitmaps, got " +
             std::to_string(data_size));
}

index_t region_offsets(const std::int32_t* regions, index_t n, std::int64_t* offsets) {
    offsets[0] = 0;
    for (index_t i = 0; i < n; ++i) {
        const std::int32_t* r = regions + 4 * i;
        if (r[2] < 0 || r[3] < 0)
            fail("region " + std::to_string(i) + " has a negative size: " + region_str(r));
        offsets[i + 1] = offsets[i] + std::int64_t{r[2]} * r[3];
    }
    return offsets[n];
}

void dense_tight_regions(const std::uint8_t* planes, index_t n, index_t height, index_t width,
                         std::int32_t* regions, int num_threads) {
    check_plane_args(n, height, width);
    const std::int64_t plane = height * width;
    parallel_for(0, n, threads_for(num_threads, n * plane), 1, [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::uint8_t* p = planes + i * plane;
            index_t b[4];
            std::int32_t* r = regions + 4 * i;
            const bool any = plane_bounds(
                height,
                [&](index_t y, index_t xmin, index_t xmax, index_t& l, index_t& h) {
                    return row_extent_u8(p + y * width, width, xmin, xmax, l, h);
                },
                b);
            if (!any) {
                r[0] = r[1] = r[2] = r[3] = 0;
                continue;
            }
            r[0] = static_cast<std::int32_t>(b[0]);
            r[1] = static_cast<std::int32_t>(b[1]);
            r[2] = static_cast<std::int32_t>(b[2] - b[0]);
            r[3] = static_cast<std::int32_t>(b[3] - b[1]);
        }
    });
}

void dense_tight_regions(const float* planes, index_t n, index_t height, index_t width,
                         float threshold, std::int32_t* regions, int num_threads) {
    check_plane_args(n, height, width);
    const std::int64_t plane = height * width;
    parallel_for(0, n, threads_for(num_threads, n * plane), 1, [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const float* p = planes + i * plane;
            index_t b[4];
            std::int32_t* r = regions + 4 * i;
            const bool any = plane_bounds(
                height,
                [&](index_t y, index_t xmin, index_t xmax, index_t& l, index_t& h) {
                    return row_extent_f32(p + y * width, width, threshold, xmin, xmax, l, h);
                },
                b);
            if (!any) {
                r[0] = r[1] = r[2] = r[3] = 0;
                continue;
            }
            r[0] = static_cast<std::int32_t>(b[0]);
            r[1] = static_cast<std::int32_t>(b[1]);
            r[2] = static_cast<std::int32_t>(b[2] - b[0]);
            r[3] = static_cast<std::int32_t>(b[3] - b[1]);
        }
    });
}

BoxMasks crop_dense(const std::uint8_t* planes, index_t n, index_t height, index_t width,
                    const std::int32_t* src_regions, const std::int32_t* shifts, int num_threads) {
    return crop_dense_impl(planes, n, height, width, src_regions, shifts, num_threads,
                           [](std::uint8_t v) { return static_cast<std::uint8_t>(v != 0); });
}

BoxMasks crop_dense(const float* planes, index_t n, index_t height, index_t width,
                    float threshold, const std::int32_t* src_regions, const std::int32_t* shifts,
                    int num_threads) {
    return crop_dense_impl(planes, n, height, width, src_regions, shifts, num_threads,
                           [threshold](float v) { return static_cast<std::uint8_t>(v > threshold); });
}

BoxMasks reframe(const BoxMasksView& m, const std::int32_t* new_regions, int num_threads) {
    BoxMasks out;
    out.regions.assign(new_regions, new_regions + 4 * m.n);
    out.offsets.resize(static_cast<std::size_t>(m.n + 1));
    const index_t total = region_offsets(new_regions, m.n, out.offsets.data());
    for (index_t i = 0; i < m.n; ++i) {
        const std::int32_t* r = new_regions + 4 * i;
        if (std::int64_t{r[0]} + r[2] > kI32Max || std::int64_t{r[1]} + r[3] > kI32Max)
            fail("new region " + std::to_string(i) + " ends past the int32 range: " +
                 region_str(r));
    }
    out.data.resize(static_cast<std::size_t>(total));  // zeroed
    parallel_for(0, m.n, threads_for(num_threads, total), grain_for(m.n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* o = m.regions + 4 * i;
            const std::int32_t* r = new_regions + 4 * i;
            const std::int64_t xa = std::max<std::int64_t>(o[0], r[0]);
            const std::int64_t xb = std::min<std::int64_t>(std::int64_t{o[0]} + o[2], std::int64_t{r[0]} + r[2]);
            const std::int64_t ya = std::max<std::int64_t>(o[1], r[1]);
            const std::int64_t yb = std::min<std::int64_t>(std::int64_t{o[1]} + o[3], std::int64_t{r[1]} + r[3]);
            if (xa >= xb || ya >= yb) continue;
            const std::uint8_t* src = m.data + m.offsets[i];
            std::uint8_t* dst = out.data.data() + out.offsets[i];
            for (std::int64_t y = ya; y < yb; ++y) {
                const std::uint8_t* s = src + (y - o[1]) * o[2] + (xa - o[0]);
                std::uint8_t* d = dst + (y - r[1]) * r[2] + (xa - r[0]);
                for (std::int64_t x = 0; x < xb - xa; ++x) d[x] = static_cast<std::uint8_t>(s[x] != 0);
            }
        }
    });
    return out;
}

BoxMasks gather(const BoxMasksView& m, const index_t* index, index_t n_index, int num_threads) {
    if (n_index < 0) fail("gather: expected a count >= 0, got " + std::to_string(n_index));
    BoxMasks out;
    out.regions.resize(static_cast<std::size_t>(4 * n_index));
    for (index_t k = 0; k < n_index; ++k) {
        const index_t i = index[k];
        if (i < 0 || i >= m.n)
            fail("gather: index " + std::to_string(i) + " out of range for " + std::to_string(m.n) +
                 " masks");
        std::memcpy(out.regions.data() + 4 * k, m.regions + 4 * i, 4 * sizeof(std::int32_t));
    }
    out.offsets.resize(static_cast<std::size_t>(n_index + 1));
    const index_t total = region_offsets(out.regions.data(), n_index, out.offsets.data());
    out.data.resize(static_cast<std::size_t>(total));
    parallel_for(0, n_index, threads_for(num_threads, total), grain_for(n_index), [&](index_t lo, index_t hi) {
        for (index_t k = lo; k < hi; ++k) {
            const index_t i = index[k];
            const std::int64_t len = m.offsets[i + 1] - m.offsets[i];
            if (len) std::memcpy(out.data.data() + out.offsets[k], m.data + m.offsets[i], len);
        }
    });
    return out;
}

void paste_dense(const BoxMasksView& m, index_t height, index_t width, std::uint8_t* out,
                 int num_threads) {
    check_plane_args(m.n, height, width);
    const std::int64_t plane = height * width;
    parallel_for(0, m.n, threads_for(num_threads, m.offsets[m.n]), grain_for(m.n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = m.regions + 4 * i;
            const std::int64_t xa = std::max<std::int64_t>(r[0], 0);
            const std::int64_t xb = std::min<std::int64_t>(std::int64_t{r[0]} + r[2], width);
            const std::int64_t ya = std::max<std::int64_t>(r[1], 0);
            const std::int64_t yb = std::min<std::int64_t>(std::int64_t{r[1]} + r[3], height);
            if (xa >= xb || ya >= yb) continue;
            const std::uint8_t* src = m.data + m.offsets[i];
            std::uint8_t* dst = out + i * plane;
            for (std::int64_t y = ya; y < yb; ++y) {
                const std::uint8_t* s = src + (y - r[1]) * r[2] + (xa - r[0]);
                std::uint8_t* d = dst + y * width + xa;
                for (std::int64_t x = 0; x < xb - xa; ++x) d[x] |= static_cast<std::uint8_t>(s[x] != 0);
            }
        }
    });
}

void areas(const BoxMasksView& m, std::int64_t* out, int num_threads) {
    parallel_for(0, m.n, threads_for(num_threads, m.offsets[m.n]), grain_for(m.n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::uint8_t* p = m.data + m.offsets[i];
            const std::int64_t len = m.offsets[i + 1] - m.offsets[i];
            std::int64_t count = 0;
            // Blocks of at most 255 bytes so the byte counter cannot overflow; vectorises.
            for (std::int64_t a = 0; a < len; a += 255) {
                const std::int64_t b = std::min<std::int64_t>(len, a + 255);
                std::uint8_t c = 0;
                for (std::int64_t k = a; k < b; ++k) c = static_cast<std::uint8_t>(c + (p[k] != 0));
                count += c;
            }
            out[i] = count;
        }
    });
}

void tight_bounds(const BoxMasksView& m, std::int32_t* out, int num_threads) {
    parallel_for(0, m.n, threads_for(num_threads, m.offsets[m.n]), grain_for(m.n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = m.regions + 4 * i;
            const std::uint8_t* p = m.data + m.offsets[i];
            const index_t w = r[2];
            index_t b[4];
            std::int32_t* o = out + 4 * i;
            const bool any = w > 0 && plane_bounds(
                r[3],
                [&](index_t y, index_t xmin, index_t xmax, index_t& l, index_t& h) {
                    return row_extent_u8(p + y * w, w, xmin, xmax, l, h);
                },
                b);
            if (!any) {
                o[0] = o[2] = r[0];
                o[1] = o[3] = r[1];
                continue;
            }
            o[0] = static_cast<std::int32_t>(r[0] + b[0]);
            o[1] = static_cast<std::int32_t>(r[1] + b[1]);
            o[2] = static_cast<std::int32_t>(r[0] + b[2]);
            o[3] = static_cast<std::int32_t>(r[1] + b[3]);
        }
    });
}

}  // namespace fissure
