// SPDX-License-Identifier: Apache-2.0
// Greedy k-center coreset (see coreset.hpp): the driver, the portable kernels, the dispatch.
//
// Plain pass (small problems, narrow features): per selected point, every row's squared
// distance to the new centre (the fixed float32 order of coreset.hpp), the running minimum and
// the argmax of the minima, fused; rows split into contiguous ranges over the threads and the
// per-thread maxima merged (ties: the lowest index). Selected rows carry min_d = -1.
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
#include "fissure/coreset.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "fissure/parallel.hpp"
#include "half.hpp"
#include "knn_kernels.hpp"

namespace fissure {

namespace knn_detail {

namespace {

inline float tree16(const float* acc) {
    float a8[8], a4[4];
    for (int l = 0; l < 8; ++l) a8[l] = acc[l] + acc[l + 8];
    for (int l = 0; l < 4; ++l) a4[l] = a8[l] + a8[l + 4];
    const float a20 = a4[0] + a4[2], a21 = a4[1] + a4[3];
    return a20 + a21;
}

template <bool F16>
void kcenter_generic_t(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                       float* min_d, float* best, index_t* best_idx) {
    const index_t d = m.cols;
    float bv = -std::numeric_limits<float>::infinity();
    index_t bi = -1;
    float x[16];
    for (index_t i = lo; i < hi; ++i) {
        float acc[16] = {};
        index_t j = 0;
        if (!F16) {  // full blocks straight from the row (the loop the compiler vectorises)
            const float* row = static_cast<const float*>(m.data) + i * d;
            for (; j + 16 <= d; j += 16) {
                for (int l = 0; l < 16; ++l) {
                    const float s = row[j + l] - c[j + l];
                    acc[l] += s * s;
                }
            }
        }
        for (; j < d; j += 16) {
            const index_t n = std::min<index_t>(16, d - j);
            if (F16) {
                const std::uint16_t* src = static_cast<const std::uint16_t*>(m.data) + i * d + j;
                for (index_t l = 0; l < n; ++l) x[l] = half_to_float(src[l]);
            } else {
                const float* src = static_cast<const float*>(m.data) + i * d + j;
                for (index_t l = 0; l < n; ++l) x[l] = src[l];
            }
            for (index_t l = n; l < 16; ++l) x[l] = c[j + l];  // diff 0: adds +0, a no-op
            for (int l = 0; l < 16; ++l) {
                const float s = x[l] - c[j + l];
                acc[l] += s * s;
            }
        }
        const float v = tree16(acc);
        float md = min_d[i];
        if (v < md) md = v;
        min_d[i] = md;
        if (md > bv) {
            bv = md;
            bi = i;
        }
    }
    *best = bv;
    *best_idx = bi;
}

void kcenter_generic_fn(const FeatureMatrix& m, index_t lo, index_t hi, const float* c,
                        float* min_d, float* best, index_t* best_idx) {
    if (m.f16)
        kcenter_generic_t<true>(m, lo, hi, c, min_d, best, best_idx);
    else
        kcenter_generic_t<false>(m, lo, hi, c, min_d, best, best_idx);
}

// One row in the fixed order; the partial sum is checked every 64 columns (4 blocks of 16).
template <bool F16>
float row_generic_t(const FeatureMatrix& m, index_t i, const float* c, float bound) {
    const index_t d = m.cols;
    float acc[16] = {};
    float x[16];
    for (index_t j = 0; j < d; j += 16) {
        const index_t n = std::min<index_t>(16, d - j);
        if (F16) {
            const std::uint16_t* src = static_cast<const std::uint16_t*>(m.data) + i * d + j;
            for (index_t l = 0; l < n; ++l) x[l] = half_to_float(src[l]);
        } else {
            const float* src = static_cast<const float*>(m.data) + i * d + j;
            for (index_t l = 0; l < n; ++l) x[l] = src[l];
        }
        for (index_t l = n; l < 16; ++l) x[l] = c[j + l];
        for (int l = 0; l < 16; ++l) {
            const float s = x[l] - c[j + l];
            acc[l] += s * s;
        }
        if ((j & 63) == 48 && j + 16 < d) {
            const float v = tree16(acc);
            if (v >= bound) return v;
        }
    }
    return tree16(acc);
}

float row_generic_fn(const FeatureMatrix& m, index_t i, const float* c, float bound) {
    return m.f16 ? row_generic_t<true>(m, i, c, bound) : row_generic_t<false>(m, i, c, bound);
}

std::uint32_t lb_generic_fn(const std::uint16_t* yb, std::size_t cstride, const float* yc, int k,
                            const float* tau, float eps, float F, float H) {
    float acc[16] = {}, thr[16];
    for (int l = 0; l < 16; ++l) {
        const float t = tau[l] + eps;
        thr[l] = t * t * F + H;
    }
    for (int i = 0; i < k; i += 8, yb += cstride) {
        for (int j = 0; j < 8; ++j) {
            const float ci = yc[i + j];
            for (int l = 0; l < 16; ++l) {
                const float t = half_to_float(yb[j * 16 + l]) - ci;
                acc[l] += t * t;
            }
        }
        std::uint32_t mask = 0;
        for (int l = 0; l < 16; ++l)
            if (acc[l] < thr[l]) mask |= 1u << l;
        if (mask == 0 || i + 8 == k) return mask;  // the partial sums only grow
    }
    return 0;
}

void project_generic_fn(const double* qt, const double* v, index_t d, int k, double* y) {
    double acc[32] = {};
    for (index_t j = 0; j < d; ++j) {
        const double vj = v[j];
        const double* q = qt + j * k;
        for (int a = 0; a < k; ++a) acc[a] += vj * q[a];
    }
    for (int a = 0; a < k; ++a) y[a] = acc[a];
}

}  // namespace

const KcenterKernels& kcenter_generic() {
    static const KcenterKernels k{kcenter_generic_fn, row_generic_fn, lb_generic_fn,
                                  project_generic_fn};
    return k;
}

}  // namespace knn_detail

namespace {

using knn_detail::KcenterKernels;

const KcenterKernels& kcenter_kernels() {
    using namespace knn_detail;
    const KcenterKernels* k = nullptr;
    switch (effective_level(Family::knn)) {
        case SimdLevel::avx512: k = kcenter_avx512(); break;
        case SimdLevel::avx2: k = kcenter_avx2(); break;
        default: break;
    }
    return k ? *k : kcenter_generic();
}

knn_detail::WidenFn widen_kernel() {
    using namespace knn_detail;
    const KnnKernels* k = nullptr;
    switch (effective_level(Family::knn)) {
        case SimdLevel::avx512: k = knn_avx512_kernels(); break;
        case SimdLevel::avx2: k = knn_avx2_kernels(); break;
        default: break;
    }
    return (k ? *k : knn_generic_kernels()).widen;
}

// ---------------------------------------------------------------------------------------------
// Error bounds (docs/patchcore_core.md, "Exact pruning"). u is float32's unit roundoff.
// ---------------------------------------------------------------------------------------------

constexpr double kU = 0x1p-24;
constexpr double kU64 = 0x1p-53;
// Every bound computed in double is inflated by this much: far more than the few dozen double
// roundings it takes to compute it (each at most 2^-53 relative).
constexpr double kSlack = 1e-9;

double gamma32(double m) { return m * kU / (1.0 - m * kU); }
double gamma64(double m) { return m * kU64 / (1.0 - m * kU64); }

// The smallest float >= x (x finite, >= 0).
float round_up(double x) {
    float f = static_cast<float>(x);
    if (static_cast<double>(f) < x) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    return f;
}

// A k-dimensional orthonormal basis (columns of qt, d x k row-major, in double) of the sample's
// leading principal subspace, and sigma >= the largest singular value of qt (1 up to rounding).
// Which subspace it is only changes how much is pruned, never the selection.
struct Basis {
    std::vector<double> mu;  // d
    std::vector<double> qt;  // d x k
    double sigma = 1.0;
};

// Modified Gram-Schmidt over the k columns of z (d x k row-major), twice; a column that
// vanishes is replaced by a fresh pseudo-random one. Deterministic.
void orthonormalize(std::vector<double>& z, index_t d, int k, std::uint64_t& seed) {
    auto rnd = [&seed] {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<double>(seed >> 11) * 0x1p-53 * 2.0 - 1.0;
    };
    for (int a = 0; a < k; ++a) {
        for (int tries = 0;; ++tries) {
            double n0 = 0.0;
            for (index_t j = 0; j < d; ++j) n0 += z[j * k + a] * z[j * k + a];
            for (int pass = 0; pass < 2; ++pass) {
                for (int b = 0; b < a; ++b) {
                    double dot = 0.0;
                    for (index_t j = 0; j < d; ++j) dot += z[j * k + a] * z[j * k + b];
                    for (index_t j = 0; j < d; ++j) z[j * k + a] -= dot * z[j * k + b];
                }
            }
            double nrm = 0.0;
            for (index_t j = 0; j < d; ++j) nrm += z[j * k + a] * z[j * k + a];
            if (nrm > 1e-20 * n0 && nrm > 1e-300) {
                const double inv = 1.0 / std::sqrt(nrm);
                for (index_t j = 0; j < d; ++j) z[j * k + a] *= inv;
                break;
            }
            for (index_t j = 0; j < d; ++j) z[j * k + a] = rnd();
            if (tries > 8) fail("kcenter_greedy: internal error building the projection basis");
        }
    }
}

// Cyclic Jacobi on the symmetric k x k matrix m: on return m is (numerically) diagonal and the
// columns of v are its eigenvectors.
void jacobi_eigen(std::vector<double>& m, std::vector<double>& v, int k) {
    for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j) v[i * k + j] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 30; ++sweep) {
        double off = 0.0, diag = 0.0;
        for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) (i == j ? diag : off) += m[i * k + j] * m[i * k + j];
        if (off <= 1e-24 * diag || off == 0.0) return;
        for (int p = 0; p < k; ++p) {
            for (int q = p + 1; q < k; ++q) {
                const double apq = m[p * k + q];
                if (apq == 0.0) continue;
                const double theta = (m[q * k + q] - m[p * k + p]) / (2.0 * apq);
                const double t = (theta >= 0 ? 1.0 : -1.0) /
                                 (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
                const double c = 1.0 / std::sqrt(t * t + 1.0), sn = t * c;
                for (int r = 0; r < k; ++r) {  // columns p, q
                    const double mp = m[r * k + p], mq = m[r * k + q];
                    m[r * k + p] = c * mp - sn * mq;
                    m[r * k + q] = sn * mp + c * mq;
                }
                for (int r = 0; r < k; ++r) {  // rows p, q
                    const double mp = m[p * k + r], mq = m[q * k + r];
                    m[p * k + r] = c * mp - sn * mq;
                    m[q * k + r] = sn * mp + c * mq;
                }
                for (int r = 0; r < k; ++r) {
                    const double vp = v[r * k + p], vq = v[r * k + q];
                    v[r * k + p] = c * vp - sn * vq;
                    v[r * k + q] = sn * vp + c * vq;
                }
            }
        }
    }
}

