// SPDX-License-Identifier: Apache-2.0
// NMS, greedy NMM and transitive NMM over a lazily shrinking grid (merge_grid.hpp).
// See merge.hpp for the semantics; comments here cite the SAHI 0.12.8 code they mirror.
#include "fissure/merge.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "merge_grid.hpp"
#include "fissure/parallel.hpp"

namespace fissure {
namespace {

using detail::LiveGrid;

// ---------------------------------------------------------------------------------------
// The problem as a whole: inputs, validated options, per-box data shared by partitions.
// ---------------------------------------------------------------------------------------
struct Problem {
    BoxesView boxes;
    const float* scores = nullptr;
    const index_t* class_ids = nullptr;
    MergeOptions opt;
    float thr32 = 0;        // float32(threshold): numpy compares float32 arrays to it
    bool match_all = false;  // GE and nothing can fail the test
    bool use_masks_metric = false;
    std::vector<index_t> rank_of;          // position in opt.order, when given
    std::vector<std::int64_t> mask_areas;  // when use_masks_metric

    index_t n() const { return boxes.n; }
    index_t cls(index_t i) const { return class_ids ? class_ids[i] : 0; }
};

std::string describe_n(index_t n) {
    std::ostringstream os;
    os << n;
    return os.str();
}

void validate_masks(const BoxMasksView& m, index_t n) {
    if (m.n != n)
        fail("masks: expected " + describe_n(n) + " masks (one per box), got " + describe_n(m.n));
    if (n == 0) return;
    if (!m.offsets || !m.regions || (!m.data && m.offsets[n] != 0))
        fail("masks: null buffers");
    if (m.offsets[0] != 0) fail("masks: offsets[0] must be 0");
    for (index_t i = 0; i < n; ++i) {
        const std::int64_t w = m.regions[4 * i + 2], h = m.regions[4 * i + 3];
        if (w < 0 || h < 0) fail("masks: region " + describe_n(i) + " has a negative size");
        if (m.offsets[i + 1] - m.offsets[i] != w * h)
            fail("masks: offsets[" + describe_n(i + 1) + "] - offsets[" + describe_n(i) +
                 "] must equal w * h of region " + describe_n(i));
    }
}

Problem make_problem(const BoxesView& boxes, const float* scores, const index_t* class_ids,
                     const MergeOptions& opt) {
    Problem P;
    P.boxes = boxes;
    P.scores = scores;
    P.class_ids = class_ids;
    P.opt = opt;
    const index_t n = boxes.n;
    if (n < 0) fail("boxes: negative count");
    if (n > 0 && (!boxes.data || !scores)) fail("boxes/scores: null buffers");
    if (!std::isfinite(opt.threshold)) fail("threshold: expected a finite number");
    if (opt.metric != OverlapMetric::IOU && opt.metric != OverlapMetric::IOS)
        fail("metric: expected IOU or IOS");
    if (opt.match != MatchRule::GE && opt.match != MatchRule::GT)
        fail("match: expected GE or GT");
    for (index_t i = 0; i < n; ++i) {
        const float* b = boxes[i];
        if (!(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3])))
            fail("boxes: coordinates must be finite, row " + describe_n(i) + " is not");
        if (b[2] < b[0] || b[3] < b[1])
            fail("boxes: expected x2 >= x1 and y2 >= y1, row " + describe_n(i) + " is not");
        if (!std::isfinite(scores[i])) fail("scores: index " + describe_n(i) + " is not finite");
    }
    if (opt.order) {
        P.rank_of.assign(static_cast<size_t>(n), -1);
        for (index_t k = 0; k < n; ++k) {
            const index_t i = opt.order[k];
            if (i < 0 || i >= n)
                fail("order: expected a permutation of 0.." + describe_n(n - 1) + ", got " +
                     describe_n(i) + " at position " + describe_n(k));
            if (P.rank_of[static_cast<size_t>(i)] >= 0)
                fail("order: expected a permutation, index " + describe_n(i) + " appears twice");
            P.rank_of[static_cast<size_t>(i)] = k;
        }
    }
    if (opt.masks) validate_masks(*opt.masks, n);
    if (opt.mask_metric && !opt.masks) fail("mask_metric: needs masks");
    P.use_masks_metric = opt.mask_metric && opt.masks;
    P.thr32 = static_cast<float>(opt.threshold);
    if (opt.match == MatchRule::GE)
        P.match_all = P.use_masks_metric ? opt.threshold <= 0 : P.thr32 <= 0.0f;
    if (P.use_masks_metric) {
        P.mask_areas.resize(static_cast<size_t>(n));
        const BoxMasksView& mv = *opt.masks;
        parallel_for(0, n, opt.num_threads, 256, [&](index_t lo, index_t hi) {
            for (index_t i = lo; i < hi; ++i) P.mask_areas[static_cast<size_t>(i)] = mask_area(mv, i);
        });
    }
    return P;
}

