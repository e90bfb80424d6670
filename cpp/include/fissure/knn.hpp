// SPDX-License-Identifier: Apache-2.0
/// @file knn.hpp
/// @brief Exact k-nearest-neighbour search in squared L2, the search core of PatchCore.
///        Mirrors faiss `IndexFlatL2.search(x, k)`: distances ascending, ids int64, -1 and
///        FLT_MAX where the bank has fewer than k rows. Distances and top-k are fused: the bank
///        is walked in cache blocks, a block of dot products at a time goes straight into
///        per-query sorted lists, the nq x nb matrix never exists. Float32 or float16 banks
///        (float16 is widened to float32 exactly; all arithmetic is float32).
#pragma once

#include <cstdint>

#include "fissure/common.hpp"

namespace fissure {

/// (rows, cols) row-major feature matrix over caller-owned memory, float32 or IEEE binary16
/// (`f16`: the elements are the 16-bit patterns). Row stride is `cols` elements.
struct FeatureMatrix {
    const void* data = nullptr;
    index_t rows = 0;
    index_t cols = 0;
    bool f16 = false;
};

/// Largest squared row norm accepted: distances computed as |q|^2 + |b|^2 - 2 q.b (and the
/// greedy k-center's sums of squared differences) then cannot overflow float32.
constexpr float k_max_sq_norm = 4.0e37f;

/// Throws InvalidArgument naming `name` and the first bad row when a row holds NaN or
/// infinity, or when its squared norm exceeds k_max_sq_norm. Fills `norms` (rows floats)
/// with the squared norms when it is not null.
void check_feature_rows(const FeatureMatrix& m, const char* name, float* norms, int num_threads);

/// For each of the nq float32 queries (row-major, nq x bank.cols), the k nearest bank rows:
/// D (nq x k) squared L2 distances ascending, I (nq x k) row ids; ties go to the lower id;
/// where the bank has fewer than k rows the tail is I = -1, D = FLT_MAX (as faiss).
/// The answer is the exact top k of S, the float32 direct-difference distance in the greedy
/// k-center's fixed order (coreset.hpp), on every route and SIMD level. Float32 route: the
/// norm expansion on rows centred on the bank's mean finds candidates with proven error bounds,
/// S re-ranks them. Searches with enough work per query (rows x columns >= 50,000 x (k + 1),
/// >= 8 columns, >= 64 queries, >= 256 rows; force_route(Route::knn_bf16, ...) overrides the
/// rule) on CPUs with AVX512_BF16 find candidates with a bfloat16 pass instead.
/// Throws InvalidArgument on k < 1, an empty bank, or NaN/inf/overflowing rows; Cancelled when
/// the caller's CancelToken (parallel.hpp) is cancelled.
void knn_search(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k,
                float* D, std::int64_t* I, int num_threads = -1);

namespace detail {
/// What one knn_search call did (tests and benchmarks).
struct KnnStats {
    std::int64_t bf16_queries = 0;    ///< answered by the bfloat16 route
    std::int64_t fp32_queries = 0;    ///< answered by the float32 route
    std::int64_t direct_queries = 0;  ///< query-ranges crowded on the float32 route (S for every row)
};
/// knn_search, with what it did.
void knn_search_opts(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k,
                     float* D, std::int64_t* I, int num_threads, KnnStats* stats);
/// Whether the bfloat16 first pass can run here (AVX512_BF16, and the SIMD cap allows AVX-512).
bool knn_bf16_available();
}  // namespace detail

}  // namespace fissure
