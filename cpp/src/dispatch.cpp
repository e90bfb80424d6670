// SPDX-License-Identifier: Apache-2.0
#include "fissure/dispatch.hpp"

#include <cstdlib>
#include <cstring>

namespace fissure {

SimdLevel cpu_simd_level() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#if defined(__GNUC__) || defined(__clang__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return SimdLevel::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::avx2;
    if (__builtin_cpu_supports("sse4.1")) return SimdLevel::sse4;
#endif
    return SimdLevel::scalar;
#elif defined(__aarch64__) || defined(_M_ARM64)
    return SimdLevel::neon;
#else
    return SimdLevel::scalar;
#endif
}

static SimdLevel parse_level(const char* s, SimdLevel fallback) {
    if (std::strcmp(s, "scalar") == 0) return SimdLevel::scalar;
    if (std::strcmp(s, "sse4") == 0) return SimdLevel::sse4;
    if (std::strcmp(s, "avx2") == 0) return SimdLevel::avx2;
    if (std::strcmp(s, "avx512") == 0) return SimdLevel::avx512;
    if (std::strcmp(s, "neon") == 0) return SimdLevel::neon;
    return fallback;
}

SimdLevel simd_level() {
    static const SimdLevel level = [] {
        const SimdLevel cpu = cpu_simd_level();
        const char* env = std::getenv("FISSURE_SIMD");
        if (!env || !*env) return cpu;
        const SimdLevel want = parse_level(env, cpu);
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

}  // namespace fissure
