// SPDX-License-Identifier: Apache-2.0
// Internal to the specular family: the per-ISA row kernels and the table they share. The
// scalar kernels live in specular.cpp, the x86 ones in specular_x86.cpp (each function
// compiled for its ISA with a target attribute; the translation unit itself stays at the
// portable baseline).
#pragma once

#include <cstdint>

#include "fissure/common.hpp"
#include "fissure/dispatch.hpp"

namespace fissure::specular_detail {

/// Rows handed to the distance and min kernels are padded to a multiple of this many bytes
/// (the padding is zero in mask rows).
constexpr index_t k_row_pad = 64;

/// The glare test of one (V, diff) pair is diff < table[V]. For the SIMD kernels the entries
/// for V = base .. 255 are also split into n_groups rows of 16 (zero past 255): a byte shuffle
/// looks one row up, so the cost is one shuffle per 16 values of V above v_min.
struct Lut {
    alignas(64) std::uint8_t groups[16][16] = {};
    std::uint8_t table[256] = {};
    int n_groups = 0;       ///< 1..16; 0 when nothing can be selected
    std::uint8_t base = 0;  ///< v_min + 1
};

/// out[i] = 1 if pixel i of an interleaved 3-byte row is glare, else 0 (n pixels).
using BgrRowFn = void (*)(const std::uint8_t* src, index_t n, const Lut& lut, std::uint8_t* out);
/// Horizontal distance of each byte of a padded mask row (nonzero = set) to the nearest set
/// byte of the row, saturated at cap: d[x] = min(cap, min over set x' of |x - x'|). n is a
/// multiple of k_row_pad. Returns whether the row has any set byte.
using RowDistFn = bool (*)(const std::uint8_t* m, index_t n, std::uint8_t cap, std::uint8_t* d);
/// acc[x] = min(acc[x], sat_sub(min(a[x], b[x]), k)) over n bytes (a multiple of k_row_pad).
using VminFn = void (*)(std::uint8_t* acc, const std::uint8_t* a, const std::uint8_t* b,
                        std::uint8_t k, index_t n);

/// blk[b] = 1 when bytes [64b, 64b + 64) of a padded row hold a nonzero byte, else 0, for
/// b < nb. Returns whether any does.
using BlockAnyFn = bool (*)(const std::uint8_t* row, index_t nb, std::uint8_t* blk);

/// Copies n bytes from a 64-byte aligned buffer to dst; with `stream`, the 64-byte aligned
/// part of dst is written with non-temporal stores (the caller issues no fence: the kernel
/// set's `fence` does, once, after the last row).
using CopyOutFn = void (*)(std::uint8_t* dst, const std::uint8_t* src, index_t n, bool stream);
using FenceFn = void (*)();

struct Kernels {
    BgrRowFn bgr_row = nullptr;
    RowDistFn row_dist = nullptr;
    VminFn vmin = nullptr;
    BlockAnyFn block_any = nullptr;
    CopyOutFn copy_out = nullptr;
    FenceFn fence = nullptr;
};

/// The scalar pixel test, shared by every path's row tail.
inline std::uint8_t glare_pixel(const std::uint8_t* p, const Lut& lut) {
    const std::uint8_t a = p[0], b = p[1], c = p[2];
    std::uint8_t v = a > b ? a : b;
    v = v > c ? v : c;
    std::uint8_t m = a < b ? a : b;
    m = m < c ? m : c;
    return static_cast<std::uint8_t>(static_cast<std::uint8_t>(v - m) < lut.table[v]);
}

// Per-ISA kernel sets; the x86 ones return nullptr when not compiled in (other architectures).
const Kernels& scalar_kernels();
const Kernels* sse4_kernels();
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();

}  // namespace fissure::specular_detail
