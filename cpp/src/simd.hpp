// SPDX-License-Identifier: Apache-2.0
// Internal: the one set of target attributes for the per-ISA kernels (knn_x86.cpp,
// coreset_x86.cpp, specular_x86.cpp). Those translation units are compiled for the portable
// baseline; each kernel function carries one of the attributes below and runs only when
// dispatch (fissure/dispatch.hpp) picked its level after checking the CPU.
#pragma once

#include "fissure/dispatch.hpp"

// x86 kernels are compiled with GCC and Clang (function target attributes); elsewhere each
// family's x86 kernel sets are nullptr.
#if (defined(__x86_64__) || defined(_M_X64) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define FISSURE_X86_KERNELS 1
#include <immintrin.h>

#define FISSURE_TARGET_SSE41 __attribute__((target("sse4.1")))
#define FISSURE_TARGET_AVX2 __attribute__((target("avx2")))
#define FISSURE_TARGET_AVX2_F16C __attribute__((target("avx2,f16c")))
#define FISSURE_TARGET_AVX2_FMA __attribute__((target("avx2,fma,f16c")))
#define FISSURE_TARGET_AVX512BW __attribute__((target("avx512f,avx512bw")))
#define FISSURE_TARGET_AVX512_F16C __attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
#define FISSURE_TARGET_AVX512_FMA __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
#define FISSURE_TARGET_AVX512_BF16 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma,f16c")))

// GCC 12 reports its own _mm512_undefined_ps() inside the AVX-512 conversion and extract
// intrinsics as "may be used uninitialized" (a false positive in the compiler's headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#endif

#include <cstdint>

namespace fissure::simd {

// Shuffle controls (pshufb) that gather channel c of 16 interleaved 3-channel pixels (48
// bytes in three 16-byte blocks): row 3c + j, byte i takes byte 3i + c - 16j of block j when
// that lies in the block, else 0 (-128 = 0x80). OR the three shuffled blocks for plane c.
struct PlaneShuffles {
    alignas(16) std::int8_t m[9][16];
};
constexpr PlaneShuffles make_plane_shuffles() {
    PlaneShuffles t{};
    for (int c = 0; c < 3; ++c)
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 16; ++i) {
                const int b = 3 * i + c - 16 * j;
                t.m[3 * c + j][i] = static_cast<std::int8_t>(b >= 0 && b < 16 ? b : -128);
            }
    return t;
}
inline constexpr PlaneShuffles k_plane_shuffles = make_plane_shuffles();

}  // namespace fissure::simd
