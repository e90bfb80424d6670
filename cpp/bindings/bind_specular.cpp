// SPDX-License-Identifier: Apache-2.0
// Specular masks: numpy in, views, GIL released around the core, numpy out. Images and masks
// are taken as they come (no conversion): uint8 (masks also bool), pixels contiguous within a
// row, any row stride (cropped and flipped views work without a copy).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "arrays.hpp"
#include "fissure/masks_convert.hpp"
#include "fissure/specular.hpp"

namespace py = pybind11;
using fissure::index_t;
using fissure::py_arrays::carray;
using fissure::py_arrays::dtype_error;
using fissure::py_arrays::has_dtype;
using fissure::py_arrays::dtype_str;
using fissure::py_arrays::check_len;
using fissure::py_arrays::check_shape;
using fissure::py_arrays::shape_str;

namespace {

fissure::Image8View image_arg(const py::array& a) {
    if (!has_dtype(a, 'u', 1)) dtype_error("image", "uint8", a);
    fissure::Image8View v;
    if (a.ndim() == 2) {
        v.channels = 1;
    } else if (a.ndim() == 3) {
        if (a.shape(2) != 3 && a.shape(2) != 1) {
            std::string msg = "image: expected 3 channels (BGR or RGB) or a grayscale image, got " +
                              std::to_string(a.shape(2)) + " channels";
            if (a.shape(2) == 4) msg += "; drop the alpha channel with image[..., :3]";
            throw fissure::InvalidArgument(msg);
        }
        v.channels = static_cast<int>(a.shape(2));
        if (a.shape(0) == 0 || a.shape(1) == 0)
            throw fissure::InvalidArgument("image: expected a non-empty image, got shape " +
                                           shape_str(a));
        if (a.shape(2) > 1 && a.strides(2) != 1)
            throw fissure::InvalidArgument(
                "image: expected the channels of a pixel to be adjacent bytes; call "
                "np.ascontiguousarray(image)");
    } else {
        throw fissure::InvalidArgument("image: expected shape (H, W, 3) or (H, W), got " +
                                       shape_str(a));
    }
    v.rows = a.shape(0);
    v.cols = a.shape(1);
    if (v.rows == 0 || v.cols == 0)
        throw fissure::InvalidArgument("image: expected a non-empty image, got shape " +
                                       shape_str(a));
    if (v.cols > 1 && a.strides(1) != v.channels)
        throw fissure::InvalidArgument(
            "image: expected the pixels of a row to be contiguous (column stride " +
            std::to_string(v.channels) + " bytes, got " + std::to_string(a.strides(1)) +
            "); call np.ascontiguousarray(image)");
    v.data = static_cast<const std::uint8_t*>(a.data());
    v.row_stride = a.strides(0);
    return v;
}

void check_mask_dtype(const py::array& a, const char* name) {
    const auto dt = a.dtype();
    if (!((dt.kind() == 'b' || dt.kind() == 'u') && dt.itemsize() == 1))
        throw py::type_error(std::string(name) + ": expected dtype bool or uint8, got " +
                             dtype_str(a));
}

fissure::ConstPlane8 plane_arg(const py::array& a, const char* name) {
    check_mask_dtype(a, name);
    if (a.ndim() != 2)
        throw fissure::InvalidArgument(std::string(name) + ": expected shape (H, W), got " +
                                       shape_str(a));
    if (a.shape(1) > 1 && a.strides(1) != 1)
        throw fissure::InvalidArgument(std::string(name) +
                                       ": expected contiguous rows; call np.ascontiguousarray");
    return {static_cast<const std::uint8_t*>(a.data()), a.shape(0), a.shape(1), a.strides(0)};
}

// The output plane: `out` when given (bool or uint8, (rows, cols), contiguous rows, writeable),
// else a new (rows, cols) bool array.
py::array out_arg(const std::optional<py::array>& out, index_t rows, index_t cols,
                  fissure::Plane8& plane) {
    py::array a;
    if (out) {
        a = *out;
        check_mask_dtype(a, "out");
        if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols)
            throw fissure::InvalidArgument("out: expected shape (" + std::to_string(rows) + ", " +
                                           std::to_string(cols) + "), got " + shape_str(a));
        if (a.shape(1) > 1 && a.strides(1) != 1)
            throw fissure::InvalidArgument("out: expected contiguous rows");
        if (!a.writeable()) throw fissure::InvalidArgument("out: the array is read-only");
    } else {
        a = py::array(py::dtype::of<bool>(), {static_cast<py::ssize_t>(rows),
                                              static_cast<py::ssize_t>(cols)});
    }
    plane = {static_cast<std::uint8_t*>(a.mutable_data()), rows, cols,
             rows > 0 ? static_cast<index_t>(a.strides(0)) : cols};
    return a;
}

}  // namespace

