#!/usr/bin/env python3
"""report.py OUTDIR [--check] [--side-by-side-only]: the summary of one scripts/bench output folder.
Reads runs.tsv (one line per live run, written by scripts/bench), the load client's JSON files,
the /healthz probe and idle-memory JSON, store.json and side-by-side/*.json; prints a markdown
summary and writes it to OUTDIR/summary.md. Repeated runs of one scenario and trigger are
reduced to medians (missing and duplicates: the worst run). The targets are reported, never
asserted.
--check: exit 1 unless every run listed in runs.tsv left JSON with the expected keys (the smoke
test: it proves the machinery ran; no figure is judged)."""
import glob
import json
import os
import re
import statistics
import sys

LIVE_KEYS = ["conns_requested", "conns_at_start", "changes_requested", "changes_sent", "expected",
             "received", "missing", "dups", "throughput_per_s", "latency_ms",
             "client_cpu_pct_of_core", "watches"]
HEALTHZ_KEYS = ["requests", "ok", "failures", "latency_ms"]
IDLE_KEYS = ["upgraded", "rss_before_kb", "rss_after_kb", "per_connection_kb"]

# Besides these, every target wants all clients held, all changes sent and 0 missing.
TARGETS = {
    "S1": {"p99": 20.0, "dups": True},
    "S3": {"p99": 50.0, "healthz_p99": 50.0},
    "S2": {"p99": 50.0},
}
IDLE_TARGET_KB = 8.0


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def worst(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def f0(x):
    return "-" if x is None else f"{x:,.0f}"


def f1(x):
    return "-" if x is None else f"{x:,.1f}"


def f2(x):
    return "-" if x is None else (f"{x:,.2f}" if x < 100 else f"{x:,.0f}")


def server_watch(d):
    for w in d.get("watches") or []:
        if w.get("name") == "server":
            return w
    return {}


def read_runs(out):
    rows = []
    p = os.path.join(out, "runs.tsv")
    if not os.path.exists(p):
        return rows
    with open(p) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if not parts or parts[0].startswith("#") or len(parts) < 10:
                continue
            kind, scn, trig, run, n, rate, dur, js, hz, rc = parts[:10]
            rows.append({"kind": kind, "scenario": scn, "trigger": trig, "run": int(run), "n": int(n),
                         "rate": float(rate), "duration": float(dur), "json": js, "healthz": hz,
                         "rc": rc})
    return rows


def check(out, runs):
    problems = []
    if not runs:
        problems.append("runs.tsv lists no run")
    for r in runs:
        what = f"{r['kind']} {r['scenario']} {r['trigger']} run {r['run']}"
        d = load(os.path.join(out, r["json"])) if r["json"] != "-" else None
        keys = LIVE_KEYS if r["kind"] == "live" else IDLE_KEYS
        if d is None:
            problems.append(f"{what}: no JSON ({r['json']}; exit status {r['rc']})")
        else:
            miss = [k for k in keys if k not in d]
            if miss:
                problems.append(f"{what}: JSON lacks {', '.join(miss)}")
        if r["healthz"] != "-":
            h = load(os.path.join(out, r["healthz"]))
            if h is None:
                problems.append(f"{what}: no /healthz JSON ({r['healthz']})")
            elif [k for k in HEALTHZ_KEYS if k not in h]:
                problems.append(f"{what}: /healthz JSON lacks keys")
    return problems


def live_section(out, runs):
    lines = []
    groups = {}
    for r in runs:
        if r["kind"] == "live":
            groups.setdefault((r["scenario"], r["trigger"]), []).append(r)
    if not groups:
        return lines
    nmax = max(len(v) for v in groups.values())
    lines += ["## Live: commit-to-client", "",
              ("Medians of %d runs per row; missing and dup: the worst run. " % nmax if nmax > 1 else
               "One run per row. ") +
              "Latency: from just before the trigger (SQL statement or HTTP POST) to receipt by "
              "each client, over the deliveries that arrived. deliveries/s: received / (first send to "
              "last receipt). CPU in % of one core over the run's window; machine busy: all CPUs, "
              "everything running (other work on a shared box shows here). /healthz: probed every "
              "100 ms during the run.", "",
              "| scenario | trigger | clients held | changes sent | received / expected | missing | dup "
              "| deliveries/s | p50 ms | p99 ms | max ms | server CPU | server RSS peak | client CPU "
              "| machine busy | /healthz p50 / p99 ms | target |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (scn, trig), rs in groups.items():
        ds = [load(os.path.join(out, r["json"])) for r in rs]
        ok = [d for d in ds if d]
        hz = [load(os.path.join(out, r["healthz"])) for r in rs if r["healthz"] != "-"]
        hz = [h for h in hz if h]
        spec = f"{scn} ({rs[0]['n']:,} clients, {rs[0]['rate']:,g}/s)"
        if not ok:
            lines.append(f"| {spec} | {trig} | no result (exit status "
                         f"{', '.join(r['rc'] for r in rs)}) | | | | | | | | | | | | | not met |")
            continue
        L = lambda k: [(d.get("latency_ms") or {}).get(k) for d in ok]  # noqa: E731
        held = med([d["conns_at_start"] for d in ok])
        sent = med([d["changes_sent"] for d in ok])
        req = ok[0]["changes_requested"]
        recv = med([d["received"] for d in ok])
        exp = med([d["expected"] for d in ok])
        missing = worst([d["missing"] for d in ok])
        dups = worst([d["dups"] for d in ok])
        p99 = med(L("p99"))
        scpu = med([server_watch(d).get("cpu_pct_of_core") for d in ok])
        rss = med([server_watch(d).get("vm_hwm") or server_watch(d).get("rss_peak_sampled") for d in ok])
        ccpu = med([d.get("client_cpu_pct_of_core") for d in ok])
        hzL = lambda h: h.get("latency_ms_with_failures") or h.get("latency_ms") or {}  # noqa: E731
        hz50 = med([hzL(h).get("p50") for h in hz])
        hz99 = med([hzL(h).get("p99") for h in hz])
        hzfail = sum(h.get("failures", 0) for h in hz)
        hzreq = sum(h.get("requests", 0) for h in hz)
        hzcell = "-" if not hz else f"{f2(hz50)} / {f2(hz99)}" + (
            f" ({hzfail} of {hzreq} failed, counted as {hz[0].get('timeout_s', 2):g} s)" if hzfail else "")
        # targets
        t = TARGETS.get(scn)
        verdict = "-"
        if t:
            why = []
            if len(ok) < len(rs):
                why.append(f"{len(rs) - len(ok)} run(s) without result")
            if held is not None and held < rs[0]["n"]:
                why.append(f"{rs[0]['n'] - held:,.0f} clients not held")
            if min(d["changes_sent"] for d in ok) < req:
                why.append("changes not all sent")
            if missing:
                why.append(f"missing {missing:,}")
            if t.get("dups") and dups:
                why.append(f"dup {dups:,}")
            if p99 is None or p99 >= t["p99"]:
                why.append(f"p99 {f2(p99)} ms >= {t['p99']:g}")
            if "healthz_p99" in t and (hz99 is None or hz99 >= t["healthz_p99"] or hzfail):
                why.append(f"/healthz p99 {f2(hz99)} ms" + (f", {hzfail} failed" if hzfail else "")
                           + f" (limit {t['healthz_p99']:g})")
            verdict = "met" if not why else "not met: " + "; ".join(why)
        lines.append(
            f"| {spec} | {trig} | {f0(held)} | {f0(sent)} / {req:,} | {f0(recv)} / {f0(exp)} | {f0(missing)} "
            f"| {f0(dups)} | {f0(med([d['throughput_per_s'] for d in ok]))} | {f2(med(L('p50')))} "
            f"| {f2(p99)} | {f2(med(L('max')))} | {f0(scpu)}% "
            f"| {'-' if rss is None else f'{rss / 2**20:,.0f} MiB'} | {f0(ccpu)}% "
            f"| {f0(med([d.get('machine_busy_pct') for d in ok]))}% of {ok[0].get('machine_cpus', '?')} CPUs "
            f"| {hzcell} | {verdict} |")
    lines.append("")
    return lines


def idle_section(out, runs):
    lines = []
    for r in runs:
        if r["kind"] != "idle":
            continue
        d = load(os.path.join(out, r["json"]))
        lines += ["## Server memory per idle subscribed WebSocket connection", ""]
        if not d:
            lines += [f"no result (exit status {r['rc']})", ""]
            continue
        pc = d.get("per_connection_kb")
        verdict = "- (target is for 10,000 clients)"
        if r["n"] >= 10000:
            verdict = ("met" if pc is not None and pc <= IDLE_TARGET_KB and d["upgraded"] >= r["n"]
                       else "not met")
        lines += ["| clients upgraded | server RSS before | after | per connection | target (<= 8 KiB) |",
                  "| --- | --- | --- | --- | --- |",
                  f"| {d['upgraded']:,} of {r['n']:,} | {d['rss_before_kb'] / 1024:,.1f} MiB "
                  f"| {d['rss_after_kb'] / 1024:,.1f} MiB | {f2(pc)} KiB | {verdict} |", ""]
    return lines


def store_section(out):
    d = load(os.path.join(out, "store.json"))
    if not d:
        return []
    return ["## Store", "",
            f"Validated transitions/s through the SQL functions, {d['writers']} concurrent writers, "
            f"durable commits, {d['seconds']} s runs: runs {', '.join(f'{x:,}' for x in d['runs'])}; "
            f"**median {d['median']:,}**.", ""]


def sbs_section(out):
    sdir = os.path.join(out, "side-by-side")
    cells = {}
    for p in glob.glob(os.path.join(sdir, "*.json")):
        m = re.match(r"(peer|sightline)-n(\d+)-r(\d+)\.json$", os.path.basename(p))
        if m:
            cells.setdefault((int(m.group(2)), int(m.group(3))), {})[m.group(1)] = load(p)
    if not cells:
        return []
    lines = ["## Side by side: the Python peer and Sightline, both driven through SQL", "",
             "deliveries/s ratio = sightline / peer (above 1: Sightline delivers more); "
             "p99 ratio = sightline / peer (below 1: Sightline is faster). Latency is over the "
             "deliveries that arrived, so a p99 beside missing deliveries flatters that server.", "",
             "| clients | changes/s | peer deliveries/s | sightline deliveries/s | ratio | peer p99 ms "
             "| sightline p99 ms | ratio | peer missing | sightline missing | peer CPU | sightline CPU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (n, r) in sorted(cells, key=lambda c: (c[1] * c[0], c)):
        p, s = cells[(n, r)].get("peer"), cells[(n, r)].get("sightline")

        def g(d, *ks):
            for k in ks:
                if not isinstance(d, dict):
                    return None
                d = d.get(k)
            return d
        pt, st = g(p, "throughput_per_s"), g(s, "throughput_per_s")
        p99p, p99s = g(p, "latency_ms", "p99"), g(s, "latency_ms", "p99")
        rt = f"{st / pt:.2f}" if pt and st is not None else "-"
        rl = f"{p99s / p99p:.2f}" if p99p and p99s is not None else "-"
        if g(p, "missing") or g(s, "missing"):
            rl += " (not comparable: missing deliveries)" if rl != "-" else ""
        lines.append(f"| {n:,} | {r:,} | {f0(pt)} | {f0(st)} | {rt} | {f2(p99p)} | {f2(p99s)} | {rl} "
                     f"| {f0(g(p, 'missing'))} | {f0(g(s, 'missing'))} "
                     f"| {f0(server_watch(p or {}).get('cpu_pct_of_core'))}% "
                     f"| {f0(server_watch(s or {}).get('cpu_pct_of_core'))}% |")
    lines.append("")
    return lines


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    if len(args) != 1:
        sys.exit(__doc__)
    out = args[0]
    runs = read_runs(out)
    if "--side-by-side-only" in flags:
        print("\n".join(sbs_section(out)))
        return
    meta = load(os.path.join(out, "meta.json")) or {}
    lines = [f"# Sightline benchmarks {meta.get('started', '')}", "",
             f"Server binary `{meta.get('binary', '?')}` ({meta.get('label', '?')}), migrations "
             f"{meta.get('migrations', '?')}; working tree {meta.get('commit', '?')}; "
             f"{meta.get('cpus', '?')} CPUs, load average at start {meta.get('loadavg', '?')}; "
             f"load client `{meta.get('loadgen', '?')}`. Output: `{out}`.", ""]
    lines += store_section(out) + live_section(out, runs) + idle_section(out, runs) + sbs_section(out)
    text = "\n".join(lines).rstrip() + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    if "--check" in flags:
        problems = check(out, runs)
        for p in problems:
            print(f"bench check: {p}", file=sys.stderr)
        if problems:
            sys.exit(1)
        print(f"bench check: {len(runs)} run(s), every JSON present with the expected keys",
              file=sys.stderr)


if __name__ == "__main__":
    main()
