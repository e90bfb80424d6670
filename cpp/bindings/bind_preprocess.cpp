// SPDX-License-Identifier: Apache-2.0
// Tile preprocessing: an (H, W, 3) uint8 image read in place (any row stride), (T, 4) int64
// tiles, and a caller-allocated (T, 3, h, w) float32 / float16 C-contiguous batch buffer that
// is filled with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <vector>
#include <string>

#include "arrays.hpp"
#include "fissure/preprocess.hpp"
#include "fissure/scheduler.hpp"
#include "half.hpp"

namespace py = pybind11;
using fissure::index_t;
using fissure::py_arrays::carray;
using fissure::py_arrays::dtype_error;
using fissure::py_arrays::has_dtype;
using fissure::py_arrays::dtype_str;
using fissure::py_arrays::check_shape;
using fissure::py_arrays::shape_str;

namespace {

fissure::Image8View image3_arg(const py::array& a) {
    if (!has_dtype(a, 'u', 1)) dtype_error("image", "uint8", a);
    if (a.ndim() != 3 || a.shape(2) != 3)
        throw fissure::InvalidArgument("image: expected shape (H, W, 3), got " + shape_str(a));
    if (a.shape(0) == 0 || a.shape(1) == 0)
        throw fissure::InvalidArgument("image: expected a non-empty image, got shape " +
                                       shape_str(a));
    if (a.strides(2) != 1 || (a.shape(1) > 1 && a.strides(1) != 3))
        throw fissure::InvalidArgument(
            "image: expected the pixels of a row to be contiguous bytes; call "
            "np.ascontiguousarray(image)");
    fissure::Image8View v;
    v.data = static_cast<const std::uint8_t*>(a.data());
    v.rows = a.shape(0);
    v.cols = a.shape(1);
    v.channels = 3;
    v.row_stride = a.strides(0);
    return v;
}

fissure::Interp interp_arg(const std::string& s) {
    if (s == "linear") return fissure::Interp::linear;
    if (s == "nearest") return fissure::Interp::nearest;
    if (s == "area") return fissure::Interp::area;
    throw fissure::InvalidArgument("interpolation: expected 'linear', 'nearest' or 'area', got '" +
                                   s + "'");
}

fissure::OutDtype out_dtype_arg(const py::array& out, const char* name) {
    const auto dt = out.dtype();
    if (dt.kind() == 'f' && dt.itemsize() == 4) return fissure::OutDtype::float32;
    if (dt.kind() == 'f' && dt.itemsize() == 2) return fissure::OutDtype::float16;
    throw py::type_error(std::string(name) + ": expected dtype float32 or float16, got " +
                         dtype_str(out));
}

void check_out(const py::array& out, const char* name, py::ssize_t n, int input_h, int input_w) {
    if (out.ndim() != 4 || out.shape(0) != n || out.shape(1) != 3 || out.shape(2) != input_h ||
        out.shape(3) != input_w)
        throw fissure::InvalidArgument(std::string(name) + ": expected shape (" +
                                       std::to_string(n) + ", 3, " + std::to_string(input_h) +
                                       ", " + std::to_string(input_w) + "), got " +
                                       shape_str(out));
    if (!(out.flags() & py::array::c_style))
        throw fissure::InvalidArgument(std::string(name) + ": expected a C-contiguous array");
    if (!out.writeable())
        throw fissure::InvalidArgument(std::string(name) + ": the array is read-only");
}

fissure::PreprocessParams params_arg(int input_h, int input_w, const std::string& mode,
                                     const std::string& interpolation, int pad_value, bool rgb,
                                     float scale, const std::array<float, 3>& mean,
                                     const std::array<float, 3>& std) {
    fissure::PreprocessParams p;
    p.out_h = input_h;
    p.out_w = input_w;
    p.mode = fissure::py_arrays::resize_mode_arg(mode);
    p.interp = interp_arg(interpolation);
    p.pad_value = pad_value;
    p.swap_rb = rgb;
    p.scale = scale;
    for (int c = 0; c < 3; ++c) {
        p.mean[c] = mean[static_cast<std::size_t>(c)];
        p.std[c] = std[static_cast<std::size_t>(c)];
    }
    return p;
}

/// The Python-side feeder: keeps the image and the buffers alive for as long as the
/// native feeder may touch them (members are destroyed in reverse order: feeder first).
struct PyBatchFeeder {
    py::array image;
    std::vector<py::array> slots;
    std::unique_ptr<fissure::BatchFeeder> feeder;

