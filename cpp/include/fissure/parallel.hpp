// SPDX-License-Identifier: Apache-2.0
/// @file parallel.hpp
/// @brief The core's thread pool: a small persistent pool of std::threads (no OpenMP) and
///        parallel_for on top of it. Exceptions thrown by a worker are captured, the other
///        workers stop taking new chunks, and the first exception is rethrown on the caller.
///        Cooperative cancellation of long calls (CancelToken) travels with the work.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "fissure/common.hpp"

namespace fissure {

/// Thrown by cancel_point() once the current call is cancelled; nothing the call was writing
/// is to be used. The binding that installed the token turns it into the error its check left.
struct Cancelled : std::exception {
    const char* what() const noexcept override { return "fissure: call cancelled"; }
};

/// Cooperative cancellation of a long call. A binding creates one on its calling thread with a
/// `check` that may only run there (Python: PyErr_CheckSignals under the GIL) and installs it
/// with CancelScope; the core's long loops call cancel_point() (or cancel_requested()) between
/// blocks, on any thread. The check runs only on the installing thread and at most once per
/// `period` (a steady_clock read otherwise); every other thread reads the flag. run_parallel
/// carries the caller's token to the pool threads for the duration of the work.
class CancelToken {
public:
    CancelToken(std::function<bool()> check, std::chrono::nanoseconds period);
    /// True once cancelled; on the installing thread runs the check when `period` has passed.
    bool poll();
    bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

private:
    std::function<bool()> check_;
    std::chrono::nanoseconds period_;
    std::chrono::steady_clock::time_point next_;
    std::thread::id owner_;
    std::atomic<bool> cancelled_{false};
};

/// Makes `token` the calling thread's current token until destroyed (nullptr: none).
class CancelScope {
public:
    explicit CancelScope(CancelToken* token);
    ~CancelScope();
    CancelScope(const CancelScope&) = delete;
    CancelScope& operator=(const CancelScope&) = delete;

private:
    CancelToken* prev_;
};

/// The calling thread's token (nullptr when none is installed).
CancelToken* current_cancel_token();

/// Whether the current call is cancelled (false when no token is installed).
inline bool cancel_requested() {
    CancelToken* t = current_cancel_token();
    return t != nullptr && t->poll();
}

/// Throws Cancelled when the current call is cancelled.
inline void cancel_point() {
    if (cancel_requested()) throw Cancelled();
}

/// Number of hardware threads (at least 1). Honours FISSURE_NUM_THREADS when set.
int hardware_threads();

/// Resolves a user's thread count: n <= 0 means all cores; never more than the work allows.
int resolve_threads(int num_threads, index_t work_items = -1);

/// Runs body(tid) for tid in [0, n) concurrently on the pool; the caller runs some of them
/// itself, so nested calls cannot deadlock. Rethrows the first exception after all finish.
void run_parallel(int n, const std::function<void(int)>& body);

/// Splits [begin, end) into chunks of `grain` and runs fn(lo, hi) on up to num_threads threads.
template <class F>
void parallel_for(index_t begin, index_t end, int num_threads, index_t grain, F&& fn) {
    if (end <= begin) return;
    grain = std::max<index_t>(grain, 1);
    const index_t chunks = (end - begin + grain - 1) / grain;
    const int threads = resolve_threads(num_threads, chunks);
    if (threads <= 1) {
        fn(begin, end);
        return;
    }
    std::atomic<index_t> next{0};
    std::atomic<bool> stop{false};
    run_parallel(threads, [&](int) {
        try {
            for (;;) {
                if (stop.load(std::memory_order_relaxed)) return;
                const index_t c = next.fetch_add(1, std::memory_order_relaxed);
                if (c >= chunks) return;
                const index_t lo = begin + c * grain;
                fn(lo, std::min(end, lo + grain));
            }
        } catch (...) {
            stop.store(true);
            throw;
        }
    });
}

// A reusable barrier for a team that meets twice per step: spins briefly (a step can be a few
// microseconds), then yields the core (the machine may be shared).
class SpinBarrier {
public:
    explicit SpinBarrier(int n) : n_(n) {}
    void wait() {
        if (n_ == 1) return;
        const unsigned g = gen_.load(std::memory_order_acquire);
        if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
            count_.store(0, std::memory_order_relaxed);
            gen_.store(g + 1, std::memory_order_release);
            return;
        }
        for (int spins = 0; gen_.load(std::memory_order_acquire) == g; ++spins) {
            if (spins < 4000) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            } else {
                std::this_thread::yield();
            }
        }
    }

private:
    std::atomic<int> count_{0};
    std::atomic<unsigned> gen_{0};
    const int n_;
};

}  // namespace fissure
