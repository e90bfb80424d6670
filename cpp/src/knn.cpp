// SPDX-License-Identifier: Apache-2.0
// Exact kNN in squared L2 with fused top-k (see knn.hpp), the row checks shared with the
// coreset family, the portable kernels and the dispatch.
//
// Blocking (BLIS-style, the nq x nb distance matrix never exists):
//   task = (block of up to kMC queries, range of bank rows)
//     pack the query block once, centred on the bank's mean mu:
//       [group of kMR rows][d][kMR] (zero rows pad the last group)
//     for each block of up to kNC bank rows:
//       for each chunk of up to kKC dimensions:
//         pack the centred bank chunk: [panel of 16 rows][kc][16] (float16 widened here)
//         for each query group, for each panel (pair): micro-kernel accumulates the
//           kMR x 16(32) dot products into the C tile (kMC x kNC floats, L2-resident)
//       scan the C tile: A = (|q'|^2 + |b'|^2) - 2 q'.b' (q' = fl(q - mu), b' = fl(b - mu));
//         each query keeps its k smallest A and, as candidates, every row whose A is below a
//         threshold derived from them with proven error bounds (see candidate_margin)
//     re-rank: each query's surviving candidates get S, the float32 direct-difference distance
//       (the greedy k-center's fixed order, coreset.hpp); the k smallest (S, id) are the answer
// With few query blocks the bank is split too and the per-split lists (of S) are merged.
// Searches with enough work per query (see bf16_pays) on CPUs with AVX512_BF16 go through
// knn_bf16.cpp first (bf16 candidates, float32 re-ranking); the queries it hands back take
// the path above. A query whose candidates crowd (more than the cap stay live: its distances
// agree to float32's precision) gets S for every row of its range instead.
#include "fissure/knn.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <sstream>
#include <vector>

#include "coreset_kernels.hpp"  // the re-ranking uses the k-center row kernel
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