void bind_specular(py::module_& m) {
    m.def(
        "specular_mask",
        [](const py::array& image, int v_min, int s_max, int dilate,
           const std::optional<py::array>& out, int num_threads) {
            const fissure::Image8View img = image_arg(image);
            fissure::Plane8 plane;
            py::array result = out_arg(out, img.rows, img.cols, plane);
            {
                py::gil_scoped_release release;
                fissure::specular_mask(img, v_min, s_max, dilate, plane, num_threads);
            }
            return result;
        },
        py::arg("image").noconvert(), py::arg("v_min") = 240, py::arg("s_max") = 30,
        py::arg("dilate") = 0, py::arg("out") = py::none(), py::arg("num_threads") = -1,
        "(H, W) bool glare mask of an (H, W, 3) uint8 BGR/RGB or (H, W) gray image: V > v_min and "
        "S < s_max in OpenCV's 8-bit HSV, dilated by a disc of radius `dilate`.");

    m.def(
        "dilate_disc",
        [](const py::array& mask, int radius, const std::optional<py::array>& out,
           int num_threads) {
            const fissure::ConstPlane8 src = plane_arg(mask, "mask");
            fissure::Plane8 plane;
            py::array result = out_arg(out, src.rows, src.cols, plane);
            if (out && out->data() == mask.data())
                throw fissure::InvalidArgument("out: must not be the input mask");
            {
                py::gil_scoped_release release;
                fissure::dilate_disc(src, radius, plane, num_threads);
            }
            return result;
        },
        py::arg("mask").noconvert(), py::arg("radius"), py::arg("out") = py::none(),
        py::arg("num_threads") = -1,
        "(H, W) bool: a bool/uint8 mask dilated by OpenCV's MORPH_ELLIPSE disc of the radius.");

    m.def("disc_half_widths", &fissure::disc_half_widths, py::arg("radius"),
          "Half-width of each row (dy = -r..r) of OpenCV's MORPH_ELLIPSE element of size 2r+1.");

    m.def(
        "specular_threshold_table",
        [](int v_min, int s_max) {
            const auto t = fissure::specular_threshold_table(v_min, s_max);
            py::array_t<std::uint8_t> a(256);
            std::copy(t.begin(), t.end(), a.mutable_data());
            return a;
        },
        py::arg("v_min"), py::arg("s_max"),
        "(256,) uint8 T: a pixel with V = v, diff = V - min is glare iff diff < T[v].");

    m.def("opencv_hsv_saturation", &fissure::opencv_hsv_saturation, py::arg("v"), py::arg("diff"),
          "OpenCV's 8-bit HSV saturation for V = v and diff = V - min.");

    m.def(
        "glare_fraction_boxes",
        [](const py::array& mask, const carray<float>& boxes, int num_threads) {
            const fissure::ConstPlane8 plane = plane_arg(mask, "mask");
            const fissure::BoxesView b = fissure::py_arrays::boxes_view(boxes);
            py::array_t<float> out(static_cast<py::ssize_t>(b.n));
            float* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                fissure::glare_fraction_boxes(plane, b, o, num_threads);
            }
            return out;
        },
        py::arg("mask").noconvert(), py::arg("boxes").noconvert(), py::arg("num_threads") = -1,
        "(n,) float32 fraction of each box's pixel region (clipped to the mask) that is set.");

    m.def(
        "glare_fraction_masks",
        [](const py::array& mask, const carray<std::uint8_t>& data,
           const carray<std::int64_t>& offsets, const carray<std::int32_t>& regions,
           int num_threads) {
            const fissure::ConstPlane8 plane = plane_arg(mask, "mask");
            check_shape(regions, "regions", {-1, 4});
            const py::ssize_t n = regions.shape(0);
            check_len(offsets, "offsets", n + 1);
            if (data.ndim() != 1)
                throw fissure::InvalidArgument("data: expected a flat array, got shape " +
                                               shape_str(data));
            fissure::BoxMasksView v{data.data(), offsets.data(), regions.data(),
                                    static_cast<index_t>(n)};
            fissure::check_box_masks(v, static_cast<index_t>(data.shape(0)));
            py::array_t<float> out(n);
            float* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                fissure::glare_fraction_masks(plane, v, o, num_threads);
            }
            return out;
        },
        py::arg("mask").noconvert(), py::arg("data").noconvert(), py::arg("offsets").noconvert(),
        py::arg("regions").noconvert(), py::arg("num_threads") = -1,
        "(n,) float32 fraction of each box-local mask's set pixels that are set in `mask`.");
}
