// SPDX-License-Identifier: Apache-2.0
// x86 kernels of the specular family: SSE4.1, AVX2 and AVX-512BW. Each function carries its
// own target attribute and has internal linkage; the translation unit is compiled for the
// portable baseline and nothing here runs unless dispatch (specular.cpp) picked it after
// checking the CPU.
//
// The glare kernel, per 16 pixels of one 128-bit lane:
//   1. three 16-byte loads hold 48 consecutive bytes (16 BGR pixels); nine byte shuffles and
//      six ORs split them into three channel planes (which plane is B, G or R does not matter:
//      V and S only use max and min);
//   2. v = max of the planes, diff = v - min;
//   3. T[v] by byte shuffles of the 16-entry groups of the threshold table, indexed by
//      v - (v_min + 1): adding 0x70 with unsigned saturation leaves indices 0..15 with the top
//      bit clear and pushes every other index (including the wrapped ones of v <= v_min) to
//      0x80 or more, which the shuffle turns into 0 (no glare);
//   4. glare = diff < T[v], stored as 0/1.
// AVX2 and AVX-512 run the same lane program on 2 and 4 lanes: the loads are arranged so that
// lane k of the three registers holds pixels 16k .. 16k+15, which keeps the output in order.
#include "simd.hpp"
#include "specular_kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>


namespace fissure::specular_detail {

#ifdef FISSURE_X86_KERNELS

namespace {

// channel planes of 16 interleaved pixels (simd.hpp)
constexpr const auto& k_shuf = simd::k_plane_shuffles;

// Runs at least this long (pixels) are written with non-temporal stores.
constexpr index_t k_stream_min = index_t{1} << 18;

// Backward/forward scan constants for the row distance: iota and the 0xFF fill of the bytes
// a lane shift brings in.
alignas(16) constexpr std::uint8_t k_iota_fwd[16] = {1, 2, 3, 4, 5, 6, 7, 8,
                                                     9, 10, 11, 12, 13, 14, 15, 16};
alignas(16) constexpr std::uint8_t k_iota_bwd[16] = {16, 15, 14, 13, 12, 11, 10, 9,
                                                     8, 7, 6, 5, 4, 3, 2, 1};

// ------------------------------------------------------------------------------------------
// SSE4.1
// ------------------------------------------------------------------------------------------

FISSURE_TARGET_SSE41 inline __m128i shuf_sse(int i) {
    return _mm_load_si128(reinterpret_cast<const __m128i*>(k_shuf.m[i]));
}

template <int G>
FISSURE_TARGET_SSE41 inline __m128i glare16(__m128i x0, __m128i x1, __m128i x2, const __m128i* sh,
                               const Lut& lut) {
    const __m128i c0 = _mm_or_si128(
        _mm_or_si128(_mm_shuffle_epi8(x0, sh[0]), _mm_shuffle_epi8(x1, sh[1])),
        _mm_shuffle_epi8(x2, sh[2]));
    const __m128i c1 = _mm_or_si128(
        _mm_or_si128(_mm_shuffle_epi8(x0, sh[3]), _mm_shuffle_epi8(x1, sh[4])),
        _mm_shuffle_epi8(x2, sh[5]));
    const __m128i c2 = _mm_or_si128(
        _mm_or_si128(_mm_shuffle_epi8(x0, sh[6]), _mm_shuffle_epi8(x1, sh[7])),
        _mm_shuffle_epi8(x2, sh[8]));
    const __m128i v = _mm_max_epu8(c0, _mm_max_epu8(c1, c2));
    const __m128i d = _mm_sub_epi8(v, _mm_min_epu8(c0, _mm_min_epu8(c1, c2)));
    const __m128i k70 = _mm_set1_epi8(0x70);
    __m128i idx = _mm_sub_epi8(v, _mm_set1_epi8(static_cast<char>(lut.base)));
    __m128i t = _mm_shuffle_epi8(_mm_load_si128(reinterpret_cast<const __m128i*>(lut.groups[0])),
                                 _mm_adds_epu8(idx, k70));
    const int ng = G > 0 ? G : lut.n_groups;
    for (int g = 1; g < ng; ++g) {
        idx = _mm_sub_epi8(idx, _mm_set1_epi8(16));
        t = _mm_or_si128(t, _mm_shuffle_epi8(
                                _mm_load_si128(reinterpret_cast<const __m128i*>(lut.groups[g])),
                                _mm_adds_epu8(idx, k70)));
    }
    // diff < T  <=>  T -sat diff > 0; min with 1 gives the 0/1 byte.
    return _mm_min_epu8(_mm_subs_epu8(t, d), _mm_set1_epi8(1));
}

template <int G>
FISSURE_TARGET_SSE41 void bgr_row_sse4_t(const std::uint8_t* src, index_t n, const Lut& lut,
                            std::uint8_t* out) {
    __m128i sh[9];
    for (int i = 0; i < 9; ++i) sh[i] = shuf_sse(i);
    index_t i = 0;
    const bool stream = n >= k_stream_min;  // see bgr_row_avx512_t
    if (stream)
        for (; i < n && (reinterpret_cast<std::uintptr_t>(out + i) & 15); ++i)
            out[i] = glare_pixel(src + 3 * i, lut);
    for (; i + 16 <= n; i += 16) {
        const std::uint8_t* p = src + 3 * i;
        const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        const __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
        const __m128i x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32));
        const __m128i r = glare16<G>(x0, x1, x2, sh, lut);
        if (stream) _mm_stream_si128(reinterpret_cast<__m128i*>(out + i), r);
        else _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), r);
    }
    if (stream) _mm_sfence();
    for (; i < n; ++i) out[i] = glare_pixel(src + 3 * i, lut);
}