Basis make_basis(const FeatureMatrix& f, int k, int T) {
    const index_t N = f.rows, d = f.cols;
    Basis B;
    // Sample rows evenly; the sample only steers the basis (the projection's quality).
    const index_t cap = std::clamp<index_t>((index_t{1} << 26) / (d * d), 256, 2048);
    const index_t s = std::min(N, cap);
    std::vector<float> rows(static_cast<std::size_t>(s * d));
    const knn_detail::WidenFn widen = widen_kernel();
    for (index_t r = 0; r < s; ++r) {
        const index_t i = r * N / s;
        if (f.f16)
            widen(static_cast<const std::uint16_t*>(f.data) + i * d, rows.data() + r * d, d);
        else
            std::copy_n(static_cast<const float*>(f.data) + i * d, d, rows.data() + r * d);
    }
    B.mu.assign(static_cast<std::size_t>(d), 0.0);
    for (index_t r = 0; r < s; ++r)
        for (index_t j = 0; j < d; ++j) B.mu[j] += rows[r * d + j];
    for (auto& v : B.mu) v /= static_cast<double>(s);
    // Covariance (upper triangle), split over threads by sample rows.
    const int TT = std::max(1, std::min<int>(T, static_cast<int>(s / 128)));
    std::vector<std::vector<double>> part(static_cast<std::size_t>(TT));
    run_parallel(TT, [&](int t) {
        std::vector<double>& C = part[t];
        C.assign(static_cast<std::size_t>(d * d), 0.0);
        std::vector<double> v(static_cast<std::size_t>(d));
        for (index_t r = s * t / TT; r < s * (t + 1) / TT; ++r) {
            for (index_t j = 0; j < d; ++j) v[j] = rows[r * d + j] - B.mu[j];
            for (index_t a = 0; a < d; ++a) {
                const double va = v[a];
                double* Ca = C.data() + a * d;
                for (index_t b = a; b < d; ++b) Ca[b] += va * v[b];
            }
        }
    });
    std::vector<double>& C = part[0];
    for (int t = 1; t < TT; ++t)
        for (index_t i = 0; i < d * d; ++i) C[i] += part[t][i];
    for (index_t a = 0; a < d; ++a)
        for (index_t b = 0; b < a; ++b) C[a * d + b] = C[b * d + a];
    // Subspace iteration from a fixed pseudo-random start.
    std::uint64_t seed = 0x9E3779B97F4A7C15ULL;
    std::vector<double> z(static_cast<std::size_t>(d * k)), w(static_cast<std::size_t>(d * k));
    for (auto& v : z) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        v = static_cast<double>(seed >> 11) * 0x1p-53 * 2.0 - 1.0;
    }
    orthonormalize(z, d, k, seed);
    for (int it = 0; it < 10; ++it) {
        std::fill(w.begin(), w.end(), 0.0);
        for (index_t a = 0; a < d; ++a) {
            const double* Ca = C.data() + a * d;
            double* wa = w.data() + a * k;
            for (index_t b = 0; b < d; ++b) {
                const double cab = Ca[b];
                const double* zb = z.data() + b * k;
                for (int c = 0; c < k; ++c) wa[c] += cab * zb[c];
            }
        }
        z.swap(w);
        orthonormalize(z, d, k, seed);
    }
    // Rayleigh-Ritz: rotate the basis to the eigenvectors of Z^T C Z, largest first, so that
    // the leading coordinates carry the most variance (the lower bound is summed in that order
    // and a block stops as soon as every row's partial bound is decided).
    {
        std::vector<double> cz(static_cast<std::size_t>(d * k), 0.0);
        for (index_t a = 0; a < d; ++a)
            for (index_t b = 0; b < d; ++b) {
                const double cab = C[a * d + b];
                for (int c = 0; c < k; ++c) cz[a * k + c] += cab * z[b * k + c];
            }
        std::vector<double> m(static_cast<std::size_t>(k * k), 0.0), v(static_cast<std::size_t>(k * k), 0.0);
        for (int a = 0; a < k; ++a)
            for (int b = 0; b < k; ++b) {
                double s = 0.0;
                for (index_t j = 0; j < d; ++j) s += z[j * k + a] * cz[j * k + b];
                m[a * k + b] = s;
            }
        jacobi_eigen(m, v, k);  // m -> diagonal, v: eigenvectors in columns
        std::vector<int> order(static_cast<std::size_t>(k));
        for (int a = 0; a < k; ++a) order[a] = a;
        std::sort(order.begin(), order.end(),
                  [&](int x, int y) { return m[x * k + x] > m[y * k + y]; });
        for (index_t j = 0; j < d; ++j) {
            double row[32];
            for (int c = 0; c < k; ++c) {
                double s = 0.0;
                for (int a = 0; a < k; ++a) s += z[j * k + a] * v[a * k + order[c]];
                row[c] = s;
            }
            for (int c = 0; c < k; ++c) z[j * k + c] = row[c];
        }
    }
    orthonormalize(z, d, k, seed);
    // sigma_max(Q)^2 <= 1 + ||Q^T Q - I||_F; plus the rounding of computing that norm.
    double g2 = 0.0;
    for (int a = 0; a < k; ++a) {
        for (int b = 0; b < k; ++b) {
            double dot = 0.0;
            for (index_t j = 0; j < d; ++j) dot += z[j * k + a] * z[j * k + b];
            const double g = dot - (a == b ? 1.0 : 0.0);
            g2 += g * g;
        }
    }
    B.sigma = (1.0 + std::sqrt(g2) + static_cast<double>(k) * gamma64(static_cast<double>(d + 2))) *
              (1.0 + kSlack);
    B.qt = std::move(z);
    return B;
}

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

