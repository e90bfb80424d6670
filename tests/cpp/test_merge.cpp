// SPDX-License-Identifier: Apache-2.0
// The merge family against the naive O(N^2) reference (reference/merge_reference.hpp), on
// random inputs built to hit ties, duplicates, degenerate boxes, exact threshold equality
// and crowded clusters; plus the spatial index against brute force.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.hpp"
#include "fissure/merge.hpp"
#include "merge_grid.hpp"
#include "reference/merge_reference.hpp"

using fissure::index_t;

namespace {

struct Case {
    ref::Input in;
    ref::Masks masks;
    fissure::BoxMasks fmasks;
    fissure::BoxMasksView mview;
};

// Integer-grid boxes in a small field: many exact ties, duplicates, zero-size boxes and
// metrics exactly at round thresholds.
void random_boxes(std::mt19937_64& rng, Case& c, index_t n, int span, int max_wh, int n_cls,
                  int n_scores, bool fractional) {
    std::uniform_int_distribution<int> pos(0, span), wh(0, max_wh), cls(0, n_cls - 1),
        sc(1, n_scores);
    std::uniform_real_distribution<float> frac(0.0f, 1.0f);
    c.in.boxes.clear();
    c.in.scores.clear();
    c.in.cls.clear();
    for (index_t i = 0; i < n; ++i) {
        float x1 = static_cast<float>(pos(rng)), y1 = static_cast<float>(pos(rng));
        float w = static_cast<float>(wh(rng)), h = static_cast<float>(wh(rng));
        if (fractional) {
            x1 += frac(rng);
            y1 += frac(rng);
            w *= frac(rng);
            h *= frac(rng);
        }
        if (i > 0 && rng() % 8 == 0) {  // exact duplicate of an earlier box
            const index_t j = static_cast<index_t>(rng() % static_cast<std::uint64_t>(i));
            x1 = c.in.boxes[4 * j];
            y1 = c.in.boxes[4 * j + 1];
            w = c.in.boxes[4 * j + 2] - x1;
            h = c.in.boxes[4 * j + 3] - y1;
        }
        c.in.boxes.insert(c.in.boxes.end(), {x1, y1, x1 + w, y1 + h});
        c.in.scores.push_back(static_cast<float>(sc(rng)) / static_cast<float>(n_scores));
        c.in.cls.push_back(cls(rng));
    }
}

// Masks over each box's region (floor / ceil), random bits with a bias.
void random_masks(std::mt19937_64& rng, Case& c) {
    const index_t n = c.in.n();
    c.masks = ref::Masks{};
    for (index_t i = 0; i < n; ++i) {
        const float* b = c.in.box(i);
        const int x0 = static_cast<int>(std::floor(b[0])), y0 = static_cast<int>(std::floor(b[1]));
        const int w = static_cast<int>(std::ceil(b[2])) - x0, h = static_cast<int>(std::ceil(b[3])) - y0;
        c.masks.regions.insert(c.masks.regions.end(), {x0, y0, w, h});
        const int p = static_cast<int>(rng() % 4);
        for (int k = 0; k < w * h; ++k) c.masks.data.push_back(static_cast<std::uint8_t>(rng() % 4 <= static_cast<std::uint64_t>(p)));
        c.masks.offsets.push_back(c.masks.offsets.back() + static_cast<std::int64_t>(w) * h);
    }
    c.fmasks.data = c.masks.data;
    c.fmasks.offsets = c.masks.offsets;
    c.fmasks.regions = c.masks.regions;
    c.mview = c.fmasks.view();
    c.in.masks = &c.masks;
}

fissure::MergeOptions options_of(const Case& c, int threads) {
    fissure::MergeOptions o;
    o.metric = c.in.iou ? fissure::OverlapMetric::IOU : fissure::OverlapMetric::IOS;
    o.threshold = c.in.thr;
    o.match = c.in.gt ? fissure::MatchRule::GT : fissure::MatchRule::GE;
    o.class_agnostic = c.in.agnostic;
    o.recheck = static_cast<fissure::Recheck>(c.in.recheck);
    o.order = c.in.order.empty() ? nullptr : c.in.order.data();
    o.masks = c.in.masks ? &c.mview : nullptr;
    o.mask_metric = c.in.mask_metric;
    o.num_threads = threads;
    return o;
}

fissure::BoxesView view(const Case& c) { return fissure::BoxesView{c.in.boxes.data(), c.in.n()}; }

bool same_output(const fissure::MergeOutput& a, const ref::Output& r) {
    if (a.size() != static_cast<index_t>(r.groups.size())) return false;
    for (index_t g = 0; g < a.size(); ++g) {
        std::vector<index_t> mem(a.members.begin() + a.group_offsets[g], a.members.begin() + a.group_offsets[g + 1]);
        if (mem != r.groups[g]) return false;
        if (a.keep[g] != r.groups[g][0]) return false;
        for (int k = 0; k < 4; ++k)
            if (a.boxes[4 * g + k] != r.boxes[g][k]) return false;
        if (a.scores[g] != r.scores[g] || a.class_ids[g] != r.cls[g]) return false;
    }
    return a.dropped == r.dropped;
}

bool same_masks(const fissure::MergeOutput& a, const ref::Masks& m) {
    if (!a.has_masks || a.masks.size() != a.size()) return false;
    for (index_t g = 0; g < a.size(); ++g) {
        std::vector<ref::idx> mem(a.members.begin() + a.group_offsets[g], a.members.begin() + a.group_offsets[g + 1]);
        std::array<std::int64_t, 4> region{};
        const auto want = ref::merged_mask(m, mem, region);
        for (int k = 0; k < 4; ++k)
            if (a.masks.regions[4 * g + k] != region[k]) return false;
        if (!std::equal(want.begin(), want.end(), a.masks.data.begin() + a.masks.offsets[g])) return false;
        if (a.masks.offsets[g + 1] - a.masks.offsets[g] != static_cast<std::int64_t>(want.size())) return false;
    }
    return true;
}

const double kThresholds[] = {0.0, 0.1, 0.25, 1.0 / 3.0, 0.4, 0.5, 0.6, 0.7, 0.9, 1.0};

int g_failed_cases = 0;

void compare_all(Case& c, const char* what, int seed) {
    const auto v = view(c);
    const auto o = options_of(c, -1);
    const auto keep = fissure::nms(v, c.in.scores.data(), c.in.cls.data(), o);
    const auto rk = ref::nms(c.in);
    const auto g = fissure::greedy_nmm(v, c.in.scores.data(), c.in.cls.data(), o);
    const auto rg = ref::greedy_nmm(c.in);
    const auto t = fissure::nmm(v, c.in.scores.data(), c.in.cls.data(), o);
    const auto rt = ref::nmm(c.in);
    const bool ok_n = keep == rk, ok_g = same_output(g, rg), ok_t = same_output(t, rt);
    bool ok_m = true;
    if (c.in.masks) ok_m = same_masks(g, c.masks) && same_masks(t, c.masks);
    if (!(ok_n && ok_g && ok_t && ok_m)) {
        if (++g_failed_cases <= 5)
            std::fprintf(stderr, "%s seed %d n %lld thr %g iou %d gt %d agn %d recheck %d order %d mm %d: nms %d greedy %d nmm %d masks %d\n",
                         what, seed, static_cast<long long>(c.in.n()), c.in.thr, c.in.iou, c.in.gt,
                         c.in.agnostic, c.in.recheck, !c.in.order.empty(), c.in.mask_metric, ok_n, ok_g, ok_t, ok_m);
    }
    CHECK(ok_n);
    CHECK(ok_g);
    CHECK(ok_t);
    CHECK(ok_m);
}

void randomize_options(std::mt19937_64& rng, Case& c) {
    c.in.thr = kThresholds[rng() % (sizeof(kThresholds) / sizeof(kThresholds[0]))];
    c.in.iou = rng() % 2;
    c.in.gt = rng() % 5 == 0;
    c.in.agnostic = rng() % 3 == 0;
    c.in.recheck = static_cast<int>(rng() % 4);
    c.in.order.clear();
    if (rng() % 5 == 0) {
        c.in.order.resize(static_cast<size_t>(c.in.n()));
        for (index_t i = 0; i < c.in.n(); ++i) c.in.order[i] = i;
        std::shuffle(c.in.order.begin(), c.in.order.end(), rng);
    }
}

}  // namespace

