// SPDX-License-Identifier: Apache-2.0
/// @file arrays.hpp
/// @brief The one place where numpy arrays become core views. Every check says what was
///        expected and what came. Arrays are taken with .noconvert() in the bindings and must
///        already be C-contiguous with the right dtype: the Python layer does the (visible)
///        conversion, the core never casts silently.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <sstream>
#include <string>

#include "fissure/common.hpp"
#include "fissure/preprocess.hpp"  // ResizeMode

namespace fissure::py_arrays {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
    std::ostringstream os;
    os << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) os << (i ? ", " : "") << a.shape(i);
    if (a.ndim() == 1) os << ",";
    os << ")";
    return os.str();
}

/// The array's dtype as numpy prints it, for messages.
inline std::string dtype_str(const py::array& a) { return std::string(py::str(a.dtype())); }

/// "resize" | "letterbox" | "none": how tiles became the model input (preprocess, decoders).
inline ResizeMode resize_mode_arg(const std::string& s) {
    if (s == "resize") return ResizeMode::resize;
    if (s == "letterbox") return ResizeMode::letterbox;
    if (s == "none") return ResizeMode::none;
    throw InvalidArgument("mode: expected 'resize', 'letterbox' or 'none', got '" + s + "'");
}

/// Whether the array's dtype is of numpy kind `kind` ('f', 'u', 'b', ...) with `itemsize` bytes.
inline bool has_dtype(const py::array& a, char kind, py::ssize_t itemsize) {
    return a.dtype().kind() == kind && a.dtype().itemsize() == itemsize;
}

/// TypeError "<name>: expected dtype <expected>, got <the array's dtype>".
[[noreturn]] inline void dtype_error(const std::string& name, const std::string& expected,
                                     const py::array& a) {
    throw py::type_error(name + ": expected dtype " + expected + ", got " + dtype_str(a));
}

/// Checks the number of axes: "<name>: expected shape <axes>, got <shape>".
inline void check_ndim(const py::array& a, const std::string& name, py::ssize_t ndim,
                       const char* axes) {
    if (a.ndim() != ndim)
        throw InvalidArgument(name + ": expected shape " + axes + ", got " + shape_str(a));
}

/// "<name>: expected a 1-D array, got shape <shape>".
inline void check_1d(const py::array& a, const std::string& name) {
    if (a.ndim() != 1)
        throw InvalidArgument(name + ": expected a 1-D array, got shape " + shape_str(a));
}

/// "<name>: expected a C-contiguous array<hint>".
inline void check_c_contiguous(const py::array& a, const std::string& name, const char* hint = "") {
    if (!(a.flags() & py::array::c_style))
        throw InvalidArgument(name + ": expected a C-contiguous array" + hint);
}

template <class T>
using carray = py::array_t<T, py::array::c_style>;

/// Checks ndim and, where `dims[i] >= 0`, the size of axis i.
template <class T>
void check_shape(const carray<T>& a, const char* name, std::initializer_list<py::ssize_t> dims) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(dims.size());
    if (ok) {
        py::ssize_t i = 0;
        for (auto d : dims) {
            if (d >= 0 && a.shape(i) != d) ok = false;
            ++i;
        }
    }
    if (!ok) {
        std::ostringstream os;
        os << name << ": expected shape (";
        py::ssize_t i = 0;
        for (auto d : dims) {
            os << (i++ ? ", " : "");
            if (d >= 0) os << d; else os << "n";
        }
        if (dims.size() == 1) os << ",";
        os << "), got " << shape_str(a);
        throw InvalidArgument(os.str());
    }
}

template <class T>
void check_len(const carray<T>& a, const char* name, py::ssize_t n) {
    if (a.ndim() != 1 || a.shape(0) != n) {
        std::ostringstream os;
        os << name << ": expected shape (" << n << ",), got " << shape_str(a);
        throw InvalidArgument(os.str());
    }
}

/// (n, 4) float32 boxes.
inline BoxesView boxes_view(const carray<float>& a, const char* name = "boxes") {
    check_shape(a, name, {-1, 4});
    return BoxesView{a.data(), static_cast<index_t>(a.shape(0))};
}

}  // namespace fissure::py_arrays