FISSURE_TARGET_SSE41 void bgr_row_sse4(const std::uint8_t* src, index_t n, const Lut& lut, std::uint8_t* out) {
    if (lut.n_groups == 1) bgr_row_sse4_t<1>(src, n, lut, out);
    else if (lut.n_groups == 2) bgr_row_sse4_t<2>(src, n, lut, out);
    else bgr_row_sse4_t<0>(src, n, lut, out);
}

// Min-plus scans within a 16-byte lane: a[i] = min(a[i], a[i - s] + s) (forward) for
// s = 1, 2, 4, 8, bytes shifted in from outside the lane reading as 255.
FISSURE_TARGET_SSE41 inline __m128i scan_fwd16(__m128i a) {
    const __m128i ff = _mm_set1_epi8(static_cast<char>(0xFF));
    a = _mm_min_epu8(a, _mm_adds_epu8(_mm_or_si128(_mm_slli_si128(a, 1), _mm_srli_si128(ff, 15)),
                                      _mm_set1_epi8(1)));
    a = _mm_min_epu8(a, _mm_adds_epu8(_mm_or_si128(_mm_slli_si128(a, 2), _mm_srli_si128(ff, 14)),
                                      _mm_set1_epi8(2)));
    a = _mm_min_epu8(a, _mm_adds_epu8(_mm_or_si128(_mm_slli_si128(a, 4), _mm_srli_si128(ff, 12)),
                                      _mm_set1_epi8(4)));
    a = _mm_min_epu8(a, _mm_adds_epu8(_mm_or_si128(_mm_slli_si128(a, 8), _mm_srli_si128(ff, 8)),
                                      _mm_set1_epi8(8)));
    return a;
}
FISSURE_TARGET_SSE41 inline __m128i scan_bwd16(__m128i a) {
    const __m128i ff = _mm_set1_epi8(static_cast<char>(0xFF));
    a = _mm_min_epu8(a, _mm_adds_epu8(_mm_or_si128(_mm_srli_si128(a, 1), _mm_slli_si128(ff, 15)),
                                      _mm_set1_epi8(1)));
    a = _mm_min_epu8(a, _mm_adds_epu8(_mm_or_si128(_mm_srli_si128(a, 2), _mm_slli_si128(ff, 14)),
                                      _mm_set1_epi8(2)));
    a = _mm_min_epu8(a, _mm_adds_epu8(_mm_or_si128(_mm_srli_si128(a, 4), _mm_slli_si128(ff, 12)),
                                      _mm_set1_epi8(4)));
    a = _mm_min_epu8(a, _mm_adds_epu8(_mm_or_si128(_mm_srli_si128(a, 8), _mm_slli_si128(ff, 8)),
                                      _mm_set1_epi8(8)));
    return a;
}

