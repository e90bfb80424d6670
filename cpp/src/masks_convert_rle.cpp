// SPDX-License-Identifier: Apache-2.0
// Run-length codes of box-local masks: COCO's column-major runs over a canvas (computed from
// the region alone: the zeros around it are arithmetic), COCO's compressed counts string, and
// crop-scoped runs. Decoding writes straight into box-local bitmaps.
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

// Throws unless every count is >= 0 and they sum to `total`.
void check_counts(const std::int64_t* counts, index_t m, std::int64_t total) {
    std::int64_t sum = 0;
    for (index_t j = 0; j < m; ++j) {
        const std::int64_t c = counts[j];
        if (c < 0)
            fail("RLE counts: expected counts >= 0, got counts[" + std::to_string(j) +
                 "] = " + std::to_string(c));
        if (c > total - sum)
            fail("RLE counts: expected counts summing to " + std::to_string(total) +
                 " (height * width), got more by count " + std::to_string(j) + " of " +
                 std::to_string(m));
        sum += c;
    }
    if (sum != total)
        fail("RLE counts: expected counts summing to " + std::to_string(total) +
             " (height * width), got " + std::to_string(sum));
}

void check_canvas(index_t h, index_t w) {
    if (h < 0 || w < 0 || (w > 0 && h > std::numeric_limits<std::int64_t>::max() / w))
        fail("RLE canvas: expected sizes >= 0, got (" + std::to_string(h) + ", " +
             std::to_string(w) + ")");
}

}  // namespace

void encode_runs(const std::uint8_t* bitmap, std::int32_t x0, std::int32_t y0, std::int32_t w,
                 std::int32_t h, index_t canvas_h, index_t canvas_w, std::vector<std::int64_t>& out) {
    check_canvas(canvas_h, canvas_w);
    const std::int64_t total = canvas_h * canvas_w;
    const std::int64_t xa = std::max<std::int64_t>(x0, 0);
    const std::int64_t xb = std::min<std::int64_t>(std::int64_t{x0} + w, canvas_w);
    const std::int64_t ya = std::max<std::int64_t>(y0, 0);
    const std::int64_t yb = std::min<std::int64_t>(std::int64_t{y0} + h, canvas_h);
    std::int64_t last = 0;  // start of the run being counted
    bool cur = false;       // its value
    if (xa < xb && ya < yb) {
        // The region's columns tile the canvas' column-major order seamlessly only when it spans
        // every row; otherwise the rows around it are zeros that close a run of ones.
        const bool full_rows = ya == 0 && yb == canvas_h;
        const std::int64_t ch = yb - ya;
        // Strips of up to kStrip columns are transposed into a column-major scratch buffer
        // (normalised to 0/1) so that each column is scanned contiguously, 8 bytes at a time.
        constexpr std::int64_t kStrip = 64;
        thread_local std::vector<std::uint8_t> strip;
        for (std::int64_t sx = xa; sx < xb; sx += kStrip) {
            const std::int64_t sw = std::min(kStrip, xb - sx);
            strip.resize(static_cast<std::size_t>(sw * ch));
            std::uint8_t* buf = strip.data();
            const std::uint8_t* row = bitmap + (ya - y0) * std::int64_t{w} + (sx - x0);
            for (std::int64_t r = 0; r < ch; ++r, row += w)
                for (std::int64_t c = 0; c < sw; ++c)
                    buf[c * ch + r] = static_cast<std::uint8_t>(row[c] != 0);
            for (std::int64_t c = 0; c < sw; ++c) {
                const std::int64_t x = sx + c;
                const std::uint8_t* col = buf + c * ch;
                const std::int64_t base = x * canvas_h + ya;
                for (std::int64_t i = 0;;) {
                    i += detail::find_change(col + i, ch - i, cur);
                    if (i >= ch) break;
                    out.push_back(base + i - last);
                    last = base + i;
                    cur = !cur;
                }
                if (cur && !(full_rows && x + 1 < xb)) {
                    const std::int64_t g = x * canvas_h + yb;  // first pixel after the segment
                    if (g < total) {
                        out.push_back(g - last);
                        last = g;
                        cur = false;
                    }
                }
            }
        }
    }
    out.push_back(total - last);
}

