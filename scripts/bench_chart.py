#!/usr/bin/env python3
"""Chart and target summary from one side-by-side run of the shared harness.

    python3 scripts/bench_chart.py docs/bench-results/latest.json \
        [--svg docs/bench-results/chart.svg] [--summary docs/bench-results/summary.md]

Draws, per placement, the throughput (rps at 64 connections) and the server CPU
per reply (µs/req) of every server as log-scale bars in one SVG, and writes a
Markdown summary: wxgate's figures as ratios to the ceilings and peers of the
same run, and the performance targets with their status. Standard library only.
"""
import argparse
import html
import json
import math
import os

WX, WX10K = "wxgate", "wxgate-10k"
# Every server named wxgate or wxgate-… is wxgate (a variant: 10,000 rules,
# the Redis store, 1,000 accounts), never a peer.
def ours(name):
    return name == WX or name.startswith(WX + "-")
CEILINGS = ("ceiling-null", "ceiling-crypto")
PLACEMENTS = ("pinned", "shared")
COLOURS = {WX: "#d9480f", WX10K: "#f08c00", "ceiling-null": "#868e96", "ceiling-crypto": "#495057"}
PEER_COLOUR = "#4c6ef5"


def ok(r):
    return r is not None and "load" in r


def records(data):
    """{placement: {server: record}}; failed runs are kept (they have no 'load')."""
    out = {}
    for r in data["results"]:
        out.setdefault(r["placement"], {})[r["server"]] = r
    return out


# ------------------------------------------------------------------ SVG
def nice_ticks(lo, hi):
    ticks, e = [], math.floor(math.log10(lo))
    mults = (1, 2, 5) if math.log10(hi / lo) <= 3 else (1, 3)  # fewer ticks on wide axes
    while 10 ** e <= hi * 1.0001:
        for m in mults:
            v = m * 10 ** e
            if lo / 1.0001 <= v <= hi * 1.0001:
                ticks.append(v)
        e += 1
    return ticks


def short(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def panel(x0, y0, w, title, rows, unit, better):
    """rows: [(label, value, colour, flag)]; a log-scale horizontal bar chart."""
    label_w, bar_h, gap, top = 120, 16, 6, 34
    plot_w = w - label_w - 70
    vals = [v for _, v, _, _ in rows if v and v > 0]
    out = [f'<text x="{x0}" y="{y0 + 14}" class="t">{html.escape(title)}</text>',
           f'<text x="{x0}" y="{y0 + 28}" class="s">{html.escape(unit)}, log scale; {better} is better</text>']
    if not vals:
        return out, top + 20
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    if hi / lo < 10:
        hi = lo * 10
    span = math.log10(hi) - math.log10(lo)

    def xpos(v):
        return x0 + label_w + plot_w * (math.log10(v) - math.log10(lo)) / span

    h = top + len(rows) * (bar_h + gap)
    for t in nice_ticks(lo, hi):
        x = xpos(t)
        out.append(f'<line x1="{x:.1f}" y1="{y0 + top - 4}" x2="{x:.1f}" y2="{y0 + h}" class="g"/>')
        out.append(f'<text x="{x:.1f}" y="{y0 + h + 12}" class="k">{short(t)}</text>')
    for i, (label, v, colour, flag) in enumerate(rows):
        y = y0 + top + i * (bar_h + gap)
        weight = ' font-weight="bold"' if label in (WX, WX10K) else ""
        out.append(f'<text x="{x0 + label_w - 6}" y="{y + bar_h - 4}" class="l"{weight}>{html.escape(label)}</text>')
        if not v or v <= 0:
            out.append(f'<text x="{x0 + label_w + 4}" y="{y + bar_h - 4}" class="v">failed / n/a</text>')
            continue
        x1 = xpos(v)
        out.append(f'<rect x="{x0 + label_w}" y="{y}" width="{max(1.0, x1 - x0 - label_w):.1f}" '
                   f'height="{bar_h}" fill="{colour}"/>')
        shown = f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
        out.append(f'<text x="{x1 + 4:.1f}" y="{y + bar_h - 4}" class="v">{shown}{flag}</text>')
    return out, h + 18


def svg(data, path):
    recs = records(data)
    placements = [p for p in PLACEMENTS if p in recs]
    col_w, pad = 470, 16
    parts, y = [], 48
    for p in placements:
        rows = [r for r in data["results"] if r["placement"] == p]
        order = sorted(rows, key=lambda r: -(r["load"]["rps"] if ok(r) else 0))

        def colour(r):
            return COLOURS.get(r["server"], PEER_COLOUR)

        def flag(r):
            return " ⚠" if r.get("steal_pct", 0) > data["params"].get("max_steal", 5) else ""

        rps_rows = [(r["server"], r["load"]["rps"] if ok(r) else None, colour(r), flag(r)) for r in order]
        cpu_rows = [(r["server"], r.get("cpu_us_per_req"), colour(r), flag(r)) for r in order]
        desc = ("pinned: server on CPU 1, loadgen on CPU 0" if p == "pinned"
                else "shared: server and loadgen on both cores")
        parts.append(f'<text x="{pad}" y="{y}" class="h">{desc}</text>')
        a, ha = panel(pad, y + 6, col_w, "Throughput (64 connections)", rps_rows, "replies/s", "longer")
        b, hb = panel(pad + col_w + pad, y + 6, col_w, "Server CPU per reply", cpu_rows, "µs/req", "shorter")
        parts += a + b
        y += max(ha, hb) + 34
    width = 2 * col_w + 3 * pad
    title = (f"WeChat safe-mode keyword reply, run {data['started_at'][:16].replace('T', ' ')} "
             f"({data['versions'].get('cores', '?')} cores)")
    doc = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">',
        "<style>.t{font-size:13px;font-weight:bold}.s{font-size:10px;fill:#666}.h{font-size:14px;font-weight:bold}"
        ".l{font-size:11px;text-anchor:end}.v{font-size:10px}.k{font-size:9px;fill:#666;text-anchor:middle}"
        ".g{stroke:#ddd;stroke-width:1}</style>",
        f'<rect width="{width}" height="{y}" fill="white"/>',
        f'<text x="{pad}" y="24" font-size="15" font-weight="bold">{html.escape(title)}</text>',
    ] + parts + ["</svg>"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(doc) + "\n")