// A reusable barrier for a team that meets twice per step: spins briefly (a step can be a few
// microseconds), then yields the core (the machine may be shared).
class SpinBarrier {
public:
    explicit SpinBarrier(int n) : n_(n) {}
    void wait() {
        if (n_ == 1) return;
        const unsigned g = gen_.load(std::memory_order_acquire);
        if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
            count_.store(0, std::memory_order_relaxed);
            gen_.store(g + 1, std::memory_order_release);
            return;
        }
        for (int spins = 0; gen_.load(std::memory_order_acquire) == g; ++spins) {
            if (spins < 4000) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            } else {
                std::this_thread::yield();
            }
        }
    }

private:
    std::atomic<int> count_{0};
    std::atomic<unsigned> gen_{0};
    const int n_;
};

}  // namespace

namespace detail {

void kcenter_greedy_opts(const FeatureMatrix& f, index_t n, index_t start, std::int64_t* out,
                         int num_threads, int prune, int k_override, KcenterStats* stats) {
    if (f.rows < 1) fail("features: expected at least one row, got an empty array");
    if (f.cols < 1) fail("features: expected at least one column, got 0");
    if (n < 1) fail("n: expected n >= 1, got " + std::to_string(n));
    if (n > f.rows)
        fail("n: expected at most the number of rows (" + std::to_string(f.rows) + "), got " +
             std::to_string(n));
    if (start < 0 || start >= f.rows)
        fail("start_index: expected 0 <= start_index < " + std::to_string(f.rows) + ", got " +
             std::to_string(start));
    check_feature_rows(f, "features", nullptr, num_threads);

    const index_t N = f.rows, d = f.cols;
    const KcenterKernels& kern = kcenter_kernels();
    std::vector<float> c(static_cast<std::size_t>(knn_detail::round_up(d, 16)), 0.f);
    auto load_centre = [&](index_t i) {
        if (f.f16) {
            const std::uint16_t* r = static_cast<const std::uint16_t*>(f.data) + i * d;
            for (index_t j = 0; j < d; ++j) c[j] = half_to_float(r[j]);
        } else {
            const float* r = static_cast<const float*>(f.data) + i * d;
            std::copy(r, r + d, c.begin());
        }
    };
    // Threads only where a pass is long enough to pay for the hand-off (~32k elements each).
    const int T = resolve_threads(num_threads, std::max<index_t>(1, N * d / (index_t{1} << 15)));
    std::vector<index_t> bounds(static_cast<std::size_t>(T) + 1);
    for (int t = 0; t <= T; ++t) bounds[t] = N * t / T;
    std::vector<float> best(static_cast<std::size_t>(T));
    std::vector<index_t> best_idx(static_cast<std::size_t>(T));
    KcenterStats st{};

    int k = k_override > 0 ? k_override : (d >= 128 ? 32 : (d >= 64 ? 16 : (d >= 16 ? 8 : 0)));
    if (k > 32 || k % 8 != 0 || k > d) k = 0;
    const bool use_pruning = prune == 1 ? k > 0 : (prune != 0 && k > 0 && n >= 16 && N >= 64);

    index_t cur = start;
    out[0] = start;
    if (!use_pruning) {
        std::vector<float> min_d(static_cast<std::size_t>(N),
                                 std::numeric_limits<float>::infinity());
        for (index_t s = 1; s < n; ++s) {
            load_centre(cur);
            min_d[cur] = -1.0f;
            if (T == 1) {
                kern.pass(f, 0, N, c.data(), min_d.data(), &best[0], &best_idx[0]);
            } else {
                run_parallel(T, [&](int t) {
                    kern.pass(f, bounds[t], bounds[t + 1], c.data(), min_d.data(), &best[t],
                              &best_idx[t]);
                });
            }
            int bt = 0;
            for (int t = 1; t < T; ++t)
                if (best[t] > best[bt]) bt = t;
            cur = best_idx[bt];
            out[s] = cur;
            st.plain_steps += 1;
            st.rows_computed += N;
        }
        if (stats) *stats = st;
        return;
    }

    // ---- pruned: see the comment at the top of the file -------------------------------------
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
    auto team = [&](int t) {
        for (index_t s = 1; s < n; ++s) {
            if (t == 0) prepare();
            barrier.wait();
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
    if (stats) *stats = st;
}

}  // namespace detail

void kcenter_greedy(const FeatureMatrix& f, index_t n, index_t start, std::int64_t* out,
                    int num_threads) {
    detail::kcenter_greedy_opts(f, n, start, out, num_threads, -1, 0, nullptr);
}

}  // namespace fissure
