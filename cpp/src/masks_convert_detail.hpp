// SPDX-License-Identifier: Apache-2.0
// Private helpers shared by the masks_convert*.cpp files.
#pragma once

#include <algorithm>

#include "fissure/common.hpp"
#include "fissure/parallel.hpp"

namespace fissure::detail {

/// One thread for small jobs (waking the pool costs more than ~64 KiB of byte work).
inline int threads_for(int num_threads, index_t work) {
    return work < (index_t{1} << 16) ? 1 : num_threads;
}

/// Masks per chunk: small chunks keep uneven mask sizes balanced, but not so small that
/// the atomic counter dominates.
inline index_t grain_for(index_t n) {
    return std::clamp<index_t>(n / (8 * index_t{hardware_threads()}), 1, 64);
}

}  // namespace fissure::detail
