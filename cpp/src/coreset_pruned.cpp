// SPDX-License-Identifier: Apache-2.0
// The pruned pass of the greedy k-center (see coreset.cpp for the plain one).
//
// Pruned pass (the default when it pays): the same selection, skipping the rows whose minimum
// provably cannot change. Once, every row is projected onto k orthonormal directions (the
// leading principal subspace of a sample) and stored as binary16 with a per-row bound eps on
// that rounding. Then, per step, each row's projected distance to the new centre is a lower
// bound of its true distance (an orthogonal projection never lengthens a vector): a row whose
// bound, less the rounding allowances, already reaches its current minimum cannot be lowered
// (min(min_d, d) = min_d exactly) and is skipped; the others ("candidates") get the exact
// fixed-order distance, stopped early once a partial sum reaches the minimum. Rows are handled
// in blocks of 16 (one vector of bounds), each block keeps its largest minimum for the argmax.
// docs/patchcore_core.md derives the thresholds (tau below) from float32's rounding bounds.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include "coreset_detail.hpp"
#include "fissure/parallel.hpp"

namespace fissure::coreset_detail {

namespace {

// Rows per block of the pruned pass (the lower-bound kernels take 16 points at a time).
constexpr index_t kB = 16;
// Blocks whose bounds are computed before their candidates' rows are read (the two loops stay
// tight: the bound streams the projections, the candidates read scattered rows).
constexpr index_t kChunk = 32;


struct Pruned {
    const FeatureMatrix& f;
    const KcenterKernels& kern;
    index_t N, d, nblocks;
    int k;
    // constants of the bounds
    double gS, etaS, sigma = 1.0, A = 0.0;
    float F, H;
    std::vector<float> min_d;  // nblocks * 16; padding -inf
    std::vector<float> tau;    // nblocks * 16; NaN for selected rows and padding
    std::vector<float> eps;    // N
    std::vector<std::uint16_t> Y;  // [k / 8][block][8][16], binary16, in units of scale
    std::size_t cstride = 0;       // elements between coordinate chunks: nblocks * 128
    double scale = 1.0;            // a power of two: Y, tau, eps are in units of it
    std::vector<float> bmax;   // per block: largest min_d
    std::vector<index_t> barg; // per block: its lowest index

    Pruned(const FeatureMatrix& f_, const KcenterKernels& kern_, int k_)
        : f(f_), kern(kern_), N(f_.rows), d(f_.cols), nblocks((f_.rows + kB - 1) / kB), k(k_) {
        const double mS = static_cast<double>((d + 15) / 16 + 6);
        gS = gamma32(mS);
        etaS = static_cast<double>(d) * 0x1p-149;
        const double gL = gamma32(static_cast<double>(k + 3));
        F = round_up((1.0 + gL) * (1.0 + 8.0 * kU) * (1.0 + kSlack));
        H = std::numeric_limits<float>::min();  // >= 2 k 2^-149: the lower bound's underflow
        const std::size_t np = static_cast<std::size_t>(nblocks * kB);
        min_d.assign(np, -std::numeric_limits<float>::infinity());
        tau.assign(np, std::numeric_limits<float>::quiet_NaN());
        eps.assign(static_cast<std::size_t>(N), 0.f);
        cstride = static_cast<std::size_t>(nblocks * 8 * kB);
        Y.assign(cstride * static_cast<std::size_t>(k / 8), 0);
        bmax.assign(static_cast<std::size_t>(nblocks), -std::numeric_limits<float>::infinity());
        barg.assign(static_cast<std::size_t>(nblocks), 0);
    }

    // tau >= (sigma * sqrt((m + etaS) / (1 - gS)) + eps) / scale: see the doc (eps is already
    // in units of scale).
    float tau_of(float m, float e) const {
        if (!(m >= 0.f)) return std::numeric_limits<float>::quiet_NaN();
        const double t =
            sigma * std::sqrt((static_cast<double>(m) + etaS) / (1.0 - gS)) / scale + e;
        return round_up(t * (1.0 + kSlack));
    }

