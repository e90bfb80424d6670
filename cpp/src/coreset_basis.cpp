// SPDX-License-Identifier: Apache-2.0
// The pruned k-center's projection basis: the leading principal subspace of a sample of the
// rows (covariance, subspace iteration, Rayleigh-Ritz), orthonormal in double, with a bound on
// its largest singular value (coreset_pruned.cpp's bounds use it).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "coreset_detail.hpp"
#include "fissure/parallel.hpp"

namespace fissure::coreset_detail {

namespace {

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

}  // namespace

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

}  // namespace fissure::coreset_detail
