// Driver of tools/merge_profile/run.sh: one merge call on a dumped case, printing the output
// count and a hash of the result (equal hashes: equal answers across builds).
// Usage: driver nms|gnmm case.bin reps [threads]
#include "fissure/merge.hpp"
#include <cstdio>
#include <cstring>
#include <vector>
#include <string>
using namespace fissure;
int main(int argc, char** argv) {
    std::string op = argv[1]; FILE* f = fopen(argv[2], "rb"); int reps = atoi(argv[3]);
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    std::int64_t n; fread(&n, 8, 1, f);
    std::vector<float> b(4 * n), s(n); std::vector<index_t> c(n);
    fread(b.data(), 4, 4 * n, f); fread(s.data(), 4, n, f); fread(c.data(), 8, n, f);
    BoxesView bv{b.data(), (index_t)n};
    MergeOptions o; o.threshold = 0.5; o.num_threads = threads;
    size_t out = 0; unsigned long long h = 1469598103934665603ull;
    auto mix = [&](long v) { h = (h ^ (unsigned long long)v) * 1099511628211ull; };
    for (int r = 0; r < reps; ++r) {
        if (op == "nms") { o.metric = OverlapMetric::IOU; auto k = nms(bv, s.data(), c.data(), o); out = k.size(); for (auto v : k) mix(v); }
        else { o.metric = OverlapMetric::IOS; auto R = greedy_nmm(bv, s.data(), c.data(), o); out = R.size(); for (auto v : R.members) mix(v); for (auto v : R.group_offsets) mix(v); for (auto v : R.dropped) mix(v); for (float f : R.boxes) { unsigned u; memcpy(&u,&f,4); mix(u);} for (auto v : R.class_ids) mix(v); }
    }
    printf("%zu %llx\n", out, h);
}