    void block_max(index_t b) {
        const float* m = min_d.data() + b * kB;
        float bv = m[0];
        int bl = 0;
        for (int l = 1; l < kB; ++l)
            if (m[l] > bv) {
                bv = m[l];
                bl = l;
            }
        bmax[b] = bv;
        barg[b] = b * kB + bl;
    }

    // Projects every row: Y = binary16((x - mu) Q / scale), eps >= |Y scale - (x - mu) Q| / scale.
    void project_all(const Basis& B, int T) {
        sigma = B.sigma;
        // The double-precision product's error: |y - (x - mu) Q| <= sqrt(k) gamma64(d + 1) sigma
        // ||x - mu||, with ||x - mu|| <= its computed value (1 + gamma64(d + 3)).
        A = sigma * std::sqrt(static_cast<double>(k)) * gamma64(static_cast<double>(d + 1)) *
            (1.0 + gamma64(static_cast<double>(d + 3)));
        const knn_detail::WidenFn widen = widen_kernel();
        std::vector<double> vnorm(static_cast<std::size_t>(N));
        auto centred = [&](index_t i, float* x, double* v) {
            const float* row;
            if (f.f16) {
                widen(static_cast<const std::uint16_t*>(f.data) + i * d, x, d);
                row = x;
            } else {
                row = static_cast<const float*>(f.data) + i * d;
            }
            double vn = 0.0;
            for (index_t j = 0; j < d; ++j) {
                v[j] = static_cast<double>(row[j]) - B.mu[j];
                vn += v[j] * v[j];
            }
            return std::sqrt(vn);
        };
        // 1. ||x - mu|| of every row; the scale keeps |y| / scale <= 2^14 (binary16 tops at 65504).
        std::vector<double> tmax(static_cast<std::size_t>(T), 0.0);
        const index_t grain = std::max<index_t>(64, (index_t{1} << 16) / d);
        const int TT = resolve_threads(T, (N + grain - 1) / grain);
        run_parallel(TT, [&](int t) {
            std::vector<float> x(static_cast<std::size_t>(d));
            std::vector<double> v(static_cast<std::size_t>(d));
            double mx = 0.0;
            for (index_t i = N * t / TT; i < N * (t + 1) / TT; ++i) {
                vnorm[i] = centred(i, x.data(), v.data());
                mx = std::max(mx, vnorm[i]);
            }
            tmax[t] = mx;
        });
        const double ymax =
            sigma * *std::max_element(tmax.begin(), tmax.end()) * (1.0 + 1e-6) + 1e-300;
        // ymax / scale in [2^13, 2^14); at least 2^-113 so that the bound's underflow allowance
        // (2^-149 / scale) stays tiny
        scale = std::ldexp(1.0, std::max(std::ilogb(std::max(ymax, 1e-300)), -100) + 1 - 14);
        // 2. the projection, its binary16 rounding, and each row's bound
        parallel_for(0, nblocks, T, std::max<index_t>(1, grain / kB), [&](index_t lo, index_t hi) {
            std::vector<float> x(static_cast<std::size_t>(d));
            std::vector<double> v(static_cast<std::size_t>(d));
            double y[32];
            for (index_t b = lo; b < hi; ++b) {
                if ((b & 63) == 0) cancel_point();
                for (index_t l = 0; l < kB; ++l) {
                    const index_t i = b * kB + l;
                    if (i >= N) break;
                    centred(i, x.data(), v.data());
                    kern.project(B.qt.data(), v.data(), d, k, y);
                    std::uint16_t* yb = Y.data() + b * 8 * kB + l;
                    double e2 = 0.0;
                    for (int a = 0; a < k; ++a) {
                        const double ys = y[a] / scale;  // exact: a power of two
                        const std::uint16_t h = float_to_half(static_cast<float>(ys));
                        yb[(a / 8) * cstride + (a % 8) * kB] = h;
                        const double r = static_cast<double>(half_to_float(h)) - ys;
                        e2 += r * r;
                    }
                    // |Y - y/scale| (computed exactly enough: squares of values already
                    // rounded) + the product's error / scale
                    eps[i] = round_up((std::sqrt(e2) + A * vnorm[i] / scale) * (1.0 + kSlack) +
                                      std::sqrt(static_cast<double>(k)) * 0x1p-149 / scale);
                }
            }
        });
    }

