// SPDX-License-Identifier: Apache-2.0
// Output decoders: a C-contiguous float32 model output, (T, 4) int64 tiles and the model's
// input geometry in; a tuple (boxes, scores, class_ids, tile_index, masks) out, where masks is
// None or (data, offsets, regions). The work runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>

#include "arrays.hpp"
#include "fissure/decode.hpp"

namespace py = pybind11;
using fissure::index_t;
using fissure::py_arrays::carray;
using fissure::py_arrays::check_shape;
using fissure::py_arrays::shape_str;

namespace {

fissure::DecodeGeometry geometry_arg(const carray<std::int64_t>& tiles, int input_h, int input_w,
                                     const std::string& mode) {
    check_shape(tiles, "tiles", {-1, 4});
    fissure::DecodeGeometry g;
    g.tiles = tiles.data();
    g.n = static_cast<index_t>(tiles.shape(0));
    g.input_h = input_h;
    g.input_w = input_w;
    g.mode = fissure::py_arrays::resize_mode_arg(mode);
    return g;
}

template <class T>
py::array_t<T> to_array(std::vector<T>&& v, py::ssize_t rows, py::ssize_t cols = -1) {
    auto* heap = new std::vector<T>(std::move(v));
    py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    if (cols < 0) return py::array_t<T>({rows}, heap->data(), owner);
    return py::array_t<T>({rows, cols}, heap->data(), owner);
}

py::tuple to_python(fissure::Decoded&& d) {
    const py::ssize_t n = d.size();
    py::object masks = py::none();
    if (d.has_masks) {
        const auto nd = static_cast<py::ssize_t>(d.masks.data.size());
        const auto no = static_cast<py::ssize_t>(d.masks.offsets.size());
        masks = py::make_tuple(to_array(std::move(d.masks.data), nd),
                               to_array(std::move(d.masks.offsets), no),
                               to_array(std::move(d.masks.regions), n, 4));
    }
    return py::make_tuple(to_array(std::move(d.boxes), n, 4), to_array(std::move(d.scores), n),
                          to_array(std::move(d.class_ids), n), to_array(std::move(d.tile_index), n),
                          masks);
}

/// The mask crop of the seg decoders: "input" (true) or "proto" (false).
bool crop_arg(const std::string& crop) {
    if (crop == "input") return true;
    if (crop == "proto") return false;
    throw py::value_error("crop: expected 'input' or 'proto', got '" + crop + "'");
}

fissure::ProtoView protos_arg(const carray<float>& protos, py::ssize_t batch) {
    check_shape(protos, "protos", {-1, -1, -1, -1});
    if (protos.shape(0) != batch)
        throw fissure::InvalidArgument("protos: expected the output's batch size " +
                                       std::to_string(batch) + ", got shape " + shape_str(protos));
    return fissure::ProtoView{protos.data(), static_cast<index_t>(protos.shape(1)),
                              static_cast<index_t>(protos.shape(2)),
                              static_cast<index_t>(protos.shape(3))};
}

}  // namespace