void decode_runs(const std::int64_t* counts, index_t m, index_t canvas_h, index_t canvas_w,
                 std::int32_t x0, std::int32_t y0, std::int32_t w, std::int32_t h,
                 std::uint8_t* out) {
    check_canvas(canvas_h, canvas_w);
    check_counts(counts, m, canvas_h * canvas_w);
    if (w <= 0 || h <= 0) return;
    std::memset(out, 0, static_cast<std::size_t>(std::int64_t{w} * h));
    if (canvas_h == 0 || canvas_w == 0) return;
    const std::int64_t xa = std::max<std::int64_t>(x0, 0);
    const std::int64_t xb = std::min<std::int64_t>(std::int64_t{x0} + w, canvas_w);  // exclusive
    const std::int64_t ya = std::max<std::int64_t>(y0, 0);
    const std::int64_t yb = std::min<std::int64_t>(std::int64_t{y0} + h, canvas_h);
    if (xa >= xb || ya >= yb) return;
    const std::int64_t first = xa * canvas_h, end = xb * canvas_h;  // pixels that can matter
    std::int64_t pos = 0;
    for (index_t j = 0; j < m && pos < end; ++j) {
        const std::int64_t s = pos, e = pos + counts[j];
        pos = e;
        if (!(j & 1) || e <= first || s == e) continue;
        const std::int64_t c0 = s / canvas_h, c1 = (e - 1) / canvas_h;
        const std::int64_t ca = std::max(c0, xa), cb = std::min(c1, xb - 1);
        for (std::int64_t c = ca; c <= cb; ++c) {
            const std::int64_t base = c * canvas_h;
            const std::int64_t r0 = std::max(c == c0 ? s - base : 0, ya);
            const std::int64_t r1 = std::min(c == c1 ? e - base : canvas_h, yb);
            std::uint8_t* d = out + (r0 - y0) * std::int64_t{w} + (c - x0);
            for (std::int64_t r = r0; r < r1; ++r, d += w) *d = 1;
        }
    }
}

void runs_tight_region(const std::int64_t* counts, index_t m, index_t canvas_h, index_t canvas_w,
                       std::int32_t* region) {
    check_canvas(canvas_h, canvas_w);
    check_counts(counts, m, canvas_h * canvas_w);
    region[0] = region[1] = region[2] = region[3] = 0;
    if (canvas_h == 0 || canvas_w == 0) return;
    std::int64_t xs = canvas_w, xe = -1, ys = canvas_h, ye = -1, pos = 0;
    for (index_t j = 0; j < m; ++j) {
        const std::int64_t s = pos, e = pos + counts[j];
        pos = e;
        if (!(j & 1) || s == e) continue;
        const std::int64_t c0 = s / canvas_h, c1 = (e - 1) / canvas_h;
        xs = std::min(xs, c0);
        xe = std::max(xe, c1);
        if (c0 == c1) {
            ys = std::min(ys, s - c0 * canvas_h);
            ye = std::max(ye, e - 1 - c0 * canvas_h);
        } else {  // a run crossing a column boundary covers row 0 and the last row
            ys = 0;
            ye = canvas_h - 1;
        }
    }
    if (xe < 0) return;
    region[0] = checked_int32(xs, "RLE mask region x0");
    region[1] = checked_int32(ys, "RLE mask region y0");
    region[2] = checked_int32(xe - xs + 1, "RLE mask region width");
    region[3] = checked_int32(ye - ys + 1, "RLE mask region height");
}