TEST(metric32_matches_numpy_operation_order) {
    // IOS exactly 0.5 and IOU exactly 1/3: the float32 values SAHI's matrix holds.
    const float a[4] = {0, 0, 100, 100}, b[4] = {50, 0, 150, 100};
    CHECK(fissure::box_metric32(a, fissure::box_area32(a), b, fissure::box_area32(b),
                                fissure::OverlapMetric::IOS) == 0.5f);
    CHECK(fissure::box_metric32(a, fissure::box_area32(a), b, fissure::box_area32(b),
                                fissure::OverlapMetric::IOU) == 5000.0f / 15000.0f);
    const float z[4] = {5, 5, 5, 9};  // zero area: denominator 0 gives 0
    CHECK(fissure::box_metric32(z, 0.0f, z, 0.0f, fissure::OverlapMetric::IOU) == 0.0f);
    CHECK(fissure::box_metric32(a, fissure::box_area32(a), z, 0.0f, fissure::OverlapMetric::IOS) == 0.0f);
}

TEST(sahi_examples) {
    // IOU re-check against the growing box loses C (peers.md 1.3 (b)).
    Case c;
    c.in.boxes = {100, 0, 200, 100, 140, 0, 240, 100, 60, 0, 160, 100};
    c.in.scores = {0.9f, 0.8f, 0.7f};
    c.in.iou = true;
    c.in.thr = 0.4;
    const auto o = options_of(c, 1);
    const auto r = fissure::greedy_nmm(view(c), c.in.scores.data(), nullptr, o);
    CHECK(r.size() == 1);
    CHECK(r.boxes[0] == 100 && r.boxes[2] == 240);
    CHECK(r.dropped.size() == 1 && r.dropped[0] == 2);
    // IOS exactly at the threshold: SAHI 0.12.8 merges (>=), the strict re-check drops.
    Case d;
    d.in.boxes = {0, 0, 100, 100, 50, 0, 150, 100};
    d.in.scores = {0.9f, 0.8f};
    d.in.iou = false;
    d.in.thr = 0.5;
    auto od = options_of(d, 1);
    auto rd = fissure::greedy_nmm(view(d), d.in.scores.data(), nullptr, od);
    CHECK(rd.size() == 1 && rd.boxes[2] == 150 && rd.dropped.empty());
    od.recheck = fissure::Recheck::Strict;
    rd = fissure::greedy_nmm(view(d), d.in.scores.data(), nullptr, od);
    CHECK(rd.size() == 1 && rd.boxes[2] == 100 && rd.dropped.size() == 1);
}

