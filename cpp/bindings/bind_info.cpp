// SPDX-License-Identifier: Apache-2.0
#include <pybind11/pybind11.h>

#include "fissure/dispatch.hpp"
#include "fissure/parallel.hpp"

namespace py = pybind11;

void bind_info(py::module_& m) {
    m.def("simd_level", [] { return fissure::simd_name(fissure::simd_level()); },
          "The SIMD path the core selected at run time (FISSURE_SIMD can lower it).");
    m.def("cpu_simd_level", [] { return fissure::simd_name(fissure::cpu_simd_level()); },
          "The best SIMD path this CPU supports.");
    m.def("hardware_threads", &fissure::hardware_threads,
          "Threads used for num_threads=-1 (FISSURE_NUM_THREADS overrides the core count).");
    m.def("build_info", [] {
        py::dict d;
#if defined(__clang__)
        d["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
        d["compiler"] = "gcc " __VERSION__;
#elif defined(_MSC_VER)
        d["compiler"] = "msvc " + std::to_string(_MSC_VER);
#else
        d["compiler"] = "unknown";
#endif
#ifdef NDEBUG
        d["ndebug"] = true;
#else
        d["ndebug"] = false;
#endif
        return d;
    });
    // Exercises the pool's error path from Python: tid `fail_at` throws ValueError.
    m.def("_parallel_selftest", [](int n, int fail_at) {
        std::atomic<long long> sum{0};
        {
            py::gil_scoped_release release;
            fissure::parallel_for(0, n, -1, 1, [&](fissure::index_t lo, fissure::index_t hi) {
                for (auto i = lo; i < hi; ++i) {
                    if (i == fail_at) throw fissure::InvalidArgument("selftest failure at " + std::to_string(i));
                    sum += i;
                }
            });
        }
        return sum.load();
    }, py::arg("n"), py::arg("fail_at") = -1);
}
