// SPDX-License-Identifier: Apache-2.0
// The exact kNN's bfloat16 route (knn.hpp; knn.cpp chooses it), in two passes:
//
// 1. bfloat16 candidates. Queries and bank rows are centred on the bank's mean (distances do not
//    change) and rounded to bfloat16; the blocked GEMM of knn.cpp runs on them with vdpbf16ps
//    (twice the multiply-adds of float32 per instruction). For every (query, row) pair the
//    approximation A = |q~|^2 + |b~|^2 - 2 q~.b~ comes with a proven interval [L, U] around the
//    float32 distance S the second pass computes (see bounds() below and
//    docs/patchcore_core.md). Per query: T = the k-th smallest U so far; a row is a candidate
//    while L <= T. A vector test with a cheaper, wider bound rejects almost every pair before
//    the interval is computed.
// 2. float32 re-ranking. Each candidate's distance S is computed from the float32 query and row
//    by direct differences (the fixed order of the greedy k-center's distance, coreset.hpp);
//    the k smallest (S, id) are the answer. Every row outside the candidates has
//    S >= L > T >= the k-th smallest S among them, so the answer is the exact top k of S.
//
// A query whose candidates overflow a cap (its distances too close together for bf16 to tell
// apart, e.g. duplicates of far-away rows) is handed back to the float32 path.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "fissure/parallel.hpp"
#include "coreset_kernels.hpp"  // the re-ranking uses the k-center row kernel
#include "knn_kernels.hpp"

