"""Inputs and loads that crashed or stalled an earlier server: each must be answered, bounded in
time and memory, and leave the server serving. Every test runs a server of its own."""
import collections
import json
import os
import random
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import (HealthWatch, close_code, http_request, raw_http, read_http_response, read_ws_frame,
                      unique, ws_frame, ws_upgrade)
from live_client import LiveClient

HELLO = json.dumps({"type": "hello", "token": "t"})


def ws_outcome(port, target, hello=True, timeout=5):
    """What a WebSocket upgrade to target comes to: ("http", status), ("message", type),
    ("close", code) or ("nothing", None)."""
    sock, answer = ws_upgrade(port, target, timeout=timeout)
    try:
        if answer is None:
            return ("nothing", None)
        if answer.status != 101:
            return ("http", answer.status)
        if hello:
            sock.sendall(ws_frame(HELLO))
        frame = read_ws_frame(sock, time.monotonic() + timeout)
        if frame is None:
            return ("nothing", None)
        opcode, payload = frame
        if opcode == 0x8:
            return ("close", close_code(payload))
        return ("message", json.loads(payload)["type"])
    finally:
        sock.close()


def test_an_empty_query_pair_is_answered_not_fatal(fresh_server):
    server = fresh_server()
    problems = []

    def check(what, outcome_ok, outcome):
        if not outcome_ok:
            problems.append(f"{what}: {outcome}")
        if server.exited(within=0 if outcome_ok else 3):
            problems.append(f"{what}: the server exited: {server.crash_summary()}")
            server.start_server()

    for target in ("/api/board?=", "/api/board?a=1&=", "/healthz?="):
        try:
            answer = raw_http(server.port, http_request("GET", target), timeout=5)
        except OSError as e:
            answer = e
        check(f"GET {target}", getattr(answer, "status", 600) < 500, answer)
    for target in ("/live?=", "/live?subscribe=1&="):
        try:
            outcome = ws_outcome(server.port, target)
        except OSError as e:
            outcome = ("error", e)
        ok = outcome in (("message", "snapshot"),) or (outcome[0] == "close" and outcome[1] in (1000, 4400)) \
            or (outcome[0] == "http" and outcome[1] < 500)
        check(f"upgrade {target}", ok, outcome)
    assert not problems, "\n".join(problems)
    assert server.timed_health()[0] == 200


TOKEN = "a&b%2Bc+d=e-reserved-characters"


def test_a_token_with_reserved_characters_works(fresh_server):
    server = fresh_server(env={"SIGHTLINE_BOOTSTRAP_TOKEN": TOKEN})
    encoded = urllib.parse.quote(TOKEN, safe="")
    problems = []

    def expect(what, got, wanted):
        if got != wanted:
            problems.append(f"{what}: {got}, expected {wanted}")

    def status(path, headers=None):
        try:
            return server.api("GET", path, headers=headers)[0]
        except OSError as e:
            return repr(e)

    expect("Authorization: Bearer <token>", status("/api/board", {"Authorization": f"Bearer {TOKEN}"}), 200)
    # A URL ends up in logs: a token there is never taken, even the right one.
    expect("/api/board?token=<encoded token>", status(f"/api/board?token={encoded}"), 401)
    expect("/live?token=<encoded token>", ws_outcome(server.port, f"/live?token={encoded}", hello=False),
           ("close", 4400))
    with connect(server.ws_url) as ws:
        ws.send(json.dumps({"type": "hello", "token": TOKEN}))
        expect("hello with the token", json.loads(ws.recv(timeout=5))["type"], "snapshot")
    # Near misses: what splitting at '&' or decoding twice would make of it.
    for wrong in ("wrong", "a", "a&b+c d=e-reserved-characters", "a&b%2Bc d=e-reserved-characters",
                  "a&b+c+d=e-reserved-characters"):
        expect(f"Bearer {wrong!r}", status("/api/board", {"Authorization": f"Bearer {wrong}"}), 401)
        with connect(server.ws_url) as ws:
            ws.send(json.dumps({"type": "hello", "token": wrong}))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            expect(f"hello with {wrong!r}", closed.value.rcvd and closed.value.rcvd.code, 4401)
    assert server.alive(), server.log_tail()
    assert not problems, "\n".join(problems)


