// SPDX-License-Identifier: Apache-2.0
// Box-local mask conversions: numpy in, views, GIL released around the core, numpy out.
// A set of masks crosses as three arrays: data (uint8, flat), offsets (int64, n + 1) and
// regions (int32, (n, 4)); functions that make masks return that triple.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "fissure/masks_convert.hpp"
#include "fissure/parallel.hpp"

namespace py = pybind11;
using fissure::index_t;
using fissure::py_arrays::carray;
using fissure::py_arrays::check_1d;
using fissure::py_arrays::check_ndim;
using fissure::py_arrays::dtype_error;
using fissure::py_arrays::has_dtype;
using fissure::py_arrays::check_len;
using fissure::py_arrays::check_shape;
using fissure::py_arrays::shape_str;

namespace {

void check_image_shape(index_t height, index_t width) {
    if (height <= 0 || width <= 0)
        throw fissure::InvalidArgument("image_shape: expected positive (height, width), got (" +
                                       std::to_string(height) + ", " + std::to_string(width) + ")");
}

// Hands a vector's buffer to numpy without a copy.
template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
    auto* owned = new std::vector<T>(std::move(v));
    py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(std::move(shape), owned->data(), owner);
}

py::tuple to_python(fissure::BoxMasks&& m) {
    const auto n = static_cast<py::ssize_t>(m.size());
    const auto bytes = static_cast<py::ssize_t>(m.data.size());
    return py::make_tuple(to_numpy(std::move(m.data), {bytes}),
                          to_numpy(std::move(m.offsets), {n + 1}),
                          to_numpy(std::move(m.regions), {n, py::ssize_t{4}}));
}

fissure::BoxMasksView masks_view(const carray<std::uint8_t>& data,
                                 const carray<std::int64_t>& offsets,
                                 const carray<std::int32_t>& regions) {
    check_shape(regions, "regions", {-1, 4});
    const py::ssize_t n = regions.shape(0);
    check_len(offsets, "offsets", n + 1);
    if (data.ndim() != 1)
        throw fissure::InvalidArgument("data: expected a flat (n_bytes,) array, got shape " +
                                       shape_str(data));
    fissure::BoxMasksView v{data.data(), offsets.data(), regions.data(), static_cast<index_t>(n)};
    fissure::check_box_masks(v, static_cast<index_t>(data.shape(0)));
    return v;
}

const std::int32_t* regions_arg(const carray<std::int32_t>& r, const char* name, py::ssize_t n) {
    check_shape(r, name, {n, 4});
    return r.data();
}

// Dense planes (n, height, width): uint8 or bool (set = nonzero) or float32 (set = > threshold).
struct Planes {
    py::array arr;
    bool is_float = false;
    index_t n = 0, height = 0, width = 0;
};

Planes planes_arg(const py::array& a) {
    Planes p;
    p.arr = a;
    if (has_dtype(a, 'b', 1) || has_dtype(a, 'u', 1)) {
        p.is_float = false;
    } else if (has_dtype(a, 'f', 4)) {
        p.is_float = true;
    } else {
        dtype_error("masks", "bool, uint8 or float32", a);
    }
    check_ndim(a, "masks", 3, "(n, height, width)");
    if (!(a.flags() & py::array::c_style) || a.dtype().byteorder() == '>')
        throw fissure::InvalidArgument("masks: expected a C-contiguous native array");
    p.n = a.shape(0);
    p.height = a.shape(1);
    p.width = a.shape(2);
    return p;
}

}  // namespace

