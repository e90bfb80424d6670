// SPDX-License-Identifier: Apache-2.0
/// @file embed.hpp
/// @brief PatchCore's patch embedding from backbone feature maps, as anomalib computes it:
///        per layer a 3x3 average pool (stride 1, zero padding counted: every window divides
///        by 9, torch's AvgPool2d(3, 1, 1) with count_include_pad=True), then bilinear
///        resampling of each map to the target layer's grid (torch's F.interpolate(...,
///        mode="bilinear", align_corners=False)), then channel concatenation, written as
///        (B, H, W, sum C) so that patches are rows.
#pragma once

#include <vector>

#include "fissure/common.hpp"

namespace fissure {

/// One backbone output, (B, C, H, W) float32, C-contiguous.
struct FeatureMapView {
    const float* data = nullptr;
    index_t batch = 0;
    index_t channels = 0;
    index_t height = 0;
    index_t width = 0;
};

/// Writes B x out_h x out_w x sum(C) floats to `out`. `pool` is the average-pool window (an
/// odd number >= 1; 1 = no pooling). Every layer must have the same batch. Throws
/// InvalidArgument for empty or mismatched inputs.
void embed_patches(const std::vector<FeatureMapView>& layers, index_t out_h, index_t out_w,
                   int pool, float* out, int num_threads = -1);

}  // namespace fissure
