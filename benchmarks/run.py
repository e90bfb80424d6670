"""Run the benchmark suites and print markdown tables (medians, ratios, peak memory).

    PYTHONPATH=python python benchmarks/run.py [--write-docs] [--quick] [--suites merge,masks]

1. Timings: ``pytest benchmarks/bench_*.py --benchmark-json=...`` (pytest-benchmark).
2. Peak memory: one fresh process per implementation and case (benchmarks/_peak.py).
3. Tables: per case and op, each implementation's median, its speed relative to the
   fastest peer (``x faster`` = fastest peer's median / this median), its peak memory and
   its output count (equal counts: everyone answered the same number of detections).

``--write-docs`` replaces the block between ``<!-- BEGIN RESULTS -->`` and
``<!-- END RESULTS -->`` in docs/benchmarks.md. ``--quick`` runs one round of everything
(FISSURE_BENCH_QUICK=1) to check the suite, not to report. Raw results are saved to
benchmarks/results/latest.json; ``--render FILE`` prints the tables of a saved run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import _impls  # noqa: E402
from _machine import platform_line, versions as package_versions  # noqa: E402


def _versions() -> str:
    parts = [package_versions("sahi", "supervision", "cv2", "numba", "shapely")]
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"],
                               capture_output=True, text=True, check=True).stdout.strip()
        parts.append(f"fissure commit {rev}{' (+ local changes)' if dirty else ''}")
    except (OSError, subprocess.CalledProcessError):
        pass
    return ", ".join(parts)


def run_timings(suites: list[str], quick: bool) -> list[dict]:
    files = [os.path.join(HERE, f"bench_{s}.py") for s in suites]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        env = dict(os.environ, FISSURE_BENCH_QUICK="1" if quick else "0")
        cmd = [sys.executable, "-m", "pytest", "-c", os.path.join(HERE, "pytest.ini"),
               "-q", "-rs", f"--benchmark-json={out}", *files]
        print("$", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=sys.stderr)
        with open(out) as f:
            data = json.load(f)
    rows = []
    for b in data["benchmarks"]:
        e = b["extra_info"]
        rows.append({**e, "median": b["stats"]["median"], "rounds": b["stats"]["rounds"]})
    return rows


def run_memory(suites: list[str]) -> list[dict]:
    rows = []
    for suite in suites:
        impls, _, cases = _impls.SUITES[suite]
        for case in cases:
            for impl in impls():
                cmd = [sys.executable, os.path.join(HERE, "_peak.py"), suite, impl.key, case]
                t = time.perf_counter()
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if p.returncode != 0:
                    rows.append({"suite": suite, "impl": impl.key, "case": case,
                                 "error": p.stderr.strip().splitlines()[-1:]})
                    print(f"  peak {suite}/{case}/{impl.key}: FAILED", file=sys.stderr)
                    continue
                r = json.loads(p.stdout.strip().splitlines()[-1])
                rows.append(r)
                print(f"  peak {suite}/{case}/{impl.key}: "
                      f"{r.get('peak_mb', r.get('skipped'))} ({time.perf_counter() - t:.1f} s)",
                      file=sys.stderr, flush=True)
    return rows


def _fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _fmt_mb(mb: Optional[float]) -> str:
    if mb is None:
        return "-"
    return f"{mb:.3g} MB" if mb >= 0.1 else "< 0.1 MB"


def tables(timing: list[dict], memory: list[dict], suites: list[str]) -> str:
    t_by = {(r["suite"], r["case"], r["impl"]): r for r in timing}
    m_by = {(r["suite"], r["case"], r["impl"]): r for r in memory}
    lines: list[str] = []
    for suite in suites:
        impls, case_fn, cases = _impls.SUITES[suite]
        for case in cases:
            n = len(case_fn(case))
            by_op: dict[str, list[Any]] = defaultdict(list)
            for impl in impls():
                by_op[impl.op].append(impl)
            for op, group in by_op.items():
                peers = [t_by[(suite, case, i.key)]["median"] for i in group
                         if i.peer and (suite, case, i.key) in t_by]
                best_peer = min(peers) if peers else None
                lines.append(f"\n**{case}** ({n:,} detections) — {op}\n")
                lines.append("| implementation | median | vs fastest peer | peak memory | out |")
                lines.append("|---|---:|---:|---:|---:|")
                for impl in group:
                    t = t_by.get((suite, case, impl.key))
                    m = m_by.get((suite, case, impl.key), {})
                    skip = impl.skip(case_fn(case))
                    if skip or t is None:
                        why = skip or m.get("skipped") or "not run"
                        lines.append(f"| {impl.library} | {why} | | | |")
                        continue
                    ratio = "no peer ran"
                    if best_peer is not None:
                        x = best_peer / t["median"]
                        ratio = f"{x:.3g}x faster" if x >= 1 else f"{1 / x:.3g}x slower"
                        if impl.peer and t["median"] == best_peer:
                            ratio = "fastest peer"
                    lines.append(
                        f"| {impl.library} | {_fmt_time(t['median'])} ({t['rounds']}r) | {ratio} | "
                        f"{_fmt_mb(m.get('peak_mb'))} | {t.get('count', '')} |"
                    )
    return "\n".join(lines) + "\n"


def goals(timing: list[dict], memory: list[dict]) -> str:
    t_by = {(r["suite"], r["case"], r["impl"]): r["median"] for r in timing}
    m_by = {(r["suite"], r["case"], r["impl"]): r.get("peak_mb") for r in memory}
    nt = os.cpu_count() or 1
    out = ["| goal (fissure: the better of 1 thread and all threads) | measured | met |",
           "|---|---|---|"]

    def t(case: str, key: str, suite: str = "merge") -> Optional[float]:
        return t_by.get((suite, case, key))

    def best(case: str, keys: list[str], suite: str = "merge") -> Optional[float]:
        found = [x for x in (t(case, k, suite) for k in keys) if x is not None]
        return min(found) if found else None

    threads = sorted({1, nt})
    for case in ("20k", "100k", "crowded-20k"):
        for op, fkeys, peers in [
            ("NMS", [f"fissure-nms-t{k}" for k in threads], ["sahi-numpy-nms", "sahi-numba-nms"]),
            ("greedy NMM", [f"fissure-gnmm-t{k}" for k in threads],
             ["sahi-numpy-greedy_nmm", "sahi-numba-greedy_nmm"]),
        ]:
            ours, theirs = best(case, fkeys), best(case, peers)
            if ours is None or theirs is None:
                continue
            x = theirs / ours
            out.append(f"| {case} {op}: >= 20x faster than SAHI's fastest backend | "
                       f"{x:.3g}x | {'yes' if x >= 20 else 'no'} |")
        ours, cv = best(case, [f"fissure-nms-t{k}" for k in threads]), t(case, "cv2-nms")
        if ours is not None and cv is not None:
            out.append(f"| {case} NMS: faster than OpenCV NMSBoxesBatched | {cv / ours:.3g}x | "
                       f"{'yes' if cv > ours else 'no'} |")
    for key in (f"fissure-nms-t{nt}", f"fissure-gnmm-t{nt}"):
        a, b = m_by.get(("merge", "20k", key)), m_by.get(("merge", "100k", key))
        if a and b:
            out.append(f"| peak memory linear in N ({key}: 20k -> 100k is 5x N) | "
                       f"{a:.3g} MB -> {b:.3g} MB ({b / a:.3g}x) | "
                       f"{'yes' if b / a <= 7.5 else 'no'} |")
    ft = best("masked-2k", [f"fissure-masks-t{k}" for k in threads], "masks")
    st = t("masked-2k", "sahi-polygons", "masks")
    fms = [m_by.get(("masks", "masked-2k", f"fissure-masks-t{k}")) for k in threads]
    fm = min([m for m in fms if m], default=None)
    sm = m_by.get(("masks", "masked-2k", "sahi-polygons"))
    if ft and st:
        out.append(f"| masks: >= 10x faster than SAHI's polygon path | {st / ft:.3g}x | "
                   f"{'yes' if st / ft >= 10 else 'no'} |")
    if fm and sm:
        out.append(f"| masks: >= 10x less peak memory than SAHI's polygon path | {sm / fm:.3g}x | "
                   f"{'yes' if sm / fm >= 10 else 'no'} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", default="merge,masks")
    ap.add_argument("--quick", action="store_true", help="one round each (smoke test)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    ap.add_argument("--render", metavar="JSON",
                    help="print (or --write-docs) the tables of a saved run instead of running")
    a = ap.parse_args()
    suites = [s for s in a.suites.split(",") if s]
    if a.render:
        with open(a.render) as f:
            saved = json.load(f)
        timing, memory, elapsed, command = (saved["timing"], saved["memory"], saved["elapsed"],
                                            saved["command"])
        machine, versions = saved["machine"], saved["versions"]
    else:
        t0 = time.perf_counter()
        timing = run_timings(suites, a.quick)
        memory = [] if a.skip_memory else run_memory(suites)
        elapsed = time.perf_counter() - t0
        command = "PYTHONPATH=python python benchmarks/run.py" + "".join(
            f" {x}" for x in sys.argv[1:] if x != "--write-docs")
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        out = os.path.join(HERE, "results", "latest.json")
        with open(out, "w") as f:
            json.dump({"timing": timing, "memory": memory, "elapsed": elapsed,
                       "command": command, "machine": platform_line(),
                       "versions": _versions()}, f, indent=1)
        print(f"raw results: {out}", file=sys.stderr)
        machine, versions = platform_line(), _versions()
    body = (
        f"Command: `{command}` (took {elapsed / 60:.1f} min)\n\n"
        f"Machine: {machine}\n\n"
        f"Versions: {versions}\n\n"
        f"### Goals\n\n{goals(timing, memory)}\n### All results\n{tables(timing, memory, suites)}"
    )
    print(body)
    if a.write_docs:
        path = os.path.join(ROOT, "docs", "benchmarks.md")
        with open(path) as f:
            doc = f.read()
        begin, end = "<!-- BEGIN RESULTS -->", "<!-- END RESULTS -->"
        i, j = doc.index(begin) + len(begin), doc.index(end)
        with open(path, "w") as f:
            f.write(doc[:i] + "\n" + body + doc[j:])
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