// Two passes over the row in 16-byte chunks: forward distances to the nearest set byte on the
// left (carried across chunks by broadcasting the last byte), then backward ones from the
// right, min'ed in. Chunks with no set byte and a saturated carry cost one load and a store
// (forward) or nothing (backward), so sparse masks are cheap.
FISSURE_TARGET_SSE41 bool row_dist_sse4(const std::uint8_t* m, index_t n, std::uint8_t cap, std::uint8_t* d) {
    const __m128i zero = _mm_setzero_si128();
    const __m128i capv = _mm_set1_epi8(static_cast<char>(cap));
    const __m128i iota_f = _mm_load_si128(reinterpret_cast<const __m128i*>(k_iota_fwd));
    const __m128i iota_b = _mm_load_si128(reinterpret_cast<const __m128i*>(k_iota_bwd));
    const __m128i last = _mm_set1_epi8(15);
    __m128i any = zero;
    __m128i carry = capv;
    int carry_s = cap;
    for (index_t i = 0; i < n; i += 16) {
        const __m128i mv = _mm_load_si128(reinterpret_cast<const __m128i*>(m + i));
        any = _mm_or_si128(any, mv);
        const __m128i unset = _mm_cmpeq_epi8(mv, zero);
        __m128i a;
        if (_mm_movemask_epi8(unset) == 0xFFFF) {
            if (carry_s >= cap) {
                _mm_store_si128(reinterpret_cast<__m128i*>(d + i), capv);
                continue;
            }
            a = _mm_min_epu8(capv, _mm_adds_epu8(carry, iota_f));
        } else {
            a = scan_fwd16(_mm_and_si128(unset, capv));
            a = _mm_min_epu8(a, _mm_adds_epu8(carry, iota_f));
        }
        _mm_store_si128(reinterpret_cast<__m128i*>(d + i), a);
        carry = _mm_shuffle_epi8(a, last);
        carry_s = _mm_extract_epi8(a, 15);
    }
    if (_mm_testz_si128(any, any)) return false;
    carry = capv;
    carry_s = cap;
    for (index_t i = n - 16; i >= 0; i -= 16) {
        const __m128i l = _mm_load_si128(reinterpret_cast<const __m128i*>(d + i));
        const __m128i set = _mm_cmpeq_epi8(l, zero);
        __m128i b;
        if (_mm_movemask_epi8(set) == 0) {
            if (carry_s >= cap) continue;
            b = _mm_min_epu8(capv, _mm_adds_epu8(carry, iota_b));
        } else {
            b = scan_bwd16(_mm_andnot_si128(set, capv));
            b = _mm_min_epu8(b, _mm_adds_epu8(carry, iota_b));
        }
        _mm_store_si128(reinterpret_cast<__m128i*>(d + i), _mm_min_epu8(l, b));
        carry = _mm_shuffle_epi8(b, zero);
        carry_s = _mm_extract_epi8(b, 0);
    }
    return true;
}

FISSURE_TARGET_SSE41 void vmin_sse4(std::uint8_t* acc, const std::uint8_t* a, const std::uint8_t* b,
                       std::uint8_t k, index_t n) {
    const __m128i kv = _mm_set1_epi8(static_cast<char>(k));
    for (index_t i = 0; i < n; i += 16) {
        const __m128i x = _mm_min_epu8(_mm_load_si128(reinterpret_cast<const __m128i*>(a + i)),
                                       _mm_load_si128(reinterpret_cast<const __m128i*>(b + i)));
        __m128i* pa = reinterpret_cast<__m128i*>(acc + i);
        _mm_store_si128(pa, _mm_min_epu8(_mm_load_si128(pa), _mm_subs_epu8(x, kv)));
    }
}

FISSURE_TARGET_SSE41 bool block_any_sse4(const std::uint8_t* row, index_t nb, std::uint8_t* blk) {
    int any = 0;
    for (index_t b = 0; b < nb; ++b) {
        const __m128i* p = reinterpret_cast<const __m128i*>(row + 64 * b);
        const __m128i v = _mm_or_si128(_mm_or_si128(_mm_load_si128(p), _mm_load_si128(p + 1)),
                                       _mm_or_si128(_mm_load_si128(p + 2), _mm_load_si128(p + 3)));
        const int set = !_mm_testz_si128(v, v);
        blk[b] = static_cast<std::uint8_t>(set);
        any |= set;
    }
    return any != 0;
}

