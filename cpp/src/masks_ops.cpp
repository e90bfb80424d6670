// SPDX-License-Identifier: Apache-2.0
// Pixel counts and raster OR over box-local masks (masks.hpp). Any non-zero byte is a set
// pixel. Merging never builds a full-image array: each output covers its group's region.
#include <algorithm>
#include <cstdint>

#include "fissure/masks.hpp"
#include "fissure/parallel.hpp"

namespace fissure {

std::int64_t mask_area(const BoxMasksView& m, index_t i) {
    const std::int64_t b = m.offsets[i], e = m.offsets[i + 1];
    const std::uint8_t* d = m.data;
    std::int64_t s = 0;
    for (std::int64_t k = b; k < e; ++k) s += d[k] != 0;
    return s;
}

std::int64_t mask_intersection(const BoxMasksView& m, index_t i, index_t j) {
    const std::int32_t* A = m.regions + 4 * i;
    const std::int32_t* B = m.regions + 4 * j;
    const std::int64_t ax0 = A[0], ay0 = A[1], aw = A[2], ah = A[3];
    const std::int64_t bx0 = B[0], by0 = B[1], bw = B[2], bh = B[3];
    const std::int64_t x0 = std::max(ax0, bx0), x1 = std::min(ax0 + aw, bx0 + bw);
    const std::int64_t y0 = std::max(ay0, by0), y1 = std::min(ay0 + ah, by0 + bh);
    if (x0 >= x1 || y0 >= y1) return 0;
    const std::uint8_t* da = m.data + m.offsets[i];
    const std::uint8_t* db = m.data + m.offsets[j];
    const std::int64_t w = x1 - x0;
    std::int64_t s = 0;
    for (std::int64_t y = y0; y < y1; ++y) {
        const std::uint8_t* pa = da + (y - ay0) * aw + (x0 - ax0);
        const std::uint8_t* pb = db + (y - by0) * bw + (x0 - bx0);
        std::int64_t row = 0;
        for (std::int64_t x = 0; x < w; ++x) row += (pa[x] != 0) & (pb[x] != 0);
        s += row;
    }
    return s;
}

BoxMasks merge_masks(const BoxMasksView& m, const index_t* group_offsets, const index_t* members,
                     index_t n_groups, int num_threads) {
    BoxMasks out;
    out.regions.resize(static_cast<size_t>(4 * n_groups));
    out.offsets.assign(static_cast<size_t>(n_groups) + 1, 0);
    // Pass 1: each group's region, the bounding rectangle of its members' regions.
    for (index_t g = 0; g < n_groups; ++g) {
        std::int64_t ax = 0, ay = 0, bx = 0, by = 0;
        for (index_t k = group_offsets[g]; k < group_offsets[g + 1]; ++k) {
            const std::int32_t* R = m.regions + 4 * members[k];
            const std::int64_t rx0 = R[0], ry0 = R[1], rx1 = rx0 + R[2], ry1 = ry0 + R[3];
            if (k == group_offsets[g]) { ax = rx0; ay = ry0; bx = rx1; by = ry1; }
            else { ax = std::min(ax, rx0); ay = std::min(ay, ry0); bx = std::max(bx, rx1); by = std::max(by, ry1); }
        }
        if (group_offsets[g] == group_offsets[g + 1]) fail("merge_masks: empty group");
        if (bx - ax > INT32_MAX || by - ay > INT32_MAX) fail("merge_masks: merged region too large");
        std::int32_t* O = out.regions.data() + 4 * g;
        O[0] = static_cast<std::int32_t>(ax);
        O[1] = static_cast<std::int32_t>(ay);
        O[2] = static_cast<std::int32_t>(bx - ax);
        O[3] = static_cast<std::int32_t>(by - ay);
        out.offsets[g + 1] = out.offsets[g] + (bx - ax) * (by - ay);
    }
    out.data.assign(static_cast<size_t>(out.offsets[n_groups]), 0);
    // Pass 2: OR the members in, groups in parallel (disjoint outputs).
    parallel_for(0, n_groups, num_threads, 64, [&](index_t lo, index_t hi) {
        for (index_t g = lo; g < hi; ++g) {
            const std::int32_t* O = out.regions.data() + 4 * g;
            std::uint8_t* dst = out.data.data() + out.offsets[g];
            for (index_t k = group_offsets[g]; k < group_offsets[g + 1]; ++k) {
                const index_t i = members[k];
                const std::int32_t* R = m.regions + 4 * i;
                const std::uint8_t* src = m.data + m.offsets[i];
                for (std::int64_t y = 0; y < R[3]; ++y) {
                    const std::uint8_t* a = src + y * static_cast<std::int64_t>(R[2]);
                    std::uint8_t* b = dst + (static_cast<std::int64_t>(R[1]) - O[1] + y) * O[2] +
                                      (static_cast<std::int64_t>(R[0]) - O[0]);
                    for (std::int64_t x = 0; x < R[2]; ++x) b[x] |= static_cast<std::uint8_t>(a[x] != 0);
                }
            }
        }
    });
    return out;
}

}  // namespace fissure
