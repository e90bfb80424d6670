// SPDX-License-Identifier: Apache-2.0
/// @file dispatch.hpp
/// @brief Runtime CPU dispatch, in one place: the CPU probe, the FISSURE_SIMD cap, the level
///        each kernel family runs at, and the test hooks that force a level or a route. The
///        core is compiled for the portable baseline; kernels built for wider ISAs (with
///        per-function target attributes, src/simd.hpp) are chosen at run time from this.
///        FISSURE_SIMD=scalar|sse4|avx2|avx512 lowers (never raises) the selected level.
#pragma once

#include <string>

namespace fissure {

enum class SimdLevel : int { scalar = 0, sse4 = 1, avx2 = 2, avx512 = 3, neon = 10 };

/// What this CPU offers, probed once.
struct CpuFeatures {
    /// avx512: AVX-512 F, BW and VL; avx2: AVX2 and FMA; sse4: SSE4.1; neon on AArch64.
    SimdLevel level = SimdLevel::scalar;
    bool fma = false;
    bool f16c = false;
    /// AVX512_BF16 together with AVX-512 F, BW, VL, FMA and F16C.
    bool avx512_bf16 = false;
};
const CpuFeatures& cpu_features();

/// Best level the CPU supports, ignoring FISSURE_SIMD.
SimdLevel cpu_simd_level();
/// Best level this CPU supports, capped by FISSURE_SIMD. Computed once.
SimdLevel simd_level();
std::string simd_name(SimdLevel level);
/// The level named `name` (scalar, sse4, avx2, avx512, neon); false when there is none.
bool parse_simd_level(const std::string& name, SimdLevel& level);

/// The kernel families with per-ISA kernels.
enum class Family : int {
    knn = 0,       ///< kNN and greedy k-center: scalar, avx2, avx512 (x86 ones need FMA, F16C)
    specular = 1,  ///< specular masks: scalar, sse4, avx2, avx512
    preprocess = 2,  ///< tile resize and normalisation: scalar, avx2 (AVX2 + F16C)
};

/// Whether family `f` has kernels for `level`.
bool has_kernels(Family f, SimdLevel level);

/// The level family `f` runs at now: the highest level it has kernels for that is at most
/// simd_level() and at most the level forced with force_level() (no family has NEON kernels:
/// scalar there).
SimdLevel effective_level(Family f);

/// Test hook: caps family `f` at `level` (a SimdLevel as int; -1 removes the cap); returns the
/// previous cap.
int force_level(Family f, int level);

/// Routes that a test hook can force on or off.
enum class Route : int {
    knn_bf16 = 0,  ///< the bfloat16 first pass of kNN searches (knn.hpp)
};
/// Test hook: 1 takes the route wherever the CPU can, 0 never, -1 lets the caller choose;
/// returns the previous mode.
int force_route(Route r, int mode);
/// The mode set by force_route (-1 unless a test set it).
int forced_route(Route r);

}  // namespace fissure
