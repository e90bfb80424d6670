// SPDX-License-Identifier: Apache-2.0
/// @file merge_grid.hpp
/// @brief The spatial index behind the merge algorithms: a multi-level uniform grid over
///        axis-aligned rectangles with lazy deletion.
///
/// Every rectangle is stored once, in the cell holding its top-left corner, on the finest
/// level whose cell side is at least its larger side (cell sides double from level to
/// level; level 0's side is the largest size within 4x the median, so that one level usually
/// holds nearly every rectangle and a query visits few levels). A rectangle r meets a query q only if `q.x1 - w_r <= x1_r <= q.x2` (and likewise
/// in y), so on level L a query visits the cells covering `[q.x1 - wmax_L, q.x2]`, where
/// wmax_L is the widest rectangle stored on L (bounds rounded outward, so no rounding can
/// lose a rectangle). Cell entries carry a float copy of their rectangle (rounded outward)
/// and their own live flag, so a scan reads memory in order and touches nothing else.
///
/// Killed rectangles stay in their cell until a query next walks it, which swaps them out
/// (O(1) each): crowded inputs shrink the index as they are processed. A level whose live
/// count is 0 is skipped; a level where the query would span more cells than the level has
/// non-empty ones walks its non-empty list instead.
///
/// Memory: O(m) entries plus at most ~2.7 m + 48 cells. Build: O(m).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "fissure/common.hpp"

namespace fissure::detail {

/// std::nextafter(v, +inf) / (v, -inf) for doubles and floats, inline (libm's is an out-of-line
/// call with its own special-case ladder; the grid rounds several values per box and query).
template <class T>
inline T next_up(T v) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
    using Bits = std::conditional_t<sizeof(T) == 8, std::uint64_t, std::uint32_t>;
    if (!(v < std::numeric_limits<T>::infinity())) return v;  // +inf, NaN
    if (v == 0) return std::numeric_limits<T>::denorm_min();
    Bits b;
    std::memcpy(&b, &v, sizeof b);
    b = v > 0 ? b + 1 : b - 1;
    std::memcpy(&v, &b, sizeof v);
    return v;
}
template <class T>
inline T next_down(T v) { return -next_up(-v); }

