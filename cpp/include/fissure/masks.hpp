// SPDX-License-Identifier: Apache-2.0
/// @file masks.hpp
/// @brief Box-local instance masks (see BoxMasksView in common.hpp): each detection's mask is
///        a uint8 bitmap over its own integer pixel region, never a full-image array.
///        Merging ORs members' bitmaps over the union region; overlap metrics count pixels
///        only where two regions intersect.
#pragma once

#include <cstdint>
#include <vector>

#include "fissure/common.hpp"

namespace fissure {

/// Owning storage with the same layout as BoxMasksView.
struct BoxMasks {
    std::vector<std::uint8_t> data;
    std::vector<std::int64_t> offsets{0};
    std::vector<std::int32_t> regions;  ///< 4 per mask: x0, y0, w, h
    index_t size() const { return static_cast<index_t>(offsets.size()) - 1; }
    BoxMasksView view() const {
        return BoxMasksView{data.data(), offsets.data(), regions.data(), size()};
    }
};

/// Number of set pixels of mask i.
std::int64_t mask_area(const BoxMasksView& m, index_t i);

/// Set pixels shared by masks i and j (0 when their regions do not intersect).
std::int64_t mask_intersection(const BoxMasksView& m, index_t i, index_t j);

/// Merges groups of masks: output mask g covers the union of its members' regions and is
/// the OR of their bitmaps. Groups are CSR: members of g are
/// members[group_offsets[g] .. group_offsets[g + 1]). Runs groups in parallel.
BoxMasks merge_masks(const BoxMasksView& m, const index_t* group_offsets, const index_t* members,
                     index_t n_groups, int num_threads);

}  // namespace fissure