// ------------------------------------------------------------------------------------------
// AVX2: two lanes of 16 pixels.
// ------------------------------------------------------------------------------------------

template <int G>
FISSURE_TARGET_AVX2 inline __m256i glare32(__m256i x0, __m256i x1, __m256i x2, const __m256i* sh,
                               const __m256i* grp, __m256i base) {
    const __m256i c0 = _mm256_or_si256(
        _mm256_or_si256(_mm256_shuffle_epi8(x0, sh[0]), _mm256_shuffle_epi8(x1, sh[1])),
        _mm256_shuffle_epi8(x2, sh[2]));
    const __m256i c1 = _mm256_or_si256(
        _mm256_or_si256(_mm256_shuffle_epi8(x0, sh[3]), _mm256_shuffle_epi8(x1, sh[4])),
        _mm256_shuffle_epi8(x2, sh[5]));
    const __m256i c2 = _mm256_or_si256(
        _mm256_or_si256(_mm256_shuffle_epi8(x0, sh[6]), _mm256_shuffle_epi8(x1, sh[7])),
        _mm256_shuffle_epi8(x2, sh[8]));
    const __m256i v = _mm256_max_epu8(c0, _mm256_max_epu8(c1, c2));
    const __m256i d = _mm256_sub_epi8(v, _mm256_min_epu8(c0, _mm256_min_epu8(c1, c2)));
    const __m256i k70 = _mm256_set1_epi8(0x70);
    __m256i idx = _mm256_sub_epi8(v, base);
    __m256i t = _mm256_shuffle_epi8(grp[0], _mm256_adds_epu8(idx, k70));
    for (int g = 1; g < G; ++g) {
        idx = _mm256_sub_epi8(idx, _mm256_set1_epi8(16));
        t = _mm256_or_si256(t, _mm256_shuffle_epi8(grp[g], _mm256_adds_epu8(idx, k70)));
    }
    return _mm256_min_epu8(_mm256_subs_epu8(t, d), _mm256_set1_epi8(1));
}

FISSURE_TARGET_AVX2 inline __m128i ld(const std::uint8_t* q) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
}

template <int G>
FISSURE_TARGET_AVX2 void bgr_row_avx2_t(const std::uint8_t* src, index_t n, const Lut& lut,
                            std::uint8_t* out) {
    __m256i sh[9];
    for (int i = 0; i < 9; ++i) sh[i] = _mm256_broadcastsi128_si256(shuf_sse(i));
    __m256i grp[G];
    for (int g = 0; g < G; ++g)
        grp[g] = _mm256_broadcastsi128_si256(
            _mm_load_si128(reinterpret_cast<const __m128i*>(lut.groups[g])));
    const __m256i base = _mm256_set1_epi8(static_cast<char>(lut.base));
    index_t i = 0;
    const bool stream = n >= k_stream_min;  // see bgr_row_avx512_t
    if (stream) {
        i = static_cast<index_t>((32 - (reinterpret_cast<std::uintptr_t>(out) & 31)) & 31);
        if (i) bgr_row_sse4(src, i, lut, out);
    }
    for (; i + 32 <= n; i += 32) {
        const std::uint8_t* p = src + 3 * i;
        const __m256i x0 = _mm256_inserti128_si256(_mm256_castsi128_si256(ld(p)), ld(p + 48), 1);
        const __m256i x1 =
            _mm256_inserti128_si256(_mm256_castsi128_si256(ld(p + 16)), ld(p + 64), 1);
        const __m256i x2 =
            _mm256_inserti128_si256(_mm256_castsi128_si256(ld(p + 32)), ld(p + 80), 1);
        const __m256i r = glare32<G>(x0, x1, x2, sh, grp, base);
        if (stream) _mm256_stream_si256(reinterpret_cast<__m256i*>(out + i), r);
        else _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), r);
    }
    if (stream) _mm_sfence();
    if (i < n) bgr_row_sse4(src + 3 * i, n - i, lut, out + i);
}