void bind_decode(py::module_& m) {
    m.def(
        "decode_probability_map",
        [](const carray<float>& maps, const carray<std::int64_t>& tiles, int input_h, int input_w,
           const std::string& mode, float threshold, float box_threshold, index_t min_area,
           bool masks, int num_threads) {
            check_shape(maps, "maps", {-1, -1, -1});
            const fissure::DecodeGeometry g = geometry_arg(tiles, input_h, input_w, mode);
            fissure::ProbMapParams p;
            p.threshold = threshold;
            p.box_threshold = box_threshold;
            p.min_area = min_area;
            p.masks = masks;
            fissure::Decoded d;
            {
                py::gil_scoped_release release;
                d = fissure::decode_probability_map(maps.data(), maps.shape(0), maps.shape(1),
                                                    maps.shape(2), g, p, num_threads);
            }
            return to_python(std::move(d));
        },
        py::arg("maps").noconvert(), py::arg("tiles").noconvert(), py::arg("input_h"),
        py::arg("input_w"), py::arg("mode"), py::arg("threshold"), py::arg("box_threshold"),
        py::arg("min_area"), py::arg("masks"), py::arg("num_threads") = -1,
        "(B, H, W) float32 probability maps -> (boxes, scores, class_ids, tile_index, masks).");

    m.def(
        "decode_yolo",
        [](const carray<float>& out, const carray<std::int64_t>& tiles, int input_h, int input_w,
           const std::string& mode, bool channels_first, float conf_threshold, int num_threads) {
            check_shape(out, "output", {-1, -1, -1});
            const fissure::DecodeGeometry g = geometry_arg(tiles, input_h, input_w, mode);
            const index_t dims = channels_first ? out.shape(1) : out.shape(2);
            const index_t n = channels_first ? out.shape(2) : out.shape(1);
            fissure::Decoded d;
            {
                py::gil_scoped_release release;
                d = fissure::decode_yolo(out.data(), out.shape(0), dims, n, channels_first, g,
                                         conf_threshold, num_threads);
            }
            return to_python(std::move(d));
        },
        py::arg("output").noconvert(), py::arg("tiles").noconvert(), py::arg("input_h"),
        py::arg("input_w"), py::arg("mode"), py::arg("channels_first"), py::arg("conf_threshold"),
        py::arg("num_threads") = -1,
        "YOLOv8/11 (B, 4+C, N) or (B, N, 4+C) -> (boxes, scores, class_ids, tile_index, None).");

    m.def(
        "decode_end_to_end",
        [](const carray<float>& out, const carray<std::int64_t>& tiles, int input_h, int input_w,
           const std::string& mode, float conf_threshold, int num_threads) {
            check_shape(out, "output", {-1, -1, 6});
            const fissure::DecodeGeometry g = geometry_arg(tiles, input_h, input_w, mode);
            fissure::Decoded d;
            {
                py::gil_scoped_release release;
                d = fissure::decode_end_to_end(out.data(), out.shape(0), out.shape(1), g,
                                               conf_threshold, num_threads);
            }
            return to_python(std::move(d));
        },
        py::arg("output").noconvert(), py::arg("tiles").noconvert(), py::arg("input_h"),
        py::arg("input_w"), py::arg("mode"), py::arg("conf_threshold"),
        py::arg("num_threads") = -1,
        "End-to-end (B, K, 6) -> (boxes, scores, class_ids, tile_index, None).");

    m.def(
        "decode_yolov5",
        [](const carray<float>& out, const carray<std::int64_t>& tiles, int input_h, int input_w,
           const std::string& mode, float conf_threshold, int num_threads) {
            check_shape(out, "output", {-1, -1, -1});
            const fissure::DecodeGeometry g = geometry_arg(tiles, input_h, input_w, mode);
            fissure::Decoded d;
            {
                py::gil_scoped_release release;
                d = fissure::decode_yolov5(out.data(), out.shape(0), out.shape(1), out.shape(2), g,
                                           conf_threshold, num_threads);
            }
            return to_python(std::move(d));
        },
        py::arg("output").noconvert(), py::arg("tiles").noconvert(), py::arg("input_h"),
        py::arg("input_w"), py::arg("mode"), py::arg("conf_threshold"),
        py::arg("num_threads") = -1,
        "YOLOv5 (B, N, 5+C) -> (boxes, scores, class_ids, tile_index, None).");

    m.def(
        "decode_yolo_seg",
        [](const carray<float>& out, const carray<float>& protos, const carray<std::int64_t>& tiles,
           int input_h, int input_w, const std::string& mode, bool channels_first,
           float conf_threshold, bool masks, int num_threads, const std::string& crop,
           bool drop_empty) {
            check_shape(out, "output", {-1, -1, -1});
            const fissure::ProtoView pv = protos_arg(protos, out.shape(0));
            const fissure::DecodeGeometry g = geometry_arg(tiles, input_h, input_w, mode);
            const index_t dims = channels_first ? out.shape(1) : out.shape(2);
            const index_t n = channels_first ? out.shape(2) : out.shape(1);
            fissure::Decoded d;
            {
                py::gil_scoped_release release;
                d = fissure::decode_yolo_seg(out.data(), out.shape(0), dims, n, channels_first, pv,
                                             g, conf_threshold, masks, num_threads,
                                             crop_arg(crop), drop_empty);
            }
            return to_python(std::move(d));
        },
        py::arg("output").noconvert(), py::arg("protos").noconvert(),
        py::arg("tiles").noconvert(), py::arg("input_h"), py::arg("input_w"), py::arg("mode"),
        py::arg("channels_first"), py::arg("conf_threshold"), py::arg("masks"),
        py::arg("num_threads") = -1, py::arg("crop") = "input", py::arg("drop_empty") = true,
        "YOLOv8/11-seg (B, 4+C+M, N) or (B, N, 4+C+M) and protos (B, M, mh, mw) -> (boxes, "
        "scores, class_ids, tile_index, masks).");

    m.def(
        "decode_end_to_end_seg",
        [](const carray<float>& out, const carray<float>& protos, const carray<std::int64_t>& tiles,
           int input_h, int input_w, const std::string& mode, float conf_threshold, bool masks,
           int num_threads, const std::string& crop, bool drop_empty) {
            check_shape(out, "output", {-1, -1, -1});
            const fissure::ProtoView pv = protos_arg(protos, out.shape(0));
            const fissure::DecodeGeometry g = geometry_arg(tiles, input_h, input_w, mode);
            fissure::Decoded d;
            {
                py::gil_scoped_release release;
                d = fissure::decode_end_to_end_seg(out.data(), out.shape(0), out.shape(1),
                                                   out.shape(2), pv, g, conf_threshold, masks,
                                                   num_threads, crop_arg(crop), drop_empty);
            }
            return to_python(std::move(d));
        },
        py::arg("output").noconvert(), py::arg("protos").noconvert(),
        py::arg("tiles").noconvert(), py::arg("input_h"), py::arg("input_w"), py::arg("mode"),
        py::arg("conf_threshold"), py::arg("masks"), py::arg("num_threads") = -1,
        py::arg("crop") = "input", py::arg("drop_empty") = true,
        "End-to-end seg (B, K, 6+M) and protos (B, M, mh, mw) -> (boxes, scores, class_ids, "
        "tile_index, masks).");

    m.def(
        "decode_yolov5_seg",
        [](const carray<float>& out, const carray<float>& protos, const carray<std::int64_t>& tiles,
           int input_h, int input_w, const std::string& mode, float conf_threshold, bool masks,
           int num_threads, const std::string& crop, bool drop_empty) {
            check_shape(out, "output", {-1, -1, -1});
            const fissure::ProtoView pv = protos_arg(protos, out.shape(0));
            const fissure::DecodeGeometry g = geometry_arg(tiles, input_h, input_w, mode);
            fissure::Decoded d;
            {
                py::gil_scoped_release release;
                d = fissure::decode_yolov5_seg(out.data(), out.shape(0), out.shape(1), out.shape(2),
                                               pv, g, conf_threshold, masks, num_threads,
                                               crop_arg(crop), drop_empty);
            }
            return to_python(std::move(d));
        },
        py::arg("output").noconvert(), py::arg("protos").noconvert(),
        py::arg("tiles").noconvert(), py::arg("input_h"), py::arg("input_w"), py::arg("mode"),
        py::arg("conf_threshold"), py::arg("masks"), py::arg("num_threads") = -1,
        py::arg("crop") = "input", py::arg("drop_empty") = true,
        "YOLOv5-seg (B, N, 5+C+M) and protos (B, M, mh, mw) -> (boxes, scores, class_ids, "
        "tile_index, masks).");

    m.def(
        "decode_detr",
        [](const carray<float>& boxes, const carray<float>& logits,
           const std::optional<carray<float>>& mask_logits, const carray<std::int64_t>& tiles,
           int input_h, int input_w, const std::string& mode, float conf_threshold,
           const std::string& score, index_t top_k, int num_threads) {
            check_shape(boxes, "boxes", {-1, -1, 4});
            check_shape(logits, "logits", {boxes.shape(0), boxes.shape(1), -1});
            const float* mp = nullptr;
            index_t mh = 0, mw = 0;
            if (mask_logits) {
                check_shape(*mask_logits, "masks", {boxes.shape(0), boxes.shape(1), -1, -1});
                mp = mask_logits->data();
                mh = mask_logits->shape(2);
                mw = mask_logits->shape(3);
            }
            fissure::DetrParams p;
            if (score == "sigmoid") p.score = fissure::DetrScore::sigmoid;
            else if (score == "softmax") p.score = fissure::DetrScore::softmax;
            else
                throw fissure::InvalidArgument(
                    "score: expected 'sigmoid' or 'softmax', got '" + score + "'");
            p.top_k = top_k;
            const fissure::DecodeGeometry g = geometry_arg(tiles, input_h, input_w, mode);
            fissure::Decoded d;
            {
                py::gil_scoped_release release;
                d = fissure::decode_detr(boxes.data(), logits.data(), boxes.shape(0),
                                         boxes.shape(1), logits.shape(2), mp, mh, mw, g,
                                         conf_threshold, p, num_threads);
            }
            return to_python(std::move(d));
        },
        py::arg("boxes").noconvert(), py::arg("logits").noconvert(),
        py::arg("mask_logits").noconvert().none(true), py::arg("tiles").noconvert(),
        py::arg("input_h"), py::arg("input_w"), py::arg("mode"), py::arg("conf_threshold"),
        py::arg("score"), py::arg("top_k"), py::arg("num_threads") = -1,
        "DETR-style boxes (B, Q, 4) normalised cxcywh, logits (B, Q, C), optional mask logits "
        "(B, Q, mh, mw) -> (boxes, scores, class_ids, tile_index, masks).");
}