std::vector<float> bank_mean(const FeatureMatrix& bank, const KnnKernels& kern) {
    const index_t d = bank.cols, nb = bank.rows;
    std::vector<float> mu(static_cast<std::size_t>(round_up(d, 32)), 0.f);
    const index_t ns = std::min<index_t>(nb, 1024);
    std::vector<double> acc(static_cast<std::size_t>(d), 0.0);
    std::vector<float> buf(static_cast<std::size_t>(d));
    for (index_t r = 0; r < ns; ++r) {
        const index_t i = r * nb / ns;
        const float* x = static_cast<const float*>(bank.data) + i * d;
        if (bank.f16) {
            kern.widen(static_cast<const std::uint16_t*>(bank.data) + i * d, buf.data(), d);
            x = buf.data();
        }
        for (index_t j = 0; j < d; ++j) acc[j] += x[j];
    }
    for (index_t j = 0; j < d; ++j) mu[j] = static_cast<float>(acc[j] / static_cast<double>(ns));
    return mu;
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

// Error bounds of the float32 route (docs/patchcore_core.md). u is float32's unit roundoff.
constexpr double kU = 0x1p-24;
constexpr double kSlack = 1e-9;  // double-precision bounds are inflated by this
double gamma32(double m) { return m * kU / (1.0 - m * kU); }

// The smallest float >= x (x >= 0; +inf past FLT_MAX).
float float_at_least(double x) {
    if (!(x <= static_cast<double>(FLT_MAX))) return INFINITY;
    float f = static_cast<float>(x);
    if (static_cast<double>(f) < x) f = std::nextafter(f, INFINITY);
    return f;
}

struct Problem {
    const FeatureMatrix* bank;
    const float* queries;
    index_t nq, d, k;
    const float* mu;   // the centre, padded with zeros to a multiple of 16
    const float* qn;   // |q'|^2 per query (float32 sums)
    const float* bn;   // |b'|^2 per bank row
    const double* eq;  // per query: bound on |A - |q' - b'|^2| for every row
    const double* cq;  // per query: bound on | |q - b| - |q' - b'| | for every row
    double gS, etaS;   // S within gS E + etaS of E = |q - b|^2 (the k-center row bound)
    std::size_t cap;   // most candidates a query keeps
    const KnnKernels* kern;
    const KcenterKernels* rowk;
};

// The candidate threshold on A for a query whose k-th smallest A is TA: a row with A above it
// has S >= L(A) > U(TA) >= the S of each of the k rows with A <= TA, so it is not among the k
// nearest by S. With E' = |q' - b'|^2, |A - E'| <= e and |sqrt(E) - sqrt(E')| <= c:
//   U(A) = ((sqrt(A + e) + c)^2 (1 + gS) + etaS),  L(A) = ((sqrt(A - e) - c)^2 (1 - gS) - etaS)
// and L(A) <= U(TA) exactly when A <= thr(TA) = e + (c + sqrt((U(TA) + etaS) / (1 - gS)))^2.
// Computed in double, inflated by kSlack at each step: more candidates, never fewer.
// thr'(TA) >= 1, so thr(TA) - TA never decreases with TA: for TA <= TA0, TA + (thr(TA0) - TA0)
// >= thr(TA). The scan uses that margin (an addition) and recomputes it when TA halves.
double candidate_margin(const Problem& P, index_t q, float TA) {
    const double e = P.eq[q], c = P.cq[q], t = static_cast<double>(TA);
    const double hi = std::sqrt(std::max(0.0, t + e)) + c;
    const double TU = (hi * hi * (1.0 + P.gS) + P.etaS) * (1.0 + kSlack);
    const double x =
        std::sqrt(std::max(0.0, (TU * (1.0 + kSlack) + P.etaS) / (1.0 - P.gS))) + c;
    const double thr = (e + x * x) * (1.0 + kSlack);
    return (thr - t) + thr * 1e-12;  // (the subtraction's rounding)
}

struct Cand {
    float a;
    std::int64_t id;
};

struct QueryState {
    float thr = INFINITY;   // candidate threshold (only decreases)
    float ta0 = INFINITY;   // the TA the margin was computed at
    double margin = 0.0;    // thr(ta0) - ta0
    std::vector<Cand> cand; // rows with A <= thr when seen
    bool crowded = false;   // over the cap: S for every row of the range instead
};

// The k smallest (S, id) of the query against bank rows [lo, hi), every row computed (a
// crowded query). Dq/Iq hold FLT_MAX / -1 on entry.
void direct_top_k(const Problem& P, const float* qpad, index_t lo, index_t hi, float* Dq,
                  std::int64_t* Iq) {
    const index_t k = P.k;
    for (index_t id = lo; id < hi; ++id) {
        if (((id - lo) & 1023) == 1023) cancel_point();
        const float v = P.rowk->row(*P.bank, id, qpad, Dq[k - 1]);
        if (v < Dq[k - 1]) insert_sorted(Dq, Iq, k, v, id);
    }
}

// Top-k of queries [q0, q0 + mq) against bank rows [b_lo, b_hi) into D/I rows q0.. (k each).
// Returns how many of its queries were crowded.
std::int64_t search_block(const Problem& P, index_t q0, index_t mq, index_t b_lo, index_t b_hi,
                          float* D, std::int64_t* I) {
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
            for (index_t j = 0; j < d; ++j) dst[j * kMR + r] = src[j] - P.mu[j];
        }
    }
    const index_t kc_max = std::min(d, kKC);
    std::vector<float> bp(static_cast<std::size_t>(kNC * kc_max));
    std::vector<float> ctile(static_cast<std::size_t>(groups * kMR * kNC));
    std::vector<float> wide(P.bank->f16 ? static_cast<std::size_t>(kc_max) : 0);
    std::vector<float> dist(static_cast<std::size_t>(kNC));
    std::vector<QueryState> qs(static_cast<std::size_t>(mq));
    const index_t ldc = kNC;

    for (index_t b0 = b_lo; b0 < b_hi; b0 += kNC) {
        cancel_point();
        const index_t nbr = std::min(kNC, b_hi - b0);
        const index_t npan = (nbr + kNP - 1) / kNP;
        for (index_t k0 = 0; k0 < d; k0 += kKC) {
            const index_t kc = std::min(kKC, d - k0);
            const float* mu = P.mu + k0;
            // Pack the centred bank chunk: [panel][kc][16]; rows past nbr are zero.
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
                    for (index_t kk = 0; kk < kc; ++kk) panel[kk * kNP + j] = src[kk] - mu[kk];
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
        // Scan the tile: each query's k smallest A, and its candidates.
        const float* bn = P.bn + b0;
        for (index_t i = 0; i < mq; ++i) {
            QueryState& st = qs[static_cast<std::size_t>(i)];
            if (st.crowded) continue;
            const float qn = P.qn[q0 + i];
            const float* crow = ctile.data() + i * ldc;
            float thr = st.thr;
            // Most (query, block) pairs have no candidate: one vectorised pass says so, per
            // group of 16 rows (the tile is padded to whole groups, the norms with +inf: a
            // padding row can only count while the threshold is +inf; the rows below skip it).
            const index_t ngroups = (nbr + 15) / 16;
            int group_hits[kNC / 16];
            int hits = 0;
            for (index_t c = 0; c < ngroups; ++c) {
                int h = 0;
                for (int l = 0; l < 16; ++l) {
                    const index_t j = c * 16 + l;
                    const float a = (qn + bn[j]) - 2.0f * crow[j];
                    dist[j] = a;
                    h += a <= thr ? 1 : 0;
                }
                group_hits[c] = h;
                hits += h;
            }
            if (hits == 0) continue;
            float* Dq = D + (q0 + i) * k;
            std::int64_t* Iq = I + (q0 + i) * k;
            for (index_t c = 0; c < ngroups && !st.crowded; ++c) {
                if (group_hits[c] == 0) continue;
                const index_t j0 = c * 16;
                // The threshold is brought down once per 16 (a larger one only keeps more).
                bool inserted = false;
                for (index_t j = j0; j < j0 + 16 && j < nbr; ++j) {
                    float a = dist[j];
                    if (!(a <= thr)) continue;
                    std::int64_t id = b0 + j;
                    if (a < Dq[k - 1]) {
                        // The row joins the k-list; the row it evicts becomes a candidate if
                        // it is still below the threshold.
                        const float ev = Dq[k - 1];
                        const std::int64_t ev_id = Iq[k - 1];
                        insert_sorted(Dq, Iq, k, a, id);
                        inserted = true;
                        if (ev_id < 0 || !(ev <= thr)) continue;
                        a = ev;
                        id = ev_id;
                    }
                    if (st.cand.size() >= P.cap) {
                        // Drop the entries the threshold has passed since (re-ranking would
                        // skip them); with half the cap still live the query is crowded.
                        st.cand.erase(std::remove_if(st.cand.begin(), st.cand.end(),
                                                     [thr](const Cand& c) { return c.a > thr; }),
                                      st.cand.end());
                        if (st.cand.size() >= P.cap / 2) {
                            st.crowded = true;
                            std::vector<Cand>().swap(st.cand);
                            break;
                        }
                    }
                    st.cand.push_back({a, id});
                }
                if (inserted && Dq[k - 1] < FLT_MAX) {
                    const float TA = Dq[k - 1];
                    if (!(TA >= 0.5f * st.ta0) || !(TA > 0.f)) {
                        st.margin = candidate_margin(P, q0 + i, TA);
                        st.ta0 = TA;
                    }
                    thr = st.thr = float_at_least(static_cast<double>(TA) + st.margin);
                }
            }
        }
    }
    // Re-rank: S for the candidates still below the threshold; the k smallest (S, id).
    std::vector<float> qpad(static_cast<std::size_t>(round_up(d, 16)), 0.f);
    std::vector<std::pair<float, std::int64_t>> best;
    std::vector<std::int64_t> ids;
    const std::size_t row_bytes = static_cast<std::size_t>(d) * (P.bank->f16 ? 2 : 4);
    auto prefetch_row = [&](std::int64_t id) {
#if defined(__GNUC__) || defined(__clang__)
        const char* p = static_cast<const char*>(P.bank->data) + static_cast<std::size_t>(id) * row_bytes;
        for (std::size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off);
#else
        (void)id;
#endif
    };
    std::int64_t crowded = 0;
    for (index_t i = 0; i < mq; ++i) {
        QueryState& st = qs[static_cast<std::size_t>(i)];
        const index_t q = q0 + i;
        float* Dq = D + q * k;
        std::int64_t* Iq = I + q * k;
        std::copy_n(P.queries + q * d, d, qpad.begin());
        if (st.crowded) {
            std::fill(Dq, Dq + k, FLT_MAX);
            std::fill(Iq, Iq + k, std::int64_t{-1});
            direct_top_k(P, qpad.data(), b_lo, b_hi, Dq, Iq);
            ++crowded;
            continue;
        }
        best.clear();
        ids.clear();
        for (index_t t = 0; t < k && Iq[t] >= 0; ++t) ids.push_back(Iq[t]);  // the k-list
        for (const Cand& c : st.cand)
            if (c.a <= st.thr) ids.push_back(c.id);
        // The rows are far apart in the bank: fetch the next ones while one is computed.
        for (std::size_t t = 0; t < ids.size(); ++t) {
            if (t + 2 < ids.size()) prefetch_row(ids[t + 2]);
            best.emplace_back(P.rowk->row(*P.bank, ids[t], qpad.data(), INFINITY), ids[t]);
        }
        const std::size_t m = std::min<std::size_t>(best.size(), static_cast<std::size_t>(k));
        std::partial_sort(best.begin(), best.begin() + static_cast<std::ptrdiff_t>(m), best.end());
        std::fill(Dq, Dq + k, FLT_MAX);
        std::fill(Iq, Iq + k, std::int64_t{-1});
        for (std::size_t t = 0; t < m; ++t) {
            Dq[t] = best[t].first;
            Iq[t] = best[t].second;
        }
        std::vector<Cand>().swap(st.cand);
    }
    return crowded;
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
                 std::int64_t* I, int num_threads, std::atomic<std::int64_t>& direct);
}  // namespace

