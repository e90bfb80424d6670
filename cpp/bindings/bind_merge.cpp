// SPDX-License-Identifier: Apache-2.0
// fissure._core merge functions: nms, greedy_nmm, nmm. Arrays must come C-contiguous with
// the exact dtype (the Python layer converts); shapes are checked here; the work runs with
// the GIL released and the outputs are wrapped without copies afterwards.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "fissure/merge.hpp"

namespace py = pybind11;
using fissure::index_t;
using namespace fissure::py_arrays;

namespace {

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
    if (v.empty()) return py::array_t<T>(shape);
    auto* heap = new std::vector<T>(std::move(v));
    py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(shape, heap->data(), owner);
}

fissure::OverlapMetric parse_metric(const std::string& s) {
    if (s == "iou" || s == "IOU") return fissure::OverlapMetric::IOU;
    if (s == "ios" || s == "IOS") return fissure::OverlapMetric::IOS;
    throw fissure::InvalidArgument("metric: expected 'iou' or 'ios', got '" + s + "'");
}

fissure::MatchRule parse_match(const std::string& s) {
    if (s == "ge") return fissure::MatchRule::GE;
    if (s == "gt") return fissure::MatchRule::GT;
    throw fissure::InvalidArgument("match: expected 'ge' or 'gt', got '" + s + "'");
}

fissure::Recheck parse_recheck(const std::string& s) {
    if (s == "sahi") return fissure::Recheck::Sahi;
    if (s == "strict") return fissure::Recheck::Strict;
    if (s == "keep") return fissure::Recheck::Keep;
    if (s == "off") return fissure::Recheck::Off;
    throw fissure::InvalidArgument("recheck: expected 'sahi', 'strict', 'keep' or 'off', got '" + s + "'");
}

using OptI64 = std::optional<carray<std::int64_t>>;
using OptU8 = std::optional<carray<std::uint8_t>>;
using OptI32 = std::optional<carray<std::int32_t>>;

// Everything a call needs, viewed while the GIL is held.
struct Call {
    fissure::BoxesView boxes;
    const float* scores = nullptr;
    const index_t* class_ids = nullptr;
    fissure::MergeOptions opt;
    fissure::BoxMasksView masks;
};

Call prepare(const carray<float>& boxes, const carray<float>& scores, const OptI64& class_ids,
             const std::string& metric, double threshold, const std::string& match,
             bool class_agnostic, const OptI64& order, const OptU8& mask_data,
             const OptI64& mask_offsets, const OptI32& mask_regions, bool mask_metric,
             int num_threads) {
    Call c;
    c.boxes = boxes_view(boxes);
    const auto n = static_cast<py::ssize_t>(c.boxes.n);
    check_len(scores, "scores", n);
    c.scores = scores.data();
    if (class_ids) {
        check_len(*class_ids, "class_ids", n);
        c.class_ids = class_ids->data();
    }
    c.opt.metric = parse_metric(metric);
    c.opt.match = parse_match(match);
    c.opt.threshold = threshold;
    c.opt.class_agnostic = class_agnostic;
    c.opt.num_threads = num_threads;
    if (order) {
        check_len(*order, "order", n);
        c.opt.order = order->data();
    }
    const bool any_mask = mask_data || mask_offsets || mask_regions;
    if (any_mask) {
        if (!(mask_data && mask_offsets && mask_regions))
            throw fissure::InvalidArgument("masks: expected mask_data, mask_offsets and mask_regions together");
        check_shape(*mask_regions, "mask_regions", {n, 4});
        check_len(*mask_offsets, "mask_offsets", n + 1);
        check_shape(*mask_data, "mask_data", {-1});
        const std::int64_t last = mask_offsets->data()[n];
        if (last != static_cast<std::int64_t>(mask_data->shape(0)))
            throw fissure::InvalidArgument("mask_data: expected " + std::to_string(last) +
                                           " bytes for these regions, got " +
                                           std::to_string(mask_data->shape(0)));
        c.masks = fissure::BoxMasksView{mask_data->data(), mask_offsets->data(), mask_regions->data(),
                                        static_cast<index_t>(n)};
        c.opt.masks = &c.masks;
    }
    c.opt.mask_metric = mask_metric;
    if (mask_metric && !any_mask)
        throw fissure::InvalidArgument("mask_metric: expected masks, got none");
    return c;
}

py::tuple merge_outputs(fissure::MergeOutput&& r) {
    const auto M = static_cast<py::ssize_t>(r.size());
    const auto K = static_cast<py::ssize_t>(r.members.size());
    const auto D = static_cast<py::ssize_t>(r.dropped.size());
    py::object md = py::none(), mo = py::none(), mr = py::none();
    if (r.has_masks) {
        const auto bytes = static_cast<py::ssize_t>(r.masks.data.size());
        md = to_numpy(std::move(r.masks.data), {bytes});
        mo = to_numpy(std::move(r.masks.offsets), {M + 1});
        mr = to_numpy(std::move(r.masks.regions), {M, py::ssize_t{4}});
    }
    return py::make_tuple(to_numpy(std::move(r.boxes), {M, py::ssize_t{4}}),
                          to_numpy(std::move(r.scores), {M}), to_numpy(std::move(r.class_ids), {M}),
                          to_numpy(std::move(r.keep), {M}), to_numpy(std::move(r.group_offsets), {M + 1}),
                          to_numpy(std::move(r.members), {K}), to_numpy(std::move(r.dropped), {D}), md, mo,
                          mr);
}

