// SPDX-License-Identifier: Apache-2.0
// PatchCore's patch embedding: a list of (B, C, H, W) float32 feature maps -> (B, h, w, sum C).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "arrays.hpp"
#include "fissure/embed.hpp"

namespace py = pybind11;
using fissure::index_t;
using fissure::py_arrays::carray;
using fissure::py_arrays::check_c_contiguous;
using fissure::py_arrays::check_ndim;
using fissure::py_arrays::dtype_error;
using fissure::py_arrays::has_dtype;

void bind_embed(py::module_& m) {
    m.def(
        "embed_patches",
        [](const std::vector<py::array>& features, index_t out_h, index_t out_w, int pool,
           int num_threads) {
            std::vector<fissure::FeatureMapView> views;
            index_t D = 0;
            for (std::size_t i = 0; i < features.size(); ++i) {
                const py::array& a = features[i];
                const std::string name = "features[" + std::to_string(i) + "]";
                if (!has_dtype(a, 'f', 4)) dtype_error(name, "float32", a);
                check_ndim(a, name, 4, "(B, C, H, W)");
                check_c_contiguous(a, name);
                views.push_back({static_cast<const float*>(a.data()), a.shape(0), a.shape(1),
                                 a.shape(2), a.shape(3)});
                D += a.shape(1);
            }
            if (views.empty())
                throw fissure::InvalidArgument("features: expected at least one feature map");
            carray<float> out({static_cast<py::ssize_t>(views[0].batch),
                               static_cast<py::ssize_t>(out_h), static_cast<py::ssize_t>(out_w),
                               static_cast<py::ssize_t>(D)});
            float* dst = out.mutable_data();
            {
                py::gil_scoped_release release;
                fissure::embed_patches(views, out_h, out_w, pool, dst, num_threads);
            }
            return out;
        },
        py::arg("features"), py::arg("out_h"), py::arg("out_w"), py::arg("pool") = 3,
        py::arg("num_threads") = -1,
        "(B, out_h, out_w, sum C) float32: each (B, C, H, W) map average-pooled (pool x pool, "
        "zero padding counted) and resampled bilinearly (align_corners=False) to the grid.");
}
