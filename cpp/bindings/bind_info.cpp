// SPDX-License-Identifier: Apache-2.0
// Build information, the thread pool's self-test, and the runtime dispatch: the levels the
// core and each kernel family run at, and the test hooks that force a level or a route.
#include <pybind11/pybind11.h>

#include <string>

#include "fissure/dispatch.hpp"
#include "fissure/knn.hpp"
#include "fissure/parallel.hpp"

namespace py = pybind11;
using fissure::Family;
using fissure::SimdLevel;

namespace {

// A test hook's level name: one the family has kernels for, or "none" (-1: no cap).
int level_arg(Family f, const std::string& s) {
    if (s == "none") return -1;
    SimdLevel level;
    if (fissure::parse_simd_level(s, level) && fissure::has_kernels(f, level))
        return static_cast<int>(level);
    std::string names;
    for (SimdLevel l : {SimdLevel::scalar, SimdLevel::sse4, SimdLevel::avx2, SimdLevel::avx512})
        if (fissure::has_kernels(f, l)) names += fissure::simd_name(l) + ", ";
    names.resize(names.size() - 2);
    throw fissure::InvalidArgument("level: expected " + names + " or none, got " + s);
}

// The family's level now, and the hook that caps it (returns the previous cap).
void bind_family_level(py::module_& m, Family f, const char* prefix, const char* what) {
    m.def(
        (std::string(prefix) + "_simd_level").c_str(),
        [f] { return fissure::simd_name(fissure::effective_level(f)); },
        ("The SIMD path the " + std::string(what) + " use now.").c_str());
    m.def(
        ("_" + std::string(prefix) + "_force_simd").c_str(),
        [f](const std::string& level) {
            const int prev = fissure::force_level(f, level_arg(f, level));
            return prev < 0 ? std::string("none")
                            : fissure::simd_name(static_cast<SimdLevel>(prev));
        },
        py::arg("level"),
        ("Test hook: caps the " + std::string(what) +
         " at a SIMD level ('none' removes the cap); returns the previous cap.")
            .c_str());
}

}  // namespace

void bind_info(py::module_& m) {
    m.def("simd_level", [] { return fissure::simd_name(fissure::simd_level()); },
          "The SIMD path the core selected at run time (FISSURE_SIMD can lower it).");
    m.def("cpu_simd_level", [] { return fissure::simd_name(fissure::cpu_simd_level()); },
          "The best SIMD path this CPU supports.");
    bind_family_level(m, Family::knn, "knn", "kNN and k-center kernels");
    bind_family_level(m, Family::specular, "specular", "specular kernels");
    bind_family_level(m, Family::preprocess, "preprocess", "preprocessing (resize, normalise) kernels");
    m.def(
        "_knn_force_bf16",
        [](const std::string& mode) {
            int v;
            if (mode == "auto") v = -1;
            else if (mode == "on") v = 1;
            else if (mode == "off") v = 0;
            else throw fissure::InvalidArgument("mode: expected auto, on or off, got " + mode);
            const int prev = fissure::force_route(fissure::Route::knn_bf16, v);
            return std::string(prev < 0 ? "auto" : prev ? "on" : "off");
        },
        py::arg("mode"),
        "Test hook: the bfloat16 first pass of kNN searches: 'on' wherever the CPU has "
        "AVX512_BF16, 'off', or 'auto' (rows x width >= 50,000 x (k + 1), width >= 8, >= 64 "
        "queries, >= 256 rows); returns the previous mode.");
    m.def(
        "_knn_bf16_available",
        [] { return fissure::detail::knn_bf16_available(); },
        "Whether this CPU (and the SIMD cap) allows the bfloat16 first pass.");
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
