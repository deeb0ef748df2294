#!/usr/bin/env python3
"""idle_memory.py: server memory per idle subscribed WebSocket connection.
Reads the server's VmRSS, opens -n WebSocket connections to /live?subscribe=1 (in batches,
checking each gets "101 Switching Protocols"), keeps reading whatever the server sends (the
snapshot) so nothing waits in the server for us, lets it settle, reads VmRSS again and reports
(after - before) / upgraded connections. Loopback only; bounded by --max-seconds."""
import argparse
import base64
import json
import os
import resource
import selectors
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--max-seconds", type=float, default=90)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.n + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        if hard < want:
            sys.exit(f"idle_memory: open-file limit {hard} < {want}; raise ulimit -n")

    t_end = time.monotonic() + args.max_seconds
    sel = selectors.DefaultSelector()
    state = {}  # sock -> [bytes_received, upgraded]
    base = rss_kb(args.pid)
    upgraded = failed = 0
    received = 0

    def pump(timeout):
        nonlocal upgraded, failed, received
        for key, _ in sel.select(timeout):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            st = state[s]
            if not data:
                sel.unregister(s)
                if not st[1]:
                    failed += 1
                st[1] = None
                continue
            received += len(data)
            if st[1] is False:
                st[0] += data
                if b"\r\n\r\n" in st[0]:
                    if st[0].startswith(b"HTTP/1.1 101"):
                        st[1] = True
                        upgraded += 1
                    else:
                        failed += 1
                        st[1] = None
                        sel.unregister(s)
                    st[0] = b""

    t0 = time.monotonic()
    opened = 0
    while opened < args.n and time.monotonic() < t_end:
        k = min(args.batch, args.n - opened)
        for _ in range(k):
            s = socket.create_connection(("127.0.0.1", args.port), timeout=10)
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall((f"GET /live?subscribe=1 HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            s.setblocking(False)
            state[s] = [b"", False]
            sel.register(s, selectors.EVENT_READ)
            opened += 1
        # wait for this batch's answers (bounded)
        batch_end = min(time.monotonic() + 15, t_end)
        while upgraded + failed < opened and time.monotonic() < batch_end:
            pump(0.1)
    connect_s = time.monotonic() - t0
    settle_end = min(time.monotonic() + args.settle, t_end)
    while time.monotonic() < settle_end:
        pump(0.1)
    after = rss_kb(args.pid)
    per_conn = (after - base) / upgraded if upgraded else None
    res = {
        "requested": args.n, "opened": opened, "upgraded": upgraded, "failed": failed,
        "connect_s": connect_s, "bytes_received": received,
        "rss_before_kb": base, "rss_after_kb": after,
        "per_connection_kb": per_conn,
    }
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
    msg = (f"idle memory: server RSS {base / 1024:.1f} MiB idle, {after / 1024:.1f} MiB with "
           f"{upgraded:,} subscribed clients ({failed} failed)")
    if per_conn is not None:
        msg += f": {per_conn:.2f} KiB per connection"
    print(msg)
    for s in list(state):
        s.close()


if __name__ == "__main__":
    main()
