"""The live server end to end: real server, real PostgreSQL, real WebSocket clients."""
import collections
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import urllib.request

from conftest import ROOT, free_port, unique
from live_client import LiveClient, client_view, db_board

LIFE = [("queued", None), ("delivery_pending", "A"), ("delivered", None), ("held", "A"),
        ("delivered", "A"), ("after_call_work", None), ("completed", None)]


def drive_sql(database, queue, agent, count, call_prefix, ids):
    """An ACD writing SQL directly: each interaction through the whole life cycle."""
    with psycopg.connect(database, autocommit=True) as conn:
        for n in range(count):
            iid = conn.execute("select sightline.create_interaction(%s)", (f"{call_prefix}-{n}",)).fetchone()[0]
            ids.append(iid)
            for to, who in LIFE:
                conn.execute("select sightline.transition(%s, %s, %s, %s)",
                             (iid, to, agent if who else None, queue if to == "queued" else None))


def drive_http(sightline, queue, agent, count, call_prefix, ids):
    """An ACD using the HTTP ingest API."""
    for n in range(count):
        iid = sightline.create(f"{call_prefix}-{n}")
        ids.append(iid)
        for to, who in LIFE:
            sightline.transition(iid, to, agent=agent if who else None, queue=queue if to == "queued" else None)


def test_snapshot_then_deltas(sightline, scenario):
    client = LiveClient(sightline.ws_url)
    snap = client.recv_until(lambda m: m["type"] == "snapshot")
    assert snap["position"] and snap["board"]["queues"]
    assert any(q["id"] == scenario.queue for q in snap["board"]["queues"])
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=scenario.queue)
    msg = client.recv_until(lambda m: m["type"] == "deltas" and any(
        d["transition"]["interaction"] == iid and d["transition"]["to"] == "queued" for d in m["deltas"]))
    assert client.board[iid]["state"] == "queued"
    assert client.board[iid]["queue"] == scenario.queue
    assert msg["position"] == client.position
    sightline.transition(iid, "delivery_pending", agent=scenario.ann)
    sightline.transition(iid, "delivered")
    sightline.transition(iid, "held", agent=scenario.ann)
    client.recv_until(lambda m: client.board.get(iid, {}).get("state") == "held")
    assert client.board[iid]["heldBy"] == scenario.ann
    client.ws.send(json.dumps({"type": "ping"}))
    client.recv_until(lambda m: m["type"] == "pong")
    client.close()


def test_fifty_clients_eight_writers_every_transition_once(sightline, scenario):
    clients = [LiveClient(sightline.ws_url).run_in_background() for _ in range(50)]
    assert all(c.wait_for(lambda c: c.snapshots >= 1, 10) for c in clients)
    writers, per_writer = 8, 90   # 8 x 90 x 8 transitions = 5,760
    ids = [[] for _ in range(writers)]
    threads = []
    for w in range(writers):
        prefix = unique(f"fan{w}")
        if w % 2 == 0:
            t = threading.Thread(target=drive_sql, args=(sightline.database, scenario.queue, scenario.ann, per_writer, prefix, ids[w]))
        else:
            t = threading.Thread(target=drive_http, args=(sightline, scenario.queue, scenario.bob, per_writer, prefix, ids[w]))
        threads.append(t)
        t.start()
    for t in threads:
        t.join()
    all_ids = {i for chunk in ids for i in chunk}
    expected = writers * per_writer * (1 + len(LIFE))
    assert len(all_ids) == writers * per_writer

    def done(c):
        return sum(1 for t in c.transitions if t["interaction"] in all_ids) >= expected

    assert all(c.wait_for(done, 60) for c in clients), \
        f"got {[sum(1 for t in c.transitions if t['interaction'] in all_ids) for c in clients]} of {expected}"
    truth = db_board(sightline)
    for c in clients:
        mine = [t for t in c.transitions if t["interaction"] in all_ids]
        assert len(mine) == expected
        assert len(set(c.positions)) == len(c.positions), "no delta twice"
        versions = collections.defaultdict(list)
        for t in mine:
            versions[t["interaction"]].append(t["version"])
        assert all(v == list(range(1, len(v) + 1)) for v in versions.values()), "commit order per interaction"
        with c.lock:
            assert client_view(c.board) == truth
        assert c.closed is None
    for c in clients:
        c.close()