void coco_counts_to_string(const std::int64_t* counts, index_t m, std::string& out) {
    for (index_t i = 0; i < m; ++i) {
        std::int64_t x = counts[i];
        if (i > 2) x -= counts[i - 2];  // pycocotools deltas from the fourth count on
        for (bool more = true; more;) {
            int c = static_cast<int>(x & 0x1f);
            x = (x - c) / 32;  // floor division: an arithmetic shift, also for negative x
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            out.push_back(static_cast<char>(c + 48));
        }
    }
}

std::vector<std::int64_t> coco_counts_from_string(const char* s, std::size_t len) {
    std::vector<std::int64_t> counts;
    counts.reserve(len / 2 + 1);
    std::size_t p = 0;
    while (p < len) {
        std::uint64_t x = 0;
        int k = 0;
        for (bool more = true; more; ++k) {
            if (p >= len)
                fail("RLE counts string: truncated, it ends inside count " +
                     std::to_string(counts.size()) + " at character " + std::to_string(p));
            const int c = static_cast<unsigned char>(s[p]) - 48;
            if (c < 0 || c > 63)
                fail(std::string("RLE counts string: expected characters '0'..'o', got '") +
                     s[p] + "' at position " + std::to_string(p));
            if (k >= 12)
                fail("RLE counts string: count " + std::to_string(counts.size()) +
                     " has more than 12 characters (value over 2^60)");
            x |= static_cast<std::uint64_t>(c & 0x1f) << (5 * k);
            more = (c & 0x20) != 0;
            ++p;
            if (!more && (c & 0x10)) x |= ~std::uint64_t{0} << (5 * (k + 1));  // sign-extend
        }
        auto v = static_cast<std::int64_t>(x);
        if (counts.size() > 2) v += counts[counts.size() - 2];
        if (v > (std::int64_t{1} << 61) || v < -(std::int64_t{1} << 61))
            fail("RLE counts string: count " + std::to_string(counts.size()) +
                 " is out of range (" + std::to_string(v) + ")");
        counts.push_back(v);
    }
    return counts;
}

RunsCSR encode_runs_all(const BoxMasksView& m, index_t canvas_h, index_t canvas_w,
                        int num_threads) {
    check_canvas(canvas_h, canvas_w);
    std::vector<std::vector<std::int64_t>> per(static_cast<std::size_t>(m.n));
    parallel_for(0, m.n, threads_for(num_threads, m.offsets[m.n]), grain_for(m.n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = m.regions + 4 * i;
            encode_runs(m.data + m.offsets[i], r[0], r[1], r[2], r[3], canvas_h, canvas_w, per[i]);
        }
    });
    RunsCSR out;
    out.offsets.resize(static_cast<std::size_t>(m.n + 1));
    for (index_t i = 0; i < m.n; ++i)
        out.offsets[i + 1] = out.offsets[i] + static_cast<std::int64_t>(per[i].size());
    out.counts.resize(static_cast<std::size_t>(out.offsets[m.n]));
    for (index_t i = 0; i < m.n; ++i)
        std::copy(per[i].begin(), per[i].end(), out.counts.begin() + out.offsets[i]);
    return out;
}

RunsCSR encode_local_runs_all(const BoxMasksView& m, int num_threads) {
    std::vector<std::vector<std::int64_t>> per(static_cast<std::size_t>(m.n));
    parallel_for(0, m.n, threads_for(num_threads, m.offsets[m.n]), grain_for(m.n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = m.regions + 4 * i;
            encode_runs(m.data + m.offsets[i], 0, 0, r[2], r[3], r[3], r[2], per[i]);
        }
    });
    RunsCSR out;
    out.offsets.resize(static_cast<std::size_t>(m.n + 1));
    for (index_t i = 0; i < m.n; ++i)
        out.offsets[i + 1] = out.offsets[i] + static_cast<std::int64_t>(per[i].size());
    out.counts.resize(static_cast<std::size_t>(out.offsets[m.n]));
    for (index_t i = 0; i < m.n; ++i)
        std::copy(per[i].begin(), per[i].end(), out.counts.begin() + out.offsets[i]);
    return out;
}