TEST(random_small_against_reference) {
    std::mt19937_64 rng(12345);
    for (int seed = 0; seed < 1500; ++seed) {
        Case c;
        const index_t n = static_cast<index_t>(rng() % 60);
        random_boxes(rng, c, n, 40, 1 + static_cast<int>(rng() % 25), 1 + static_cast<int>(rng() % 3),
                     1 + static_cast<int>(rng() % 6), rng() % 4 == 0);
        randomize_options(rng, c);
        compare_all(c, "small", seed);
    }
}

// Every box zero-area (points and segments at distinct places): the grid's base cell must
// not degenerate (it once spun forever on a denormal cell size).
TEST(all_zero_area_boxes_against_reference) {
    std::mt19937_64 rng(777);
    for (int seed = 0; seed < 400; ++seed) {
        Case c;
        const index_t n = 1 + static_cast<index_t>(rng() % 40);
        random_boxes(rng, c, n, 1 + static_cast<int>(rng() % 50), 0, 1 + static_cast<int>(rng() % 3),
                     1 + static_cast<int>(rng() % 4), rng() % 2 == 0);
        if (seed % 3 == 0)  // segments: zero width, positive height
            for (index_t i = 0; i < n; ++i) c.in.boxes[4 * i + 3] += static_cast<float>(i % 5);
        randomize_options(rng, c);
        compare_all(c, "zero-area", seed);
    }
}

TEST(random_masks_against_reference) {
    std::mt19937_64 rng(777);
    for (int seed = 0; seed < 300; ++seed) {
        Case c;
        const index_t n = static_cast<index_t>(rng() % 30);
        random_boxes(rng, c, n, 30, 12, 1 + static_cast<int>(rng() % 2), 4, rng() % 3 == 0);
        random_masks(rng, c);
        randomize_options(rng, c);
        c.in.mask_metric = rng() % 2;
        compare_all(c, "masks", seed);
    }
}