class LiveGrid {
public:
    /// @param rects 4 * m values (double or float) x1, y1, x2, y2 (x2 >= x1, y2 >= y1,
    ///        finite), taken as doubles. Copied: the grid does not keep the pointer. Every
    ///        rectangle starts live.
    template <class T>
    void build(const T* rects, index_t m) {
        if (m >= static_cast<index_t>(UINT32_MAX)) fail("LiveGrid: too many rectangles");
        m_ = m;
        pos_.assign(static_cast<size_t>(m), 0u);
        alive_.assign(static_cast<size_t>(m), 1);
        level_of_.assign(static_cast<size_t>(m), 0);
        levels_.clear();
        entries_.clear();
        cells_.clear();
        if (m == 0) return;

        double minx = rects[0], miny = rects[1], maxx = rects[0], maxy = rects[1];
        std::vector<double> sizes(static_cast<size_t>(m));
        for (index_t r = 0; r < m; ++r) {
            const double R[4] = {static_cast<double>(rects[4 * r]), static_cast<double>(rects[4 * r + 1]),
                                 static_cast<double>(rects[4 * r + 2]), static_cast<double>(rects[4 * r + 3])};
            minx = std::min(minx, R[0]);
            miny = std::min(miny, R[1]);
            maxx = std::max(maxx, R[0]);
            maxy = std::max(maxy, R[1]);
            sizes[static_cast<size_t>(r)] = up(std::max(R[2] - R[0], R[3] - R[1]));  // up is monotone
        }
        minx_ = minx;
        miny_ = miny;
        const double W = maxx - minx, H = maxy - miny;

        // Base cell: the largest size within 4x the median, so that the common size band
        // lives on level 0 alone (a query then visits one level; tile detections usually
        // span a few x in size) and only outliers go to coarser levels...
        std::vector<double> tmp(sizes);
        auto mid = tmp.begin() + static_cast<std::ptrdiff_t>(tmp.size() / 2);
        std::nth_element(tmp.begin(), mid, tmp.end());
        const double band = 4.0 * *mid;
        double c0 = *mid;
        for (auto it = mid; it != tmp.end(); ++it)
            if (*it <= band && *it > c0) c0 = *it;
        if (!(c0 > 0)) c0 = std::max({W, H, 1.0}) / std::sqrt(static_cast<double>(m));
        // Zero-area boxes have a (denormal) size of up(0): a cell that small would make the
        // growth loop below spin forever (denormal * 1.25 rounds back to itself). No cell
        // finer than extent / (2m + 16) is useful, so that is the floor.
        c0 = std::max(c0, std::max(W, H) / (2.0 * static_cast<double>(m) + 16.0));
        if (!(c0 >= std::numeric_limits<double>::min()) || !std::isfinite(c0)) c0 = 1.0;
        // ...but never more than about 2m cells on level 0.
        const double cell_limit = 2.0 * static_cast<double>(m) + 16.0;
        auto cells_at = [&](double c) { return (std::floor(W / c) + 1.0) * (std::floor(H / c) + 1.0); };
        if (cells_at(c0) > cell_limit) {
            c0 = std::max(c0, std::sqrt(W * H / static_cast<double>(m)));
            while (cells_at(c0) > cell_limit) c0 *= 1.25;
        }

        // Level of each rectangle: the finest with size <= cell.
        int n_levels = 1;
        bool catch_all = false;
        for (index_t r = 0; r < m; ++r) {
            const double s = sizes[static_cast<size_t>(r)];
            int L = 0;
            double c = c0;
            while (s > c && L < kMaxLevels - 1) {
                c *= 2.0;
                ++L;
            }
            if (s > c) catch_all = true;  // only possible on the last level
            level_of_[static_cast<size_t>(r)] = static_cast<std::uint8_t>(L);
            n_levels = std::max(n_levels, L + 1);
        }

        levels_.resize(static_cast<size_t>(n_levels));
        index_t total_cells = 0;
        for (int L = 0; L < n_levels; ++L) {
            Level& lv = levels_[static_cast<size_t>(L)];
            lv.cell = std::ldexp(c0, L);
            lv.inv = 1.0 / lv.cell;  // build and query both multiply by it: cells stay consistent
            lv.catch_all = catch_all && L == kMaxLevels - 1;
            if (lv.catch_all) {
                lv.nx = lv.ny = 1;
            } else {
                lv.nx = static_cast<index_t>(std::floor(W / lv.cell)) + 1;
                lv.ny = static_cast<index_t>(std::floor(H / lv.cell)) + 1;
            }
            lv.base = total_cells;
            total_cells += lv.nx * lv.ny;
        }

        // Counting sort of (level, cell) -> entries, rank order inside each cell.
        std::vector<index_t> cell_of(static_cast<size_t>(m));
        std::vector<index_t> count(static_cast<size_t>(total_cells) + 1, 0);
        for (index_t r = 0; r < m; ++r) {
            Level& lv = levels_[level_of_[static_cast<size_t>(r)]];
            const double R[4] = {static_cast<double>(rects[4 * r]), static_cast<double>(rects[4 * r + 1]),
                                 static_cast<double>(rects[4 * r + 2]), static_cast<double>(rects[4 * r + 3])};
            lv.wmax = std::max(lv.wmax, R[2] - R[0]);  // rounded up below
            lv.hmax = std::max(lv.hmax, R[3] - R[1]);
            index_t cid = 0;
            if (!lv.catch_all) {
                const index_t cx = clamp_floor((R[0] - minx_) * lv.inv, lv.nx);
                const index_t cy = clamp_floor((R[1] - miny_) * lv.inv, lv.ny);
                cid = cy * lv.nx + cx;
            }
            cell_of[static_cast<size_t>(r)] = lv.base + cid;
            ++count[static_cast<size_t>(lv.base + cid) + 1];
            ++lv.alive;
        }
        for (auto& lv : levels_) {
            lv.wmax = up(lv.wmax);  // max of up(w) == up(max w)
            lv.hmax = up(lv.hmax);
        }
        for (index_t c = 0; c < total_cells; ++c) count[c + 1] += count[c];
        cells_.resize(static_cast<size_t>(total_cells));
        for (index_t c = 0; c < total_cells; ++c) cells_[c] = Cell{count[c], count[c + 1]};
        entries_.resize(static_cast<size_t>(m));
        {
            std::vector<index_t> fill(count.begin(), count.end() - 1);
            for (index_t r = 0; r < m; ++r) {
                const T* R = rects + 4 * r;
                const index_t at = fill[cell_of[r]]++;
                Entry& e = entries_[static_cast<size_t>(at)];
                e.x1 = down_f(R[0]);
                e.y1 = down_f(R[1]);
                e.x2 = up_f(R[2]);
                e.y2 = up_f(R[3]);
                e.r = static_cast<std::uint32_t>(r);
                e.dead = 0;
                pos_[static_cast<size_t>(r)] = static_cast<std::uint32_t>(at);
            }
        }
        for (auto& lv : levels_) {
            const index_t ncell = lv.nx * lv.ny;
            for (index_t c = 0; c < ncell; ++c)
                if (cells_[lv.base + c].end > cells_[lv.base + c].begin) lv.nonempty.push_back(c);
        }
    }

    index_t size() const { return m_; }
    bool alive(index_t r) const { return alive_[static_cast<size_t>(r)] != 0; }

    /// Removes r from every later query (lazily). Idempotent.
    void kill(index_t r) {
        auto& a = alive_[static_cast<size_t>(r)];
        if (a) {
            a = 0;
            entries_[static_cast<size_t>(pos_[static_cast<size_t>(r)])].dead = 1;
            --levels_[level_of_[static_cast<size_t>(r)]].alive;
        }
    }

