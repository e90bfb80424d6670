// SPDX-License-Identifier: Apache-2.0
/// @file merge.hpp
/// @brief Overlap merging of detections: NMS, greedy NMM and transitive NMM, equal to
///        SAHI 0.12.8's postprocess (sahi/postprocess: combine.py, _numpy_backend.py,
///        _sparse_backend.py, utils.py) box for box by default, with a spatial index instead
///        of SAHI's N x N matrix or R-tree queries.
///
/// Semantics (the defaults):
/// - Processing order: score descending, ties by x1, y1, x2, y2 ascending, then by index
///   (numpy's stable `lexsort((y2, x2, y1, x1, -score))`). An explicit permutation may
///   replace it (MergeOptions::order).
/// - Metric, computed in float32 with numpy's operation order (SAHI's arrays are float32):
///   `area = (x2 - x1) * (y2 - y1)`, `inter = max(0, min x2 - max x1) * max(0, min y2 - max y1)`,
///   IOU = `inter / ((a_i + a_j) - inter)`, IOS = `inter / min(a_i, a_j)`, 0 when the
///   denominator is not positive. A pair matches when `metric >= float32(threshold)`
///   (numpy compares a float32 array with a float32-rounded Python float). MatchRule::GT
///   matches when `double(metric) > threshold`, as supervision and torchvision compare
///   their float32 metric. When the rule is GE and float32(threshold) <= 0 every pair
///   matches and the answer follows from the order alone (SAHI's `*_match_all`).
/// - Per class unless class_agnostic: classes ascending, each class on its own.
/// - Greedy NMM and NMM then fold each group the way SAHI's `_apply_merge` does: the
///   candidates, in group order, are re-checked against the *growing* merged box in float64
///   (SAHI's `has_match` on Python floats); a candidate that fails is dropped (Recheck::Sahi),
///   kept as its own detection (Recheck::Keep), or never checked (Recheck::Off). Merging takes
///   the union box, the max score, and the class of the higher score (on a tie, the
///   candidate's: SAHI's `merge_object_prediction_pair`).
///
/// Complexity: O(N log N) to sort plus, for every box that queries the index (the survivors
/// for NMS and greedy NMM, every box for NMM), the boxes still live in the grid cells its box
/// touches. Suppressed or claimed boxes leave the index lazily, so crowded inputs shrink the
/// index as they are processed. Memory is linear in N; no pair lists are ever stored.
#pragma once

#include <cstdint>
#include <vector>

#include "fissure/common.hpp"
#include "fissure/masks.hpp"

namespace fissure {

enum class OverlapMetric : int {
    IOU = 0,  ///< intersection over union
    IOS = 1,  ///< intersection over the smaller area
};

enum class MatchRule : int {
    GE = 0,  ///< match when metric >= threshold (SAHI)
    GT = 1,  ///< match when double(metric) > threshold (supervision's NMS, torchvision)
};

enum class Recheck : int {
    Sahi = 0,    ///< SAHI 0.12.8: re-check with the match rule; failing candidates are dropped
    Strict = 1,  ///< older SAHI releases: re-check with a strict `>`; failing ones dropped
    Keep = 2,    ///< re-check with the match rule; failing candidates become own detections
    Off = 3,     ///< no re-check: every selected candidate is merged
};

struct MergeOptions {
    OverlapMetric metric = OverlapMetric::IOU;
    double threshold = 0.5;
    MatchRule match = MatchRule::GE;
    bool class_agnostic = false;
    Recheck recheck = Recheck::Sahi;  ///< greedy_nmm and nmm only
    /// Optional processing order: a permutation of [0, n) replacing the score sort.
    const index_t* order = nullptr;
    /// Optional box-local masks, one per box. Used for the metric when mask_metric is set,
    /// and merged (raster OR over the union region) by greedy_nmm / nmm.
    const BoxMasksView* masks = nullptr;
    /// Compute the metric on the masks (pixel counts; IOU or IOS in float64, 0 when the
    /// denominator is 0) instead of on the boxes. Candidates come from the index over the
    /// mask regions.
    bool mask_metric = false;
    int num_threads = -1;  ///< -1 or 0: all cores; partitions (classes) run in parallel
};

/// Result of greedy_nmm / nmm: M detections.
struct MergeOutput {
    std::vector<float> boxes;              ///< 4 * M, xyxy union of the merged members
    std::vector<float> scores;             ///< M, max score of the merged members
    std::vector<index_t> class_ids;        ///< M, class of the higher score (tie: later member)
    std::vector<index_t> keep;             ///< M, the keeper's input index
    std::vector<index_t> group_offsets{0}; ///< M + 1
    std::vector<index_t> members;          ///< keeper first, then merged candidates in merge order
    std::vector<index_t> dropped;          ///< candidates the re-check removed (Sahi / Strict)
    BoxMasks masks;                        ///< merged masks when options.masks was given
    bool has_masks = false;
    index_t size() const { return static_cast<index_t>(keep.size()); }
};

/// Non-maximum suppression. Returns kept input indices in SAHI's output order: with the
/// score order, score descending (stable over classes ascending, then processing order);
/// with an explicit order, the kept indices in that order.
/// @param class_ids n class ids, or nullptr for one class.
/// Complexity: see the file comment. Throws InvalidArgument for bad arguments.
std::vector<index_t> nms(const BoxesView& boxes, const float* scores, const index_t* class_ids,
                         const MergeOptions& options);

/// Greedy non-maximum merging (SAHI's GREEDYNMM): each unsuppressed box in order takes every
/// later unsuppressed box that matches it (metric against the keeper's own box), then the
/// group is folded with the re-check. Groups: classes ascending, then keeper order.
MergeOutput greedy_nmm(const BoxesView& boxes, const float* scores, const index_t* class_ids,
                       const MergeOptions& options);

/// Transitive non-maximum merging (SAHI's NMM): walking the boxes in order, an unclaimed box
/// becomes a keeper; every box (keeper or claimed) claims, for its keeper, the unclaimed
/// boxes it matches and dominates (lower score, or equal score and coordinates
/// lexicographically <= its own), in ascending index order. Then the re-check fold.
MergeOutput nmm(const BoxesView& boxes, const float* scores, const index_t* class_ids,
                const MergeOptions& options);

/// float32 area `(x2 - x1) * (y2 - y1)`, as numpy computes SAHI's `areas`.
inline float box_area32(const float* b) { return (b[2] - b[0]) * (b[3] - b[1]); }

/// The float32 box metric exactly as SAHI's numpy backend computes it (operation order
/// included; the core is compiled with -ffp-contract=off so nothing is fused). O(1).
inline float box_metric32(const float* a, float area_a, const float* b, float area_b,
                          OverlapMetric metric) {
    const float ix1 = a[0] > b[0] ? a[0] : b[0];
    const float iy1 = a[1] > b[1] ? a[1] : b[1];
    const float ix2 = a[2] < b[2] ? a[2] : b[2];
    const float iy2 = a[3] < b[3] ? a[3] : b[3];
    const float dw = ix2 - ix1, dh = iy2 - iy1;
    const float iw = dw > 0.0f ? dw : 0.0f;
    const float ih = dh > 0.0f ? dh : 0.0f;
    const float inter = iw * ih;
    float denom;
    if (metric == OverlapMetric::IOU) {
        const float s = area_a + area_b;
        denom = s - inter;
    } else {
        denom = area_a < area_b ? area_a : area_b;
    }
    return denom > 0.0f ? inter / denom : 0.0f;
}

}  // namespace fissure