void bind_masks(py::module_& m) {
    m.def(
        "check_box_masks",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions) { masks_view(data, offsets, regions); },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        "Checks the layout of a set of box-local masks; raises ValueError naming the problem.");

    m.def(
        "dense_tight_regions",
        [](const py::array& planes, float threshold, int num_threads) {
            const Planes p = planes_arg(planes);
            std::vector<std::int32_t> out(static_cast<std::size_t>(4 * p.n));
            {
                py::gil_scoped_release release;
                if (p.is_float)
                    fissure::dense_tight_regions(static_cast<const float*>(p.arr.data()), p.n,
                                                 p.height, p.width, threshold, out.data(),
                                                 num_threads);
                else
                    fissure::dense_tight_regions(static_cast<const std::uint8_t*>(p.arr.data()),
                                                 p.n, p.height, p.width, out.data(), num_threads);
            }
            return to_numpy(std::move(out), {static_cast<py::ssize_t>(p.n), 4});
        },
        py::arg("planes"), py::arg("threshold") = 0.5f, py::arg("num_threads") = -1,
        "Tight (n, 4) int32 regions x0, y0, w, h of dense planes; (0, 0, 0, 0) when empty.");

    m.def(
        "crop_dense",
        [](const py::array& planes, const carray<std::int32_t>& src_regions,
           const std::optional<carray<std::int32_t>>& shifts, float threshold, int num_threads) {
            const Planes p = planes_arg(planes);
            const std::int32_t* r = regions_arg(src_regions, "src_regions", p.n);
            const std::int32_t* s = nullptr;
            if (shifts) {
                check_shape(*shifts, "shifts", {p.n, 2});
                s = shifts->data();
            }
            fissure::BoxMasks out;
            {
                py::gil_scoped_release release;
                if (p.is_float)
                    out = fissure::crop_dense(static_cast<const float*>(p.arr.data()), p.n, p.height,
                                              p.width, threshold, r, s, num_threads);
                else
                    out = fissure::crop_dense(static_cast<const std::uint8_t*>(p.arr.data()), p.n,
                                              p.height, p.width, r, s, num_threads);
            }
            return to_python(std::move(out));
        },
        py::arg("planes"), py::arg("src_regions").noconvert(), py::arg("shifts").noconvert() = py::none(),
        py::arg("threshold") = 0.5f, py::arg("num_threads") = -1,
        "Crops dense planes to regions (plane coordinates) and shifts them: (data, offsets, regions).");

    m.def(
        "reframe",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions, const carray<std::int32_t>& new_regions,
           int num_threads) {
            const auto v = masks_view(data, offsets, regions);
            const std::int32_t* r = regions_arg(new_regions, "new_regions", v.n);
            fissure::BoxMasks out;
            {
                py::gil_scoped_release release;
                out = fissure::reframe(v, r, num_threads);
            }
            return to_python(std::move(out));
        },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("new_regions").noconvert(), py::arg("num_threads") = -1,
        "Moves each mask onto a new region (copying the overlap): (data, offsets, regions).");

    m.def(
        "gather",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions, const carray<std::int64_t>& index, int num_threads) {
            const auto v = masks_view(data, offsets, regions);
            check_1d(index, "index");
            fissure::BoxMasks out;
            {
                py::gil_scoped_release release;
                out = fissure::gather(v, index.data(), static_cast<index_t>(index.shape(0)),
                                      num_threads);
            }
            return to_python(std::move(out));
        },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("index").noconvert(), py::arg("num_threads") = -1,
        "The masks at index, in that order: (data, offsets, regions).");

    m.def(
        "paste_dense",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions, py::array out, int num_threads) {
            const auto v = masks_view(data, offsets, regions);
            const Planes p = planes_arg(out);
            if (p.is_float) throw py::type_error("out: expected dtype bool or uint8, got float32");
            if (p.n != v.n)
                throw fissure::InvalidArgument("out: expected " + std::to_string(v.n) +
                                               " planes, got shape " + shape_str(out));
            if (!out.writeable()) throw fissure::InvalidArgument("out: expected a writeable array");
            auto* dst = static_cast<std::uint8_t*>(out.mutable_data());
            py::gil_scoped_release release;
            fissure::paste_dense(v, p.height, p.width, dst, num_threads);
        },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("out"), py::arg("num_threads") = -1,
        "ORs mask i into plane i of out, an (n, height, width) bool/uint8 array; clips.");

    m.def(
        "areas",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions, int num_threads) {
            const auto v = masks_view(data, offsets, regions);
            std::vector<std::int64_t> out(static_cast<std::size_t>(v.n));
            {
                py::gil_scoped_release release;
                fissure::areas(v, out.data(), num_threads);
            }
            return to_numpy(std::move(out), {static_cast<py::ssize_t>(v.n)});
        },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("num_threads") = -1, "Set pixels per mask, (n,) int64.");

    m.def(
        "tight_bounds",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions, int num_threads) {
            const auto v = masks_view(data, offsets, regions);
            std::vector<std::int32_t> out(static_cast<std::size_t>(4 * v.n));
            {
                py::gil_scoped_release release;
                fissure::tight_bounds(v, out.data(), num_threads);
            }
            return to_numpy(std::move(out), {static_cast<py::ssize_t>(v.n), 4});
        },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("num_threads") = -1,
        "Tight xyxy (exclusive ends) int32 bounds of the set pixels; empty -> (x0, y0, x0, y0).");

    m.def(
        "encode_coco",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions, index_t height, index_t width, int num_threads) {
            const auto v = masks_view(data, offsets, regions);
            check_image_shape(height, width);
            std::vector<std::string> strings;
            {
                py::gil_scoped_release release;
                strings = fissure::encode_coco_strings(v, height, width, num_threads);
            }
            py::list out(v.n);
            for (index_t i = 0; i < v.n; ++i) {
                py::dict d;
                d["size"] = py::list(py::make_tuple(height, width));
                d["counts"] = py::bytes(strings[i]);
                out[i] = std::move(d);
            }
            return out;
        },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("height"), py::arg("width"), py::arg("num_threads") = -1,
        "COCO RLE dicts (compressed counts) over a (height, width) image, as "
        "pycocotools.mask.encode gives them.");

    m.def(
        "encode_runs",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions, index_t height, index_t width, int num_threads) {
            const auto v = masks_view(data, offsets, regions);
            check_image_shape(height, width);
            fissure::RunsCSR runs;
            {
                py::gil_scoped_release release;
                runs = fissure::encode_runs_all(v, height, width, num_threads);
            }
            const auto k = static_cast<py::ssize_t>(runs.counts.size());
            return py::make_tuple(to_numpy(std::move(runs.counts), {k}),
                                  to_numpy(std::move(runs.offsets), {static_cast<py::ssize_t>(v.n) + 1}));
        },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("height"), py::arg("width"), py::arg("num_threads") = -1,
        "COCO column-major runs over a (height, width) image, CSR: (counts int64, run_offsets int64).");

    m.def(
        "encode_local_runs",
        [](const carray<std::uint8_t>& data, const carray<std::int64_t>& offsets,
           const carray<std::int32_t>& regions, int num_threads) {
            const auto v = masks_view(data, offsets, regions);
            fissure::RunsCSR runs;
            {
                py::gil_scoped_release release;
                runs = fissure::encode_local_runs_all(v, num_threads);
            }
            const auto k = static_cast<py::ssize_t>(runs.counts.size());
            return py::make_tuple(to_numpy(std::move(runs.counts), {k}),
                                  to_numpy(std::move(runs.offsets), {static_cast<py::ssize_t>(v.n) + 1}));
        },
        py::arg("data").noconvert(), py::arg("offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("num_threads") = -1,
        "Column-major runs of each mask over its own region, CSR: (counts int64, run_offsets int64).");

    m.def(
        "decode_coco",
        [](const py::list& counts, index_t height, index_t width,
           const std::optional<carray<std::int32_t>>& regions, int num_threads) {
            if (height <= 0 || width <= 0)
                throw fissure::InvalidArgument("RLE size: expected positive (height, width), got (" +
                                               std::to_string(height) + ", " + std::to_string(width) + ")");
            const auto n = static_cast<index_t>(counts.size());
            const std::int32_t* r = nullptr;
            if (regions) r = regions_arg(*regions, "regions", n);
            // Copy what we need while holding the GIL: strings to parse, or int64 arrays to keep alive.
            std::vector<std::string> strings(static_cast<std::size_t>(n));
            std::vector<carray<std::int64_t>> arrays(static_cast<std::size_t>(n));
            std::vector<char> is_string(static_cast<std::size_t>(n), 0);
            for (index_t i = 0; i < n; ++i) {
                py::handle h = counts[i];
                if (py::isinstance<py::bytes>(h)) {
                    strings[i] = h.cast<std::string>();
                    is_string[i] = 1;
                } else if (py::isinstance<carray<std::int64_t>>(h)) {
                    auto a = py::reinterpret_borrow<carray<std::int64_t>>(h);
                    check_1d(a, "counts " + std::to_string(i));
                    arrays[i] = a;
                } else {
                    throw py::type_error("counts " + std::to_string(i) +
                                         ": expected bytes or a C-contiguous int64 array, got " +
                                         std::string(py::str(py::type::handle_of(h))));
                }
            }
            fissure::BoxMasks out;
            {
                py::gil_scoped_release release;
                std::vector<std::vector<std::int64_t>> parsed(static_cast<std::size_t>(n));
                fissure::parallel_for(0, n, num_threads, 16, [&](index_t lo, index_t hi) {
                    for (index_t i = lo; i < hi; ++i) {
                        if (!is_string[i]) continue;
                        try {
                            parsed[i] = fissure::coco_counts_from_string(strings[i].data(), strings[i].size());
                        } catch (const fissure::InvalidArgument& e) {
                            fissure::fail("mask " + std::to_string(i) + ": " + e.what());
                        }
                    }
                });
                std::vector<fissure::RunsRef> refs(static_cast<std::size_t>(n));
                for (index_t i = 0; i < n; ++i) {
                    if (is_string[i])
                        refs[i] = {parsed[i].data(), static_cast<index_t>(parsed[i].size())};
                    else
                        refs[i] = {arrays[i].data(), static_cast<index_t>(arrays[i].shape(0))};
                }
                out = fissure::decode_runs_all(refs, height, width, r, num_threads);
            }
            return to_python(std::move(out));
        },
        py::arg("counts"), py::arg("height"), py::arg("width"),
        py::arg("regions").noconvert() = py::none(), py::arg("num_threads") = -1,
        "Decodes COCO counts (bytes strings or int64 arrays) into box-local masks over regions, "
        "or tight regions when None: (data, offsets, regions).");

    m.def(
        "decode_local_runs",
        [](const carray<std::int64_t>& counts, const carray<std::int64_t>& run_offsets,
           const carray<std::int32_t>& regions, int num_threads) {
            check_shape(regions, "regions", {-1, 4});
            const auto n = static_cast<index_t>(regions.shape(0));
            check_len(run_offsets, "run_offsets", n + 1);
            check_1d(counts, "counts");
            const std::int64_t* ro = run_offsets.data();
            if (ro[0] != 0 || ro[n] != counts.shape(0))
                throw fissure::InvalidArgument(
                    "run_offsets: expected run_offsets[0] == 0 and run_offsets[-1] == " +
                    std::to_string(counts.shape(0)) + " (the number of counts)");
            std::vector<fissure::RunsRef> refs(static_cast<std::size_t>(n));
            for (index_t i = 0; i < n; ++i) {
                if (ro[i + 1] < ro[i])
                    throw fissure::InvalidArgument("run_offsets: expected non-decreasing offsets, "
                                                   "decreasing at " + std::to_string(i + 1));
                refs[i] = {counts.data() + ro[i], ro[i + 1] - ro[i]};
            }
            fissure::BoxMasks out;
            {
                py::gil_scoped_release release;
                out = fissure::decode_local_runs_all(refs, regions.data(), num_threads);
            }
            return to_python(std::move(out));
        },
        py::arg("counts").noconvert(), py::arg("run_offsets").noconvert(), py::arg("regions").noconvert(),
        py::arg("num_threads") = -1,
        "Decodes crop-scoped column-major runs (CSR) over their regions: (data, offsets, regions).");

    m.def(
        "coco_counts_to_string",
        [](const carray<std::int64_t>& counts) {
            check_1d(counts, "counts");
            std::string s;
            fissure::coco_counts_to_string(counts.data(), static_cast<index_t>(counts.shape(0)), s);
            return py::bytes(s);
        },
        py::arg("counts").noconvert(), "COCO's compressed counts string of int64 run lengths.");

    m.def(
        "coco_counts_from_string",
        [](const py::bytes& s) {
            const std::string str = s;
            auto v = fissure::coco_counts_from_string(str.data(), str.size());
            const auto k = static_cast<py::ssize_t>(v.size());
            return to_numpy(std::move(v), {k});
        },
        py::arg("s"), "Run lengths (int64) of a COCO compressed counts string.");
}