// Partitions: classes ascending (np.unique), indices ascending inside (np.where). A counting
// sort when the class ids span a range not much larger than n (the usual case), else a
// stable sort by class.
std::vector<std::vector<index_t>> make_partitions(const Problem& P) {
    std::vector<std::vector<index_t>> parts;
    const index_t n = P.n();
    if (n == 0) return parts;
    if (P.opt.class_agnostic || !P.class_ids) {
        parts.emplace_back(static_cast<size_t>(n));
        std::iota(parts[0].begin(), parts[0].end(), index_t{0});
        return parts;
    }
    const index_t* cls = P.class_ids;
    index_t lo = cls[0], hi = cls[0];
    for (index_t i = 1; i < n; ++i) {
        lo = std::min(lo, cls[i]);
        hi = std::max(hi, cls[i]);
    }
    const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    if (span < static_cast<std::uint64_t>(n) + 1024) {
        std::vector<index_t> count(static_cast<size_t>(span) + 1, 0);
        for (index_t i = 0; i < n; ++i)
            ++count[static_cast<size_t>(static_cast<std::uint64_t>(cls[i]) - static_cast<std::uint64_t>(lo))];
        std::vector<index_t> part_of(count.size(), -1);
        for (size_t c = 0; c < count.size(); ++c) {
            if (count[c] == 0) continue;
            part_of[c] = static_cast<index_t>(parts.size());
            parts.emplace_back();
            parts.back().reserve(static_cast<size_t>(count[c]));
        }
        for (index_t i = 0; i < n; ++i) {
            const size_t c = static_cast<size_t>(static_cast<std::uint64_t>(cls[i]) - static_cast<std::uint64_t>(lo));
            parts[static_cast<size_t>(part_of[c])].push_back(i);
        }
        return parts;
    }
    std::vector<index_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), index_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](index_t a, index_t b) { return cls[a] < cls[b]; });
    size_t b = 0;
    while (b < idx.size()) {
        size_t e = b + 1;
        while (e < idx.size() && cls[idx[e]] == cls[idx[b]]) ++e;
        parts.emplace_back(idx.begin() + static_cast<std::ptrdiff_t>(b),
                           idx.begin() + static_cast<std::ptrdiff_t>(e));
        b = e;
    }
    return parts;
}

// SAHI's `np.lexsort((y2, x2, y1, x1, -scores))`: score desc, then x1, y1, x2, y2 asc, then
// index asc (lexsort is stable and the partition is in index order).
//
// A stable LSD radix sort of the scores (order-preserving float bits, descending; -0 taken
// as +0 as the comparisons do) settles almost every pair; a long run of equal scores is
// radix-sorted the same way by x1, and what remains tied (or a short run) is sorted by the
// full comparison.
struct RadixItem {
    std::uint32_t key;
    std::uint32_t pos;  // position in the partition's index list
};

