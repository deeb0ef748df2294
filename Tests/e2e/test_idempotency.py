"""Writes that are safe to retry: idempotency keys, and a pool that never runs a write twice
when its commit may have happened. Real server, real PostgreSQL."""
import json
import socket
import threading
import time

import psycopg
import pytest

from conftest import http_request, unique


def count(server, call_id):
    return server.db_query("select count(*) from sightline.interactions where call_id = %s", (call_id,))[0][0]


def post_create(server, call_id, key=None, headers=None, body_key=None):
    body = {"callId": call_id}
    if body_key:
        body["idempotencyKey"] = body_key
    h = dict(headers or {})
    if key:
        h["Idempotency-Key"] = key
    return server.api("POST", "/api/interactions", body=body, headers=h)


def test_a_create_sent_twice_with_the_same_key_leaves_one_interaction(sightline):
    call_id, key = unique("idem"), unique("key")
    first = post_create(sightline, call_id, key)
    again = post_create(sightline, call_id, key)
    assert first[0] == 201 and again == first, (first, again)
    assert count(sightline, call_id) == 1
    # The key in the body works the same way.
    other, body_key = unique("idem"), unique("key")
    a, b = post_create(sightline, other, body_key=body_key), post_create(sightline, other, body_key=body_key)
    assert a[0] == 201 and a == b and count(sightline, other) == 1
    # The same key with another request is refused and changes nothing.
    status, data = post_create(sightline, unique("different"), key)
    assert status == 422 and data["error"]["code"] == "idempotency_key_reused", data
    # Without a key, two sends are two calls (the control: keys are what makes the difference).
    plain = unique("plain")
    post_create(sightline, plain)
    post_create(sightline, plain)
    assert count(sightline, plain) == 2


def test_concurrent_sends_of_one_key_create_once(sightline):
    call_id, key = unique("race"), unique("key")
    results = []

    def send():
        results.append(post_create(sightline, call_id, key))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 6 and all(r == results[0] for r in results) and results[0][0] == 201, results
    assert count(sightline, call_id) == 1


def test_a_transition_replayed_with_its_key_answers_as_the_first_time(sightline, scenario):
    iid = sightline.create()
    key = unique("key")
    path = f"/api/interactions/{iid}/transitions"
    first = sightline.api("POST", path, body={"to": "queued", "queue": scenario.queue}, headers={"Idempotency-Key": key})
    again = sightline.api("POST", path, body={"to": "queued", "queue": scenario.queue}, headers={"Idempotency-Key": key})
    assert first[0] == 200 and again == first, (first, again)
    without = sightline.api("POST", path, body={"to": "queued", "queue": scenario.queue})
    assert without[0] == 409, "without the key the same step is (rightly) illegal the second time"
    versions = sightline.db_query("select count(*) from sightline.transitions where interaction_id = %s", (iid,))[0][0]
    assert versions == 2


def test_a_create_whose_connection_is_cut_after_commit_leaves_one_interaction(sightline):
    """The client sends a create and its connection breaks before the answer: it cannot know
    whether it was applied, so it sends it again with the same key."""
    call_id, key = unique("cut"), unique("key")
    body = json.dumps({"callId": call_id}).encode()
    request = http_request("POST", "/api/interactions", body,
                           {"Content-Type": "application/json", "Idempotency-Key": key})
    with socket.create_connection(("127.0.0.1", sightline.port), timeout=5) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
    # Gone before the answer; the server commits anyway.
    deadline = time.monotonic() + 10
    while count(sightline, call_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(sightline, call_id) == 1, "the write was applied although its client left"
    status, data = post_create(sightline, call_id, key)
    assert status == 201, data
    assert count(sightline, call_id) == 1
    stored = sightline.db_query("select id from sightline.interactions where call_id = %s", (call_id,))[0][0]
    assert data["id"] == stored


def break_the_write(server, send):
    """Runs `send` while sightline.interactions is locked, kills the server's database session
    that waits for the lock, then lets go; returns what `send` returned."""
    result = {}
    with psycopg.connect(server.database, autocommit=True) as locker, \
            psycopg.connect(server.database, autocommit=True) as admin:
        locker.execute("begin")
        locker.execute("lock table sightline.interactions in exclusive mode")
        thread = threading.Thread(target=lambda: result.setdefault("answer", send()))
        thread.start()
        waiting = []
        deadline = time.monotonic() + 10
        while not waiting and time.monotonic() < deadline:
            waiting = admin.execute(
                "select pid from pg_stat_activity where wait_event_type = 'Lock' and query like '%create_interaction%'"
                " and pid <> pg_backend_pid()").fetchall()
            time.sleep(0.05)
        assert waiting, "the server's write never waited for the lock"
        for (pid,) in waiting:
            admin.execute("select pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        locker.execute("rollback")
        thread.join(30)
    return result["answer"]


def test_a_write_whose_connection_breaks_is_never_replayed_without_a_key(isolated_server):
    server = isolated_server()
    call_id = unique("broken")
    status, data = break_the_write(server, lambda: post_create(server, call_id))
    assert status == 503 and data["error"]["code"] == "write_outcome_unknown", data
    assert "Idempotency-Key" in data["error"]["hint"]
    assert count(server, call_id) == 0, "the pool ran the write again"
    # The server is fine afterwards.
    assert post_create(server, unique("after"))[0] == 201


def test_a_write_whose_connection_breaks_is_replayed_safely_with_a_key(isolated_server):
    server = isolated_server()
    call_id, key = unique("broken"), unique("key")
    status, data = break_the_write(server, lambda: post_create(server, call_id, key))
    assert status == 201, data
    assert count(server, call_id) == 1
    assert post_create(server, call_id, key) == (status, data)
