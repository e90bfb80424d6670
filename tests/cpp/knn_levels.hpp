// SPDX-License-Identifier: Apache-2.0
// The SIMD paths of the kNN / k-center kernels this CPU can run, and a guard that forces one
// for a scope (the tests of every path share them).
#pragma once

#include <vector>

#include "fissure/dispatch.hpp"
#include "fissure/knn.hpp"

namespace knn_test {

inline std::vector<int> levels() {
    std::vector<int> out{static_cast<int>(fissure::SimdLevel::scalar)};
    const auto cpu = static_cast<int>(fissure::simd_level());
    if (cpu >= static_cast<int>(fissure::SimdLevel::avx2) && cpu < 10)
        out.push_back(static_cast<int>(fissure::SimdLevel::avx2));
    if (cpu >= static_cast<int>(fissure::SimdLevel::avx512) && cpu < 10)
        out.push_back(static_cast<int>(fissure::SimdLevel::avx512));
    return out;
}

struct LevelGuard {
    explicit LevelGuard(int level) { fissure::force_level(fissure::Family::knn, level); }
    ~LevelGuard() { fissure::force_level(fissure::Family::knn, -1); }
    LevelGuard(const LevelGuard&) = delete;
    LevelGuard& operator=(const LevelGuard&) = delete;
};

}  // namespace knn_test
