// SPDX-License-Identifier: Apache-2.0
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "fissure/tiling.hpp"

namespace py = pybind11;
using fissure::index_t;

void bind_tiling(py::module_& m) {
    m.def(
        "slice_grid",
        [](index_t height, index_t width, index_t slice_height, index_t slice_width,
           index_t overlap_height, index_t overlap_width) {
            fissure::SliceParams p{slice_height, slice_width, overlap_height, overlap_width};
            const auto tiles = fissure::slice_grid(height, width, p);
            py::array_t<std::int64_t> out({static_cast<py::ssize_t>(tiles.size()), py::ssize_t{4}});
            auto* o = out.mutable_data();
            for (size_t i = 0; i < tiles.size(); ++i)
                for (int k = 0; k < 4; ++k) o[4 * i + k] = tiles[i][k];
            return out;
        },
        py::arg("height"), py::arg("width"), py::arg("slice_height"), py::arg("slice_width"),
        py::arg("overlap_height"), py::arg("overlap_width"),
        "Tile boxes (T, 4) int64 xyxy; overlaps in pixels.");
    m.def(
        "auto_slice_params",
        [](index_t height, index_t width) {
            const auto p = fissure::auto_slice_params(height, width);
            return py::make_tuple(p.overlap_width, p.overlap_height, p.slice_width, p.slice_height);
        },
        py::arg("height"), py::arg("width"),
        "SAHI's get_auto_slice_params: (x_overlap, y_overlap, slice_width, slice_height).");
}
