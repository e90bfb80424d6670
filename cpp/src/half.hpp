// SPDX-License-Identifier: Apache-2.0
// Internal: IEEE binary16 <-> float32 conversions in portable code (the preprocess LUTs, the
// float16 feature rows of kNN and k-center, the k-center projections).
#pragma once

#include <cstdint>
#include <cstring>

namespace fissure {

/// IEEE binary16 -> float32, exact (subnormals, infinities and NaN included).
inline float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1Fu;
    std::uint32_t mant = h & 0x3FFu;
    std::uint32_t bits;
    if (exp == 0x1Fu) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {  // subnormal: normalise
        std::uint32_t e = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mant & 0x3FFu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

/// IEEE binary16 bits of a float, rounded to nearest even (as numpy's astype(float16)).
inline std::uint16_t float_to_half(float f) {
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u)  // inf, nan (quiet)
        return static_cast<std::uint16_t>(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (x >= 0x477ff000u)  // >= 65520: rounds to inf
        return static_cast<std::uint16_t>(sign | 0x7c00u);
    if (x < 0x38800000u) {
        // Below 2^-14 (subnormal half or zero): adding 0.5 puts the unit 2^-24 in the last
        // mantissa bit, so the FPU's own round-to-nearest-even does the rounding.
        float a;
        std::memcpy(&a, &x, 4);
        const float s = a + 0.5f;
        std::uint32_t sb;
        std::memcpy(&sb, &s, 4);
        return static_cast<std::uint16_t>(sign | (sb - 0x3f000000u));
    }
    // Normal: drop 13 mantissa bits rounding to nearest even, rebias the exponent 127 -> 15.
    x += 0xfffu + ((x >> 13) & 1u);
    x -= 112u << 23;
    return static_cast<std::uint16_t>(sign | (x >> 13));
}

}  // namespace fissure