def test_resume_gets_exactly_what_was_missed(sightline, scenario):
    a = LiveClient(sightline.ws_url)
    a.recv_until(lambda m: m["type"] == "snapshot")
    iid = sightline.create()
    sightline.transition(iid, "queued", queue=scenario.queue)
    a.recv_until(lambda m: a.board.get(iid, {}).get("state") == "queued")
    position = a.position
    board_before = dict(a.board)
    a.close()
    # While away: more happens.
    sightline.transition(iid, "delivery_pending", agent=scenario.ann)
    sightline.transition(iid, "delivered")
    other = sightline.create()
    sightline.transition(other, "data_collection")
    b = LiveClient(sightline.ws_url, resume=position)
    b.board = board_before
    first = b.recv(timeout=5)
    assert first["type"] == "resumed", first
    b.recv_until(lambda m: b.board.get(iid, {}).get("state") == "delivered"
                 and b.board.get(other, {}).get("state") == "data_collection")
    got = [t for t in b.transitions if t["interaction"] in (iid, other)]
    assert [(t["interaction"], t["to"]) for t in got] == [
        (iid, "delivery_pending"), (iid, "delivered"), (other, "idle"), (other, "data_collection")]
    assert len(set(b.positions)) == len(b.positions)
    assert b.snapshots == 0
    # Let anything else settle, then the board equals the database's.
    time.sleep(0.5)
    while True:
        try:
            b.recv(timeout=0.3)
        except TimeoutError:
            break
    assert client_view(b.board) == db_board(sightline)
    b.close()
    # A position too old (or unknown) gets a fresh snapshot instead.
    c = LiveClient(sightline.ws_url, resume="1.1")
    assert c.recv(timeout=5)["type"] == "snapshot"
    c.close()