TEST(crowded_clusters_against_reference) {
    // A few tight clusters of hundreds of nearly identical boxes each, plus scattered ones.
    std::mt19937_64 rng(99);
    for (int seed = 0; seed < 8; ++seed) {
        Case c;
        const int clusters = 1 + static_cast<int>(rng() % 4);
        std::uniform_int_distribution<int> jitter(-3, 3);
        for (int k = 0; k < clusters; ++k) {
            const float cx = static_cast<float>(rng() % 2000), cy = static_cast<float>(rng() % 2000);
            const float w = static_cast<float>(10 + rng() % 60), h = static_cast<float>(10 + rng() % 60);
            for (int i = 0; i < 400; ++i) {
                const float x1 = cx + static_cast<float>(jitter(rng)), y1 = cy + static_cast<float>(jitter(rng));
                c.in.boxes.insert(c.in.boxes.end(), {x1, y1, x1 + w + static_cast<float>(jitter(rng)),
                                                     y1 + h + static_cast<float>(jitter(rng))});
                c.in.scores.push_back(static_cast<float>(rng() % 100) / 100.0f);
                c.in.cls.push_back(static_cast<index_t>(rng() % 2));
            }
        }
        for (int i = 0; i < 300; ++i) {
            const float x1 = static_cast<float>(rng() % 2000), y1 = static_cast<float>(rng() % 2000);
            c.in.boxes.insert(c.in.boxes.end(), {x1, y1, x1 + static_cast<float>(rng() % 400), y1 + static_cast<float>(rng() % 400)});
            c.in.scores.push_back(static_cast<float>(rng() % 100) / 100.0f);
            c.in.cls.push_back(static_cast<index_t>(rng() % 2));
        }
        randomize_options(rng, c);
        c.in.thr = std::max(c.in.thr, 0.1);
        compare_all(c, "crowded", seed);
    }
}

TEST(threads_do_not_change_results) {
    std::mt19937_64 rng(4242);
    Case c;
    random_boxes(rng, c, 5000, 3000, 80, 7, 50, true);
    for (int metric = 0; metric < 2; ++metric) {
        c.in.iou = metric == 0;
        c.in.thr = 0.3;
        auto o1 = options_of(c, 1), o4 = options_of(c, 4);
        const auto v = view(c);
        CHECK(fissure::nms(v, c.in.scores.data(), c.in.cls.data(), o1) ==
              fissure::nms(v, c.in.scores.data(), c.in.cls.data(), o4));
        const auto a = fissure::nmm(v, c.in.scores.data(), c.in.cls.data(), o1);
        const auto b = fissure::nmm(v, c.in.scores.data(), c.in.cls.data(), o4);
        CHECK(a.members == b.members && a.group_offsets == b.group_offsets && a.boxes == b.boxes &&
              a.dropped == b.dropped && a.class_ids == b.class_ids);
    }
}

TEST(grid_query_equals_brute_force) {
    std::mt19937_64 rng(2024);
    for (int trial = 0; trial < 60; ++trial) {
        const index_t m = static_cast<index_t>(rng() % 800);
        std::vector<double> rects;
        const double scale = std::pow(10.0, static_cast<double>(rng() % 7) - 2.0);  // 1e-2 .. 1e4
        for (index_t i = 0; i < m; ++i) {
            const int kind = static_cast<int>(rng() % 10);
            const double x = static_cast<double>(rng() % 1000) * scale, y = static_cast<double>(rng() % 1000) * scale;
            double w = static_cast<double>(rng() % 30) * scale, h = static_cast<double>(rng() % 30) * scale;
            if (kind == 0) { w = 0; h = 0; }                                   // points
            if (kind == 1) { w *= 40; h *= 40; }                               // big boxes
            if (kind == 2 && trial % 3 == 0) { w = 1e30; h = 1e-30; }         // absurd spans
            rects.insert(rects.end(), {x, y, x + w, y + h});
        }
        fissure::detail::LiveGrid grid;
        grid.build(rects.data(), m);
        std::vector<char> alive(static_cast<size_t>(m), 1);
        for (int q = 0; q < 300 && m > 0; ++q) {
            if (rng() % 3 == 0) {  // kill some
                const index_t k = static_cast<index_t>(rng() % static_cast<std::uint64_t>(m));
                grid.kill(k);
                alive[k] = 0;
            }
            const double* Q = rects.data() + 4 * static_cast<index_t>(rng() % static_cast<std::uint64_t>(m));
            std::vector<index_t> got, want, loose;
            grid.query(Q, [&](index_t r, const float*) { got.push_back(r); });
            for (index_t r = 0; r < m; ++r) {
                const double* R = rects.data() + 4 * r;
                if (!alive[r]) continue;
                if (R[0] <= Q[2] && R[2] >= Q[0] && R[1] <= Q[3] && R[3] >= Q[1]) want.push_back(r);
                // The grid compares float copies rounded outward: within one float ulp.
                auto lo = [](double v) { return std::nextafter(static_cast<double>(static_cast<float>(v)) - std::fabs(v) * 1e-6, -1e300); };
                auto hi = [](double v) { return std::nextafter(static_cast<double>(static_cast<float>(v)) + std::fabs(v) * 1e-6, 1e300); };
                if (lo(R[0]) <= Q[2] && hi(R[2]) >= Q[0] && lo(R[1]) <= Q[3] && hi(R[3]) >= Q[1]) loose.push_back(r);
            }
            std::sort(got.begin(), got.end());
            CHECK(std::unique(got.begin(), got.end()) == got.end());  // each once
            CHECK(std::includes(got.begin(), got.end(), want.begin(), want.end()));
            CHECK(std::includes(loose.begin(), loose.end(), got.begin(), got.end()));
        }
    }
}

