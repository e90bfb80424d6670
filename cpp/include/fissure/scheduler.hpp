// SPDX-License-Identifier: Apache-2.0
/// @file scheduler.hpp
/// @brief The tiled-inference scheduler's native half: a multi-buffered batch feeder that
///        preprocesses batch k + 1 in the background while the caller runs the model on batch k
///        (and, with N > 2 buffers, while batches k - N + 2 .. k - 1 are still in flight).
///
/// The caller (Python) owns the image and N >= 2 batch buffers and drives the model:
///
///     feeder.start(0)
///     for b in 0 .. num_batches - 1:
///         slot = feeder.wait(b)        // blocks until batch b is in buffer `slot`
///         feeder.start(b + 1)          // fills buffer (b + 1) % N in the background
///         model.submit(buffer[slot][:feeder.batch_count(b)])
///         // at most N - 1 batches in flight: finish batch b - N + 2 here
///
/// start(b) writes buffer b % N, so it must not be called while the model still reads that
/// buffer, i.e. before batch b - N has been consumed; the protocol above keeps this (with
/// N = 2: the double buffering of a synchronous model call).
#pragma once

#include <cstdint>
#include <future>
#include <vector>

#include "fissure/common.hpp"
#include "fissure/preprocess.hpp"

namespace fissure {

/// Preprocesses the tiles of one image, batch by batch, into N >= 2 caller-owned buffers used
/// round-robin (batch b goes to buffer b % N).
class BatchFeeder {
public:
    /// `tiles` is (T, 4) int64 xyxy; `slots[i]` each hold batch_size x 3 x out_h x out_w
    /// values of p.dtype (at least two distinct buffers). Checks the parameters and every tile
    /// (check_preprocess).
    BatchFeeder(const Image8View& image, std::vector<std::int64_t> tiles,
                const PreprocessParams& p, index_t batch_size, std::vector<void*> slots,
                int num_threads = -1);
    /// Two buffers (double buffering).
    BatchFeeder(const Image8View& image, std::vector<std::int64_t> tiles,
                const PreprocessParams& p, index_t batch_size, void* slot0, void* slot1,
                int num_threads = -1)
        : BatchFeeder(image, std::move(tiles), p, batch_size, std::vector<void*>{slot0, slot1},
                      num_threads) {}
    ~BatchFeeder();
    BatchFeeder(const BatchFeeder&) = delete;
    BatchFeeder& operator=(const BatchFeeder&) = delete;

    index_t num_tiles() const { return static_cast<index_t>(tiles_.size() / 4); }
    index_t batch_size() const { return batch_size_; }
    int num_slots() const { return static_cast<int>(slots_.size()); }
    index_t num_batches() const;
    /// Tiles in batch b (batch_size except for the last batch).
    index_t batch_count(index_t b) const;
    /// Starts preprocessing batch b into slot b % N in a background thread. A no-op when b is
    /// past the end or already started. Throws InvalidArgument when the slot still holds an
    /// unconsumed batch other than b.
    void start(index_t b);
    /// Waits for batch b (running it on the calling thread if it was never started), rethrows
    /// its error, and returns its slot (b % N).
    int wait(index_t b);
    /// Waits for any background work; errors are dropped (used by the destructor).
    void drain() noexcept;

private:
    void fill(index_t b, void* dst) const;

    Image8View image_;
    std::vector<std::int64_t> tiles_;
    PreprocessParams params_;
    index_t batch_size_;
    std::vector<void*> slots_;
    int num_threads_;
    std::vector<std::future<void>> pending_;
    std::vector<index_t> pending_batch_;
};

}  // namespace fissure