def test_postgres_restart_loses_nothing(sightline, scenario, fresh_server):
    pgdir = os.environ.get("SIGHTLINE_TEST_PG_DIR")
    if not pgdir:
        pytest.fail("SIGHTLINE_TEST_PG_DIR is not set: run scripts/test")
    server = fresh_server()
    client = LiveClient(server.ws_url).run_in_background()
    assert client.wait_for(lambda c: c.snapshots >= 1, 10)
    ids = []
    drive_sql(server.database, scenario.queue, scenario.ann, 5, unique("before"), ids)
    subprocess.run([str(ROOT / "scripts/pg"), "stop", pgdir], check=True)
    assert client.wait_for(lambda c: c.database == "down", 15), "clients are told the board is stale"
    status, health = server.api("GET", "/healthz")
    assert status == 503 and health["database"] == "down"
    # The last board is still served.
    status, board = server.api("GET", "/api/board")
    assert status == 200 and board["database"] == "down"
    started = subprocess.run([str(ROOT / "scripts/pg"), "start", pgdir], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    drive_sql(server.database, scenario.queue, scenario.ann, 5, unique("after"), ids)
    expected = len(ids) * (1 + len(LIFE))
    assert client.wait_for(lambda c: c.database == "up" and sum(1 for t in c.transitions if t["interaction"] in ids) >= expected, 30)
    mine = [t for t in client.transitions if t["interaction"] in ids]
    assert len(mine) == expected
    assert len(set(client.positions)) == len(client.positions)
    # The shared server reconnects too.
    deadline = time.time() + 20
    while time.time() < deadline and sightline.api("GET", "/healthz")[0] != 200:
        time.sleep(0.2)
    assert sightline.api("GET", "/healthz")[0] == 200
    # Its pooled connections, last used under a second before the restart, were closed by it:
    # a write must get a new connection, not a dead one (which would answer 503
    # write_outcome_unknown).
    tag = uuid.uuid4().hex[:8]
    sightline.add_queue(f"q-after-{tag}")
    for i in range(3):
        sightline.add_agent(f"agent-after-{tag}-{i}", queues=[f"q-after-{tag}"])
    client.close()


def raw_ws(port, path="/live", extra_headers=""):
    """A WebSocket handshake by hand, for clients that misbehave (never read)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n").encode())
    return s


def masked_text_frame(text):
    payload = text.encode()
    mask = b"\x01\x02\x03\x04"
    header = bytearray([0x81])
    n = len(payload)
    if n < 126:
        header.append(0x80 | n)
    elif n < 65536:
        header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_client_that_stops_reading_costs_the_others_nothing(fresh_server, scenario):
    server = fresh_server("--client-buffer", "1048576")
    slow = raw_ws(server.port)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.recv(1024)  # the 101 answer
    slow.sendall(masked_text_frame(json.dumps({"type": "hello", "token": "t"})))
    fast = LiveClient(server.ws_url).run_in_background()
    # Bounds are for a machine busy with other work too (the writers below share this Python
    # process with the fast client); a stalled server still misses them by far.
    assert fast.wait_for(lambda c: c.snapshots >= 1, 20)
    rss_before = server.rss_kb()
    ids = []
    lat = []
    writers = [threading.Thread(target=drive_sql, args=(server.database, scenario.queue, scenario.ann, 300, unique(f"slow{w}"), ids))
               for w in range(4)]
    for w in writers:
        w.start()
    # Latency seen by the fast client while the slow one is stuck.
    for _ in range(20):
        iid = server.create()
        t0 = time.time()
        assert fast.wait_for(lambda c: iid in c.board, 15), (
            f"interaction {iid} not on the fast client's board after 15 s; snapshots {fast.snapshots}, "
            f"closed {fast.closed} ({fast.error}), position {fast.position}, last messages {fast.arrivals[-5:]}; "
            f"server {server.api('GET', '/healthz')[1]}")
        lat.append(time.time() - t0)
    for w in writers:
        w.join()
    # The fast client keeps up (a resynchronisation under the burst is allowed: it then holds
    # a fresh snapshot) and ends with the database's board.
    truth = db_board(server)
    if not fast.wait_for(lambda c: client_view(c.board) == truth, 30):
        view = client_view(fast.board)
        diff = {i: (view.get(i), truth.get(i)) for i in set(view) | set(truth) if view.get(i) != truth.get(i)}
        raise AssertionError(f"fast client board differs in {len(diff)} interactions, e.g. {list(diff.items())[:3]}; "
                             f"snapshots {fast.snapshots}, closed {fast.closed} ({fast.error}), position {fast.position}, "
                             f"server {server.api('GET', '/healthz')[1]}")
    _, metrics = server.api("GET", "/metrics")
    values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line and not line.startswith("#")}
    assert values["sightline_resyncs_total"] + values["sightline_slow_clients_closed_total"] >= 1
    rss_growth_mb = (server.rss_kb() - rss_before) / 1024
    assert rss_growth_mb < 64, f"server memory grew {rss_growth_mb:.1f} MB"
    lat.sort()
    assert lat[len(lat) // 2] < 1.0, f"median latency of the fast client {lat[len(lat) // 2]:.3f}s"
    assert fast.closed is None
    slow.close()
    fast.close()


def transitions_count(sightline):
    return sightline.db_query("select count(*) from sightline.transitions")[0][0]


@pytest.mark.parametrize("method,path,body,status,code", [
    ("POST", "/api/interactions", b"{not json", 400, "bad_request"),
    ("POST", "/api/interactions", b"[1,2]", 400, "bad_request"),
    ("POST", "/api/interactions", b'{"callId": 42}', 400, "bad_request"),
    ("POST", "/api/interactions", b'{"callId": "x", "extra": 1}', 400, "bad_request"),
    ("POST", "/api/interactions", b'{"callId": "x", "at": "yesterday"}', 400, "bad_request"),
    ("POST", "/api/interactions/abc/transitions", b'{"to": "queued"}', 400, "bad_request"),
    ("POST", "/api/interactions/999999999/transitions", b'{"to": "queued"}', 404, "unknown_interaction"),
    ("POST", "/api/batch", b'{"operations": []}', 400, "bad_request"),
    ("POST", "/api/batch", b'{"operations": [{"op": "explode"}]}', 400, "bad_request"),
    ("GET", "/api/nothing-here", None, 404, "not_found"),
    ("DELETE", "/api/board", None, 405, "method_not_allowed"),
    ("GET", "/api/interactions/999999999/path", None, 404, "unknown_interaction"),
])
def test_bad_http_input_changes_nothing(sightline, method, path, body, status, code):
    before = transitions_count(sightline)
    got, data = sightline.api(method, path, raw=body)
    assert got == status, data
    assert data["error"]["code"] == code
    assert data["error"]["message"]
    assert transitions_count(sightline) == before


def test_illegal_transition_is_409_with_the_stores_reason(sightline, scenario):
    iid = sightline.create()
    before = transitions_count(sightline)
    status, data = sightline.api("POST", f"/api/interactions/{iid}/transitions", {"to": "held", "agent": scenario.ann})
    assert status == 409
    assert data["error"]["code"] == "illegal_transition" and data["error"]["sqlstate"] == "SL001"
    assert f"interaction {iid}: idle -> held is not allowed" in data["error"]["message"]
    assert "data_collection" in data["error"]["hint"]
    status, data = sightline.api("POST", f"/api/interactions/{iid}/transitions", {"to": "on_break"})
    assert status == 400 and data["error"]["code"] == "unknown_state"
    assert transitions_count(sightline) == before
    # A batch is all or nothing: the failing operation is named and nothing of it stays.
    status, data = sightline.api("POST", "/api/batch", {"operations": [
        {"op": "create", "callId": unique("batch")},
        {"op": "transition", "interaction": "$0", "to": "queued", "queue": scenario.queue},
        {"op": "transition", "interaction": "$0", "to": "held", "agent": scenario.ann}]})
    assert status == 409 and data["error"]["index"] == 2
    assert transitions_count(sightline) == before
    status, data = sightline.api("POST", "/api/batch", {"operations": [
        {"op": "create", "callId": unique("batch")},
        {"op": "transition", "interaction": "$0", "to": "queued", "queue": scenario.queue}]})
    assert status == 200 and len(data["results"]) == 2
    assert transitions_count(sightline) == before + 2


def test_oversize_body_and_frame(sightline):
    before = transitions_count(sightline)
    status, _ = sightline.api("POST", "/api/interactions", raw=b'{"callId": "' + b"x" * (2 << 20) + b'"}')
    assert status == 413
    assert transitions_count(sightline) == before
    with connect(sightline.ws_url, max_size=None) as ws:
        ws.send("x" * (70 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(10):
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize("message,code", [
    ("not json at all", 4400),
    ('{"type": "subscribe"}', 4400),
    ('{"type": "hello", "queues": "sales"}', 4400),
    ('{"type": "hello", "resume": 12}', 4400),
    ('{"type": "ping"}', 4400),
])
def test_bad_websocket_messages_close_with_a_reason(sightline, message, code):
    with connect(sightline.ws_url) as ws:
        ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(10):
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == code
        assert closed.value.rcvd.reason


def test_tokens_and_origin(fresh_server):
    server = fresh_server(env={"SIGHTLINE_BOOTSTRAP_TOKEN": "s3cret-s3cret-s3cret"})
    with connect(server.ws_url) as ws:
        ws.send(json.dumps({"type": "hello", "token": "wrong"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4401
    ok = LiveClient(server.ws_url, token="s3cret-s3cret-s3cret")
    assert ok.recv(timeout=5)["type"] == "snapshot"
    ok.close()
    assert server.api("GET", "/api/board")[0] == 401
    assert server.api("GET", "/api/board", headers={"Authorization": "Bearer s3cret-s3cret-s3cret"})[0] == 200
    assert server.api("GET", "/healthz")[0] == 200
    # A page from another site may not open the stream.
    with pytest.raises(Exception):
        connect(server.ws_url, additional_headers={"Origin": "http://evil.example"}, open_timeout=5)


def test_static_pages_health_metrics_openapi(sightline):
    status, page = sightline.api("GET", "/")
    assert status == 200 and "<html" in page.lower()
    status, page = sightline.api("GET", "/wallboard")
    assert status == 200 and "<html" in page.lower()
    status, _ = sightline.api("GET", "/no-such-file.js")
    assert status == 404
    status, health = sightline.api("GET", "/healthz")
    assert status == 200 and health["database"] == "up"
    # The tailer reports itself alive about every second (after each poll of at most 1 s) even
    # when the log is quiet, so a stuck tailer stands out.
    time.sleep(5)
    status, health = sightline.api("GET", "/healthz")
    assert status == 200 and health["secondsSinceTailerContact"] < 3.0, health
    status, doc = sightline.api("GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert "/api/interactions/{id}/transitions" in doc["paths"]
    status, metrics = sightline.api("GET", "/metrics")
    assert status == 200 and "sightline_transitions_applied_total" in metrics


def test_caller_path_and_history_over_http(sightline, scenario):
    a = sightline.create()
    sightline.transition(a, "queued", queue=scenario.queue)
    sightline.transition(a, "delivery_pending", agent=scenario.ann)
    sightline.transition(a, "delivered")
    b = sightline.transfer(a, "agent", scenario.bob)
    sightline.transition(b, "delivery_pending", agent=scenario.bob)
    sightline.transition(b, "delivered")
    sightline.transition(a, "completed")
    path = sightline.ok("GET", f"/api/interactions/{b}/path")
    assert [i["id"] for i in path["interactions"]] == [a, b]
    assert path["links"] == [dict(path["links"][0], **{"from": a, "to": b, "status": "succeeded", "kind": "agent"})]
    one = sightline.ok("GET", f"/api/interactions/{a}")
    assert one["interaction"] is None and one["path"]["root"] == a
    history = sightline.ok("GET", f"/api/history?queue={scenario.queue}&limit=5")
    assert history["interactions"][0]["id"] == a and history["interactions"][0]["transferred"] is True


def test_sigterm_closes_clients_with_1001_and_exits(fresh_server):
    server = fresh_server()
    client = LiveClient(server.ws_url).run_in_background()
    assert client.wait_for(lambda c: c.snapshots >= 1, 10)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert client.wait_for(lambda c: c.closed is not None, 5)
    assert client.closed[0] == 1001
    server.proc = None


def test_without_a_database_it_starts_the_private_one(binary, tmp_path):
    """What scripts/run relies on: no --database, no DATABASE_URL -> a private PostgreSQL under var/."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        health = None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert health and health["database"] == "up", (tmp_path / "serve.log").read_text()[-2000:]
        assert "private PostgreSQL" in (tmp_path / "serve.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        subprocess.run([str(ROOT / "scripts/pg"), "stop", str(ROOT / "var/pg")], capture_output=True)


def test_snapshot_server_time_is_fresh_when_the_board_is_idle(sightline):
    """Clients set their clock from serverTime: a cached snapshot must not carry an old one."""
    from datetime import datetime, timezone
    first = LiveClient(sightline.ws_url)
    first.recv_until(lambda m: m["type"] == "snapshot")
    first.close()
    time.sleep(2.2)
    second = LiveClient(sightline.ws_url)
    snap = second.recv_until(lambda m: m["type"] == "snapshot")
    server_time = datetime.fromisoformat(snap["serverTime"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - server_time).total_seconds()) < 1.5
    second.close()


def test_agents_and_queues_created_by_another_writer_appear(sightline):
    """An ACD that registers a queue and an agent in SQL: the board learns them from the log."""
    tag = uuid.uuid4().hex[:8]
    q, agent = f"sqlq-{tag}", f"sqla-{tag}"
    client = LiveClient(sightline.ws_url).run_in_background()
    assert client.wait_for(lambda c: c.snapshots >= 1, 10)
    with psycopg.connect(sightline.database, autocommit=True) as conn:
        conn.execute("select sightline.upsert_queue(%s, %s)", (q, "From SQL"))
        conn.execute("select sightline.upsert_agent(%s, %s, %s)", (agent, "Agent From SQL", [q]))
        iid = conn.execute("select sightline.create_interaction(%s)", (unique("sql"),)).fetchone()[0]
        conn.execute("select sightline.transition(%s, 'queued', p_queue => %s)", (iid, q))
        conn.execute("select sightline.transition(%s, 'delivery_pending', %s)", (iid, agent))
    deadline = time.time() + 5
    while time.time() < deadline:
        board = sightline.board()["board"]
        if any(a["id"] == agent for a in board["agents"]) and any(x["id"] == q for x in board["queues"]):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the board never learned the queue and agent written in SQL")
    # Live clients are given a fresh snapshot that includes them.
    assert client.wait_for(lambda c: c.snapshots >= 2, 5)
    client.close()