// The general case (more than two groups) runs the 16-group body with unused groups set to
// zero shuffles: a zero group row selects nothing.
FISSURE_TARGET_AVX2 void bgr_row_avx2(const std::uint8_t* src, index_t n, const Lut& lut, std::uint8_t* out) {
    if (lut.n_groups == 1) bgr_row_avx2_t<1>(src, n, lut, out);
    else if (lut.n_groups == 2) bgr_row_avx2_t<2>(src, n, lut, out);
    else if (lut.n_groups <= 4) bgr_row_avx2_t<4>(src, n, lut, out);
    else if (lut.n_groups <= 8) bgr_row_avx2_t<8>(src, n, lut, out);
    else bgr_row_avx2_t<16>(src, n, lut, out);
}

FISSURE_TARGET_AVX2 void vmin_avx2(std::uint8_t* acc, const std::uint8_t* a, const std::uint8_t* b,
                       std::uint8_t k, index_t n) {
    const __m256i kv = _mm256_set1_epi8(static_cast<char>(k));
    for (index_t i = 0; i < n; i += 32) {
        const __m256i x =
            _mm256_min_epu8(_mm256_load_si256(reinterpret_cast<const __m256i*>(a + i)),
                            _mm256_load_si256(reinterpret_cast<const __m256i*>(b + i)));
        __m256i* pa = reinterpret_cast<__m256i*>(acc + i);
        _mm256_store_si256(pa, _mm256_min_epu8(_mm256_load_si256(pa), _mm256_subs_epu8(x, kv)));
    }
}

FISSURE_TARGET_AVX2 bool block_any_avx2(const std::uint8_t* row, index_t nb, std::uint8_t* blk) {
    int any = 0;
    for (index_t b = 0; b < nb; ++b) {
        const __m256i* p = reinterpret_cast<const __m256i*>(row + 64 * b);
        const __m256i v = _mm256_or_si256(_mm256_load_si256(p), _mm256_load_si256(p + 1));
        const int set = !_mm256_testz_si256(v, v);
        blk[b] = static_cast<std::uint8_t>(set);
        any |= set;
    }
    return any != 0;
}

// ------------------------------------------------------------------------------------------
// AVX-512BW: four lanes of 16 pixels; masked loads and stores take the row tail.
// ------------------------------------------------------------------------------------------

template <int G>
FISSURE_TARGET_AVX512BW inline __m512i glare64(__m512i a, __m512i b, __m512i c, const __m512i* sh,
                                 const __m512i* grp, __m512i base) {
    // 192 bytes as 12 blocks of 16: a = blocks 0..3, b = 4..7, c = 8..11. Lane k of x0, x1, x2
    // must hold blocks 3k, 3k + 1, 3k + 2.
    const __m512i x0 = _mm512_mask_permutexvar_epi64(
        _mm512_permutex2var_epi64(a, _mm512_setr_epi64(0, 1, 6, 7, 12, 13, 0, 0), b), 0xC0,
        _mm512_setr_epi64(0, 0, 0, 0, 0, 0, 2, 3), c);  // A0 A3 B2 C1
    const __m512i x1 = _mm512_mask_permutexvar_epi64(
        _mm512_permutex2var_epi64(a, _mm512_setr_epi64(2, 3, 8, 9, 14, 15, 0, 0), b), 0xC0,
        _mm512_setr_epi64(0, 0, 0, 0, 0, 0, 4, 5), c);  // A1 B0 B3 C2
    const __m512i x2 = _mm512_mask_permutexvar_epi64(
        _mm512_permutex2var_epi64(a, _mm512_setr_epi64(4, 5, 10, 11, 0, 0, 0, 0), b), 0xF0,
        _mm512_setr_epi64(0, 0, 0, 0, 0, 1, 6, 7), c);  // A2 B1 C0 C3
    const __m512i c0 = _mm512_or_si512(
        _mm512_or_si512(_mm512_shuffle_epi8(x0, sh[0]), _mm512_shuffle_epi8(x1, sh[1])),
        _mm512_shuffle_epi8(x2, sh[2]));
    const __m512i c1 = _mm512_or_si512(
        _mm512_or_si512(_mm512_shuffle_epi8(x0, sh[3]), _mm512_shuffle_epi8(x1, sh[4])),
        _mm512_shuffle_epi8(x2, sh[5]));
    const __m512i c2 = _mm512_or_si512(
        _mm512_or_si512(_mm512_shuffle_epi8(x0, sh[6]), _mm512_shuffle_epi8(x1, sh[7])),
        _mm512_shuffle_epi8(x2, sh[8]));
    const __m512i v = _mm512_max_epu8(c0, _mm512_max_epu8(c1, c2));
    const __m512i d = _mm512_sub_epi8(v, _mm512_min_epu8(c0, _mm512_min_epu8(c1, c2)));
    const __m512i k70 = _mm512_set1_epi8(0x70);
    __m512i idx = _mm512_sub_epi8(v, base);
    __m512i t = _mm512_shuffle_epi8(grp[0], _mm512_adds_epu8(idx, k70));
    for (int g = 1; g < G; ++g) {
        idx = _mm512_sub_epi8(idx, _mm512_set1_epi8(16));
        t = _mm512_or_si512(t, _mm512_shuffle_epi8(grp[g], _mm512_adds_epu8(idx, k70)));
    }
    return _mm512_maskz_mov_epi8(_mm512_cmplt_epu8_mask(d, t), _mm512_set1_epi8(1));
}

