// SPDX-License-Identifier: Apache-2.0
/// @file interrupt.hpp
/// @brief Long core calls that Ctrl-C can stop. The call runs with the GIL released under a
///        fissure::CancelToken whose check, on the calling thread and at most every 50 ms,
///        re-acquires the GIL and runs PyErr_CheckSignals(): when a signal handler raises
///        (KeyboardInterrupt), the core stops at its next cancel point, its threads finish,
///        and the Python error is raised here. Nothing the call was writing is returned.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <stdexcept>
#include <utility>

#include "fissure/parallel.hpp"

namespace fissure::py_interrupt {

namespace py = pybind11;

/// Polling period of the signal check (a steady_clock read between checks).
constexpr std::chrono::milliseconds k_period{50};

/// Runs f() with the GIL released; rethrows a pending KeyboardInterrupt (or any exception a
/// Python signal handler raised) when a signal cancelled it. Call with the GIL held.
template <class F>
void call_interruptible(F&& f) {
    CancelToken token(
        [] {
            // Never take the GIL while the interpreter shuts down (a daemon thread would be
            // stopped inside the core).
#if PY_VERSION_HEX >= 0x030D0000
            if (Py_IsFinalizing()) return false;
#else
            if (_Py_IsFinalizing()) return false;
#endif
            py::gil_scoped_acquire gil;
            return PyErr_CheckSignals() != 0;
        },
        k_period);
    bool cancelled = false;
    {
        py::gil_scoped_release release;
        CancelScope scope(&token);
        try {
            std::forward<F>(f)();
        } catch (const Cancelled&) {
            cancelled = true;
        }
    }
    if (cancelled) {
        if (PyErr_Occurred()) throw py::error_already_set();
        throw std::runtime_error("fissure: call cancelled");
    }
}

}  // namespace fissure::py_interrupt
