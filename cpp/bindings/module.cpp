// SPDX-License-Identifier: Apache-2.0
// fissure._core: registers the families; no logic here.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_info(py::module_& m);
void bind_tiling(py::module_& m);
void bind_merge(py::module_& m);
void bind_masks(py::module_& m);
void bind_specular(py::module_& m);
void bind_preprocess(py::module_& m);
void bind_decode(py::module_& m);
void bind_embed(py::module_& m);
void bind_knn(py::module_& m);

#define FISSURE_STR_(x) #x
#define FISSURE_STR(x) FISSURE_STR_(x)

PYBIND11_MODULE(_core, m) {
    m.doc() = "fissure's private C++ core. Use the public fissure package instead.";
#ifdef FISSURE_VERSION_INFO
    m.attr("__version__") = FISSURE_STR(FISSURE_VERSION_INFO);
#else
    m.attr("__version__") = "dev";
#endif
    bind_info(m);
    bind_tiling(m);
    bind_merge(m);
    bind_masks(m);
    bind_specular(m);
    bind_preprocess(m);
    bind_decode(m);
    bind_embed(m);
    bind_knn(m);
}
