#!/usr/bin/env python3
"""Tabulate the criterion results of benches/pipeline.rs and benches/rules.rs.

    python3 scripts/bench_criterion.py [--criterion-dir target/criterion] [--out docs/bench-results]

Reads every `<group>/<bench>/new/{benchmark,estimates}.json` that criterion
left under target/criterion (the last run of each benchmark) and writes
criterion.json and criterion.md into --out. Standard library only.
"""
import argparse
import json
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUP_ORDER = ["pipeline", "parse", "step", "match", "compile"]


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:,.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:,.2f} µs"
    return f"{ns:,.0f} ns"


def collect(crit_dir):
    rows = []
    for dirpath, _dirs, files in os.walk(crit_dir):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        try:
            meta = json.load(open(os.path.join(dirpath, "benchmark.json")))
            est = json.load(open(os.path.join(dirpath, "estimates.json")))
        except (OSError, ValueError):
            continue
        point = est.get("slope") or est["mean"]
        rows.append({
            "id": meta["full_id"],
            "group": meta.get("group_id", ""),
            "function": meta.get("function_id") or "",
            "value": meta.get("value_str") or "",
            "ns": point["point_estimate"],
            "ci_low_ns": point["confidence_interval"]["lower_bound"],
            "ci_high_ns": point["confidence_interval"]["upper_bound"],
            "median_ns": est["median"]["point_estimate"],
        })

    def key(r):
        g = GROUP_ORDER.index(r["group"]) if r["group"] in GROUP_ORDER else len(GROUP_ORDER)
        v = int(r["value"]) if r["value"].isdigit() else 0
        return (g, r["group"], v, r["function"])

    return sorted(rows, key=key)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--criterion-dir", default=os.path.join(ROOT, "target", "criterion"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "bench-results"))
    a = ap.parse_args()
    rows = collect(a.criterion_dir)
    if not rows:
        raise SystemExit(f"no criterion results under {a.criterion_dir}; run `cargo bench --bench pipeline --bench rules`")
    os.makedirs(a.out, exist_ok=True)
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "?"
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    with open(os.path.join(a.out, "criterion.json"), "w") as f:
        json.dump({"cpu": cpu, "cores": os.cpu_count(), "rustc": rustc, "results": rows}, f, indent=1)

    by_id = {r["id"]: r for r in rows}
    lines = [
        "# Criterion results (in-process, one core, no HTTP)",
        "",
        f"{os.cpu_count()} cores ({cpu}); {rustc}. Time per call: criterion's estimate "
        "(slope of the linear fit, else the mean) with its 95% confidence interval. "
        "Written by `scripts/bench_criterion.py` from `target/criterion`.",
        "",
    ]
    group = None
    for r in rows:
        if r["group"] != group:
            group = r["group"]
            lines += ["", f"## {group}", "", "| benchmark | time | 95% CI | calls/s (1 core) |", "|---|---|---|---|"]
        name = "/".join(x for x in (r["function"], r["value"]) if x) or r["id"]
        lines.append(f"| {name} | {fmt_ns(r['ns'])} | {fmt_ns(r['ci_low_ns'])} – {fmt_ns(r['ci_high_ns'])} "
                     f"| {1e9 / r['ns']:,.0f} |")
    steps = [r for r in rows if r["group"] == "step"]
    whole = by_id.get("pipeline/short_text")
    if steps and whole:
        total = sum(r["ns"] for r in steps)
        lines += ["", "## Where `pipeline/short_text` spends its time", "",
                  f"Whole pipeline {fmt_ns(whole['ns'])}; the steps add up to {fmt_ns(total)}.", "",
                  "| step | time | share of the whole |", "|---|---|---|"]
        for r in sorted(steps, key=lambda r: -r["ns"]):
            lines.append(f"| {r['function']} | {fmt_ns(r['ns'])} | {100 * r['ns'] / whole['ns']:.0f}% |")
    with open(os.path.join(a.out, "criterion.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