namespace detail {

void knn_search_opts(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k,
                     float* D, std::int64_t* I, int num_threads, KnnStats* stats) {
    if (k < 1) fail("k: expected k >= 1, got " + std::to_string(k));
    if (bank.rows < 1) fail("bank: expected at least one row, got an empty bank");
    if (bank.cols < 1) fail("bank: expected at least one column, got 0");
    if (nq < 0) fail("queries: negative count");
    const index_t nqk = checked_mul(nq, k, "knn_search: queries x k");
    for (index_t i = 0; i < nqk; ++i) {
        D[i] = FLT_MAX;
        I[i] = -1;
    }
    KnnStats st{};
    if (stats) *stats = st;
    if (nq == 0) return;
    const index_t d = bank.cols, nb = bank.rows;
    check_feature_rows(bank, "bank", nullptr, num_threads);
    check_feature_rows(FeatureMatrix{queries, nq, d, false}, "queries", nullptr, num_threads);
    std::atomic<std::int64_t> direct{0};

    // Enough work per query: the bfloat16 first pass and float32 re-ranking (knn_bf16.cpp),
    // where the CPU has AVX512_BF16.
    const int force = forced_route(Route::knn_bf16);
    const bool use_bf16 = force == 1 || (force < 0 && bf16_pays(nb, d, nq, k));
    std::vector<index_t> over;
    if (use_bf16 && k < nb && knn_bf16_search(bank, queries, nq, k, D, I, num_threads, over)) {
        st.bf16_queries = nq - static_cast<std::int64_t>(over.size());
        st.fp32_queries = static_cast<std::int64_t>(over.size());
        if (!over.empty()) {
            // the queries whose candidates overflowed: the float32 route
            const index_t no = static_cast<index_t>(over.size());
            std::vector<float> q2(static_cast<std::size_t>(checked_mul(no, d, "queries")));
            for (index_t i = 0; i < no; ++i) std::copy_n(queries + over[i] * d, d, q2.begin() + i * d);
            std::vector<float> D2(static_cast<std::size_t>(no * k), FLT_MAX);
            std::vector<std::int64_t> I2(static_cast<std::size_t>(no * k), -1);
            search_fp32(bank, q2.data(), no, k, D2.data(), I2.data(), num_threads, direct);
            for (index_t i = 0; i < no; ++i) {
                std::copy_n(D2.begin() + i * k, k, D + over[i] * k);
                std::copy_n(I2.begin() + i * k, k, I + over[i] * k);
            }
        }
    } else {
        st.fp32_queries = nq;
        search_fp32(bank, queries, nq, k, D, I, num_threads, direct);
    }
    st.direct_queries = direct.load();
    if (stats) *stats = st;
}

bool knn_bf16_available() { return knn_bf16_kernels() != nullptr; }

}  // namespace detail

