// SPDX-License-Identifier: Apache-2.0
#include "fissure/dispatch.hpp"

#include <atomic>
#include <cstdlib>

namespace fissure {

namespace {

CpuFeatures probe() {
    CpuFeatures f;
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#if defined(__GNUC__) || defined(__clang__)
    __builtin_cpu_init();
    f.fma = __builtin_cpu_supports("fma");
    f.f16c = __builtin_cpu_supports("f16c");
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl");
    if (avx512)
        f.level = SimdLevel::avx512;
    else if (__builtin_cpu_supports("avx2") && f.fma)
        f.level = SimdLevel::avx2;
    else if (__builtin_cpu_supports("sse4.1"))
        f.level = SimdLevel::sse4;
    f.avx512_bf16 = __builtin_cpu_supports("avx512bf16") && avx512 && f.fma && f.f16c;
#endif
#elif defined(__aarch64__) || defined(_M_ARM64)
    f.level = SimdLevel::neon;
#endif
    return f;
}

// The test hooks' settings: one slot per family's level cap, then one per route.
constexpr int kFamilies = 3;
constexpr int kRoutes = 1;
std::atomic<int> g_forced[kFamilies + kRoutes] = {{-1}, {-1}, {-1}, {-1}};

}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = probe();
    return f;
}

SimdLevel cpu_simd_level() { return cpu_features().level; }

bool parse_simd_level(const std::string& name, SimdLevel& level) {
    for (SimdLevel l : {SimdLevel::scalar, SimdLevel::sse4, SimdLevel::avx2, SimdLevel::avx512,
                        SimdLevel::neon}) {
        if (name == simd_name(l)) {
            level = l;
            return true;
        }
    }
    return false;
}

SimdLevel simd_level() {
    static const SimdLevel level = [] {
        const SimdLevel cpu = cpu_simd_level();
        const char* env = std::getenv("FISSURE_SIMD");
        if (!env || !*env) return cpu;
        SimdLevel want = cpu;
        parse_simd_level(env, want);
        if (cpu == SimdLevel::neon) return want == SimdLevel::scalar ? want : cpu;
        if (want == SimdLevel::neon) return cpu;
        return static_cast<int>(want) < static_cast<int>(cpu) ? want : cpu;
    }();
    return level;
}

std::string simd_name(SimdLevel level) {
    switch (level) {
        case SimdLevel::scalar: return "scalar";
        case SimdLevel::sse4: return "sse4";
        case SimdLevel::avx2: return "avx2";
        case SimdLevel::avx512: return "avx512";
        case SimdLevel::neon: return "neon";
    }
    return "scalar";
}

bool has_kernels(Family f, SimdLevel level) {
    switch (level) {
        case SimdLevel::scalar: return true;
        case SimdLevel::sse4: return f == Family::specular;
        case SimdLevel::avx2: return true;
        case SimdLevel::avx512: return f != Family::preprocess;
        case SimdLevel::neon: return false;
    }
    return false;
}

SimdLevel effective_level(Family f) {
    SimdLevel level = simd_level();
    if (level == SimdLevel::neon) return SimdLevel::scalar;  // no NEON kernels (yet)
    // The x86 kNN / k-center kernels also need FMA and F16C (every AVX2 CPU has them).
    if (f == Family::knn && level >= SimdLevel::avx2 &&
        !(cpu_features().fma && cpu_features().f16c))
        return SimdLevel::scalar;
    // The preprocessing kernels convert to float16 with F16C.
    if (f == Family::preprocess && level >= SimdLevel::avx2 && !cpu_features().f16c)
        return SimdLevel::scalar;
    const int cap = g_forced[static_cast<int>(f)].load(std::memory_order_relaxed);
    if (cap >= 0 && cap < static_cast<int>(level)) level = static_cast<SimdLevel>(cap);
    while (level != SimdLevel::scalar && !has_kernels(f, level))
        level = static_cast<SimdLevel>(static_cast<int>(level) - 1);
    return level;
}

int force_level(Family f, int level) {
    return g_forced[static_cast<int>(f)].exchange(level < 0 ? -1 : level);
}

int force_route(Route r, int mode) {
    return g_forced[kFamilies + static_cast<int>(r)].exchange(mode < 0 ? -1 : (mode > 0 ? 1 : 0));
}

int forced_route(Route r) {
    return g_forced[kFamilies + static_cast<int>(r)].load(std::memory_order_relaxed);
}

}  // namespace fissure
