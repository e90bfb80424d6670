// SPDX-License-Identifier: Apache-2.0
// Exact kNN in squared L2 with fused top-k (see knn.hpp), the row checks shared with the
// coreset family, the portable kernels and the dispatch.
//
// Blocking (BLIS-style, the nq x nb distance matrix never exists):
//   task = (block of up to kMC queries, range of bank rows)
//     pack the query block once: [group of kMR rows][d][kMR] (zero rows pad the last group)
//     for each block of up to kNC bank rows:
//       for each chunk of up to kKC dimensions:
//         pack the bank chunk: [panel of 16 rows][kc][16] (float16 widened here)
//         for each query group, for each panel (pair): micro-kernel accumulates the
//           kMR x 16(32) dot products into the C tile (kMC x kNC floats, L2-resident)
//       scan the C tile: dist = (|q|^2 + |b|^2) - 2 q.b, clamped at 0, into each query's
//         sorted k-list (insertion; ties keep the lower id, the bank is walked in id order)
// With few query blocks the bank is split too and the per-split lists are merged.
// Searches with enough work per query (see bf16_pays) on CPUs with AVX512_BF16 go through
// knn_bf16.cpp first (bf16 candidates, float32 re-ranking); the queries it hands back take
// the path above.
#include "fissure/knn.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <sstream>
#include <vector>

#include "fissure/parallel.hpp"
#include "knn_kernels.hpp"