// 16 bytes repeated in the four lanes (through memory: GCC 12 warns about the undefined upper
// half that _mm512_broadcast_i32x4 starts from).
FISSURE_TARGET_AVX512BW inline __m512i bcast4(const void* p16) {
    alignas(64) std::uint8_t rep[64];
    for (int k = 0; k < 4; ++k) std::memcpy(rep + 16 * k, p16, 16);
    return _mm512_load_si512(rep);
}

FISSURE_TARGET_AVX512BW inline __mmask64 first_bytes(index_t nbytes) {
    if (nbytes >= 64) return ~__mmask64{0};
    if (nbytes <= 0) return 0;
    return (__mmask64{1} << nbytes) - 1;
}

template <int G>
FISSURE_TARGET_AVX512BW void bgr_row_avx512_t(const std::uint8_t* src, index_t n, const Lut& lut,
                                std::uint8_t* out) {
    __m512i sh[9];
    for (int i = 0; i < 9; ++i) sh[i] = bcast4(k_shuf.m[i]);
    __m512i grp[G];
    for (int g = 0; g < G; ++g) grp[g] = bcast4(lut.groups[g]);
    const __m512i base = _mm512_set1_epi8(static_cast<char>(lut.base));
    // Masked loads never touch (or fault on) bytes past the end; they take the head (up to
    // the output's first 64-byte boundary, when streaming) and the tail.
    auto partial = [&](index_t at, index_t count) FISSURE_TARGET_AVX512BW {
        const std::uint8_t* p = src + 3 * at;
        const index_t bytes = 3 * count;
        const __m512i r = glare64<G>(_mm512_maskz_loadu_epi8(first_bytes(bytes), p),
                                     _mm512_maskz_loadu_epi8(first_bytes(bytes - 64), p + 64),
                                     _mm512_maskz_loadu_epi8(first_bytes(bytes - 128), p + 128),
                                     sh, grp, base);
        _mm512_mask_storeu_epi8(out + at, first_bytes(count), r);
    };
    index_t i = 0;
    if (n >= k_stream_min) {
        // Long runs (whole images) bypass the cache on the way out: the mask is written with
        // non-temporal stores, which saves reading every output line before writing it.
        const index_t head = static_cast<index_t>((64 - (reinterpret_cast<std::uintptr_t>(out) & 63)) & 63);
        if (head) partial(0, head);
        for (i = head; i + 64 <= n; i += 64) {
            const std::uint8_t* p = src + 3 * i;
            _mm512_stream_si512(reinterpret_cast<__m512i*>(out + i),
                                glare64<G>(_mm512_loadu_si512(p), _mm512_loadu_si512(p + 64),
                                           _mm512_loadu_si512(p + 128), sh, grp, base));
        }
        _mm_sfence();
    } else {
        for (; i + 64 <= n; i += 64) {
            const std::uint8_t* p = src + 3 * i;
            _mm512_storeu_si512(out + i,
                                glare64<G>(_mm512_loadu_si512(p), _mm512_loadu_si512(p + 64),
                                           _mm512_loadu_si512(p + 128), sh, grp, base));
        }
    }
    if (i < n) partial(i, n - i);
}

