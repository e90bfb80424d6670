// SPDX-License-Identifier: Apache-2.0
// A minimal test harness: CHECK records failures, TEST registers cases, main runs them all
// and exits non-zero on any failure (so ctest sees it).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace check {
inline int& failures() { static int f = 0; return f; }
inline std::vector<std::pair<std::string, std::function<void()>>>& registry() {
    static std::vector<std::pair<std::string, std::function<void()>>> r;
    return r;
}
struct Register {
    Register(const char* name, std::function<void()> fn) { registry().emplace_back(name, std::move(fn)); }
};
}  // namespace check

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++check::failures();                                                        \
        }                                                                               \
    } while (0)

#define CHECK_THROWS(stmt)                                                              \
    do {                                                                                \
        bool thrown_ = false;                                                           \
        try { stmt; } catch (...) { thrown_ = true; }                                   \
        if (!thrown_) {                                                                 \
            std::fprintf(stderr, "%s:%d: expected an exception: %s\n", __FILE__, __LINE__, #stmt); \
            ++check::failures();                                                        \
        }                                                                               \
    } while (0)

#define TEST_CAT_(a, b) a##b
#define TEST_CAT(a, b) TEST_CAT_(a, b)
#define TEST(name)                                                                      \
    static void name();                                                                 \
    static check::Register TEST_CAT(reg_, name)(#name, name);                           \
    static void name()

#define CHECK_MAIN()                                                                    \
    int main() {                                                                        \
        int passed = 0, failed = 0;                                                     \
        for (auto& t : check::registry()) {                                             \
            const int before = check::failures();                                       \
            t.second();                                                                 \
            const bool ok = check::failures() == before;                                \
            (ok ? passed : failed) += 1;                                                \
            std::printf("%s %s\n", ok ? "ok  " : "FAIL", t.first.c_str());              \
        }                                                                               \
        std::printf("%d passed, %d failed\n", passed, failed);                         \
        return check::failures() ? 1 : 0;                                               \
    }