LIFE = [("queued", False), ("delivery_pending", True), ("delivered", False), ("after_call_work", False),
        ("completed", False)]


def sql_life(conn, queue, agent, call_id):
    """One interaction through its whole life in SQL; returns its id (6 log rows: versions 1..6)."""
    iid = conn.execute("select sightline.create_interaction(%s)", (call_id,)).fetchone()[0]
    for to, with_agent in LIFE:
        conn.execute("select sightline.transition(%s, %s, %s, %s)",
                     (iid, to, agent if with_agent else None, queue if to == "queued" else None))
    return iid


def received(client, ids):
    """(interaction, version) of every transition of ids the client applied, in order (no lock
    taken: wait_for calls it holding the client's lock)."""
    return [(t["interaction"], t["version"]) for t in list(client.transitions) if t["interaction"] in ids]


def test_a_poison_row_is_skipped_and_the_server_restarts(isolated_server):
    server = isolated_server()
    db = isolated_server.database
    queue, agent = unique("pq"), unique("pa")
    server.add_queue(queue)
    server.add_agent(agent, queues=[queue])
    client = LiveClient(server.ws_url).run_in_background()
    assert client.wait_for(lambda c: c.snapshots >= 1, 10), (client.messages, client.closed, client.error)
    with psycopg.connect(db, autocommit=True) as conn:
        try:
            conn.execute("select sightline.create_interaction('poison', 'infinity')")
            through_the_function = "accepted"
        except psycopg.Error as e:
            assert e.sqlstate, e
            through_the_function = f"refused {e.sqlstate}"
        try:
            with conn.transaction():
                poison = conn.execute(
                    "insert into sightline.interactions (call_id, state, created_at, state_since, version) "
                    "values ('poison-forced', 'idle', 'infinity', 'infinity', 1) returning id").fetchone()[0]
                conn.execute(
                    "insert into sightline.transitions (order_tx, interaction_id, version, from_state, to_state, at, cause) "
                    "values (pg_current_xact_id(), %s, 1, null, 'idle', 'infinity', 'writer')", (poison,))
                conn.execute("select pg_notify('sightline_log', '')")
        except psycopg.errors.IntegrityError as e:
            pytest.skip(f"the schema refuses even a direct insert of an infinite time ({e.sqlstate}): no poison row possible")
    # Everything after it still reaches the client: through the API and through SQL.
    ids = set()
    a = server.create()
    server.transition(a, "queued", queue=queue)
    server.transition(a, "delivery_pending", agent=agent)
    ids.add(a)
    with psycopg.connect(db, autocommit=True) as conn:
        for n in range(3):
            ids.add(sql_life(conn, queue, agent, unique(f"after-poison{n}")))
    expected = {(a, v) for v in (1, 2, 3)} | {(i, v) for i in ids - {a} for v in range(1, 7)}
    arrived = client.wait_for(lambda c: set(received(c, ids)) >= expected, 15)
    alive = server.alive()
    health = server.api("GET", "/healthz")[1] if alive else None
    assert alive, f"the server exited on the poison row ({through_the_function}): {server.log_tail()}"
    assert arrived, (f"transitions after the poison row never arrived ({through_the_function}): "
                     f"{len(set(received(client, ids)) & expected)} of {len(expected)}; health {health}")
    assert sorted(received(client, ids)) == sorted(expected), "each exactly once"
    assert isinstance(health, dict) and health.get("skippedRows", 0) >= 1, f"/healthz does not report the skipped row: {health}"
    client.close()
    # A restart reads the board with the poison row in it, and serves.
    server.restart_server()
    again = LiveClient(server.ws_url).run_in_background()
    assert again.wait_for(lambda c: c.snapshots >= 1, 10), f"no snapshot after the restart: {again.messages}"
    b = server.create()
    assert again.wait_for(lambda c: b in c.board, 10)
    assert server.api("GET", "/healthz")[0] == 200
    again.close()


