// SPDX-License-Identifier: Apache-2.0
// Private helpers shared by the masks_convert*.cpp files.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#if defined(_MSC_VER)
#include <intrin.h>
#endif

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

/// Index of the first byte of p[0, n) whose truth differs from `cur` (n when none does).
/// Bytes must be 0 or 1. Compares 8 bytes per step on little-endian machines.
inline index_t find_change(const std::uint8_t* p, index_t n, bool cur) {
    index_t i = 0;
#if (defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) || defined(_MSC_VER)
    const std::uint64_t pattern = cur ? 0x0101010101010101ull : 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, p + i, 8);
        word ^= pattern;
        if (word) {
#if defined(_MSC_VER)
            unsigned long bit;
            _BitScanForward64(&bit, word);
            return i + static_cast<index_t>(bit >> 3);
#else
            return i + (__builtin_ctzll(word) >> 3);
#endif
        }
    }
#endif
    for (; i < n; ++i)
        if ((p[i] != 0) != cur) return i;
    return n;
}

}  // namespace fissure::detail