std::vector<std::string> encode_coco_strings(const BoxMasksView& m, index_t canvas_h,
                                             index_t canvas_w, int num_threads) {
    check_canvas(canvas_h, canvas_w);
    std::vector<std::string> out(static_cast<std::size_t>(m.n));
    parallel_for(0, m.n, threads_for(num_threads, m.offsets[m.n]), grain_for(m.n), [&](index_t lo, index_t hi) {
        std::vector<std::int64_t> runs;
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = m.regions + 4 * i;
            runs.clear();
            encode_runs(m.data + m.offsets[i], r[0], r[1], r[2], r[3], canvas_h, canvas_w, runs);
            coco_counts_to_string(runs.data(), static_cast<index_t>(runs.size()), out[i]);
        }
    });
    return out;
}

BoxMasks decode_runs_all(const std::vector<RunsRef>& runs, index_t canvas_h, index_t canvas_w,
                         const std::int32_t* regions, int num_threads) {
    check_canvas(canvas_h, canvas_w);
    const index_t n = static_cast<index_t>(runs.size());
    index_t total_runs = 0;
    for (const auto& r : runs) total_runs += r.m;
    for (index_t i = 0; i < n; ++i) {
        try {
            check_counts(runs[i].counts, runs[i].m, canvas_h * canvas_w);
        } catch (const InvalidArgument& e) {
            fail("mask " + std::to_string(i) + ": " + e.what());
        }
    }
    BoxMasks out;
    out.regions.resize(static_cast<std::size_t>(4 * n));
    if (regions) {
        std::copy(regions, regions + 4 * n, out.regions.begin());
    } else {
        parallel_for(0, n, threads_for(num_threads, total_runs), grain_for(n), [&](index_t lo, index_t hi) {
            for (index_t i = lo; i < hi; ++i)
                runs_tight_region(runs[i].counts, runs[i].m, canvas_h, canvas_w,
                                  out.regions.data() + 4 * i);
        });
    }
    out.offsets.resize(static_cast<std::size_t>(n + 1));
    const index_t total = region_offsets(out.regions.data(), n, out.offsets.data());
    out.data.resize(static_cast<std::size_t>(total));
    parallel_for(0, n, threads_for(num_threads, total + total_runs), grain_for(n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = out.regions.data() + 4 * i;
            decode_runs(runs[i].counts, runs[i].m, canvas_h, canvas_w, r[0], r[1], r[2], r[3],
                        out.data.data() + out.offsets[i]);
        }
    });
    return out;
}

BoxMasks decode_local_runs_all(const std::vector<RunsRef>& runs, const std::int32_t* regions,
                               int num_threads) {
    const index_t n = static_cast<index_t>(runs.size());
    BoxMasks out;
    out.regions.assign(regions, regions + 4 * n);
    out.offsets.resize(static_cast<std::size_t>(n + 1));
    const index_t total = region_offsets(regions, n, out.offsets.data());
    for (index_t i = 0; i < n; ++i) {
        const std::int32_t* r = regions + 4 * i;
        try {
            check_counts(runs[i].counts, runs[i].m, std::int64_t{r[2]} * r[3]);
        } catch (const InvalidArgument& e) {
            fail("mask " + std::to_string(i) + ": " + e.what());
        }
    }
    out.data.resize(static_cast<std::size_t>(total));
    parallel_for(0, n, threads_for(num_threads, total), grain_for(n), [&](index_t lo, index_t hi) {
        for (index_t i = lo; i < hi; ++i) {
            const std::int32_t* r = regions + 4 * i;
            decode_runs(runs[i].counts, runs[i].m, r[3], r[2], 0, 0, r[2], r[3],
                        out.data.data() + out.offsets[i]);
        }
    });
    return out;
}

}  // namespace fissure