template <class Fn>
py::tuple run_merge(Fn fn, const carray<float>& boxes, const carray<float>& scores,
                    const OptI64& class_ids, const std::string& metric, double threshold,
                    const std::string& match, bool class_agnostic, const OptI64& order,
                    const OptU8& mask_data, const OptI64& mask_offsets, const OptI32& mask_regions,
                    bool mask_metric, const std::string& recheck, int num_threads) {
    Call c = prepare(boxes, scores, class_ids, metric, threshold, match, class_agnostic, order,
                     mask_data, mask_offsets, mask_regions, mask_metric, num_threads);
    c.opt.recheck = parse_recheck(recheck);
    fissure::MergeOutput r;
    {
        py::gil_scoped_release release;
        r = fn(c.boxes, c.scores, c.class_ids, c.opt);
    }
    return merge_outputs(std::move(r));
}

const char* kMergeDoc =
    "-> (boxes (M,4) f32, scores (M,) f32, class_ids (M,) i64, keep (M,) i64, "
    "group_offsets (M+1,) i64, members (K,) i64, dropped (D,) i64, mask_data, mask_offsets, "
    "mask_regions) where the mask arrays are None unless masks were given.";

}  // namespace

void bind_merge(py::module_& m) {
    m.def(
        "nms",
        [](const carray<float>& boxes, const carray<float>& scores, const OptI64& class_ids,
           const std::string& metric, double threshold, const std::string& match, bool class_agnostic,
           const OptI64& order, const OptU8& mask_data, const OptI64& mask_offsets,
           const OptI32& mask_regions, bool mask_metric, int num_threads) {
            Call c = prepare(boxes, scores, class_ids, metric, threshold, match, class_agnostic, order,
                             mask_data, mask_offsets, mask_regions, mask_metric, num_threads);
            std::vector<index_t> keep;
            {
                py::gil_scoped_release release;
                keep = fissure::nms(c.boxes, c.scores, c.class_ids, c.opt);
            }
            const auto k = static_cast<py::ssize_t>(keep.size());
            return to_numpy(std::move(keep), {k});
        },
        py::arg("boxes").noconvert(), py::arg("scores").noconvert(),
        py::arg("class_ids").noconvert() = py::none(), py::arg("metric") = "iou",
        py::arg("threshold") = 0.5, py::arg("match") = "ge", py::arg("class_agnostic") = false,
        py::arg("order").noconvert() = py::none(), py::arg("mask_data").noconvert() = py::none(),
        py::arg("mask_offsets").noconvert() = py::none(),
        py::arg("mask_regions").noconvert() = py::none(), py::arg("mask_metric") = false,
        py::arg("num_threads") = -1,
        "Kept indices (K,) int64 in SAHI's output order. Arrays: boxes (N,4) f32, scores (N,) f32, "
        "class_ids (N,) i64, order (N,) i64, masks as uint8 data, int64 offsets (N+1,), "
        "int32 regions (N,4).");

    auto def_merge = [&](const char* name, auto fn) {
        m.def(
            name,
            [fn](const carray<float>& boxes, const carray<float>& scores, const OptI64& class_ids,
                 const std::string& metric, double threshold, const std::string& match,
                 bool class_agnostic, const OptI64& order, const OptU8& mask_data,
                 const OptI64& mask_offsets, const OptI32& mask_regions, bool mask_metric,
                 const std::string& recheck, int num_threads) {
                return run_merge(fn, boxes, scores, class_ids, metric, threshold, match, class_agnostic,
                                 order, mask_data, mask_offsets, mask_regions, mask_metric, recheck,
                                 num_threads);
            },
            py::arg("boxes").noconvert(), py::arg("scores").noconvert(),
            py::arg("class_ids").noconvert() = py::none(), py::arg("metric") = "ios",
            py::arg("threshold") = 0.5, py::arg("match") = "ge", py::arg("class_agnostic") = false,
            py::arg("order").noconvert() = py::none(), py::arg("mask_data").noconvert() = py::none(),
            py::arg("mask_offsets").noconvert() = py::none(),
            py::arg("mask_regions").noconvert() = py::none(), py::arg("mask_metric") = false,
            py::arg("recheck") = "sahi", py::arg("num_threads") = -1, kMergeDoc);
    };
    def_merge("greedy_nmm", [](const fissure::BoxesView& b, const float* s, const index_t* c,
                               const fissure::MergeOptions& o) { return fissure::greedy_nmm(b, s, c, o); });
    def_merge("nmm", [](const fissure::BoxesView& b, const float* s, const index_t* c,
                        const fissure::MergeOptions& o) { return fissure::nmm(b, s, c, o); });
}