void knn_search(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k, float* D,
                std::int64_t* I, int num_threads) {
    detail::knn_search_opts(bank, queries, nq, k, D, I, num_threads, nullptr);
}

namespace {

void search_fp32(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k, float* D,
                 std::int64_t* I, int num_threads, std::atomic<std::int64_t>& direct) {
    const index_t d = bank.cols, nb = bank.rows;
    const KnnKernels& kern = kernels();
    const KcenterKernels& rowk = kcenter_kernels();

    // The centre (any vector would do: it only makes the centred rows short) and the squared
    // norms of the centred rows, as the scan adds them.
    const std::vector<float> mu = bank_mean(bank, kern);
    // (bn is padded with +inf to whole groups of 16 rows: the scan reads them, and ignores them)
    std::vector<float> bn(static_cast<std::size_t>(nb + 16), INFINITY), qn(static_cast<std::size_t>(nq));
    const index_t grain = std::max<index_t>(1, (index_t{1} << 16) / d);
    std::vector<float> bmax(static_cast<std::size_t>(nb + grain - 1) / static_cast<std::size_t>(grain), 0.f);
    parallel_for(0, nb, num_threads, grain, [&](index_t lo, index_t hi) {
        std::vector<float> buf(static_cast<std::size_t>(d)), v(static_cast<std::size_t>(d));
        float mx = 0.f;
        for (index_t i = lo; i < hi; ++i) {
            const float* r = row_f32(bank, i, buf.data(), kern);
            for (index_t j = 0; j < d; ++j) v[j] = r[j] - mu[j];
            bn[i] = sq_norm(v.data(), d);
            mx = std::max(mx, bn[i]);
        }
        bmax[static_cast<std::size_t>(lo / grain)] = mx;
    });
    parallel_for(0, nq, num_threads, grain, [&](index_t lo, index_t hi) {
        std::vector<float> v(static_cast<std::size_t>(d));
        for (index_t i = lo; i < hi; ++i) {
            for (index_t j = 0; j < d; ++j) v[j] = queries[i * d + j] - mu[j];
            qn[i] = sq_norm(v.data(), d);
        }
    });
    // Bounds (docs/patchcore_core.md, "Arithmetic, float32 route"). The float32 sums of d
    // non-negative squares (any order) are within gsum of their value; A's dot product takes
    // at most d + d / kKC + 1 roundings per term, its sums two more: |A - |q' - b'|^2| <=
    // gA (|q'| + |b'|)^2 + tiny. The centring rounds each coordinate once: |q - b| lies within
    // u / (1 - u) (|q'| + |b'|) of |q' - b'|.
    const double dd = static_cast<double>(d);
    const double gsum = gamma32(dd + 2.0);
    const double gA = gamma32(dd + dd / static_cast<double>(kKC) + 8.0);
    const double tinyA = dd * 0x1p-146;
    const double R = std::sqrt(static_cast<double>(*std::max_element(bmax.begin(), bmax.end())) *
                               (1.0 + gsum) + dd * 0x1p-148);
    std::vector<double> eq(static_cast<std::size_t>(nq)), cq(static_cast<std::size_t>(nq));
    for (index_t i = 0; i < nq; ++i) {
        const double nqi = std::sqrt(static_cast<double>(qn[i]) * (1.0 + gsum) + dd * 0x1p-148);
        eq[i] = (gA * (nqi + R) * (nqi + R) + tinyA) * (1.0 + kSlack);
        cq[i] = (kU / (1.0 - kU)) * (nqi + R) * (1.0 + kSlack);
    }
    Problem P{&bank, queries, nq, d, k, mu.data(), qn.data(), bn.data(), eq.data(), cq.data(),
              gamma32(static_cast<double>((d + 15) / 16 + 6)), dd * 0x1p-149,
              static_cast<std::size_t>(std::max<index_t>(512, 64 * std::min<index_t>(k, nb))),
              &kern, &rowk};

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
        const index_t total = checked_mul(splits, checked_mul(nq, k, "knn_search"), "knn_search");
        Dp.assign(static_cast<std::size_t>(total), FLT_MAX);
        Ip.assign(static_cast<std::size_t>(total), -1);
    }
    const index_t tasks = qblocks * splits;
    parallel_for(0, tasks, num_threads, 1, [&](index_t lo, index_t hi) {
        for (index_t t = lo; t < hi; ++t) {
            const index_t qb = t / splits, s = t % splits;
            const index_t q0 = qb * mc, mq = std::min(mc, nq - q0);
            const index_t b_lo = s * split_rows, b_hi = std::min(nb, b_lo + split_rows);
            std::int64_t crowded;
            if (splits == 1)
                crowded = search_block(P, q0, mq, b_lo, b_hi, D, I);
            else
                crowded = search_block(P, q0, mq, b_lo, b_hi, Dp.data() + s * nq * k,
                                       Ip.data() + s * nq * k);
            direct.fetch_add(crowded, std::memory_order_relaxed);
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
