// SPDX-License-Identifier: Apache-2.0
// Naive O(N^2) reference for the merge family, written straight from SAHI 0.12.8's loops
// (nms_from_matrix, greedy_nmm_from_matrix, nmm_from_matrix, *_match_all, _batched_apply,
// _apply_merge + has_match + merge_object_prediction_pair). No index, no cleverness: every
// pair is tested. Masks are compared on dense canvases.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <vector>

namespace ref {

using idx = std::int64_t;

struct Masks {  // same layout as fissure::BoxMasksView, owning
    std::vector<std::uint8_t> data;
    std::vector<std::int64_t> offsets{0};
    std::vector<std::int32_t> regions;
    idx size() const { return static_cast<idx>(offsets.size()) - 1; }
};

struct Input {
    std::vector<float> boxes;  // 4 n
    std::vector<float> scores;
    std::vector<idx> cls;      // empty: one class
    bool iou = true;
    double thr = 0.5;
    bool gt = false;
    bool agnostic = false;
    int recheck = 0;           // 0 sahi, 1 strict, 2 keep, 3 off
    std::vector<idx> order;    // empty: score order
    const Masks* masks = nullptr;
    bool mask_metric = false;
    idx n() const { return static_cast<idx>(scores.size()); }
    const float* box(idx i) const { return boxes.data() + 4 * i; }
    idx c(idx i) const { return cls.empty() ? 0 : cls[i]; }
};

struct Output {
    std::vector<std::vector<idx>> groups;
    std::vector<std::array<float, 4>> boxes;
    std::vector<float> scores;
    std::vector<idx> cls;
    std::vector<idx> dropped;
};

// float32, numpy's order of operations.
inline float metric32(const Input& in, idx i, idx j) {
    const float* a = in.box(i);
    const float* b = in.box(j);
    const float aa = (a[2] - a[0]) * (a[3] - a[1]);
    const float ab = (b[2] - b[0]) * (b[3] - b[1]);
    const float w = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
    const float h = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
    const float inter = w * h;
    const float den = in.iou ? (aa + ab) - inter : std::min(aa, ab);
    return den > 0 ? inter / den : 0.0f;
}

inline std::vector<std::uint8_t> canvas_of(const Masks& m, idx i, std::int64_t x0, std::int64_t y0,
                                           std::int64_t w, std::int64_t h) {
    std::vector<std::uint8_t> c(static_cast<size_t>(w * h), 0);
    const std::int32_t* R = m.regions.data() + 4 * i;
    for (std::int64_t y = 0; y < R[3]; ++y)
        for (std::int64_t x = 0; x < R[2]; ++x)
            if (m.data[static_cast<size_t>(m.offsets[i] + y * R[2] + x)])
                c[static_cast<size_t>((R[1] - y0 + y) * w + (R[0] - x0 + x))] = 1;
    return c;
}

inline std::array<std::int64_t, 4> bound(const Masks& m, const std::vector<idx>& items) {
    std::int64_t ax = 0, ay = 0, bx = 0, by = 0;
    for (size_t k = 0; k < items.size(); ++k) {
        const std::int32_t* R = m.regions.data() + 4 * items[k];
        const std::int64_t x0 = R[0], y0 = R[1], x1 = x0 + R[2], y1 = y0 + R[3];
        if (k == 0) { ax = x0; ay = y0; bx = x1; by = y1; }
        else { ax = std::min(ax, x0); ay = std::min(ay, y0); bx = std::max(bx, x1); by = std::max(by, y1); }
    }
    return {ax, ay, bx - ax, by - ay};
}

inline double ratio(std::int64_t inter, std::int64_t a1, std::int64_t a2, bool iou) {
    const std::int64_t den = iou ? a1 + a2 - inter : std::min(a1, a2);
    return den > 0 ? static_cast<double>(inter) / static_cast<double>(den) : 0.0;
}

inline double mask_metric(const Input& in, idx i, idx j) {
    const auto r = bound(*in.masks, {i, j});
    const auto ci = canvas_of(*in.masks, i, r[0], r[1], r[2], r[3]);
    const auto cj = canvas_of(*in.masks, j, r[0], r[1], r[2], r[3]);
    std::int64_t a = 0, b = 0, both = 0;
    for (size_t k = 0; k < ci.size(); ++k) { a += ci[k]; b += cj[k]; both += ci[k] & cj[k]; }
    return ratio(both, a, b, in.iou);
}

inline bool match_all(const Input& in) {
    if (in.gt) return false;
    return in.mask_metric ? in.thr <= 0 : static_cast<float>(in.thr) <= 0.0f;
}

inline bool matches(const Input& in, idx i, idx j) {
    if (match_all(in)) return true;
    if (in.mask_metric) {
        const double v = mask_metric(in, i, j);
        return in.gt ? v > in.thr : v >= in.thr;
    }
    const float v = metric32(in, i, j);
    return in.gt ? static_cast<double>(v) > in.thr : v >= static_cast<float>(in.thr);
}

inline std::vector<std::vector<idx>> partitions(const Input& in) {
    std::vector<std::vector<idx>> parts;
    if (in.n() == 0) return parts;
    if (in.agnostic || in.cls.empty()) {
        parts.emplace_back(static_cast<size_t>(in.n()));
        std::iota(parts[0].begin(), parts[0].end(), idx{0});
        return parts;
    }
    std::map<idx, std::vector<idx>> by;
    for (idx i = 0; i < in.n(); ++i) by[in.cls[i]].push_back(i);
    for (auto& kv : by) parts.push_back(kv.second);
    return parts;
}

inline std::vector<idx> ordered(const Input& in, std::vector<idx> p) {
    if (!in.order.empty()) {
        std::vector<idx> rank(static_cast<size_t>(in.n()));
        for (idx k = 0; k < in.n(); ++k) rank[in.order[k]] = k;
        std::stable_sort(p.begin(), p.end(), [&](idx a, idx b) { return rank[a] < rank[b]; });
        return p;
    }
    std::stable_sort(p.begin(), p.end(), [&](idx a, idx b) {
        if (in.scores[a] != in.scores[b]) return in.scores[a] > in.scores[b];
        for (int k = 0; k < 4; ++k)
            if (in.box(a)[k] != in.box(b)[k]) return in.box(a)[k] < in.box(b)[k];
        return false;
    });
    return p;
}

inline std::vector<idx> nms(const Input& in) {
    std::vector<idx> keep;
    for (const auto& part : partitions(in)) {
        const auto o = ordered(in, part);
        std::vector<char> sup(static_cast<size_t>(in.n()), 0);
        for (size_t a = 0; a < o.size(); ++a) {
            if (sup[o[a]]) continue;
            keep.push_back(o[a]);
            for (size_t b = a + 1; b < o.size(); ++b)
                if (!sup[o[b]] && matches(in, o[a], o[b])) sup[o[b]] = 1;
        }
    }
    if (!in.order.empty()) {
        std::vector<idx> rank(static_cast<size_t>(in.n()));
        for (idx k = 0; k < in.n(); ++k) rank[in.order[k]] = k;
        std::stable_sort(keep.begin(), keep.end(), [&](idx a, idx b) { return rank[a] < rank[b]; });
    } else if (!(in.agnostic || in.cls.empty())) {
        std::stable_sort(keep.begin(), keep.end(), [&](idx a, idx b) { return in.scores[a] > in.scores[b]; });
    }
    return keep;
}

inline std::vector<std::vector<idx>> greedy_groups(const Input& in, const std::vector<idx>& o) {
    std::vector<std::vector<idx>> groups;
    std::vector<char> sup(static_cast<size_t>(in.n()), 0);
    for (size_t a = 0; a < o.size(); ++a) {
        if (sup[o[a]]) continue;
        std::vector<idx> g{o[a]};
        for (size_t b = a + 1; b < o.size(); ++b)
            if (!sup[o[b]] && matches(in, o[a], o[b])) { sup[o[b]] = 1; g.push_back(o[b]); }
        groups.push_back(g);
    }
    return groups;
}

inline bool dominates(const Input& in, idx i, idx j) {
    if (i == j) return false;
    if (in.scores[i] != in.scores[j]) return in.scores[i] > in.scores[j];
    for (int k = 0; k < 4; ++k)
        if (in.box(i)[k] != in.box(j)[k]) return in.box(j)[k] < in.box(i)[k];
    return true;
}

inline std::vector<std::vector<idx>> nmm_groups(const Input& in, const std::vector<idx>& o) {
    std::vector<idx> by_index(o);
    std::sort(by_index.begin(), by_index.end());
    std::vector<std::vector<idx>> groups;
    if (match_all(in) && in.order.empty()) {  // nmm_match_all
        const idx top = o[0];
        auto same_box = [&](idx a, idx b) {
            return std::equal(in.box(a), in.box(a) + 4, in.box(b));
        };
        std::vector<idx> g{top};
        for (idx j : by_index)
            if (j != top && (in.scores[j] != in.scores[top] || same_box(j, top))) g.push_back(j);
        groups.push_back(g);
        for (idx j : o)
            if (j != top && in.scores[j] == in.scores[top] && !same_box(j, top)) groups.push_back({j});
        return groups;
    }
    std::map<idx, idx> keeper_of;
    std::map<idx, size_t> group_of;
    for (idx i : o) {
        if (!keeper_of.count(i)) {
            keeper_of[i] = i;
            group_of[i] = groups.size();
            groups.push_back({i});
        }
        const size_t g = group_of[keeper_of[i]];
        for (idx j : by_index)
            if (dominates(in, i, j) && matches(in, i, j) && !keeper_of.count(j)) {
                keeper_of[j] = keeper_of[i];
                groups[g].push_back(j);
            }
    }
    return groups;
}

inline Output fold(const Input& in, const std::vector<std::vector<idx>>& groups) {
    Output out;
    const bool strict = in.recheck == 1 || in.gt;
    for (const auto& g : groups) {
        const float* kb = in.box(g[0]);
        std::array<double, 4> mb{kb[0], kb[1], kb[2], kb[3]};
        float score = in.scores[g[0]];
        idx cat = in.c(g[0]);
        std::vector<idx> members{g[0]}, singles;
        std::vector<idx> merged_so_far{g[0]};
        for (size_t t = 1; t < g.size(); ++t) {
            const idx c = g[t];
            bool ok = true;
            if (in.recheck != 3) {
                double v;
                if (in.mask_metric) {
                    std::vector<idx> all(g);
                    const auto r = bound(*in.masks, all);
                    std::vector<std::uint8_t> acc(static_cast<size_t>(r[2] * r[3]), 0);
                    for (idx q : merged_so_far) {
                        auto cv = canvas_of(*in.masks, q, r[0], r[1], r[2], r[3]);
                        for (size_t k = 0; k < acc.size(); ++k) acc[k] |= cv[k];
                    }
                    auto cc = canvas_of(*in.masks, c, r[0], r[1], r[2], r[3]);
                    std::int64_t a = 0, b = 0, both = 0;
                    for (size_t k = 0; k < acc.size(); ++k) { a += acc[k]; b += cc[k]; both += acc[k] & cc[k]; }
                    v = ratio(both, a, b, in.iou);
                } else {
                    const float* cb = in.box(c);
                    const double a1 = (mb[2] - mb[0]) * (mb[3] - mb[1]);
                    const double a2 = (double(cb[2]) - cb[0]) * (double(cb[3]) - cb[1]);
                    const double w = std::max(std::min(mb[2], double(cb[2])) - std::max(mb[0], double(cb[0])), 0.0);
                    const double h = std::max(std::min(mb[3], double(cb[3])) - std::max(mb[1], double(cb[1])), 0.0);
                    const double inter = w * h;
                    const double den = in.iou ? a1 + a2 - inter : std::min(a1, a2);
                    v = den == 0 ? (inter == 0 ? std::numeric_limits<double>::quiet_NaN()
                                               : std::numeric_limits<double>::infinity())
                                 : inter / den;
                }
                ok = strict ? v > in.thr : v >= in.thr;
            }
            if (ok) {
                const float* cb = in.box(c);
                mb = {std::min(mb[0], double(cb[0])), std::min(mb[1], double(cb[1])),
                      std::max(mb[2], double(cb[2])), std::max(mb[3], double(cb[3]))};
                cat = score > in.scores[c] ? cat : in.c(c);
                score = std::max(score, in.scores[c]);
                members.push_back(c);
                merged_so_far.push_back(c);
            } else if (in.recheck == 2) {
                singles.push_back(c);
            } else {
                out.dropped.push_back(c);
            }
        }
        out.groups.push_back(members);
        out.boxes.push_back({float(mb[0]), float(mb[1]), float(mb[2]), float(mb[3])});
        out.scores.push_back(score);
        out.cls.push_back(cat);
        for (idx s : singles) {
            out.groups.push_back({s});
            out.boxes.push_back({in.box(s)[0], in.box(s)[1], in.box(s)[2], in.box(s)[3]});
            out.scores.push_back(in.scores[s]);
            out.cls.push_back(in.c(s));
        }
    }
    return out;
}

inline Output greedy_nmm(const Input& in) {
    std::vector<std::vector<idx>> groups;
    for (const auto& p : partitions(in))
        for (auto& g : greedy_groups(in, ordered(in, p))) groups.push_back(g);
    return fold(in, groups);
}

inline Output nmm(const Input& in) {
    std::vector<std::vector<idx>> groups;
    for (const auto& p : partitions(in))
        for (auto& g : nmm_groups(in, ordered(in, p))) groups.push_back(g);
    return fold(in, groups);
}

// Merged mask of one group: OR over the bounding rectangle of the members' regions.
inline std::vector<std::uint8_t> merged_mask(const Masks& m, const std::vector<idx>& members,
                                             std::array<std::int64_t, 4>& region) {
    region = bound(m, members);
    std::vector<std::uint8_t> acc(static_cast<size_t>(region[2] * region[3]), 0);
    for (idx q : members) {
        auto cv = canvas_of(m, q, region[0], region[1], region[2], region[3]);
        for (size_t k = 0; k < acc.size(); ++k) acc[k] |= cv[k];
    }
    return acc;
}

}  // namespace ref
