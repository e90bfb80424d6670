// SPDX-License-Identifier: Apache-2.0
#include "fissure/scheduler.hpp"

#include <algorithm>
#include <exception>
#include <string>
#include <utility>

namespace fissure {

BatchFeeder::BatchFeeder(const Image8View& image, std::vector<std::int64_t> tiles,
                         const PreprocessParams& p, index_t batch_size, std::vector<void*> slots,
                         int num_threads)
    : image_(image), tiles_(std::move(tiles)), params_(p), batch_size_(batch_size),
      slots_(std::move(slots)), num_threads_(num_threads), pending_(slots_.size()),
      pending_batch_(slots_.size(), -1) {
    if (tiles_.size() % 4 != 0)
        throw InvalidArgument("tiles: expected (T, 4) values, got " +
                              std::to_string(tiles_.size()) + " numbers");
    if (batch_size_ < 1)
        throw InvalidArgument("batch_size: expected >= 1, got " + std::to_string(batch_size_));
    if (slots_.size() < 2)
        throw InvalidArgument("slots: expected at least two batch buffers, got " +
                              std::to_string(slots_.size()));
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i] == nullptr)
            throw InvalidArgument("slots: buffer " + std::to_string(i) + " is null");
        for (std::size_t j = 0; j < i; ++j)
            if (slots_[i] == slots_[j])
                throw InvalidArgument("slots: expected distinct batch buffers, " +
                                      std::to_string(j) + " and " + std::to_string(i) +
                                      " are the same");
    }
    check_preprocess(image_, TilesView{tiles_.data(), num_tiles()}, params_);
}

BatchFeeder::~BatchFeeder() { drain(); }

index_t BatchFeeder::num_batches() const {
    return (num_tiles() + batch_size_ - 1) / batch_size_;
}

index_t BatchFeeder::batch_count(index_t b) const {
    if (b < 0 || b >= num_batches())
        throw InvalidArgument("batch: expected 0 <= b < " + std::to_string(num_batches()) +
                              ", got " + std::to_string(b));
    const index_t lo = b * batch_size_;
    const index_t hi = std::min(num_tiles(), lo + batch_size_);
    return hi - lo;
}

void BatchFeeder::fill(index_t b, void* dst) const {
    const index_t lo = b * batch_size_;
    const TilesView tv{tiles_.data() + 4 * lo, batch_count(b)};
    preprocess_tiles(image_, tv, params_, dst, num_threads_);
}

void BatchFeeder::start(index_t b) {
    if (b < 0 || b >= num_batches()) return;
    const int s = static_cast<int>(b % num_slots());
    if (pending_batch_[s] == b) return;
    if (pending_batch_[s] != -1)
        throw InvalidArgument("batch feeder: buffer " + std::to_string(s) + " still holds batch " +
                              std::to_string(pending_batch_[s]) + "; wait() for it first");
    void* dst = slots_[s];
    pending_[s] = std::async(std::launch::async, [this, b, dst] { fill(b, dst); });
    pending_batch_[s] = b;
}

int BatchFeeder::wait(index_t b) {
    if (b < 0 || b >= num_batches())
        throw InvalidArgument("batch: expected 0 <= b < " + std::to_string(num_batches()) +
                              ", got " + std::to_string(b));
    const int s = static_cast<int>(b % num_slots());
    if (pending_batch_[s] == b) {
        pending_batch_[s] = -1;
        pending_[s].get();  // rethrows the worker's exception
        return s;
    }
    if (pending_batch_[s] != -1)
        throw InvalidArgument("batch feeder: buffer " + std::to_string(s) + " holds batch " +
                              std::to_string(pending_batch_[s]) + ", not " + std::to_string(b));
    fill(b, slots_[s]);
    return s;
}

void BatchFeeder::drain() noexcept {
    for (std::size_t s = 0; s < slots_.size(); ++s) {
        if (pending_[s].valid()) {
            try {
                pending_[s].get();
            } catch (...) {
            }
        }
        pending_batch_[s] = -1;
    }
}

}  // namespace fissure
