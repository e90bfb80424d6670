// SPDX-License-Identifier: Apache-2.0
/// @file dispatch.hpp
/// @brief Runtime CPU feature detection for the hot kernels. The core is compiled for the
///        portable baseline; kernels built for wider ISAs are chosen at run time from this.
///        FISSURE_SIMD=scalar|sse4|avx2|avx512 lowers (never raises) the selected level.
#pragma once

#include <string>

namespace fissure {

enum class SimdLevel : int { scalar = 0, sse4 = 1, avx2 = 2, avx512 = 3, neon = 10 };

/// Best level this CPU supports, capped by FISSURE_SIMD. Computed once.
SimdLevel simd_level();
/// Best level the CPU supports, ignoring FISSURE_SIMD.
SimdLevel cpu_simd_level();
std::string simd_name(SimdLevel level);

}  // namespace fissure
