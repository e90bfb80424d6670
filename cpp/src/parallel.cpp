// SPDX-License-Identifier: Apache-2.0
#include "fissure/parallel.hpp"

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <utility>
#include <thread>
#include <vector>

namespace fissure {
namespace {

thread_local CancelToken* t_cancel = nullptr;

struct Job {
    const std::function<void(int)>* body = nullptr;
    int n = 0;
    std::atomic<int> next{0};
    std::atomic<int> done{0};
    std::mutex m;
    std::condition_variable cv;
    std::exception_ptr error;

    // Claims one tid and runs it; false when every tid is already claimed.
    bool run_one() {
        const int t = next.fetch_add(1);
        if (t >= n) return false;
        try {
            (*body)(t);
        } catch (...) {
            std::lock_guard<std::mutex> lock(m);
            if (!error) error = std::current_exception();
        }
        if (done.fetch_add(1) + 1 == n) {
            std::lock_guard<std::mutex> lock(m);
            cv.notify_all();
        }
        return true;
    }
};

class Pool {
public:
    explicit Pool(int workers) {
        for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { loop(); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(m_);
            quit_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }
    void submit(const std::shared_ptr<Job>& job, int tickets) {
        {
            std::lock_guard<std::mutex> lock(m_);
            for (int i = 0; i < tickets; ++i) queue_.push_back(job);
        }
        if (tickets == 1) cv_.notify_one(); else cv_.notify_all();
    }

private:
    void loop() {
        for (;;) {
            std::shared_ptr<Job> job;
            {
                std::unique_lock<std::mutex> lock(m_);
                cv_.wait(lock, [this] { return quit_ || !queue_.empty(); });
                if (quit_ && queue_.empty()) return;
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            job->run_one();  // stale tickets (tid already claimed by the caller) do nothing
        }
    }
    std::vector<std::thread> threads_;
    std::deque<std::shared_ptr<Job>> queue_;
    std::mutex m_;
    std::condition_variable cv_;
    bool quit_ = false;
};

Pool& pool() {
    // Created on first use; sized to the machine, minus the calling thread.
    static Pool p(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1));
    return p;
}

}  // namespace

CancelToken::CancelToken(std::function<bool()> check, std::chrono::nanoseconds period)
    : check_(std::move(check)),
      period_(period),
      next_(std::chrono::steady_clock::now() + period),
      owner_(std::this_thread::get_id()) {}

bool CancelToken::poll() {
    if (cancelled_.load(std::memory_order_relaxed)) return true;
    if (!check_ || std::this_thread::get_id() != owner_) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_) return false;
    next_ = now + period_;
    if (check_()) {
        cancelled_.store(true, std::memory_order_relaxed);
        return true;
    }
    return false;
}

CancelScope::CancelScope(CancelToken* token) : prev_(t_cancel) { t_cancel = token; }
CancelScope::~CancelScope() { t_cancel = prev_; }

CancelToken* current_cancel_token() { return t_cancel; }

int hardware_threads() {
    if (const char* env = std::getenv("FISSURE_NUM_THREADS")) {
        const int v = std::atoi(env);
        if (v > 0) return v;
    }
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
}

int resolve_threads(int num_threads, index_t work_items) {
    int t = num_threads <= 0 ? hardware_threads() : num_threads;
    if (work_items >= 0 && static_cast<index_t>(t) > work_items)
        t = static_cast<int>(std::max<index_t>(1, work_items));
    return std::max(1, t);
}

void run_parallel(int n, const std::function<void(int)>& body) {
    if (n <= 1) {
        if (n == 1) body(0);
        return;
    }
    // The pool threads run the body under the caller's cancellation token.
    CancelToken* token = t_cancel;
    const std::function<void(int)> carried = [&body, token](int t) {
        CancelScope scope(token);
        body(t);
    };
    auto job = std::make_shared<Job>();
    job->body = &carried;
    job->n = n;
    pool().submit(job, n - 1);
    while (job->run_one()) {
    }
    {
        std::unique_lock<std::mutex> lock(job->m);
        job->cv.wait(lock, [&] { return job->done.load() == job->n; });
    }
    if (job->error) std::rethrow_exception(job->error);
}

}  // namespace fissure