FISSURE_TARGET_AVX512BW void bgr_row_avx512(const std::uint8_t* src, index_t n, const Lut& lut,
                              std::uint8_t* out) {
    if (lut.n_groups == 1) bgr_row_avx512_t<1>(src, n, lut, out);
    else if (lut.n_groups == 2) bgr_row_avx512_t<2>(src, n, lut, out);
    else if (lut.n_groups <= 4) bgr_row_avx512_t<4>(src, n, lut, out);
    else if (lut.n_groups <= 8) bgr_row_avx512_t<8>(src, n, lut, out);
    else bgr_row_avx512_t<16>(src, n, lut, out);
}

FISSURE_TARGET_AVX512BW void vmin_avx512(std::uint8_t* acc, const std::uint8_t* a, const std::uint8_t* b,
                           std::uint8_t k, index_t n) {
    const __m512i kv = _mm512_set1_epi8(static_cast<char>(k));
    for (index_t i = 0; i < n; i += 64) {
        const __m512i x = _mm512_min_epu8(_mm512_load_si512(a + i), _mm512_load_si512(b + i));
        _mm512_store_si512(acc + i,
                           _mm512_min_epu8(_mm512_load_si512(acc + i), _mm512_subs_epu8(x, kv)));
    }
}

FISSURE_TARGET_AVX512BW bool block_any_avx512(const std::uint8_t* row, index_t nb, std::uint8_t* blk) {
    int any = 0;
    for (index_t b = 0; b < nb; ++b) {
        const __m512i v = _mm512_load_si512(row + 64 * b);
        const int set = _mm512_test_epi8_mask(v, v) != 0;
        blk[b] = static_cast<std::uint8_t>(set);
        any |= set;
    }
    return any != 0;
}

// dst and src have different alignments (src is 64-byte aligned): the bytes before dst's
// first 64-byte boundary and after its last one go with ordinary stores.
FISSURE_TARGET_AVX512BW void copy_out_avx512(std::uint8_t* dst, const std::uint8_t* src, index_t n,
                               bool stream) {
    index_t i = 0;
    if (stream) {
        const index_t head = std::min<index_t>(
            n, static_cast<index_t>((64 - (reinterpret_cast<std::uintptr_t>(dst) & 63)) & 63));
        if (head) _mm512_mask_storeu_epi8(dst, first_bytes(head), _mm512_loadu_si512(src));
        for (i = head; i + 64 <= n; i += 64)
            _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), _mm512_loadu_si512(src + i));
    }
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, _mm512_loadu_si512(src + i));
    if (i < n)
        _mm512_mask_storeu_epi8(dst + i, first_bytes(n - i),
                                _mm512_maskz_loadu_epi8(first_bytes(n - i), src + i));
}

FISSURE_TARGET_SSE41 void copy_out_sse4(std::uint8_t* dst, const std::uint8_t* src, index_t n, bool stream) {
    index_t i = 0;
    if (stream) {
        const index_t head = std::min<index_t>(
            n, static_cast<index_t>((16 - (reinterpret_cast<std::uintptr_t>(dst) & 15)) & 15));
        std::memcpy(dst, src, static_cast<std::size_t>(head));
        for (i = head; i + 16 <= n; i += 16)
            _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    }
    std::memcpy(dst + i, src + i, static_cast<std::size_t>(n - i));
}

void sfence() { _mm_sfence(); }

#undef FISSURE_TARGET_SSE41
#undef FISSURE_TARGET_AVX2
#undef FISSURE_TARGET_AVX512BW

}  // namespace

const Kernels* sse4_kernels() {
    static const Kernels k{bgr_row_sse4, row_dist_sse4, vmin_sse4, block_any_sse4, copy_out_sse4, sfence};
    return &k;
}
const Kernels* avx2_kernels() {
    static const Kernels k{bgr_row_avx2, row_dist_sse4, vmin_avx2, block_any_avx2, copy_out_sse4, sfence};
    return &k;
}
const Kernels* avx512_kernels() {
    static const Kernels k{bgr_row_avx512, row_dist_sse4, vmin_avx512, block_any_avx512, copy_out_avx512, sfence};
    return &k;
}

#else  // not x86, or a compiler without target attributes

const Kernels* sse4_kernels() { return nullptr; }
const Kernels* avx2_kernels() { return nullptr; }
const Kernels* avx512_kernels() { return nullptr; }

#endif

}  // namespace fissure::specular_detail
