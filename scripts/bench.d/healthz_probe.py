#!/usr/bin/env python3
"""healthz_probe.py: GET /healthz every --interval seconds (a new connection each time, as a
health checker does) and write the latencies to --json when stopped (SIGTERM/SIGINT) or after
--max-seconds. With --wait-file/--wait-text it starts probing only once that text shows up in
that file (e.g. the load client's "firing" line), so the samples cover the loaded period.
Loopback only."""
import argparse
import http.client
import json
import os
import signal
import time


def percentile(xs, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=2.0, help="a request slower than this is a failure")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--wait-file")
    ap.add_argument("--wait-text", default="firing")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = time.monotonic() + args.max_seconds

    waited = 0.0
    if args.wait_file:
        t = time.monotonic()
        while not stop and time.monotonic() < deadline:
            try:
                with open(args.wait_file, errors="replace") as f:
                    if args.wait_text in f.read():
                        break
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        waited = time.monotonic() - t

    samples, failures, errors = [], 0, []
    t_start = time.monotonic()
    nxt = t_start
    while not stop and time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            c.close()
            ms = (time.perf_counter() - t0) * 1000.0
            if r.status == 200:
                samples.append(ms)
            else:
                failures += 1
                errors.append(f"status {r.status}")
        except Exception as e:  # noqa: BLE001  (timeouts, refused)
            failures += 1
            errors.append(repr(e))
        nxt += args.interval
        pause = nxt - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            nxt = time.monotonic()
    penalised = samples + [args.timeout * 1000.0] * failures
    res = {
        "port": args.port, "interval_s": args.interval, "timeout_s": args.timeout,
        "waited_s": waited, "probed_s": time.monotonic() - t_start,
        "requests": len(samples) + failures, "ok": len(samples), "failures": failures,
        "error_sample": errors[:3],
        "latency_ms": {"p50": percentile(samples, 50), "p90": percentile(samples, 90),
                       "p99": percentile(samples, 99), "max": max(samples) if samples else None},
        # the same with every failed request counted as taking the timeout (a lower bound)
        "latency_ms_with_failures": {"p50": percentile(penalised, 50), "p90": percentile(penalised, 90),
                                     "p99": percentile(penalised, 99),
                                     "max": max(penalised) if penalised else None},
        "samples_ms": [round(x, 3) for x in samples],
    }
    tmp = args.json + f".{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1)
    os.replace(tmp, args.json)
    L = res["latency_ms_with_failures"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"healthz: {res['ok']} ok, {failures} failed (> {args.timeout:g} s or refused) in "
          f"{res['probed_s']:.1f} s; p50 {fmt(L['p50'])} ms, p99 {fmt(L['p99'])} ms, max {fmt(L['max'])} ms"
          + (" (failures counted as the timeout)" if failures else ""))


if __name__ == "__main__":
    main()