TEST(match_all_is_linear_and_sahi_shaped) {
    // 200k boxes at threshold 0: everything matches; must not be quadratic.
    std::mt19937_64 rng(5);
    Case c;
    random_boxes(rng, c, 200000, 5000, 50, 3, 1000, true);
    c.in.thr = 0.0;
    const auto o = options_of(c, -1);
    const auto v = view(c);
    const auto k = fissure::nms(v, c.in.scores.data(), c.in.cls.data(), o);
    CHECK(k.size() == 3);
    const auto g = fissure::greedy_nmm(v, c.in.scores.data(), c.in.cls.data(), o);
    CHECK(g.size() == 3);
    const auto t = fissure::nmm(v, c.in.scores.data(), c.in.cls.data(), o);
    CHECK(t.size() >= 3);
}

TEST(bad_input_throws) {
    Case c;
    c.in.boxes = {0, 0, 10, 10, 5, 5, 20, 20};
    c.in.scores = {0.5f, 0.6f};
    auto o = options_of(c, 1);
    const auto v = view(c);
    const index_t dup[2] = {0, 0}, out_of_range[2] = {0, 2};
    o.order = dup;
    CHECK_THROWS(fissure::nms(v, c.in.scores.data(), nullptr, o));
    o.order = out_of_range;
    CHECK_THROWS(fissure::greedy_nmm(v, c.in.scores.data(), nullptr, o));
    o.order = nullptr;
    std::vector<float> nan_boxes = {0, 0, NAN, 10, 5, 5, 20, 20};
    CHECK_THROWS(fissure::nms(fissure::BoxesView{nan_boxes.data(), 2}, c.in.scores.data(), nullptr, o));
    std::vector<float> flipped = {10, 0, 0, 10, 5, 5, 20, 20};
    CHECK_THROWS(fissure::nmm(fissure::BoxesView{flipped.data(), 2}, c.in.scores.data(), nullptr, o));
    fissure::BoxMasks one;
    one.regions = {0, 0, 1, 1};
    one.offsets = {0, 1};
    one.data = {1};
    const auto mv = one.view();
    o.masks = &mv;  // one mask for two boxes
    CHECK_THROWS(fissure::greedy_nmm(v, c.in.scores.data(), nullptr, o));
    o.masks = nullptr;
    o.mask_metric = true;
    CHECK_THROWS(fissure::nms(v, c.in.scores.data(), nullptr, o));
    o.mask_metric = false;
    o.threshold = NAN;
    CHECK_THROWS(fissure::nms(v, c.in.scores.data(), nullptr, o));
    // Empty input: empty output.
    o.threshold = 0.5;
    CHECK(fissure::nms(fissure::BoxesView{nullptr, 0}, nullptr, nullptr, o).empty());
    CHECK(fissure::nmm(fissure::BoxesView{nullptr, 0}, nullptr, nullptr, o).size() == 0);
}

CHECK_MAIN()