    void refresh_all(int T) {
        parallel_for(0, nblocks, T, 256, [&](index_t lo, index_t hi) {
            for (index_t b = lo; b < hi; ++b) {
                for (index_t l = 0; l < kB; ++l) {
                    const index_t i = b * kB + l;
                    if (i < N) tau[i] = tau_of(min_d[i], eps[i]);
                }
                block_max(b);
            }
        });
    }
};

struct alignas(64) Best {  // one cache line per thread
    float v = -std::numeric_limits<float>::infinity();
    index_t i = std::numeric_limits<index_t>::max();
    std::int64_t cand = 0;
};

// (value, row) order of the argmax: the larger value, then the lower row.
inline bool better(float v, index_t i, float bv, index_t bi) {
    return v > bv || (v == bv && i < bi);
}

}  // namespace

void pruned_greedy(const FeatureMatrix& f, const KcenterKernels& kern, int k, index_t n,
                   index_t start, std::int64_t* out, int num_threads, int T,
                   detail::KcenterStats& st) {
    const index_t N = f.rows;
    std::vector<float> c(static_cast<std::size_t>(knn_detail::round_up(f.cols, 16)), 0.f);
    auto load_centre = [&](index_t i) { load_row(f, i, c.data()); };
    index_t cur = start;
    Pruned P(f, kern, k);
    P.project_all(make_basis(f, k, T), T);
    const index_t nb = P.nblocks;
    // One team of threads runs every step (a spinning barrier between steps: a pruned step is
    // short, and waking pool threads each time would cost more than some steps do). Never more
    // threads than the machine runs at once: team members wait for each other.
    const int TM = std::min(resolve_threads(num_threads, std::max<index_t>(1, N / 1024)),
                            std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
    std::vector<index_t> pb(static_cast<std::size_t>(TM) + 1);  // plain pass: row ranges
    for (int t = 0; t <= TM; ++t) pb[t] = N * t / TM;
    const index_t nchunks = (nb + kChunk - 1) / kChunk;
    std::vector<Best> bests(static_cast<std::size_t>(TM));
    std::vector<float> yc(static_cast<std::size_t>(k));
    SpinBarrier barrier(TM);
    std::atomic<index_t> next_chunk{0};

    float* md = P.min_d.data();
    for (index_t i = 0; i < N; ++i) md[i] = std::numeric_limits<float>::infinity();
    // Shared between steps; written by thread 0 between the two barriers of a step.
    bool plain = true;      // this step is a plain pass (thresholds stale): so is step 1
    index_t plain_left = 0; // plain passes still to run before trying the bound again
    index_t backoff = 4;    // plain passes after the next time the bound fails to prune
    double cand_avg = 0.0;
    index_t pruned_run = 0; // pruned steps since the last plain stretch
    float eps_c = 0.f;

    // Thread 0, before each step: the centre, its projection, its row leaves the candidates.
    auto prepare = [&] {
        load_centre(cur);
        md[cur] = -1.0f;
        if (!plain) {
            const index_t b = cur / kB;
            P.tau[cur] = std::numeric_limits<float>::quiet_NaN();
            P.block_max(b);
            const std::uint16_t* ycol = P.Y.data() + b * 8 * kB + (cur % kB);
            for (int a = 0; a < k; ++a)
                yc[a] = half_to_float(ycol[(a / 8) * P.cstride + (a % 8) * kB]);
            eps_c = P.eps[cur];
        }
        next_chunk.store(0, std::memory_order_relaxed);
    };
    // Every thread: its share of a pruned step, chunks of blocks handed out dynamically.
    auto pruned_work = [&](int t) {
        Best bt;
        const std::uint16_t* Y = P.Y.data();
        float* tau = P.tau.data();
        index_t list[kChunk * kB];
        for (;;) {
            const index_t ch = next_chunk.fetch_add(1, std::memory_order_relaxed);
            if (ch >= nchunks) break;
            const index_t b0 = ch * kChunk, b1 = std::min(nb, b0 + kChunk);
            // 1. the bound for a chunk of blocks: the candidates
            int nc = 0;
            for (index_t b = b0; b < b1; ++b) {
                std::uint32_t mask = kern.lb_mask(Y + b * 8 * kB, P.cstride, yc.data(), k,
                                                  tau + b * kB, eps_c, P.F, P.H);
                while (mask) {
                    list[nc++] = b * kB + knn_detail::lowest_bit(mask);
                    mask &= mask - 1;
                }
            }
            bt.cand += nc;
            // 2. their exact distances (in index order), the block maxima, the running best
            int q = 0;
            for (index_t b = b0; b < b1; ++b) {
                bool changed = false;
                for (; q < nc && list[q] < (b + 1) * kB; ++q) {
                    const index_t i = list[q];
                    const float m = md[i];
                    const float v = kern.row(f, i, c.data(), m);
                    if (v < m) {
                        md[i] = v;
                        tau[i] = P.tau_of(v, P.eps[i]);
                        changed = true;
                    }
                }
                if (changed) P.block_max(b);
                if (better(P.bmax[b], P.barg[b], bt.v, bt.i)) {
                    bt.v = P.bmax[b];
                    bt.i = P.barg[b];
                }
            }
        }
        bests[t] = bt;
    };
    // Thread 0, after each step: the pick, the statistics, the mode of the next step.
    auto finish = [&](index_t s) {
        Best b = bests[0];
        for (int t = 1; t < TM; ++t) {
            b.cand += bests[t].cand;
            if (better(bests[t].v, bests[t].i, b.v, b.i)) {
                b.v = bests[t].v;
                b.i = bests[t].i;
            }
        }
        out[s] = cur = b.i;
        if (plain) {
            st.plain_steps += 1;
            st.rows_computed += N;
            if (plain_left > 0) --plain_left;
            if (plain_left == 0) {
                P.refresh_all(1);
                plain = false;
                cand_avg = 0.0;
                pruned_run = 0;
            }
            return;
        }
        st.pruned_steps += 1;
        st.rows_computed += b.cand;
        // When the bound stops pruning (on average more than 60% of the rows are candidates
        // over the last ~8 steps), plain passes are cheaper: run a few (4, doubling each time
        // the bound fails again soon after, at most 256), then try the bound again.
        cand_avg = 0.875 * cand_avg + 0.125 * static_cast<double>(b.cand) / static_cast<double>(N);
        ++pruned_run;
        if (pruned_run >= 4 && cand_avg > 0.6) {
            plain_left = backoff;
            backoff = std::min<index_t>(256, backoff * 2);
            plain = true;
        } else if (pruned_run >= 64) {
            backoff = 4;
        }
    };
    // Cancellation: every member reads the decision at the same point of a step (after the
    // first barrier; it is written only before that barrier), so they all leave together.
    std::atomic<bool> stop{false};
    auto team = [&](int t) {
        for (index_t s = 1; s < n; ++s) {
            if (t == 0) prepare();
            if (cancel_requested()) stop.store(true, std::memory_order_relaxed);
            barrier.wait();
            if (stop.load(std::memory_order_relaxed)) return;
            if (plain) {
                Best bt;
                kern.pass(f, pb[t], pb[t + 1], c.data(), md, &bt.v, &bt.i);
                bests[t] = bt;  // ranges in index order: a later range never wins a tie
            } else {
                pruned_work(t);
            }
            barrier.wait();
            if (t == 0) finish(s);
        }
    };
    if (TM == 1)
        team(0);
    else
        run_parallel(TM, team);
    if (stop.load()) throw Cancelled();
}

}  // namespace fissure::coreset_detail