namespace fissure {

namespace knn_detail {

namespace {

void micro_generic(const float* qp, const float* bp, index_t kc, float* c, index_t ldc, int,
                   bool accumulate) {
    float acc[kMR][kNP] = {};
    for (index_t kk = 0; kk < kc; ++kk) {
        const float* b = bp + kk * kNP;
        const float* a = qp + kk * kMR;
        for (int r = 0; r < kMR; ++r) {
            const float ar = a[r];
            for (int j = 0; j < kNP; ++j) acc[r][j] += ar * b[j];
        }
    }
    for (int r = 0; r < kMR; ++r) {
        float* cr = c + r * ldc;
        if (accumulate) {
            for (int j = 0; j < kNP; ++j) cr[j] += acc[r][j];
        } else {
            for (int j = 0; j < kNP; ++j) cr[j] = acc[r][j];
        }
    }
}

void widen_generic(const std::uint16_t* src, float* dst, index_t n) {
    for (index_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

}  // namespace

const KnnKernels& knn_generic_kernels() {
    static const KnnKernels k{micro_generic, 1, widen_generic};
    return k;
}

}  // namespace knn_detail

namespace {

using namespace knn_detail;

const KnnKernels& kernels() {
    const KnnKernels* k = nullptr;
    switch (effective_level(Family::knn)) {
        case SimdLevel::avx512: k = knn_avx512_kernels(); break;
        case SimdLevel::avx2: k = knn_avx2_kernels(); break;
        default: break;
    }
    return k ? *k : knn_generic_kernels();
}

constexpr index_t kMC = 480;  // queries per block (a multiple of kMR)
constexpr index_t kNC = 128;  // bank rows per block (a multiple of kNP)
constexpr index_t kKC = 256;  // dimensions per chunk

// Row i of m as float32 (widened into buf for float16; else a pointer into m).
inline const float* row_f32(const FeatureMatrix& m, index_t i, float* buf, const KnnKernels& k) {
    if (!m.f16) return static_cast<const float*>(m.data) + i * m.cols;
    k.widen(static_cast<const std::uint16_t*>(m.data) + i * m.cols, buf, m.cols);
    return buf;
}

float sq_norm(const float* x, index_t n) {
    float acc[16] = {};
    index_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) acc[l] += x[i + l] * x[i + l];
    for (int l = 0; i + l < n; ++l) acc[l] += x[i + l] * x[i + l];
    float s = 0.f;
    for (int l = 0; l < 16; ++l) s += acc[l];
    return s;
}

std::string describe_bad_row(const FeatureMatrix& m, const char* name, index_t i, float norm) {
    std::vector<float> buf(static_cast<std::size_t>(m.cols));
    const float* r = row_f32(m, i, buf.data(), knn_generic_kernels());
    std::ostringstream os;
    os << name << ": ";
    for (index_t j = 0; j < m.cols; ++j) {
        if (!std::isfinite(r[j])) {
            os << "expected finite values, row " << i << " column " << j << " is " << r[j];
            return os.str();
        }
    }
    os << "values too large: row " << i << " has squared norm " << norm
       << " (expected at most " << k_max_sq_norm
       << " so that squared distances cannot overflow float32)";
    return os.str();
}

void insert_sorted(float* Dq, std::int64_t* Iq, index_t k, float dist, std::int64_t id) {
    index_t p = k - 1;
    while (p > 0 && dist < Dq[p - 1]) {
        Dq[p] = Dq[p - 1];
        Iq[p] = Iq[p - 1];
        --p;
    }
    Dq[p] = dist;
    Iq[p] = id;
}

struct Problem {
    const FeatureMatrix* bank;
    const float* queries;
    index_t nq, d, k;
    const float* qnorm;
    const float* bnorm;
    const KnnKernels* kern;
};

// Top-k of queries [q0, q0 + mq) against bank rows [b_lo, b_hi) into D/I rows q0.. (k each).
void search_block(const Problem& P, index_t q0, index_t mq, index_t b_lo, index_t b_hi, float* D,
                  std::int64_t* I) {
    const index_t d = P.d, k = P.k;
    const KnnKernels& kern = *P.kern;
    const index_t groups = (mq + kMR - 1) / kMR;
    std::vector<float> qp(static_cast<std::size_t>(groups * d * kMR), 0.f);
    for (index_t g = 0; g < groups; ++g) {
        float* dst = qp.data() + g * d * kMR;
        for (int r = 0; r < kMR; ++r) {
            const index_t q = g * kMR + r;
            if (q >= mq) break;
            const float* src = P.queries + (q0 + q) * d;
            for (index_t j = 0; j < d; ++j) dst[j * kMR + r] = src[j];
        }
    }
    const index_t kc_max = std::min(d, kKC);
    std::vector<float> bp(static_cast<std::size_t>(kNC * kc_max));
    std::vector<float> ctile(static_cast<std::size_t>(groups * kMR * kNC));
    std::vector<float> wide(P.bank->f16 ? static_cast<std::size_t>(kc_max) : 0);
    std::vector<float> dist(static_cast<std::size_t>(kNC));
    const index_t ldc = kNC;

    for (index_t b0 = b_lo; b0 < b_hi; b0 += kNC) {
        cancel_point();
        const index_t nbr = std::min(kNC, b_hi - b0);
        const index_t npan = (nbr + kNP - 1) / kNP;
        for (index_t k0 = 0; k0 < d; k0 += kKC) {
            const index_t kc = std::min(kKC, d - k0);
            // Pack the bank chunk: [panel][kc][16]; rows past nbr are zero.
            for (index_t p = 0; p < npan; ++p) {
                float* panel = bp.data() + p * kc * kNP;
                for (int j = 0; j < kNP; ++j) {
                    const index_t row = b0 + p * kNP + j;
                    if (row >= b0 + nbr) {
                        for (index_t kk = 0; kk < kc; ++kk) panel[kk * kNP + j] = 0.f;
                        continue;
                    }
                    const float* src;
                    if (P.bank->f16) {
                        kern.widen(static_cast<const std::uint16_t*>(P.bank->data) + row * d + k0,
                                   wide.data(), kc);
                        src = wide.data();
                    } else {
                        src = static_cast<const float*>(P.bank->data) + row * d + k0;
                    }
                    for (index_t kk = 0; kk < kc; ++kk) panel[kk * kNP + j] = src[kk];
                }
            }
            for (index_t g = 0; g < groups; ++g) {
                const float* qg = qp.data() + g * d * kMR + k0 * kMR;
                float* cg = ctile.data() + g * kMR * ldc;
                for (index_t p = 0; p < npan;) {
                    const int np = (kern.max_panels >= 2 && p + 1 < npan) ? 2 : 1;
                    kern.micro(qg, bp.data() + p * kc * kNP, kc, cg + p * kNP, ldc, np, k0 > 0);
                    p += np;
                }
            }
        }
        // Scan the tile into the per-query lists.
        const float* bn = P.bnorm + b0;
        for (index_t i = 0; i < mq; ++i) {
            const float qn = P.qnorm[q0 + i];
            const float* crow = ctile.data() + i * ldc;
            for (index_t j = 0; j < nbr; ++j) {
                const float v = (qn + bn[j]) - 2.0f * crow[j];
                dist[j] = v < 0.f ? 0.f : v;
            }
            float* Dq = D + (q0 + i) * k;
            std::int64_t* Iq = I + (q0 + i) * k;
            float worst = Dq[k - 1];
            for (index_t j = 0; j < nbr; ++j) {
                if (dist[j] < worst) {
                    insert_sorted(Dq, Iq, k, dist[j], b0 + j);
                    worst = Dq[k - 1];
                }
            }
        }
    }
}

}  // namespace

void check_feature_rows(const FeatureMatrix& m, const char* name, float* norms, int num_threads) {
    std::vector<float> own;
    if (!norms) {
        own.resize(static_cast<std::size_t>(m.rows));
        norms = own.data();
    }
    const KnnKernels& kern = kernels();
    const index_t grain = std::max<index_t>(1, (index_t{1} << 16) / std::max<index_t>(m.cols, 1));
    parallel_for(0, m.rows, num_threads, grain, [&](index_t lo, index_t hi) {
        std::vector<float> buf(m.f16 ? static_cast<std::size_t>(m.cols) : 0);
        for (index_t i = lo; i < hi; ++i) norms[i] = sq_norm(row_f32(m, i, buf.data(), kern), m.cols);
    });
    for (index_t i = 0; i < m.rows; ++i) {
        if (!(norms[i] <= k_max_sq_norm)) fail(describe_bad_row(m, name, i, norms[i]));
    }
}

namespace {

// Whether the bfloat16 first pass is worth its fixed costs (per-call row statistics, the
// float32 re-ranking of each query's candidates, which grows with k) over the float32 route.
// Measured on an AVX512_BF16 core (docs/patchcore_core.md): it gains 1.2-2x once
// nb * d >= 50,000 * (k + 1), from 8 columns up (152-d PatchCore banks of 1k-50k rows
// included); below that, and for 1-7 columns or fewer than 64 queries, it loses.
bool bf16_pays(index_t nb, index_t d, index_t nq, index_t k) {
    return d >= 8 && nq >= 64 && nb >= 256 &&
           static_cast<double>(nb) * static_cast<double>(d) >= 50000.0 * static_cast<double>(k + 1);
}
void search_fp32(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k, float* D,
                 std::int64_t* I, int num_threads, const float* bnorm, const float* qnorm);
}  // namespace

void knn_search(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k, float* D,
                std::int64_t* I, int num_threads) {
    if (k < 1) fail("k: expected k >= 1, got " + std::to_string(k));
    if (bank.rows < 1) fail("bank: expected at least one row, got an empty bank");
    if (bank.cols < 1) fail("bank: expected at least one column, got 0");
    if (nq < 0) fail("queries: negative count");
    for (index_t i = 0; i < nq * k; ++i) {
        D[i] = FLT_MAX;
        I[i] = -1;
    }
    if (nq == 0) return;
    const index_t d = bank.cols, nb = bank.rows;

    std::vector<float> bnorm(static_cast<std::size_t>(nb)), qnorm(static_cast<std::size_t>(nq));
    check_feature_rows(bank, "bank", bnorm.data(), num_threads);
    check_feature_rows(FeatureMatrix{queries, nq, d, false}, "queries", qnorm.data(), num_threads);

    // Enough work per query: the bfloat16 first pass and float32 re-ranking (knn_bf16.cpp),
    // where the CPU has AVX512_BF16.
    const int force = forced_route(Route::knn_bf16);
    const bool use_bf16 = force == 1 || (force < 0 && bf16_pays(nb, d, nq, k));
    if (use_bf16 && k < nb) {
        std::vector<index_t> over;
        if (knn_bf16_search(bank, queries, nq, k, D, I, num_threads, over)) {
            if (over.empty()) return;
            // the queries whose candidates overflowed: the float32 path
            const index_t no = static_cast<index_t>(over.size());
            std::vector<float> q2(static_cast<std::size_t>(no * d)), n2(static_cast<std::size_t>(no));
            for (index_t i = 0; i < no; ++i) {
                std::copy_n(queries + over[i] * d, d, q2.begin() + i * d);
                n2[i] = qnorm[over[i]];
            }
            std::vector<float> D2(static_cast<std::size_t>(no * k), FLT_MAX);
            std::vector<std::int64_t> I2(static_cast<std::size_t>(no * k), -1);
            search_fp32(bank, q2.data(), no, k, D2.data(), I2.data(), num_threads, bnorm.data(),
                        n2.data());
            for (index_t i = 0; i < no; ++i) {
                std::copy_n(D2.begin() + i * k, k, D + over[i] * k);
                std::copy_n(I2.begin() + i * k, k, I + over[i] * k);
            }
            return;
        }
    }
    search_fp32(bank, queries, nq, k, D, I, num_threads, bnorm.data(), qnorm.data());
}

namespace detail {
bool knn_bf16_available() { return knn_bf16_kernels() != nullptr; }
}  // namespace detail

namespace {

void search_fp32(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k, float* D,
                 std::int64_t* I, int num_threads, const float* bnorm, const float* qnorm) {
    const index_t d = bank.cols, nb = bank.rows;
    const KnnKernels& kern = kernels();
    Problem P{&bank, queries, nq, d, k, qnorm, bnorm, &kern};

    // Work split: query blocks (balanced over the threads), and bank splits when there are
    // fewer query blocks than threads.
    const int T = resolve_threads(num_threads);
    index_t qblocks = (nq + kMC - 1) / kMC;
    if (qblocks >= T) qblocks = round_up(qblocks, T);
    index_t mc = round_up((nq + qblocks - 1) / qblocks, kMR);
    qblocks = (nq + mc - 1) / mc;
    index_t splits = 1;
    if (qblocks < T) splits = std::min<index_t>((T + qblocks - 1) / qblocks, (nb + kNC - 1) / kNC);
    const index_t split_rows = round_up((nb + splits - 1) / splits, kNC);
    splits = (nb + split_rows - 1) / split_rows;

    std::vector<float> Dp;
    std::vector<std::int64_t> Ip;
    if (splits > 1) {
        Dp.assign(static_cast<std::size_t>(splits * nq * k), FLT_MAX);
        Ip.assign(static_cast<std::size_t>(splits * nq * k), -1);
    }
    const index_t tasks = qblocks * splits;
    parallel_for(0, tasks, num_threads, 1, [&](index_t lo, index_t hi) {
        for (index_t t = lo; t < hi; ++t) {
            const index_t qb = t / splits, s = t % splits;
            const index_t q0 = qb * mc, mq = std::min(mc, nq - q0);
            const index_t b_lo = s * split_rows, b_hi = std::min(nb, b_lo + split_rows);
            if (splits == 1)
                search_block(P, q0, mq, b_lo, b_hi, D, I);
            else
                search_block(P, q0, mq, b_lo, b_hi, Dp.data() + s * nq * k, Ip.data() + s * nq * k);
        }
    });
    if (splits == 1) return;
    // Merge the per-split lists; on equal distances the lower split (lower ids) goes first.
    std::vector<index_t> pos(static_cast<std::size_t>(splits));
    for (index_t q = 0; q < nq; ++q) {
        std::fill(pos.begin(), pos.end(), 0);
        for (index_t t = 0; t < k; ++t) {
            index_t best = -1;
            float bd = 0.f;
            for (index_t s = 0; s < splits; ++s) {
                const float v = Dp[static_cast<std::size_t>((s * nq + q) * k + pos[s])];
                if (best < 0 || v < bd) {
                    best = s;
                    bd = v;
                }
            }
            const std::size_t at = static_cast<std::size_t>((best * nq + q) * k + pos[best]);
            D[q * k + t] = Dp[at];
            I[q * k + t] = Ip[at];
            ++pos[best];
        }
    }
}

}  // namespace

}  // namespace fissure