// Float bits mapped to an unsigned integer of the same order (finite values; -0 -> +0).
inline std::uint32_t ordered_bits(float f) {
    f += 0.0f;  // -0 + 0 = +0 (round to nearest): equal floats, equal bits
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

bool lex_less(const Problem& P, index_t a, index_t b) {  // the full comparator
    const float sa = P.scores[a], sb = P.scores[b];
    if (sa != sb) return sa > sb;
    const float* A = P.boxes[a];
    const float* B = P.boxes[b];
    for (int k = 0; k < 4; ++k)
        if (A[k] != B[k]) return A[k] < B[k];
    return a < b;
}

constexpr size_t kRadixMin = 256;  // below this a comparison sort is cheaper

// Stable sort of a[0..m) by key: three passes of 11, 11 and 10 bits (a pass whose digit is
// the same for every item is skipped). tmp holds at least m items.
void radix_sort32(RadixItem* a, RadixItem* tmp, size_t m) {
    constexpr int kBits = 11;
    constexpr std::uint32_t kMask = (1u << kBits) - 1;
    std::uint32_t hist[3][1u << kBits] = {};
    for (size_t k = 0; k < m; ++k) {
        const std::uint32_t key = a[k].key;
        ++hist[0][key & kMask];
        ++hist[1][(key >> kBits) & kMask];
        ++hist[2][key >> (2 * kBits)];
    }
    RadixItem* src = a;
    RadixItem* dst = tmp;
    for (int d = 0; d < 3; ++d) {
        std::uint32_t* h = hist[d];
        const int shift = kBits * d;
        if (h[(src[0].key >> shift) & kMask] == m) continue;  // one bucket: nothing to do
        std::uint32_t sum = 0;
        for (std::uint32_t b = 0; b <= kMask; ++b) {
            const std::uint32_t c = h[b];
            h[b] = sum;
            sum += c;
        }
        for (size_t k = 0; k < m; ++k) dst[h[(src[k].key >> shift) & kMask]++] = src[k];
        std::swap(src, dst);
    }
    if (src != a) std::copy(src, src + m, a);
}

void sort_partition(const Problem& P, std::vector<index_t>& idx) {
    if (!P.rank_of.empty()) {
        std::vector<std::pair<index_t, index_t>> keyed(idx.size());
        for (size_t k = 0; k < idx.size(); ++k) keyed[k] = {P.rank_of[static_cast<size_t>(idx[k])], idx[k]};
        std::sort(keyed.begin(), keyed.end());
        for (size_t k = 0; k < idx.size(); ++k) idx[k] = keyed[k].second;
        return;
    }
    auto by_lex = [&](const RadixItem& x, const RadixItem& y) { return lex_less(P, idx[x.pos], idx[y.pos]); };
    const size_t m = idx.size();
    if (m < kRadixMin || m >= UINT32_MAX) {  // small, or beyond the 32-bit positions
        std::sort(idx.begin(), idx.end(), [&](index_t a, index_t b) { return lex_less(P, a, b); });
        return;
    }
    std::vector<RadixItem> items(m), tmp(m);
    for (size_t k = 0; k < m; ++k)
        items[k] = RadixItem{~ordered_bits(P.scores[idx[k]]), static_cast<std::uint32_t>(k)};
    radix_sort32(items.data(), tmp.data(), m);
    // Runs of equal score: by x1 (radix when long), then runs of equal x1 by comparison.
    for (size_t b = 0; b < m;) {
        size_t e = b + 1;
        while (e < m && items[e].key == items[b].key) ++e;
        const size_t len = e - b;
        RadixItem* run = items.data() + b;
        if (len >= kRadixMin) {
            for (size_t k = 0; k < len; ++k) run[k].key = ordered_bits(P.boxes[idx[run[k].pos]][0]);
            radix_sort32(run, tmp.data(), len);
            for (size_t t = 0; t < len;) {
                size_t u = t + 1;
                while (u < len && run[u].key == run[t].key) ++u;
                if (u - t > 1) std::sort(run + t, run + u, by_lex);
                t = u;
            }
        } else if (len > 1) {
            std::sort(run, run + len, by_lex);
        }
        b = e;
    }
    std::vector<index_t> sorted(m);
    for (size_t k = 0; k < m; ++k) sorted[k] = idx[items[k].pos];
    idx.swap(sorted);
}

// ---------------------------------------------------------------------------------------
// One partition in processing order: rank r is the r-th box processed.
// ---------------------------------------------------------------------------------------
struct Local {
    const Problem* P = nullptr;
    index_t m = 0;
    std::vector<index_t> g;      // rank -> global index
    std::vector<float> box;      // 4 m
    std::vector<float> area;     // m, float32 like numpy
    std::vector<double> rect;    // 4 m, mask mode only: the mask regions the grid indexes

    void init(const Problem& prob, std::vector<index_t> order) {
        P = &prob;
        g = std::move(order);
        m = static_cast<index_t>(g.size());
        box.resize(static_cast<size_t>(4 * m));
        area.resize(static_cast<size_t>(m));
        if (prob.use_masks_metric) rect.resize(static_cast<size_t>(4 * m));
        for (index_t r = 0; r < m; ++r) {
            const float* b = prob.boxes[g[r]];
            float* d = &box[static_cast<size_t>(4 * r)];
            d[0] = b[0];
            d[1] = b[1];
            d[2] = b[2];
            d[3] = b[3];
            area[r] = box_area32(b);
            if (prob.use_masks_metric) {
                const std::int32_t* R = prob.opt.masks->regions + 4 * g[r];
                rect[4 * r + 0] = R[0];
                rect[4 * r + 1] = R[1];
                rect[4 * r + 2] = static_cast<double>(R[0]) + R[2];
                rect[4 * r + 3] = static_cast<double>(R[1]) + R[3];
            }
        }
    }

    // The grid indexes the boxes themselves (floats, exact as doubles) or the mask regions.
    void build(LiveGrid& grid) const {
        if (P->use_masks_metric) grid.build(rect.data(), m);
        else grid.build(box.data(), m);
    }
    template <class F>
    void query(LiveGrid& grid, index_t r, F&& visit) const {
        if (P->use_masks_metric) grid.query(&rect[4 * r], visit);
        else grid.query(&box[4 * r], visit);
    }

    // GE as SAHI's numpy: the float32 matrix against float32(threshold) (NEP 50). GT as
    // supervision and torchvision: the float32 metric against the float64 threshold.
    bool pass32(float v) const {
        return P->opt.match == MatchRule::GE ? v >= P->thr32 : static_cast<double>(v) > P->opt.threshold;
    }
    bool pass64(double v) const {
        return P->opt.match == MatchRule::GE ? v >= P->opt.threshold : v > P->opt.threshold;
    }

    // Selection test between the querying box i and a candidate j (SAHI: matrix[i, j]);
    // jb is j's box when the caller has it at hand (the grid's copy, exact in box mode).
    bool matches(index_t i, index_t j, const float* jb = nullptr) const {
        if (P->use_masks_metric) {
            const index_t gi = g[i], gj = g[j];
            const std::int64_t inter = mask_intersection(*P->opt.masks, gi, gj);
            const std::int64_t ai = P->mask_areas[gi], aj = P->mask_areas[gj];
            const std::int64_t den = P->opt.metric == OverlapMetric::IOU ? ai + aj - inter : std::min(ai, aj);
            const double v = den > 0 ? static_cast<double>(inter) / static_cast<double>(den) : 0.0;
            return pass64(v);
        }
        if (!jb) jb = &box[4 * j];
        return pass32(box_metric32(&box[4 * i], area[i], jb, box_area32(jb), P->opt.metric));
    }

    // SAHI's `dominates[i, j]`: j scores lower, or equal and coords(j) <= coords(i).
    bool dominates(index_t i, index_t j) const {
        const float si = P->scores[g[i]], sj = P->scores[g[j]];
        if (si > sj) return true;
        if (si != sj) return false;
        const float* A = &box[4 * i];
        const float* B = &box[4 * j];
        for (int k = 0; k < 4; ++k)
            if (A[k] != B[k]) return !(A[k] < B[k]);
        return true;
    }

};

// Selection result of greedy NMM / NMM: groups in keeper order, members global indices,
// candidates in group order after the keeper.
struct Groups {
    std::vector<index_t> offsets{0};
    std::vector<index_t> items;  // keeper, then its candidates
    void add_keeper(index_t k) { items.push_back(k); }
    void close() { offsets.push_back(static_cast<index_t>(items.size())); }
};

// ---------------------------------------------------------------------------------------
// NMS
// ---------------------------------------------------------------------------------------
std::vector<index_t> nms_partition(const Problem& P, std::vector<index_t> order) {
    std::vector<index_t> kept;
    if (order.empty()) return kept;
    if (P.match_all) {  // SAHI's nms_match_all
        kept.push_back(order[0]);
        return kept;
    }
    Local L;
    L.init(P, std::move(order));
    LiveGrid grid;
    L.build(grid);
    for (index_t r = 0; r < L.m; ++r) {
        if (!grid.alive(r)) continue;
        kept.push_back(L.g[r]);
        grid.kill(r);
        L.query(grid, r, [&](index_t s, const float* sb) {
            if (L.matches(r, s, sb)) grid.kill(s);
        });
    }
    return kept;
}

// ---------------------------------------------------------------------------------------
// Greedy NMM selection (SAHI's greedy_nmm_from_matrix)
// ---------------------------------------------------------------------------------------
Groups greedy_partition(const Problem& P, std::vector<index_t> order) {
    Groups G;
    if (order.empty()) return G;
    if (P.match_all) {  // greedy_nmm_match_all: the first absorbs the rest, in order
        for (index_t v : order) G.items.push_back(v);
        G.close();
        return G;
    }
    Local L;
    L.init(P, std::move(order));
    LiveGrid grid;
    L.build(grid);
    std::vector<index_t> cand;
    for (index_t r = 0; r < L.m; ++r) {
        if (!grid.alive(r)) continue;
        grid.kill(r);
        cand.clear();
        L.query(grid, r, [&](index_t s, const float* sb) {
            if (L.matches(r, s, sb)) {
                cand.push_back(s);
                grid.kill(s);
            }
        });
        std::sort(cand.begin(), cand.end());  // sort order = rank order
        G.add_keeper(L.g[r]);
        for (index_t s : cand) G.items.push_back(L.g[s]);
        G.close();
    }
    return G;
}

// ---------------------------------------------------------------------------------------
// NMM selection (SAHI's nmm_from_matrix / nmm_streaming)
// ---------------------------------------------------------------------------------------
// Appends per group, interleaved: singly linked lists in arrays, then flattened.
struct GroupLists {
    std::vector<index_t> keeper, head, tail;  // per group (ranks)
    std::vector<index_t> next;                // per rank
    explicit GroupLists(index_t m) : next(static_cast<size_t>(m), -1) {}
    index_t open(index_t k) {
        keeper.push_back(k);
        head.push_back(-1);
        tail.push_back(-1);
        return static_cast<index_t>(keeper.size()) - 1;
    }
    void append(index_t grp, index_t r) {
        if (tail[grp] < 0) head[grp] = r; else next[tail[grp]] = r;
        tail[grp] = r;
    }
    Groups flatten(const std::vector<index_t>& g) const {
        Groups G;
        for (size_t k = 0; k < keeper.size(); ++k) {
            G.add_keeper(g[keeper[k]]);
            for (index_t r = head[k]; r >= 0; r = next[r]) G.items.push_back(g[r]);
            G.close();
        }
        return G;
    }
};

// nmm_match_all (score order): the top claims every lower score and its exact duplicates
// (ascending index); the other boxes tied with the top score stay keepers of nothing.
Groups nmm_match_all_sahi(const Problem& P, const std::vector<index_t>& order) {
    Groups G;
    const index_t top = order[0];
    const float st = P.scores[top];
    const float* bt = P.boxes[top];
    std::vector<index_t> claimed, tied_keepers;
    for (index_t v : order) {
        if (v == top) continue;
        const bool tied = P.scores[v] == st;
        const float* b = P.boxes[v];
        const bool dup = tied && b[0] == bt[0] && b[1] == bt[1] && b[2] == bt[2] && b[3] == bt[3];
        if (!tied || dup) claimed.push_back(v);
        else tied_keepers.push_back(v);
    }
    std::sort(claimed.begin(), claimed.end());
    G.add_keeper(top);
    G.items.insert(G.items.end(), claimed.begin(), claimed.end());
    G.close();
    for (index_t v : tied_keepers) {
        G.add_keeper(v);
        G.close();
    }
    return G;
}

// Every pair matches, explicit order: box r claims every unclaimed box it dominates. The
// dominated set of r is a prefix of the boxes sorted by (score, x1, y1, x2, y2) ascending,
// so one cursor over that sort claims each box once. O(m log m).
Groups nmm_match_all_ordered(const Problem& P, std::vector<index_t> order) {
    Local L;
    L.init(P, std::move(order));
    const index_t m = L.m;
    std::vector<index_t> by_key(static_cast<size_t>(m));
    std::iota(by_key.begin(), by_key.end(), index_t{0});
    auto key_less = [&](index_t a, index_t b) {  // key(a) < key(b)
        const float sa = P.scores[L.g[a]], sb = P.scores[L.g[b]];
        if (sa != sb) return sa < sb;
        for (int k = 0; k < 4; ++k)
            if (L.box[4 * a + k] != L.box[4 * b + k]) return L.box[4 * a + k] < L.box[4 * b + k];
        return false;
    };
    std::stable_sort(by_key.begin(), by_key.end(), key_less);
    std::vector<index_t> keeper_of(static_cast<size_t>(m), -1), grp_of(static_cast<size_t>(m), -1);
    GroupLists lists(m);
    size_t cursor = 0;
    std::vector<index_t> cand;
    for (index_t r = 0; r < m; ++r) {
        if (keeper_of[r] < 0) {
            keeper_of[r] = r;
            grp_of[r] = lists.open(r);
        }
        const index_t grp = grp_of[keeper_of[r]];
        cand.clear();
        // Everything with key <= key(r) is dominated by r (r itself is already assigned).
        while (cursor < by_key.size() && !key_less(r, by_key[cursor])) {
            const index_t s = by_key[cursor++];
            if (keeper_of[s] < 0) cand.push_back(s);
        }
        std::sort(cand.begin(), cand.end(), [&](index_t a, index_t b) { return L.g[a] < L.g[b]; });
        for (index_t s : cand) {
            keeper_of[s] = keeper_of[r];
            lists.append(grp, s);
        }
    }
    return lists.flatten(L.g);
}

Groups nmm_partition(const Problem& P, std::vector<index_t> order) {
    if (order.empty()) return Groups{};
    if (P.match_all) {
        if (P.rank_of.empty()) return nmm_match_all_sahi(P, order);
        return nmm_match_all_ordered(P, std::move(order));
    }
    Local L;
    L.init(P, std::move(order));
    const index_t m = L.m;
    LiveGrid grid;
    L.build(grid);
    std::vector<index_t> keeper_of(static_cast<size_t>(m), -1), grp_of(static_cast<size_t>(m), -1);
    GroupLists lists(m);
    std::vector<index_t> cand;
    for (index_t r = 0; r < m; ++r) {
        if (keeper_of[r] < 0) {  // a keeper: never claimable afterwards
            keeper_of[r] = r;
            grp_of[r] = lists.open(r);
            grid.kill(r);
        }
        const index_t grp = grp_of[keeper_of[r]];
        cand.clear();
        L.query(grid, r, [&](index_t s, const float* sb) {
            if (L.matches(r, s, sb) && L.dominates(r, s)) cand.push_back(s);
        });
        // np.where over the row: ascending index (the partition is in index order).
        std::sort(cand.begin(), cand.end(), [&](index_t a, index_t b) { return L.g[a] < L.g[b]; });
        for (index_t s : cand) {
            keeper_of[s] = keeper_of[r];
            grid.kill(s);
            lists.append(grp, s);
        }
    }
    return lists.flatten(L.g);
}

// ---------------------------------------------------------------------------------------
// The fold (SAHI's _apply_merge + has_match + merge_object_prediction_pair)
// ---------------------------------------------------------------------------------------
struct PartOut {
    std::vector<float> boxes, scores;
    std::vector<index_t> class_ids, keep, sizes, members, dropped;
};

// has_match on Python floats: float64, box1 = the merged prediction, box2 = the candidate.
// A zero denominator gives 0/0 = NaN in numpy, which matches nothing.
bool recheck_box(const double* mb, const float* cf, OverlapMetric metric, double thr, bool strict) {
    const double c[4] = {cf[0], cf[1], cf[2], cf[3]};
    const double a1 = (mb[2] - mb[0]) * (mb[3] - mb[1]);
    const double a2 = (c[2] - c[0]) * (c[3] - c[1]);
    const double ltx = std::max(mb[0], c[0]), lty = std::max(mb[1], c[1]);
    const double rbx = std::min(mb[2], c[2]), rby = std::min(mb[3], c[3]);
    const double w = std::max(rbx - ltx, 0.0), h = std::max(rby - lty, 0.0);
    const double inter = w * h;
    double den;
    if (metric == OverlapMetric::IOU) {
        const double s = a1 + a2;
        den = s - inter;
    } else {
        den = std::min(a1, a2);
    }
    double v;
    if (den == 0.0) v = inter == 0.0 ? std::numeric_limits<double>::quiet_NaN()
                                     : std::numeric_limits<double>::infinity();
    else v = inter / den;
    return strict ? v > thr : v >= thr;
}

// The growing merged mask of one group, over the bounding rectangle of all its members'
// regions (a superset of the final merged region).
struct MaskCanvas {
    std::vector<std::uint8_t> buf;
    std::int64_t x0 = 0, y0 = 0, w = 0, h = 0;
    std::int64_t area = 0;

    void reset(const BoxMasksView& mv, const index_t* items, index_t count) {
        std::int64_t ax = 0, ay = 0, bx = 0, by = 0;
        for (index_t k = 0; k < count; ++k) {
            const std::int32_t* R = mv.regions + 4 * items[k];
            const std::int64_t rx0 = R[0], ry0 = R[1], rx1 = rx0 + R[2], ry1 = ry0 + R[3];
            if (k == 0) { ax = rx0; ay = ry0; bx = rx1; by = ry1; }
            else { ax = std::min(ax, rx0); ay = std::min(ay, ry0); bx = std::max(bx, rx1); by = std::max(by, ry1); }
        }
        x0 = ax; y0 = ay; w = bx - ax; h = by - ay;
        buf.assign(static_cast<size_t>(w * h), 0);
        area = 0;
    }
    // Pixels of mask i already set in the canvas.
    std::int64_t overlap(const BoxMasksView& mv, index_t i) const {
        const std::int32_t* R = mv.regions + 4 * i;
        const std::uint8_t* src = mv.data + mv.offsets[i];
        std::int64_t s = 0;
        for (std::int64_t y = 0; y < R[3]; ++y) {
            const std::uint8_t* a = src + y * R[2];
            const std::uint8_t* b = buf.data() + (R[1] - y0 + y) * w + (R[0] - x0);
            for (std::int64_t x = 0; x < R[2]; ++x) s += (a[x] != 0) & (b[x] != 0);
        }
        return s;
    }
    void paint(const BoxMasksView& mv, index_t i) {
        const std::int32_t* R = mv.regions + 4 * i;
        const std::uint8_t* src = mv.data + mv.offsets[i];
        for (std::int64_t y = 0; y < R[3]; ++y) {
            const std::uint8_t* a = src + y * R[2];
            std::uint8_t* b = buf.data() + (R[1] - y0 + y) * w + (R[0] - x0);
            for (std::int64_t x = 0; x < R[2]; ++x) {
                const std::uint8_t v = a[x] != 0;
                area += v & (b[x] == 0);
                b[x] |= v;
            }
        }
    }
};

PartOut fold(const Problem& P, const Groups& G) {
    PartOut out;
    const auto& opt = P.opt;
    const bool mask_mode = P.use_masks_metric;
    const bool strict = opt.recheck == Recheck::Strict || opt.match == MatchRule::GT;
    MaskCanvas canvas;
    std::vector<index_t> singles;
    const index_t ng = static_cast<index_t>(G.offsets.size()) - 1;
    out.boxes.reserve(static_cast<size_t>(4 * ng));
    out.scores.reserve(static_cast<size_t>(ng));
    out.class_ids.reserve(static_cast<size_t>(ng));
    out.keep.reserve(static_cast<size_t>(ng));
    out.sizes.reserve(static_cast<size_t>(ng));
    out.members.reserve(G.items.size());
    for (index_t k = 0; k < ng; ++k) {
        const index_t* items = G.items.data() + G.offsets[k];
        const index_t count = G.offsets[k + 1] - G.offsets[k];
        const index_t keeper = items[0];
        const float* kb = P.boxes[keeper];
        double mb[4] = {kb[0], kb[1], kb[2], kb[3]};
        float ms = P.scores[keeper];
        index_t mc = P.cls(keeper);
        index_t n_members = 1;
        out.members.push_back(keeper);
        singles.clear();
        const bool check = opt.recheck != Recheck::Off && count > 1;
        if (check && mask_mode) {
            canvas.reset(*opt.masks, items, count);
            canvas.paint(*opt.masks, keeper);
        }
        for (index_t t = 1; t < count; ++t) {
            const index_t c = items[t];
            const float* cb = P.boxes[c];
            bool ok = true;
            if (check) {
                if (mask_mode) {
                    const std::int64_t inter = canvas.overlap(*opt.masks, c);
                    const std::int64_t ac = P.mask_areas[c];
                    const std::int64_t den = opt.metric == OverlapMetric::IOU ? canvas.area + ac - inter
                                                                              : std::min(canvas.area, ac);
                    const double v = den > 0 ? static_cast<double>(inter) / static_cast<double>(den) : 0.0;
                    ok = strict ? v > opt.threshold : v >= opt.threshold;
                } else {
                    ok = recheck_box(mb, cb, opt.metric, opt.threshold, strict);
                }
            }
            if (ok) {
                mb[0] = std::min(mb[0], static_cast<double>(cb[0]));
                mb[1] = std::min(mb[1], static_cast<double>(cb[1]));
                mb[2] = std::max(mb[2], static_cast<double>(cb[2]));
                mb[3] = std::max(mb[3], static_cast<double>(cb[3]));
                const float sc = P.scores[c];
                mc = ms > sc ? mc : P.cls(c);  // get_merged_category: tie -> the candidate's
                ms = ms > sc ? ms : sc;
                out.members.push_back(c);
                ++n_members;
                if (check && mask_mode) canvas.paint(*opt.masks, c);
            } else if (opt.recheck == Recheck::Keep) {
                singles.push_back(c);
            } else {
                out.dropped.push_back(c);
            }
        }
        for (int q = 0; q < 4; ++q) out.boxes.push_back(static_cast<float>(mb[q]));
        out.scores.push_back(ms);
        out.class_ids.push_back(mc);
        out.keep.push_back(keeper);
        out.sizes.push_back(n_members);
        for (index_t s : singles) {
            const float* b = P.boxes[s];
            out.boxes.insert(out.boxes.end(), b, b + 4);
            out.scores.push_back(P.scores[s]);
            out.class_ids.push_back(P.cls(s));
            out.keep.push_back(s);
            out.sizes.push_back(1);
            out.members.push_back(s);
        }
    }
    return out;
}

// Runs fn(partition index) over the partitions, biggest first, on the pool.
template <class F>
void for_each_partition(const std::vector<std::vector<index_t>>& parts, int num_threads, F&& fn) {
    const index_t np = static_cast<index_t>(parts.size());
    std::vector<index_t> by_size(static_cast<size_t>(np));
    std::iota(by_size.begin(), by_size.end(), index_t{0});
    std::stable_sort(by_size.begin(), by_size.end(),
                     [&](index_t a, index_t b) { return parts[a].size() > parts[b].size(); });
    parallel_for(0, np, num_threads, 1, [&](index_t lo, index_t hi) {
        for (index_t k = lo; k < hi; ++k) fn(by_size[k]);
    });
}

template <class Select>
MergeOutput merge_impl(const BoxesView& boxes, const float* scores, const index_t* class_ids,
                       const MergeOptions& options, Select&& select) {
    if (options.recheck != Recheck::Sahi && options.recheck != Recheck::Strict &&
        options.recheck != Recheck::Keep && options.recheck != Recheck::Off)
        fail("recheck: expected Sahi, Strict, Keep or Off");
    const Problem P = make_problem(boxes, scores, class_ids, options);
    auto parts = make_partitions(P);
    std::vector<PartOut> outs(parts.size());
    for_each_partition(parts, options.num_threads, [&](index_t k) {
        std::vector<index_t>& idx = parts[static_cast<size_t>(k)];
        sort_partition(P, idx);
        const Groups G = select(P, std::move(idx));
        outs[static_cast<size_t>(k)] = fold(P, G);
    });

    MergeOutput res;
    size_t M = 0, K = 0, D = 0;
    for (const auto& o : outs) {
        M += o.keep.size();
        K += o.members.size();
        D += o.dropped.size();
    }
    res.boxes.reserve(4 * M);
    res.scores.reserve(M);
    res.class_ids.reserve(M);
    res.keep.reserve(M);
    res.group_offsets.reserve(M + 1);
    res.members.reserve(K);
    res.dropped.reserve(D);
    for (auto& o : outs) {
        res.boxes.insert(res.boxes.end(), o.boxes.begin(), o.boxes.end());
        res.scores.insert(res.scores.end(), o.scores.begin(), o.scores.end());
        res.class_ids.insert(res.class_ids.end(), o.class_ids.begin(), o.class_ids.end());
        res.keep.insert(res.keep.end(), o.keep.begin(), o.keep.end());
        for (index_t s : o.sizes) res.group_offsets.push_back(res.group_offsets.back() + s);
        res.members.insert(res.members.end(), o.members.begin(), o.members.end());
        res.dropped.insert(res.dropped.end(), o.dropped.begin(), o.dropped.end());
        o = PartOut{};
    }
    if (options.masks) {
        res.masks = merge_masks(*options.masks, res.group_offsets.data(), res.members.data(),
                                res.size(), options.num_threads);
        res.has_masks = true;
    }
    return res;
}

}  // namespace