namespace fissure::knn_detail {

namespace {

constexpr double kU = 0x1p-24;
constexpr float kUf = 0x1p-24f;
constexpr double kSlack = 1e-9;  // double-precision bounds are inflated by this (see coreset.cpp)

constexpr index_t kMC2 = 960;  // queries per block (a multiple of kMR)
constexpr index_t kNC2 = 128;  // bank rows per block (a multiple of kNP)
constexpr index_t kKP = 256;   // dimension pairs per chunk (512 dimensions)

double gamma32(double m) { return m * kU / (1.0 - m * kU); }

// Per-row quantities of the bounds (queries and bank rows alike).
struct RowInfo {
    float sq = 0.f;   // |x~|^2 of the bf16 row, float32 (the pass adds it to the tile)
    double n = 0.0;   // >= |x~|
    double e = 0.0;   // >= |x~ - (x - mu)|: the bf16 row's distance to the exact centred row
};

// From the float32 sums of KnnBf16Kernels::row_stats over n columns, each within gsum of its
// exact value (non-negative terms): |x~| and |x~ - (x - mu)| <= |x~ - v| + |v - (x - mu)|, the
// latter at most u |v| (v = x - mu rounded to float32).
RowInfo row_info(const float* s, index_t n, double gsum) {
    RowInfo ri;
    const double up = (1.0 + gsum) * (1.0 + kSlack);
    const double tiny = static_cast<double>(n) * 0x1p-148;
    ri.sq = s[0];
    ri.n = std::sqrt(static_cast<double>(s[0]) * up + tiny);
    ri.e = std::sqrt(static_cast<double>(s[1]) * up + tiny) +
           kU * std::sqrt(static_cast<double>(s[2]) * up + tiny) * (1.0 + 4.0 * kU) + 1e-300;
    return ri;
}

struct Cand {
    double lo;
    std::int64_t id;
};

struct QueryState {
    std::vector<double> U;      // the k smallest upper bounds, ascending
    std::vector<Cand> cand;     // rows with lo <= T when seen
    bool overflow = false;
};

}  // namespace

bool knn_bf16_search(const FeatureMatrix& bank, const float* queries, index_t nq, index_t k,
                     float* D, std::int64_t* I, int num_threads, std::vector<index_t>& overflow) {
    const KnnBf16Kernels* bk = knn_bf16_kernels();
    if (!bk) return false;
    const KnnKernels& fk = *knn_avx512_kernels();
    const KcenterKernels& kk = *kcenter_avx512();
    const index_t d = bank.cols, nb = bank.rows, d2 = (d + 1) / 2;

    // The centre: any vector would do, it only makes the centred rows short.
    const std::vector<float> mu = bank_mean(bank, fk);
    // Per-row bound data (float32 sums of d non-negative terms: at most d / 16 + 8 roundings
    // along any path of the 16-lane sums and their reduction).
    const double gsum = gamma32(static_cast<double>(d / 16 + 8));
    std::vector<RowInfo> binfo(static_cast<std::size_t>(nb)), qinfo(static_cast<std::size_t>(nq));
    parallel_for(0, nb, num_threads, 256, [&](index_t lo, index_t hi) {
        std::vector<float> buf(static_cast<std::size_t>(d));
        std::vector<std::uint32_t> pr(static_cast<std::size_t>(d2 + 16));
        float st[3];
        for (index_t i = lo; i < hi; ++i) {
            const float* r = bank.f16 ? (fk.widen(static_cast<const std::uint16_t*>(bank.data) + i * d,
                                                  buf.data(), d),
                                         buf.data())
                                      : static_cast<const float*>(bank.data) + i * d;
            bk->row_stats(r, mu.data(), d, pr.data(), st);
            binfo[i] = row_info(st, d, gsum);
        }
    });
    parallel_for(0, nq, num_threads, 256, [&](index_t lo, index_t hi) {
        std::vector<std::uint32_t> pr(static_cast<std::size_t>(d2 + 16));
        float st[3];
        for (index_t i = lo; i < hi; ++i) {
            bk->row_stats(queries + i * d, mu.data(), d, pr.data(), st);
            qinfo[i] = row_info(st, d, gsum);
        }
    });
    // The same, contiguous float32 (the vector test; rounding inside its 0.1% allowance).
    std::vector<float> bsq(static_cast<std::size_t>(nb + 16)), bn(bsq.size()), be(bsq.size());
    for (index_t i = 0; i < nb; ++i) {
        bsq[i] = binfo[i].sq;
        bn[i] = static_cast<float>(binfo[i].n);
        be[i] = static_cast<float>(binfo[i].e);
    }

    // Constants. The pass's dot product: each product of two bf16 is exact in float32; a term
    // then goes through at most mdot roundings (the pair sum, the k-step chain, the chunk sums
    // in the tile), each of which may also flush a subnormal (at most 2^-126 each).
    const double mdot = 1.0 + static_cast<double>(d2) + static_cast<double>((d2 + kKP - 1) / kKP) + 1.0;
    const double gdot = gamma32(mdot);
    const double flush = (static_cast<double>(d) + 2.0 * mdot) * 0x1p-126;
    // S (re-ranking) against the exact squared distance E: S in [(1-gS)E - etaS, (1+gS)E + etaS].
    const double gS = gamma32(static_cast<double>((d + 15) / 16 + 6));
    const double etaS = static_cast<double>(d) * 0x1p-149;
    // The vector reject test: L >= A - Eloose with Eloose = cl S^2 + 2 (eq + eb) S + (eq + eb)^2
    // + tiny, S = nq~ + nb~ >= |q~ - b~| (see bounds()), inflated for its own float rounding.
    const double cA = 2.0 * gdot + 2.0 * gsum + 3.0 * kU;
    // (plus 4u: the scan's float32 A against the interval's double A)
    const float cl = static_cast<float>((cA * (1.0 + gS) + gS + 4.0 * kU) * 1.001);
    const float tiny = static_cast<float>((flush * 4.0 + etaS * 4.0) + 1e-37);

    // A pair's interval [lo, hi] for S, in double (rounding far below the slack).
    auto bounds = [&](float dot, const RowInfo& q, const RowInfo& b, double& L, double& U) {
        const double A = static_cast<double>(q.sq) + static_cast<double>(b.sq) - 2.0 * dot;
        // |A - |q~ - b~|^2| <= eA: the float32 squared norms (gsum each), the dot product's
        // rounding, the subnormals flushed
        const double eA = gsum * (q.n * q.n + b.n * b.n) + 2.0 * gdot * q.n * b.n + flush;
        const double slo = std::sqrt(std::max(0.0, A - eA)), shi = std::sqrt(std::max(0.0, A + eA));
        // |q - b| = |(q - mu) - (b - mu)| is within eq + eb of |q~ - b~|
        const double eps = q.e + b.e;
        const double elo = std::max(0.0, slo - eps), ehi = shi + eps;
        L = (elo * elo * (1.0 - gS) - etaS) * (1.0 - kSlack);
        U = (ehi * ehi * (1.0 + gS) + etaS) * (1.0 + kSlack);
    };

    // A query keeps at most `cap` candidates. When the list fills, those whose lower bound
    // the threshold has passed since are dropped (T only decreases: re-ranking would skip
    // them); if half the cap is still live the query is crowded (its distances agree to bf16's
    // precision) and goes to the float32 route. Compaction frees at least cap / 2 slots, so it
    // runs at most once per cap / 2 pushes.
    const std::size_t cap = static_cast<std::size_t>(std::max<index_t>(512, 64 * k));
    // One surviving pair: its interval; the k smallest upper bounds; the candidates.
    auto consider = [&](QueryState& st, const RowInfo& q, const RowInfo& b, float dot,
                        index_t id) {
        double L, U;
        bounds(dot, q, b, L, U);
        if (U < st.U[k - 1]) {
            index_t p = k - 1;
            while (p > 0 && U < st.U[p - 1]) {
                st.U[p] = st.U[p - 1];
                --p;
            }
            st.U[p] = U;
        }
        if (L <= st.U[k - 1]) {
            if (st.cand.size() >= cap) {
                const double T = st.U[k - 1];
                st.cand.erase(std::remove_if(st.cand.begin(), st.cand.end(),
                                             [T](const Cand& c) { return c.lo > T; }),
                              st.cand.end());
                if (st.cand.size() >= cap / 2) {  // crowded: handed to the float32 path
                    st.overflow = true;
                    std::vector<Cand>().swap(st.cand);
                    return;
                }
            }
            st.cand.push_back({L, id});
        }
    };

    const int T = resolve_threads(num_threads);
    index_t qblocks = (nq + kMC2 - 1) / kMC2;
    if (qblocks < T) qblocks = std::min<index_t>(T, (nq + kMR - 1) / kMR);
    qblocks = round_up(qblocks, T);
    const index_t mc = round_up((nq + qblocks - 1) / qblocks, kMR);
    qblocks = (nq + mc - 1) / mc;
    std::vector<char> over(static_cast<std::size_t>(nq), 0);

    parallel_for(0, qblocks, num_threads, 1, [&](index_t lo, index_t hi) {
        std::vector<std::uint32_t> qp, bp(static_cast<std::size_t>(kNC2 * kKP));
        std::vector<float> ctile, buf(static_cast<std::size_t>(d));
        std::vector<std::uint32_t> rowp(static_cast<std::size_t>(d2 + 16));
        std::vector<float> qpad(static_cast<std::size_t>(round_up(d, 16)), 0.f);
        for (index_t qb = lo; qb < hi; ++qb) {
            const index_t q0 = qb * mc, mq = std::min(mc, nq - q0);
            const index_t groups = (mq + kMR - 1) / kMR;
            // Pack the queries: [group][d2][kMR] pairs.
            qp.assign(static_cast<std::size_t>(groups * d2 * kMR), 0u);
            for (index_t qi = 0; qi < mq; ++qi) {
                bk->to_bf16(queries + (q0 + qi) * d, mu.data(), d, rowp.data());
                std::uint32_t* dst = qp.data() + (qi / kMR) * d2 * kMR + (qi % kMR);
                for (index_t p = 0; p < d2; ++p) dst[p * kMR] = rowp[p];
            }
            ctile.assign(static_cast<std::size_t>(groups * kMR * kNC2), 0.f);
            std::vector<QueryState> qs(static_cast<std::size_t>(mq));
            for (auto& s : qs) s.U.assign(static_cast<std::size_t>(k), INFINITY);
            index_t crowded = 0;  // queries of the block handed to the float32 path

            for (index_t b0 = 0; b0 < nb && crowded < mq; b0 += kNC2) {
                cancel_point();
                const index_t nbr = std::min(kNC2, nb - b0);
                const index_t npan = (nbr + kNP - 1) / kNP;
                for (index_t p0 = 0; p0 < d2; p0 += kKP) {
                    const index_t kp = std::min(kKP, d2 - p0);
                    // Pack the bank chunk: [panel][kp][16] pairs; rows past nbr are zero.
                    for (index_t j = 0; j < npan * kNP; ++j) {
                        std::uint32_t* dst = bp.data() + (j / kNP) * kp * kNP + (j % kNP);
                        if (j >= nbr) {
                            for (index_t p = 0; p < kp; ++p) dst[p * kNP] = 0u;
                            continue;
                        }
                        const index_t row = b0 + j;
                        const index_t j0 = 2 * p0, n = std::min(d - j0, 2 * kp);
                        const float* src;
                        if (bank.f16) {
                            fk.widen(static_cast<const std::uint16_t*>(bank.data) + row * d + j0,
                                     buf.data(), n);
                            src = buf.data();
                        } else {
                            src = static_cast<const float*>(bank.data) + row * d + j0;
                        }
                        bk->to_bf16(src, mu.data() + j0, n, rowp.data());
                        for (index_t p = 0; p < kp; ++p) dst[p * kNP] = rowp[p];
                    }
                    for (index_t g = 0; g < groups; ++g) {
                        const std::uint32_t* qg = qp.data() + g * d2 * kMR + p0 * kMR;
                        float* cg = ctile.data() + g * kMR * kNC2;
                        for (index_t p = 0; p < npan;) {
                            const int np = p + 1 < npan ? 2 : 1;
                            bk->micro(qg, bp.data() + p * kp * kNP, kp, cg + p * kNP, kNC2, np, p0 > 0);
                            p += np;
                        }
                    }
                }
                // Scan the tile: the cheap test on every pair (16 at a time, against the
                // threshold at the start of the 16: it only decreases), the interval on the
                // survivors.
                for (index_t qi = 0; qi < mq; ++qi) {
                    QueryState& st = qs[qi];
                    const RowInfo& q = qinfo[q0 + qi];
                    const float* crow = ctile.data() + qi * kNC2;
                    const float qn = static_cast<float>(q.n), qe = static_cast<float>(q.e);
                    for (index_t j0 = 0; j0 < nbr && !st.overflow; j0 += 16) {
                        const float thr = static_cast<float>(st.U[k - 1]) * (1.0f + 4.0f * kUf);
                        std::uint32_t live = bk->survivors(
                            crow + j0, bsq.data() + b0 + j0, bn.data() + b0 + j0,
                            be.data() + b0 + j0, nbr - j0, q.sq, qn, qe, cl, tiny, thr);
                        while (live && !st.overflow) {
                            const index_t j = j0 + lowest_bit(live);
                            live &= live - 1;
                            consider(st, q, binfo[b0 + j], crow[j], b0 + j);
                        }
                        if (st.overflow) ++crowded;
                    }
                }
            }
            // Re-rank: the exact float32 distance of every candidate still below T.
            for (index_t qi = 0; qi < mq; ++qi) {
                QueryState& st = qs[qi];
                const index_t qg = q0 + qi;
                if (st.overflow) {
                    over[qg] = 1;
                    continue;
                }
                const double Tf = st.U[k - 1];
                std::copy_n(queries + qg * d, d, qpad.begin());
                std::vector<std::pair<float, std::int64_t>> best;
                best.reserve(st.cand.size());
                for (const Cand& cd : st.cand) {
                    if (cd.lo > Tf) continue;
                    best.emplace_back(kk.row(bank, cd.id, qpad.data(), INFINITY), cd.id);
                }
                const std::size_t m = std::min<std::size_t>(best.size(), static_cast<std::size_t>(k));
                std::partial_sort(best.begin(), best.begin() + static_cast<std::ptrdiff_t>(m), best.end());
                for (std::size_t t = 0; t < m; ++t) {
                    D[qg * k + static_cast<index_t>(t)] = best[t].first;
                    I[qg * k + static_cast<index_t>(t)] = best[t].second;
                }
            }
        }
    });
    overflow.clear();
    for (index_t i = 0; i < nq; ++i)
        if (over[i]) overflow.push_back(i);
    return true;
}

}  // namespace fissure::knn_detail
