// SPDX-License-Identifier: Apache-2.0
// kNN search and greedy k-center: numpy in (float32 or float16, C-contiguous, taken without a
// copy), the GIL released around the core, numpy out. The Python layer (fissure.anomaly)
// does the visible conversions and the friendly checks; these bindings check again.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>

#include "arrays.hpp"
#include "interrupt.hpp"
#include "fissure/coreset.hpp"
#include "fissure/knn.hpp"

namespace py = pybind11;
using fissure::index_t;
using fissure::py_arrays::check_c_contiguous;
using fissure::py_arrays::check_ndim;
using fissure::py_arrays::dtype_error;
using fissure::py_arrays::has_dtype;
using fissure::py_arrays::shape_str;

namespace {

fissure::FeatureMatrix matrix_arg(const py::array& a, const char* name, bool allow_f16) {
    const bool f32 = has_dtype(a, 'f', 4);
    const bool f16 = has_dtype(a, 'f', 2);
    if (!(f32 || (allow_f16 && f16)))
        dtype_error(name, allow_f16 ? "float32 or float16" : "float32", a);
    check_ndim(a, name, 2, "(n, d)");
    check_c_contiguous(a, name, "; call np.ascontiguousarray");
    return fissure::FeatureMatrix{a.data(), static_cast<index_t>(a.shape(0)),
                                  static_cast<index_t>(a.shape(1)), f16};
}

}  // namespace

void bind_knn(py::module_& m) {
    m.def(
        "knn_search",
        [](const py::array& bank, const py::array& queries, index_t k, int num_threads) {
            const fissure::FeatureMatrix b = matrix_arg(bank, "bank", true);
            const fissure::FeatureMatrix q = matrix_arg(queries, "queries", false);
            if (q.cols != b.cols)
                throw fissure::InvalidArgument(
                    "queries: expected " + std::to_string(b.cols) +
                    " columns to match the bank, got shape " + shape_str(queries));
            if (k < 1) throw fissure::InvalidArgument("k: expected k >= 1, got " + std::to_string(k));
            const auto nq = static_cast<py::ssize_t>(q.rows);
            py::array_t<float> D({nq, static_cast<py::ssize_t>(k)});
            py::array_t<std::int64_t> I({nq, static_cast<py::ssize_t>(k)});
            float* dp = D.mutable_data();
            std::int64_t* ip = I.mutable_data();
            fissure::py_interrupt::call_interruptible([&] {
                fissure::knn_search(b, static_cast<const float*>(q.data), q.rows, k, dp, ip,
                                    num_threads);
            });
            return std::make_pair(D, I);
        },
        py::arg("bank").noconvert(), py::arg("queries").noconvert(), py::arg("k") = 1,
        py::arg("num_threads") = -1,
        "(D, I): the k nearest bank rows of each query in squared L2, as faiss IndexFlatL2.search: "
        "(nq, k) float32 ascending and (nq, k) int64 (-1 and FLT_MAX past the bank's size).");

    m.def(
        "_knn_search_stats",
        [](const py::array& bank, const py::array& queries, index_t k, int num_threads) {
            const fissure::FeatureMatrix b = matrix_arg(bank, "bank", true);
            const fissure::FeatureMatrix q = matrix_arg(queries, "queries", false);
            if (q.cols != b.cols || k < 1)
                throw fissure::InvalidArgument("queries: width differs from the bank's, or k < 1");
            const auto nq = static_cast<py::ssize_t>(q.rows);
            py::array_t<float> D({nq, static_cast<py::ssize_t>(k)});
            py::array_t<std::int64_t> I({nq, static_cast<py::ssize_t>(k)});
            float* dp = D.mutable_data();
            std::int64_t* ip = I.mutable_data();
            fissure::detail::KnnStats st;
            fissure::py_interrupt::call_interruptible([&] {
                fissure::detail::knn_search_opts(b, static_cast<const float*>(q.data), q.rows, k,
                                                 dp, ip, num_threads, &st);
            });
            py::dict stats;
            stats["bf16_queries"] = st.bf16_queries;
            stats["fp32_queries"] = st.fp32_queries;
            stats["direct_queries"] = st.direct_queries;
            return py::make_tuple(D, I, stats);
        },
        py::arg("bank").noconvert(), py::arg("queries").noconvert(), py::arg("k") = 1,
        py::arg("num_threads") = -1,
        "Test hook: knn_search and what it did: (D, I, {bf16_queries, fp32_queries, "
        "direct_queries}).");

    m.def(
        "kcenter_greedy",
        [](const py::array& features, index_t n, index_t start_index, int num_threads) {
            const fissure::FeatureMatrix f = matrix_arg(features, "features", true);
            if (n < 1 || n > f.rows)
                throw fissure::InvalidArgument("n: expected 1 <= n <= " + std::to_string(f.rows) +
                                               ", got " + std::to_string(n));
            py::array_t<std::int64_t> out(static_cast<py::ssize_t>(n));
            std::int64_t* o = out.mutable_data();
            fissure::py_interrupt::call_interruptible(
                [&] { fissure::kcenter_greedy(f, n, start_index, o, num_threads); });
            return out;
        },
        py::arg("features").noconvert(), py::arg("n"), py::arg("start_index") = 0,
        py::arg("num_threads") = -1,
        "(n,) int64 greedy k-center selection over (N, d) float32/float16 features.");

    m.def(
        "_kcenter_greedy_opts",
        [](const py::array& features, index_t n, index_t start_index, int num_threads, int prune,
           int k) {
            const fissure::FeatureMatrix f = matrix_arg(features, "features", true);
            if (n < 1 || n > f.rows)
                throw fissure::InvalidArgument("n: expected 1 <= n <= " + std::to_string(f.rows) +
                                               ", got " + std::to_string(n));
            py::array_t<std::int64_t> out(static_cast<py::ssize_t>(n));
            std::int64_t* o = out.mutable_data();
            fissure::detail::KcenterStats st;
            fissure::py_interrupt::call_interruptible([&] {
                fissure::detail::kcenter_greedy_opts(f, n, start_index, o, num_threads, prune, k,
                                                     &st);
            });
            py::dict stats;
            stats["plain_steps"] = st.plain_steps;
            stats["pruned_steps"] = st.pruned_steps;
            stats["rows_computed"] = st.rows_computed;
            return py::make_tuple(out, stats);
        },
        py::arg("features").noconvert(), py::arg("n"), py::arg("start_index") = 0,
        py::arg("num_threads") = -1, py::arg("prune") = -1, py::arg("k") = 0,
        "Test hook: kcenter_greedy with the pruning forced on (1) or off (0) or chosen (-1) and "
        "the projected width k (0: chosen); returns (indices, stats). The selection is the same "
        "whatever they are.");
}