# ------------------------------------------------------------------ summary
def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def f2(v, nd=2, suffix="×"):
    return "n/a" if v is None else f"{v:,.{nd}f}{suffix}"


def wrong_of(r):
    if not ok(r):
        return None
    return r["load"]["wrong"] + r.get("lat", {}).get("wrong", 0), r["load"]["checked"] + r.get("lat", {}).get("checked", 0)


def summary(data, path):
    recs = records(data)
    max_steal = data["params"].get("max_steal", 5)
    argv, shown_args, skip = data.get("argv", []), [], 0
    for i, x in enumerate(argv):  # the extras are described in latest.md; keep the rest
        if skip:
            skip -= 1
        elif x == "--extra":
            skip = 3
            shown_args.append(f"--extra {argv[i + 1]} …")
        elif x == "--out":
            skip = 1
        else:
            shown_args.append(x)
    lines = [
        "# wxgate side-by-side summary",
        "",
        f"Run {data['started_at'][:19].replace('T', ' ')}, {data['versions'].get('cores', '?')} cores "
        f"({data['versions'].get('cpu', '?')}); harness arguments: `{' '.join(shown_args) or '(defaults)'}`. "
        "Every ratio below divides two figures of this one run. Written by `scripts/bench_chart.py` from "
        "`latest.json`; the full table is `latest.md`.",
        "",
    ]
    key_rows = []
    for p in PLACEMENTS:
        R = recs.get(p, {})
        if not R:
            continue
        peers = [r for n, r in R.items() if n not in CEILINGS and not ours(n) and ok(r)]
        best = max(peers, key=lambda r: r["load"]["rps"]) if peers else None
        lines += [f"## {p}", "",
                  "| server | rps (c=64) | ÷ ceiling-crypto | CPU µs/req | p50 / p99 ms (c=64) | p99 ms (c=1) "
                  "| peak RSS MB | wrong / checked | steal % |",
                  "|---|---|---|---|---|---|---|---|---|"]
        crypto_rps = R["ceiling-crypto"]["load"]["rps"] if ok(R.get("ceiling-crypto")) else None
        variants = tuple(sorted(n for n in R if ours(n) and n not in (WX, WX10K)))
        first = [R.get(n) for n in (WX, WX10K) + variants + CEILINGS]
        shown = first + sorted((r for r in R.values() if r not in first),
                               key=lambda r: -(r["load"]["rps"] if ok(r) else 0))
        for r in shown:
            if r is None:
                continue
            if not ok(r):
                lines.append(f"| {r['server']} | failed: {r.get('error', '?')[:100]} | | | | | | | |")
                continue
            w, c = wrong_of(r)
            name = r["server"] + (" (best peer)" if r is best else "")
            steal = r.get("steal_pct")
            lines.append(
                f"| {name} | {r['load']['rps']:,.0f} | {f2(ratio(r['load']['rps'], crypto_rps), 3, '')} | "
                f"{r.get('cpu_us_per_req') or 0:,.1f} | {r['load']['p50_ms']:.2f} / {r['load']['p99_ms']:.2f} | "
                f"{r.get('lat', {}).get('p99_ms', float('nan')):.3f} | "
                f"{(r.get('peak_rss_kb') or 0) / 1024:.1f} | {w:,} / {c:,} | "
                f"{steal:.1f}{' ⚠' if steal > max_steal else ''} |")
        lines.append("")
        wx, wx10, null, crypto = (R.get(n) for n in (WX, WX10K) + CEILINGS)
        if ok(wx):
            k = {
                "placement": p,
                "cpu_vs_null": ratio(wx.get("cpu_us_per_req"), null.get("cpu_us_per_req")) if ok(null) else None,
                "cpu_vs_crypto": ratio(wx.get("cpu_us_per_req"), crypto.get("cpu_us_per_req")) if ok(crypto) else None,
                "rps_vs_crypto": ratio(wx["load"]["rps"], crypto["load"]["rps"]) if ok(crypto) else None,
                "rps_vs_null": ratio(wx["load"]["rps"], null["load"]["rps"]) if ok(null) else None,
                "rps_vs_best_peer": ratio(wx["load"]["rps"], best["load"]["rps"]) if best else None,
                "best_peer": best["server"] if best else None,
                "p99c1_vs_null": ratio(wx.get("lat", {}).get("p99_ms"), null.get("lat", {}).get("p99_ms")) if ok(null) else None,
                "rss_mb": (wx.get("peak_rss_kb") or 0) / 1024 or None,
                "rss10k_mb": (wx10.get("peak_rss_kb") or 0) / 1024 or None if ok(wx10) else None,
                "rps10k_vs_10": ratio(wx10["load"]["rps"], wx["load"]["rps"]) if ok(wx10) else None,
                "cpu10k_vs_10": ratio(wx10.get("cpu_us_per_req"), wx.get("cpu_us_per_req")) if ok(wx10) else None,
            }
            key_rows.append(k)
    if key_rows:
        lines += ["## Key ratios (wxgate ÷ other, same run)", "",
                  "| placement | CPU µs/req ÷ ceiling-null | CPU µs/req ÷ ceiling-crypto | rps ÷ ceiling-crypto | "
                  "rps ÷ best peer | p99 (c=1) ÷ ceiling-null | 10k-rule rps ÷ 10-rule rps | 10k-rule CPU ÷ 10-rule CPU |",
                  "|---|---|---|---|---|---|---|---|"]
        for k in key_rows:
            lines.append(
                f"| {k['placement']} | {f2(k['cpu_vs_null'])} | {f2(k['cpu_vs_crypto'])} | {f2(k['rps_vs_crypto'])} | "
                f"{f2(k['rps_vs_best_peer'], 1)} ({k['best_peer'] or 'n/a'}) | {f2(k['p99c1_vs_null'])} | "
                f"{f2(k['rps10k_vs_10'])} | {f2(k['cpu10k_vs_10'])} |")
        lines.append("")
    # The variants (the Redis store, many accounts) against wxgate itself.
    rows = []
    for p in PLACEMENTS:
        R = recs.get(p, {})
        wx = R.get(WX)
        for n, r in sorted(R.items()):
            if not ours(n) or n == WX or not ok(r) or not ok(wx):
                continue
            rows.append(
                f"| {p} | {n} | {f2(ratio(r.get('cpu_us_per_req'), wx.get('cpu_us_per_req')))} | "
                f"{f2(ratio(r['load']['rps'], wx['load']['rps']))} | "
                f"{f2(ratio(r.get('lat', {}).get('p99_ms'), wx.get('lat', {}).get('p99_ms')))} | "
                f"{(r.get('peak_rss_kb') or 0) / 1024:.1f} |")
    if rows:
        lines += ["## The variants ÷ wxgate (memory store, 10 rules, one account), same run", "",
                  "| placement | variant | CPU µs/req | rps | p99 (c=1) | peak RSS MB |",
                  "|---|---|---|---|---|---|"] + rows + [""]

    # Targets: the pinned placement is authoritative (the server has one core
    # to itself, so its CPU figures are not mixed with loadgen's).
    ref = next((k for k in key_rows if k["placement"] == "pinned"), key_rows[0] if key_rows else None)
    all_wx = [r for R in recs.values() for n, r in R.items() if ours(n)]
    wrong = [wrong_of(r) for r in all_wx]
    failed = [r["server"] + "/" + r["placement"] for r in all_wx if not ok(r)]
    tot_w = sum(w for w, _ in filter(None, wrong))
    tot_c = sum(c for _, c in filter(None, wrong))
    rss = [(r.get("peak_rss_kb") or 0) / 1024 for r in all_wx
           if ok(r) and r.get("peak_rss_kb") and r["server"] == WX]
    rss10k = [(r.get("peak_rss_kb") or 0) / 1024 for r in all_wx
              if ok(r) and r.get("peak_rss_kb") and r["server"] == WX10K]

    def status(v, good):
        if v is None:
            return "not measured"
        return "met" if good(v) else "**not met**"

    lines += ["## Targets", "",
              f"Ratios from the `{ref['placement'] if ref else 'n/a'}` placement.", "",
              "| target | measured | status |", "|---|---|---|"]
    if ref:
        p = ref["placement"]
        lines += [
            f"| server CPU per request within 1.25× of ceiling-null | {f2(ref['cpu_vs_null'])} | "
            f"{status(ref['cpu_vs_null'], lambda v: v <= 1.25)} |",
            f"| throughput ≥ ceiling-crypto | {f2(ref['rps_vs_crypto'])} | "
            f"{status(ref['rps_vs_crypto'], lambda v: v >= 1.0)} |",
            f"| p99 at 1 connection within 1.5× of ceiling-null | {f2(ref['p99c1_vs_null'])} | "
            f"{status(ref['p99c1_vs_null'], lambda v: v <= 1.5)} |",
        ]
        k10 = ", ".join(f2(k["rps10k_vs_10"]) + " (" + k["placement"] + ")"
                        for k in key_rows if k["rps10k_vs_10"] is not None) or "n/a"
        lines.append(
            f"| 10,000 keyword rules: throughput ≥ 90% of the 10-rule figure | {k10} | "
            f"{status(ref['rps10k_vs_10'], lambda v: v >= 0.9)} ({p}) |")
    rss_s = "max " + f"{max(rss):.1f} MB" if rss else "n/a"
    if rss10k:
        rss_s += f" (wxgate-10k: max {max(rss10k):.1f} MB, " + ("also under" if max(rss10k) < 20 else "over") + " 20 MB)"
    lines += [
        f"| peak RSS < 20 MB (bench config, every placement) | {rss_s} | "
        f"{status(max(rss) if rss else None, lambda v: v < 20)} |",
        f"| zero wrong replies | {tot_w:,} wrong / {tot_c:,} checked (every wxgate run) | "
        f"{status(tot_w if tot_c else None, lambda v: v == 0)}{' (failed runs: ' + ', '.join(failed) + ')' if failed else ''} |",
        "",
    ]
    steal = [f"{r['server']}/{r['placement']} {r['steal_pct']:.0f}%" for R in recs.values() for r in R.values()
             if r.get("steal_pct", 0) > max_steal]
    if steal:
        lines += [f"Hypervisor steal above {max_steal:g}% (figures less reliable): {', '.join(steal)}.", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("--svg")
    ap.add_argument("--summary")
    a = ap.parse_args()
    data = json.load(open(a.json, encoding="utf-8"))
    base = os.path.dirname(os.path.abspath(a.json))
    svg(data, a.svg or os.path.join(base, "chart.svg"))
    summary(data, a.summary or os.path.join(base, "summary.md"))


if __name__ == "__main__":
    main()