    /// Calls visit(r, rect) for every live r whose rectangle meets q (closed intervals), once
    /// each, in no particular order (a few extra rectangles within float rounding of q may be
    /// reported too). rect is the stored float copy x1, y1, x2, y2 (exact when the input
    /// rectangle was float-valued). visit may kill any rectangle.
    template <class T, class F>
    void query(const T* qr, F&& visit) {
        const double q[4] = {static_cast<double>(qr[0]), static_cast<double>(qr[1]),
                             static_cast<double>(qr[2]), static_cast<double>(qr[3])};
        // The cell scans compare floats: q rounded outward (exact for float boxes).
        const float qf[4] = {down_f(q[0]), down_f(q[1]), up_f(q[2]), up_f(q[3])};
        for (Level& lv : levels_) {
            if (lv.alive == 0) continue;
            if (lv.catch_all) {
                scan_cell(lv.base, qf, visit);
                continue;
            }
            // Stored corners x1_r lie in [q.x1 - wmax, q.x2]; round that range outward.
            const double kx = next_down(q[0] - lv.wmax);
            const double ky = next_down(q[1] - lv.hmax);
            const double fx2 = (q[2] - minx_) * lv.inv, fy2 = (q[3] - miny_) * lv.inv;
            if (fx2 < 0 || fy2 < 0) continue;
            const index_t x_hi = clamp_floor(fx2, lv.nx), y_hi = clamp_floor(fy2, lv.ny);
            const index_t x_lo = clamp_floor((kx - minx_) * lv.inv, lv.nx);
            const index_t y_lo = clamp_floor((ky - miny_) * lv.inv, lv.ny);
            if (x_lo > x_hi || y_lo > y_hi) continue;
            const index_t span = (x_hi - x_lo + 1) * (y_hi - y_lo + 1);
            if (span <= static_cast<index_t>(lv.nonempty.size())) {
                for (index_t cy = y_lo; cy <= y_hi; ++cy) {
                    const index_t row = lv.base + cy * lv.nx;
                    for (index_t cx = x_lo; cx <= x_hi; ++cx) scan_cell(row + cx, qf, visit);
                }
            } else {
                auto& ne = lv.nonempty;
                for (size_t k = 0; k < ne.size();) {
                    const index_t c = ne[k];
                    const index_t cx = c % lv.nx, cy = c / lv.nx;
                    if (cx >= x_lo && cx <= x_hi && cy >= y_lo && cy <= y_hi)
                        scan_cell(lv.base + c, qf, visit);
                    if (cells_[lv.base + c].end == cells_[lv.base + c].begin) {
                        ne[k] = ne.back();
                        ne.pop_back();
                        continue;
                    }
                    ++k;
                }
            }
        }
    }

private:
    static constexpr int kMaxLevels = 48;
    static constexpr double kInf = std::numeric_limits<double>::infinity();

    struct Entry {
        float x1, y1, x2, y2;  // rounded outward from the double rectangle
        std::uint32_t r;
        std::uint32_t dead;
    };

    struct Cell {
        index_t begin, end;  ///< live entries (and not yet swept dead ones) in [begin, end)
    };

    struct Level {
        double cell = 1, inv = 1;
        double wmax = 0, hmax = 0;  ///< widest / tallest stored here, rounded up
        index_t nx = 1, ny = 1;
        index_t base = 0;  ///< first global cell id
        bool catch_all = false;
        index_t alive = 0;
        std::vector<index_t> nonempty;  ///< local cell ids, may hold cells emptied since
    };

    static double up(double v) { return next_up(v); }
    static float down_f(double v) {
        float f = static_cast<float>(v);
        if (static_cast<double>(f) > v) f = next_down(f);
        return f;
    }
    static float up_f(double v) {
        float f = static_cast<float>(v);
        if (static_cast<double>(f) < v) f = next_up(f);
        return f;
    }

    static index_t clamp_floor(double f, index_t n) {
        if (!(f >= 0)) return 0;
        if (f >= static_cast<double>(n - 1)) return n - 1;
        return static_cast<index_t>(f);
    }

    template <class F>
    void scan_cell(index_t c, const float* q, F& visit) {
        Cell& cell = cells_[static_cast<size_t>(c)];
        index_t b = cell.begin, e = cell.end;
        const float qx1 = q[0], qy1 = q[1], qx2 = q[2], qy2 = q[3];
        while (b < e) {
            Entry& en = entries_[static_cast<size_t>(b)];
            if (en.dead) {
                en = entries_[static_cast<size_t>(--e)];
                pos_[en.r] = static_cast<std::uint32_t>(b);
                continue;
            }
            if (en.x1 <= qx2 && en.x2 >= qx1 && en.y1 <= qy2 && en.y2 >= qy1)
                visit(static_cast<index_t>(en.r), &en.x1);
            ++b;
        }
        cell.end = e;
    }

    index_t m_ = 0;
    double minx_ = 0, miny_ = 0;
    std::vector<std::uint8_t> alive_;
    std::vector<std::uint8_t> level_of_;
    std::vector<Level> levels_;
    std::vector<Cell> cells_;
    std::vector<std::uint32_t> pos_;  ///< where each rectangle's entry is now
    std::vector<Entry> entries_;
};

}  // namespace fissure::detail