    fissure::BatchFeeder& get() {
        if (!feeder) throw fissure::InvalidArgument("batch feeder: closed");
        return *feeder;
    }
    void close() {
        if (feeder) {
            py::gil_scoped_release release;
            feeder.reset();
        }
    }
};

}  // namespace

void bind_preprocess(py::module_& m) {
    m.def(
        "preprocess_tiles",
        [](const py::array& image, const carray<std::int64_t>& tiles, py::array out, int input_h,
           int input_w, const std::string& mode, const std::string& interpolation, int pad_value,
           bool rgb, float scale, std::array<float, 3> mean, std::array<float, 3> std,
           int num_threads) {
            const fissure::Image8View img = image3_arg(image);
            check_shape(tiles, "tiles", {-1, 4});
            fissure::PreprocessParams p = params_arg(input_h, input_w, mode, interpolation,
                                                     pad_value, rgb, scale, mean, std);
            p.dtype = out_dtype_arg(out, "out");
            const py::ssize_t n = tiles.shape(0);
            check_out(out, "out", n, input_h, input_w);
            const fissure::TilesView tv{tiles.data(), static_cast<index_t>(n)};
            void* dst = out.mutable_data();
            {
                py::gil_scoped_release release;
                fissure::preprocess_tiles(img, tv, p, dst, num_threads);
            }
            return out;
        },
        py::arg("image").noconvert(), py::arg("tiles").noconvert(), py::arg("out"),
        py::arg("input_h"), py::arg("input_w"), py::arg("mode") = "resize",
        py::arg("interpolation") = "linear", py::arg("pad_value") = 114, py::arg("rgb") = true,
        py::arg("scale") = 1.0f / 255.0f, py::arg("mean") = std::array<float, 3>{0.f, 0.f, 0.f},
        py::arg("std") = std::array<float, 3>{1.f, 1.f, 1.f}, py::arg("num_threads") = -1,
        "Fills `out` (T, 3, input_h, input_w) float32/float16 with the tiles of an (H, W, 3) "
        "uint8 image, resized as cv2.resize, channel-swapped, (x * scale - mean) / std; returns "
        "`out`.");

    m.def(
        "letterbox_params",
        [](index_t tile_h, index_t tile_w, int input_h, int input_w) {
            const fissure::Letterbox lb = fissure::letterbox_params(tile_h, tile_w, input_h, input_w);
            return py::make_tuple(lb.r, lb.new_w, lb.new_h, lb.pad_x, lb.pad_y);
        },
        py::arg("tile_h"), py::arg("tile_w"), py::arg("input_h"), py::arg("input_w"),
        "Ultralytics letterbox geometry: (r, new_w, new_h, pad_x, pad_y).");

    m.def(
        "_resize_u8",
        [](const py::array& image, int out_h, int out_w, const std::string& interpolation,
           int num_threads) {
            const fissure::Image8View img = image3_arg(image);
            const fissure::Interp interp = interp_arg(interpolation);
            if (out_h <= 0 || out_w <= 0)
                throw fissure::InvalidArgument("resize: expected a positive output size");
            py::array_t<std::uint8_t> out({static_cast<py::ssize_t>(out_h),
                                           static_cast<py::ssize_t>(out_w), py::ssize_t{3}});
            std::uint8_t* dst = out.mutable_data();
            {
                py::gil_scoped_release release;
                fissure::resize_u8(img, out_h, out_w, interp, dst, num_threads);
            }
            return out;
        },
        py::arg("image").noconvert(), py::arg("out_h"), py::arg("out_w"),
        py::arg("interpolation") = "linear", py::arg("num_threads") = -1,
        "Test hook: the preprocessing kernel's uint8 resize alone, (out_h, out_w, 3).");

    m.def(
        "_float_to_half",
        [](const carray<float>& x) {
            py::array_t<std::uint16_t> out(x.size());
            const float* s = x.data();
            std::uint16_t* d = out.mutable_data();
            for (py::ssize_t i = 0; i < x.size(); ++i) d[i] = fissure::float_to_half(s[i]);
            return out;
        },
        py::arg("x").noconvert(),
        "Test hook: binary16 bits of each float32 (flattened), rounded to nearest even.");

    py::class_<PyBatchFeeder>(m, "BatchFeeder",
                              "Multi-buffered tile preprocessing: batch b + 1 is prepared in "
                              "the background while the caller runs the model on batch b "
                              "(buffers slot0, slot1, *more_slots used round-robin).")
        .def(py::init([](const py::array& image, const carray<std::int64_t>& tiles,
                         py::array slot0, py::array slot1, index_t batch_size, int input_h,
                         int input_w, const std::string& mode, const std::string& interpolation,
                         int pad_value, bool rgb, float scale, std::array<float, 3> mean,
                         std::array<float, 3> std, int num_threads,
                         std::vector<py::array> more_slots) {
                 const fissure::Image8View img = image3_arg(image);
                 check_shape(tiles, "tiles", {-1, 4});
                 fissure::PreprocessParams p = params_arg(input_h, input_w, mode, interpolation,
                                                          pad_value, rgb, scale, mean, std);
                 p.dtype = out_dtype_arg(slot0, "slot0");
                 if (batch_size < 1)
                     throw fissure::InvalidArgument("batch_size: expected >= 1, got " +
                                                    std::to_string(batch_size));
                 std::vector<py::array> slots{slot0, slot1};
                 slots.insert(slots.end(), more_slots.begin(), more_slots.end());
                 std::vector<void*> ptrs;
                 for (std::size_t i = 0; i < slots.size(); ++i) {
                     const std::string name = i < 2 ? "slot" + std::to_string(i)
                                                    : "more_slots[" + std::to_string(i - 2) + "]";
                     if (i > 0 && out_dtype_arg(slots[i], name.c_str()) != p.dtype)
                         throw py::type_error(name + ": expected the dtype of slot0, got " +
                                              dtype_str(slots[i]));
                     check_out(slots[i], name.c_str(), batch_size, input_h, input_w);
                     const auto* a = static_cast<const char*>(slots[i].data());
                     const py::ssize_t na = slots[i].nbytes();
                     for (std::size_t j = 0; j < i; ++j) {
                         const auto* c = static_cast<const char*>(slots[j].data());
                         if (a < c + slots[j].nbytes() && c < a + na)
                             throw fissure::InvalidArgument(
                                 "slots " + std::to_string(j) + " and " + std::to_string(i) +
                                 ": expected separate buffers, they overlap");
                     }
                     ptrs.push_back(slots[i].mutable_data());
                 }
                 std::vector<std::int64_t> t(tiles.data(), tiles.data() + tiles.size());
                 auto f = std::make_unique<PyBatchFeeder>();
                 f->image = image;
                 f->slots = slots;
                 f->feeder = std::make_unique<fissure::BatchFeeder>(
                     img, std::move(t), p, batch_size, std::move(ptrs), num_threads);
                 return f;
             }),
             py::arg("image").noconvert(), py::arg("tiles").noconvert(), py::arg("slot0"),
             py::arg("slot1"), py::arg("batch_size"), py::arg("input_h"), py::arg("input_w"),
             py::arg("mode") = "resize", py::arg("interpolation") = "linear",
             py::arg("pad_value") = 114, py::arg("rgb") = true, py::arg("scale") = 1.0f / 255.0f,
             py::arg("mean") = std::array<float, 3>{0.f, 0.f, 0.f},
             py::arg("std") = std::array<float, 3>{1.f, 1.f, 1.f}, py::arg("num_threads") = -1,
             py::arg("more_slots") = std::vector<py::array>{})
        .def_property_readonly("num_batches",
                               [](PyBatchFeeder& f) { return f.get().num_batches(); })
        .def_property_readonly("batch_size", [](PyBatchFeeder& f) { return f.get().batch_size(); })
        .def_property_readonly("num_tiles", [](PyBatchFeeder& f) { return f.get().num_tiles(); })
        .def_property_readonly("num_slots", [](PyBatchFeeder& f) { return f.get().num_slots(); })
        .def("batch_count", [](PyBatchFeeder& f, index_t b) { return f.get().batch_count(b); },
             py::arg("b"), "Tiles in batch b.")
        .def(
            "start",
            [](PyBatchFeeder& f, index_t b) {
                fissure::BatchFeeder& feeder = f.get();
                py::gil_scoped_release release;
                feeder.start(b);
            },
            py::arg("b"), "Starts batch b in the background (into slot b % num_slots).")
        .def(
            "wait",
            [](PyBatchFeeder& f, index_t b) {
                fissure::BatchFeeder& feeder = f.get();
                py::gil_scoped_release release;
                return feeder.wait(b);
            },
            py::arg("b"), "Waits for batch b and returns its slot (b % num_slots).")
        .def("close", &PyBatchFeeder::close, "Waits for background work and releases the image.");
}