HEARTBEAT_RECORDER = r"""
import json, sys, time
from websockets.sync.client import connect
url, seconds = sys.argv[1], float(sys.argv[2])
arrivals = []
with connect(url, max_size=None, open_timeout=10) as ws:
    ws.send(json.dumps({"type": "hello", "token": "t"}))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            msg = json.loads(ws.recv(timeout=max(0.01, end - time.monotonic())))
        except TimeoutError:
            break
        arrivals.append((time.monotonic(), msg["type"]))
print(json.dumps(arrivals))
"""


def record_heartbeats(url, seconds):
    """A healthy client in a process of its own (no lock shared with the test's threads)."""
    return subprocess.Popen([sys.executable, "-c", HEARTBEAT_RECORDER, url, str(seconds)],
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_burst_of_hellos_with_distinct_filters_does_not_stall_a_healthy_client(isolated_server):
    rng = random.Random(4040)
    queues = [f"bq{n:02d}" for n in range(40)]
    with psycopg.connect(isolated_server.database, autocommit=True) as conn:
        for q in queues:
            conn.execute("select sightline.upsert_queue(%s, %s)", (q, q.upper()))
        conn.execute("select sightline.transition(sightline.create_interaction('burst-' || g), 'queued', null, "
                     "'bq' || lpad((g % 40)::text, 2, '0')) from generate_series(1, 2000) g")
    per_queue = collections.Counter(f"bq{g % 40:02d}" for g in range(1, 2001))
    server = isolated_server("--heartbeat-seconds", "0.25")
    filters = set()
    while len(filters) < 200:
        filters.add(tuple(sorted(rng.sample(queues, rng.randint(1, 8)))))
    filters = list(filters)
    recorder = record_heartbeats(server.ws_url, 12)
    burst = [connect(server.ws_url, max_size=None, open_timeout=10) for _ in filters]
    time.sleep(2)                       # the healthy client's heartbeats before the burst
    go = threading.Barrier(len(burst) + 1)
    results = [None] * len(burst)

    def hello(n):
        ws = burst[n]
        go.wait()
        ws.send(json.dumps({"type": "hello", "token": "t", "queues": list(filters[n])}))
        try:
            while True:
                msg = json.loads(ws.recv(timeout=20))
                if msg["type"] == "snapshot":
                    results[n] = [(i["id"], i["queue"]) for i in msg["board"]["interactions"]]
                    return
        except Exception as e:
            results[n] = e

    with HealthWatch(server) as health:
        threads = [threading.Thread(target=hello, args=(n,)) for n in range(len(burst))]
        for t in threads:
            t.start()
        go.wait()
        burst_at = time.monotonic()
        for t in threads:
            t.join(timeout=30)
        out, _ = recorder.communicate(timeout=30)
    for ws in burst:
        ws.close()
    arrivals = json.loads(out)
    beats = [t for t, kind in arrivals if kind == "heartbeat"]
    assert beats and beats[0] < burst_at and beats[-1] > burst_at + 3, \
        f"heartbeats every 0.25 s around the burst: {len(beats)} heartbeats, first/last {beats[:1]} {beats[-1:]}, burst at {burst_at}"
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    worst = max(gaps)
    assert worst < 1.0, f"the healthy client heard no heartbeat for {worst:.2f}s (at {beats[gaps.index(worst)] - burst_at:+.2f}s from the burst)"
    missing = [n for n, r in enumerate(results) if not isinstance(r, list)]
    assert not missing, f"{len(missing)} of {len(burst)} burst clients got no snapshot: {results[missing[0]]!r}"
    for n, interactions in enumerate(results):
        wanted = set(filters[n])
        assert {q for _, q in interactions} <= wanted
        assert len(interactions) == sum(per_queue[q] for q in wanted)
    health.check(1.0)


@pytest.mark.slow
def test_a_trickled_body_is_timed_out_and_costs_little(fresh_server):
    server = fresh_server()
    rss_before = server.rss_kb()
    head = http_request("POST", "/api/interactions", headers={
        "Content-Type": "application/json", "Content-Length": "1048576"})
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    open_since = {}
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(head + b"{")
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
        open_since[s] = time.monotonic()
    ended = {}                          # socket -> (seconds, status or "closed")
    rss_peak = rss_before
    with HealthWatch(server) as health:
        next_byte = time.monotonic() + 2
        while open_since and time.monotonic() - started < 16:
            for key, _ in selector.select(timeout=0.2):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else "closed"
                ended[s] = (time.monotonic() - open_since.pop(s), status)
                selector.unregister(s)
                s.close()
            if time.monotonic() >= next_byte:
                for s in list(open_since):
                    try:
                        s.send(b" ")
                    except OSError:
                        pass
                next_byte += 2
            rss_peak = max(rss_peak, server.rss_kb())
    for s in open_since:
        s.close()
    growth_mb = (rss_peak - rss_before) / 1024
    assert server.alive(), server.log_tail()
    assert len(open_since) == 0, (f"{len(open_since)} of 100 trickling connections still open after 16 s "
                            f"(answered or closed: {collections.Counter(st for _, st in ended.values())}); "
                            f"memory grew {growth_mb:.1f} MB; slowest /healthz {health.slowest():.2f}s")
    assert all(st in (408, "closed") for _, st in ended.values()), collections.Counter(st for _, st in ended.values())
    assert growth_mb < 20, f"the server's memory grew {growth_mb:.1f} MB for 100 trickled bodies"
    health.check(1.0)


def test_an_unauthorized_post_is_refused_before_its_body(fresh_server):
    server = fresh_server(bootstrap=True)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        head = http_request("POST", "/api/interactions", headers={
            "Content-Type": "application/json", "Content-Length": "1048576", **headers})
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(head)
            answer = read_http_response(s, time.monotonic() + 2)
        assert answer is not None, f"no answer within 2 s to a POST without a valid token ({headers}) announcing 1 MiB"
        assert answer.status == 401 and answer.json()["error"]["code"], answer
    assert server.alive()


def limit_fds(n):
    def preexec():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return preexec


@pytest.mark.slow
def test_at_the_fd_limit_the_server_refuses_without_spinning(isolated_server):
    server = isolated_server(preexec_fn=limit_fds(256))
    opened, refused = [], []
    failures_in_a_row = 0
    while len(opened) + len(refused) < 400 and failures_in_a_row < 5:
        try:
            sock, answer = ws_upgrade(server.port, "/live?subscribe=1", timeout=1)
        except OSError:
            failures_in_a_row += 1
            continue
        if answer is not None and answer.status == 101:
            opened.append(sock)
            failures_in_a_row = 0
        else:
            refused.append(sock)
            failures_in_a_row += 1
    assert server.alive(), server.log_tail()
    assert failures_in_a_row, f"opened {len(opened)} connections with a limit of 256 fds: the limit was never reached"
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    time.sleep(3)
    share = (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    for s in opened[: len(opened) // 2]:
        s.close()
    deadline = time.monotonic() + 3
    health = (None, 0)
    while time.monotonic() < deadline:
        health = server.timed_health(timeout=1)
        if health[0] == 200:
            break
        time.sleep(0.2)
    for s in opened[len(opened) // 2:] + refused:
        s.close()
    assert share < 0.5, f"at the fd limit ({len(opened)} open, {len(refused)} waiting) the server used {share:.0%} of a core"
    assert health[0] == 200 and health[1] < 1.0, f"/healthz after closing half: {health}"
    assert server.alive()


@pytest.mark.slow
def test_only_sql_writers_at_a_high_rate_reach_every_client_exactly_once(isolated_server):
    server = isolated_server()
    db = isolated_server.database
    queue, agent = unique("hq"), unique("ha")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("select sightline.upsert_queue(%s, %s)", (queue, "High rate"))
        conn.execute("select sightline.upsert_agent(%s, %s, %s)", (agent, "Agent", [queue]))
    clients = [LiveClient(server.ws_url).run_in_background() for _ in range(60)]
    assert all(c.wait_for(lambda c: c.snapshots >= 1, 15) for c in clients)
    ids = [[] for _ in range(4)]
    errors = []
    per_writer_rate, seconds = 100, 10      # transitions per second per writer (6 per interaction)

    def writer(w):
        try:
            with psycopg.connect(db, autocommit=True) as conn:
                start, n = time.monotonic(), 0
                while time.monotonic() - start < seconds:
                    if n % 3 == 0:              # a whole life in one transaction
                        with conn.transaction():
                            ids[w].append(sql_life(conn, queue, agent, unique(f"hr{w}")))
                    elif n % 3 == 1:            # two lives interleaved in one transaction
                        with conn.transaction():
                            a = conn.execute("select sightline.create_interaction(%s)", (unique(f"hr{w}"),)).fetchone()[0]
                            b = conn.execute("select sightline.create_interaction(%s)", (unique(f"hr{w}"),)).fetchone()[0]
                            for to, with_agent in LIFE:
                                for i in (a, b):
                                    conn.execute("select sightline.transition(%s, %s, %s, %s)",
                                                 (i, to, agent if with_agent else None, queue if to == "queued" else None))
                            ids[w] += [a, b]
                    else:                       # one statement per transaction
                        ids[w].append(sql_life(conn, queue, agent, unique(f"hr{w}")))
                    n += 1
                    ahead = start + len(ids[w]) * 6 / per_writer_rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = sum(len(chunk) for chunk in ids) * 6 / (time.monotonic() - t0)
    assert not errors, errors
    assert rate > 200, f"the writers reached only {rate:.0f} transitions/s"
    all_ids = {i for chunk in ids for i in chunk}
    expected = {(i, v) for i in all_ids for v in range(1, 7)}
    done = all(c.wait_for(lambda c: len(received(c, all_ids)) >= len(expected), 20) for c in clients)
    counts = sorted(len(received(c, all_ids)) for c in clients)
    assert done, f"after a 20 s drain clients hold {counts[0]}..{counts[-1]} of {len(expected)} transitions ({rate:.0f}/s written)"
    for c in clients:
        got = received(c, all_ids)
        assert len(got) == len(expected) and set(got) == expected, "every transition exactly once"
        versions = collections.defaultdict(list)
        for i, v in got:
            versions[i].append(v)
        assert all(v == [1, 2, 3, 4, 5, 6] for v in versions.values()), "per-interaction version order"
        assert c.closed is None
    assert server.alive()
    for c in clients:
        c.close()


def chunked(*parts, trailer=b""):
    """A body in chunked framing, one chunk per part."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n" + trailer + b"\r\n"


def chunked_post(server, body, target="/api/interactions", method="POST", extra=None):
    return http_request(method, target, headers={
        "Content-Type": "application/json", "Transfer-Encoding": "chunked",
        "Authorization": f"Bearer {server.token}", **(extra or {})}) + body


def interactions_named(server, call_id):
    return server.db_query("select count(*) from sightline.interactions where call_id = %s", (call_id,))[0][0]


def test_a_chunked_create_is_accepted_once(fresh_server):
    server = fresh_server(bootstrap=True)
    for n, (parts, trailer) in enumerate([(2, b""), (5, b"X-Checksum: none\r\n")]):
        call_id = unique(f"chunked{n}")
        body = json.dumps({"callId": call_id}).encode()
        cuts = [len(body) * k // parts for k in range(parts + 1)]
        data = chunked(*(body[a:b] for a, b in zip(cuts, cuts[1:])), trailer=trailer)
        if n == 1:
            data = data.replace(b"\r\n", b";ext=1\r\n", 1)   # a chunk extension, ignored
        answer = raw_http(server.port, chunked_post(server, data))
        assert answer is not None and answer.status == 201, answer
        assert isinstance(answer.json()["id"], int), answer
        assert interactions_named(server, call_id) == 1
    # Sent in pieces, as a slow client would: the last chunk completes the request.
    call_id = unique("chunked-pieces")
    body = json.dumps({"callId": call_id}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        data = chunked_post(server, chunked(body[:9], body[9:]))
        for k in range(0, len(data), 7):
            s.sendall(data[k:k + 7])
            time.sleep(0.01)
        answer = read_http_response(s, time.monotonic() + 5)
    assert answer is not None and answer.status == 201, answer
    assert interactions_named(server, call_id) == 1
    assert server.alive()


def test_a_malformed_chunked_body_is_refused_and_changes_nothing(fresh_server):
    server = fresh_server(bootstrap=True)
    for label, make in [
        ("size not hex", lambda b: b"zz\r\n" + b + b"\r\n0\r\n\r\n"),
        ("size too small", lambda b: b"%x\r\n%s\r\n0\r\n\r\n" % (len(b) - 3, b)),
        ("size too large", lambda b: b"%x\r\n%s\r\n\r\n0\r\n\r\n" % (len(b) + 1, b)),
        ("bare LF", lambda b: b"%x\n%s\n0\n\n" % (len(b), b)),
        ("trailer without colon", lambda b: chunked(b, trailer=b"junk\r\n")),
        ("size line of 2 KB", lambda b: b"%x;%s\r\n%s\r\n0\r\n\r\n" % (len(b), b"x" * 2048, b)),
    ]:
        call_id = unique("malformed")
        answer = raw_http(server.port, chunked_post(server, make(json.dumps({"callId": call_id}).encode())))
        assert answer is not None and answer.status == 400, (label, answer)
        assert answer.json()["error"]["code"] == "bad_request" and "chunked" in answer.json()["error"]["message"], (label, answer)
        assert interactions_named(server, call_id) == 0, label
    # Framing the server cannot read as chunked at all: refused on the headers.
    for label, method, extra in [("Content-Length too", "POST", {"Content-Length": "20"}),
                                 ("another coding", "POST", {"Transfer-Encoding": "gzip, chunked"}),
                                 ("a DELETE", "DELETE", {})]:
        call_id = unique("refused")
        answer = raw_http(server.port, chunked_post(server, chunked(json.dumps({"callId": call_id}).encode()),
                                                    method=method, extra=extra))
        assert answer is not None and answer.status == 400, (label, answer)
        assert interactions_named(server, call_id) == 0, label
    assert server.alive()


def test_an_over_limit_chunked_body_gets_413(fresh_server):
    server = fresh_server(bootstrap=True)
    # Announced in one size line, and reached chunk by chunk (the limit counts data, not framing).
    for label, data in [("one size line", b"100001\r\n" + b" " * 4096),
                        ("many chunks", chunked(*([b" " * 65536] * 17)))]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            try:
                s.sendall(chunked_post(server, data))
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = read_http_response(s, time.monotonic() + 10)
        assert answer is not None and answer.status == 413, (label, answer)
        assert answer.json()["error"]["code"] == "body_too_large", (label, answer)
    # Just under the limit, framing included, it is read (and refused as JSON, not as too large).
    answer = raw_http(server.port, chunked_post(server, chunked(*([b" " * 65536] * 16)), target="/api/queues"), timeout=10)
    assert answer is not None and answer.status == 400, answer
    assert server.alive()


def test_a_stalled_chunked_body_gets_408(fresh_server):
    server = fresh_server("--body-timeout-seconds", "2", bootstrap=True)
    call_id = unique("stalled")
    body = json.dumps({"callId": call_id}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        # Everything but the last chunk.
        s.sendall(chunked_post(server, b"%x\r\n%s\r\n" % (len(body), body)))
        answer = read_http_response(s, time.monotonic() + 15)
    assert answer is not None and answer.status == 408, answer
    assert interactions_named(server, call_id) == 0
    assert server.alive()


def test_a_figures_read_over_the_api_statement_timeout_gets_503_and_the_server_goes_on(isolated_server):
    """A costly read (a week of 15-minute figures) cannot hold the API's database workers: past
    --api-statement-timeout-seconds PostgreSQL cancels it and the request gets 503 query_timeout.
    The same read under the default timeout answers, so the refusal comes from the limit."""
    week = "/api/figures?granularity=interval&from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:00Z"
    patient = isolated_server(bootstrap=True)
    status, data = patient.api("GET", week, timeout=60)
    assert status == 200, (status, data)
    patient.stop_server()
    hasty = isolated_server("--api-statement-timeout-seconds", "0.001", bootstrap=True)
    status, data = hasty.api("GET", week, timeout=60)
    assert status == 503 and data["error"]["code"] == "query_timeout", (status, data)
    assert "--api-statement-timeout-seconds" in data["error"]["message"]
    assert hasty.alive()
    status, _ = hasty.api("GET", "/healthz")
    assert status == 200


def test_a_read_that_waits_longer_than_lws_own_timeout_still_gets_its_answer(isolated_server):
    """lws closes a connection whose request is pending for 5 s unless told otherwise: a read
    that waits off the loop longer than that (here behind a lock another writer holds for 7 s)
    must still get its answer, not a connection closed without one."""
    server = isolated_server(bootstrap=True)
    hold = 7
    with psycopg.connect(server.database) as conn:
        conn.execute("lock table sightline.interaction_history in access exclusive mode")
        released = threading.Timer(hold, conn.rollback)
        released.start()
        started = time.monotonic()
        try:
            status, data = server.api("GET", "/api/history", timeout=60)
        finally:
            released.join()
        waited = time.monotonic() - started
    assert status == 200 and "interactions" in json.dumps(data), (status, data)
    assert waited >= hold - 0.5, f"the read did not wait for the lock ({waited:.1f} s): the test proves nothing"


def server_side_tcp_state(server_port, client_port):
    """The kernel's state of the server's end of a loopback connection ('01' established,
    '04' FIN-WAIT-1: the server closed it), or None when it is gone."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            for line in f.readlines()[1:]:
                local, remote, state = line.split()[1:4]
                if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                    return state
    return None


def test_a_client_that_stops_reading_a_long_answer_is_closed_after_30_s_without_progress(isolated_server):
    """The answer (a week of 15-minute figures, several MB) outgrows the socket buffers; the
    client reads its first bytes and no more. The server closes that connection once no byte
    could be written for 30 s; its other clients are served meanwhile."""
    server = isolated_server(bootstrap=True)
    tag = uuid.uuid4().hex[:6]
    for i in range(12):
        server.add_queue(f"q{i}-{tag}")
        server.add_agent(f"a{i}-{tag}", queues=[f"q{i}-{tag}"])
    week = "/api/figures?granularity=interval&from=2026-11-01T00:00:00Z&to=2026-11-08T00:00:00Z"
    s = socket.create_connection(("127.0.0.1", server.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client_port = s.getsockname()[1]
    s.sendall(f"GET {week} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {server.token}\r\n\r\n".encode())
    s.settimeout(60)
    assert s.recv(1024).startswith(b"HTTP/1.1 200"), "the answer did not start"
    started = time.monotonic()
    status, _ = server.api("GET", "/healthz")
    assert status == 200, "another client is served while one does not read"
    time.sleep(3)
    assert server_side_tcp_state(server.port, client_port) == "01", "closed at once: the test proves nothing"
    deadline = started + 60
    while time.monotonic() < deadline and server_side_tcp_state(server.port, client_port) == "01":
        time.sleep(0.5)
    closed_after = time.monotonic() - started
    state = server_side_tcp_state(server.port, client_port)
    s.close()
    assert state != "01", "the server still holds the connection of a client that stopped reading 60 s ago"
    assert closed_after >= 25, f"closed after {closed_after:.0f} s: a client reading slowly would be cut off too"
    assert server.alive()