std::vector<index_t> nms(const BoxesView& boxes, const float* scores, const index_t* class_ids,
                         const MergeOptions& options) {
    const Problem P = make_problem(boxes, scores, class_ids, options);
    auto parts = make_partitions(P);
    std::vector<std::vector<index_t>> kept(parts.size());
    for_each_partition(parts, options.num_threads, [&](index_t k) {
        std::vector<index_t>& idx = parts[static_cast<size_t>(k)];
        sort_partition(P, idx);
        kept[static_cast<size_t>(k)] = nms_partition(P, std::move(idx));
    });
    std::vector<index_t> out;
    std::vector<size_t> bounds{0};  // the partitions' runs in out
    for (const auto& v : kept) {
        out.insert(out.end(), v.begin(), v.end());
        bounds.push_back(out.size());
    }
    if (!P.rank_of.empty()) {
        std::sort(out.begin(), out.end(), [&](index_t a, index_t b) {
            return P.rank_of[static_cast<size_t>(a)] < P.rank_of[static_cast<size_t>(b)];
        });
    } else if (kept.size() > 1) {
        // batched_nms: `keep.sort(key=scores, reverse=True)`, stable over classes ascending.
        // Each run is already score descending (processing order), so a stable merge of
        // adjacent runs, pairwise, does it in O(K log P).
        auto desc = [&](index_t a, index_t b) { return scores[a] > scores[b]; };
        std::vector<index_t> buf(out.size());
        while (bounds.size() > 2) {
            std::vector<size_t> next{0};
            for (size_t k = 0; k + 1 < bounds.size(); k += 2) {
                const size_t lo = bounds[k], mid = bounds[k + 1];
                const size_t hi = k + 2 < bounds.size() ? bounds[k + 2] : mid;
                std::merge(out.begin() + static_cast<std::ptrdiff_t>(lo), out.begin() + static_cast<std::ptrdiff_t>(mid),
                           out.begin() + static_cast<std::ptrdiff_t>(mid), out.begin() + static_cast<std::ptrdiff_t>(hi),
                           buf.begin() + static_cast<std::ptrdiff_t>(lo), desc);
                next.push_back(hi);
            }
            out.swap(buf);
            bounds.swap(next);
        }
    }
    return out;
}

MergeOutput greedy_nmm(const BoxesView& boxes, const float* scores, const index_t* class_ids,
                       const MergeOptions& options) {
    return merge_impl(boxes, scores, class_ids, options,
                      [](const Problem& P, std::vector<index_t> o) { return greedy_partition(P, std::move(o)); });
}

MergeOutput nmm(const BoxesView& boxes, const float* scores, const index_t* class_ids,
                const MergeOptions& options) {
    return merge_impl(boxes, scores, class_ids, options,
                      [](const Problem& P, std::vector<index_t> o) { return nmm_partition(P, std::move(o)); });
}

}  // namespace fissure
