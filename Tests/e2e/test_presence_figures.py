"""Agent presence and figures end to end: real server, real PostgreSQL, real WebSocket clients.

Presence changes are streamed and resumable like transitions, whoever writes them (HTTP or SQL);
refusals name their SQLSTATE and write nothing; the live figures and GET /api/figures agree for
the same interval; GET /api/queues and /api/agents answer."""
import json
import time
from datetime import datetime, timedelta, timezone

from conftest import db_digest, unique
from live_client import LiveClient


def iso(t):
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def recv_type(client, kind, predicate=lambda m: True, timeout=10):
    return client.recv_until(lambda m: m["type"] == kind and predicate(m), timeout)


def snapshot_with(client, agent):
    """The first snapshot that knows `agent` (one taken before the server read the new
    configuration is followed by another)."""
    return recv_type(client, "snapshot", lambda m: any(a["id"] == agent for a in m["board"]["agents"]))


def presence_deltas(msg, agent):
    return [d for d in msg.get("deltas", []) if d.get("presence") and d["agent"] == agent]


def test_presence_changes_are_streamed_and_resumable_whoever_writes_them(sightline, scenario):
    watcher = LiveClient(sightline.ws_url, queues=[scenario.queue])
    snap = snapshot_with(watcher, scenario.ann)
    ann = next(a for a in snap["board"]["agents"] if a["id"] == scenario.ann)
    assert ann["presence"]["state"] == "logged_out" and ann["presence"]["version"] == 0
    assert {"code": "break", "name": "Break"} in snap["board"]["presenceReasons"]
    before = snap["position"]

    # Through HTTP.
    answer = sightline.ok("POST", f"/api/agents/{scenario.ann}/presence", {"state": "ready"})
    assert answer["presence"]["state"] == "ready" and answer["presence"]["version"] == 1
    assert answer["change"]["from"] == "logged_out" and answer["change"]["to"] == "ready"
    msg = recv_type(watcher, "deltas", lambda m: presence_deltas(m, scenario.ann))
    d = presence_deltas(msg, scenario.ann)[0]
    assert d["agentPresence"] == answer["presence"]
    assert d["presence"]["id"] == answer["change"]["id"]

    # Straight through SQL, as an ACD would: the same stream, the same shape.
    sightline.db_query("select sightline.set_presence(%s, 'not_ready', 'lunch')", (scenario.ann,))
    msg = recv_type(watcher, "deltas", lambda m: presence_deltas(m, scenario.ann))
    d = presence_deltas(msg, scenario.ann)[0]
    assert d["agentPresence"]["state"] == "not_ready" and d["agentPresence"]["reason"] == "lunch"
    assert d["presence"]["from"] == "ready" and d["presence"]["fromReason"] is None
    assert d["agentPresence"]["loggedInSince"] == answer["presence"]["loggedInSince"]
    last = watcher.position
    watcher.close()

    # A client of another queue does not get them; one that resumes from before gets both, in order.
    other_queue = unique("q")
    sightline.add_queue(other_queue)
    other = LiveClient(sightline.ws_url, queues=[other_queue])
    recv_type(other, "snapshot")
    resumed = LiveClient(sightline.ws_url, queues=[scenario.queue], resume=before)
    recv_type(resumed, "resumed")
    got = []
    deadline = time.time() + 10
    while len(got) < 2 and time.time() < deadline:
        msg = resumed.recv(timeout=max(0.1, deadline - time.time()))
        if msg["type"] == "deltas":
            got += [x["agentPresence"]["state"] for x in presence_deltas(msg, scenario.ann)]
    assert got == ["ready", "not_ready"]
    assert resumed.position == last
    sightline.ok("POST", f"/api/agents/{scenario.ann}/presence", {"state": "ready"})
    recv_type(resumed, "deltas", lambda m: presence_deltas(m, scenario.ann))
    other.ws.send(json.dumps({"type": "ping"}))
    recv_type(other, "pong")
    assert other.presence == [], "a client of another queue gets no presence of this queue's agents"
    assert resumed.agents[scenario.ann]["state"] == "ready" and resumed.agents[scenario.ann]["version"] == 3
    resumed.close()
    other.close()


def test_every_presence_refusal_names_its_sqlstate_and_writes_nothing(sightline, scenario):
    ivr = unique("ivr")
    sightline.add_agent(ivr, voice_application=True)
    sightline.ok("POST", f"/api/agents/{scenario.bob}/presence", {"state": "ready"})
    future = iso(datetime.now(timezone.utc) + timedelta(days=365))
    cases = [
        (f"/api/agents/{unique('nobody')}/presence", {"state": "ready"}, 422, "SL010"),
        (f"/api/agents/{scenario.bob}/presence", {"state": "asleep"}, 400, "SL020"),
        (f"/api/agents/{scenario.bob}/presence", {"state": "not_ready"}, 409, "SL021"),
        (f"/api/agents/{scenario.bob}/presence", {"state": "logged_out", "reason": "break"}, 409, "SL021"),
        (f"/api/agents/{scenario.bob}/presence", {"state": "not_ready", "reason": "nap"}, 409, "SL022"),
        (f"/api/agents/{scenario.bob}/presence", {"state": "ready"}, 409, "SL023"),
        (f"/api/agents/{ivr}/presence", {"state": "ready"}, 409, "SL024"),
        (f"/api/agents/{scenario.bob}/presence", {"state": "logged_out", "at": "2000-01-01T00:00:00Z"}, 409, "SL007"),
        (f"/api/agents/{scenario.bob}/presence", {"state": "logged_out", "at": future}, 400, "SL014"),
    ]
    for path, body, status, sqlstate in cases:
        digest = db_digest(sightline.database)
        got, data = sightline.api("POST", path, body)
        assert (got, data["error"]["sqlstate"]) == (status, sqlstate), (body, data)
        assert data["error"]["message"]
        assert db_digest(sightline.database) == digest, f"{body} changed the database"
    # Bad input the server refuses before the store.
    for body in ({}, {"state": 3}, {"state": "ready", "extra": 1}, {"state": "ready", "at": "yesterday"}):
        got, data = sightline.api("POST", f"/api/agents/{scenario.bob}/presence", body)
        assert got == 400 and data["error"]["code"] == "bad_request", (body, data)
    got, _ = sightline.api("GET", f"/api/agents/{scenario.bob}/presence")
    assert got == 405


def test_queues_and_agents_are_readable(sightline, scenario):
    queues = sightline.ok("GET", "/api/queues")["queues"]
    mine = next(q for q in queues if q["id"] == scenario.queue)
    assert mine["serviceLevel"] == {"answerWithinSeconds": 20, "abandonsInDenominator": True, "excludeShortAbandons": True,
                                    "shortAbandonSeconds": 5, "targetPercent": 80}
    agents = sightline.ok("GET", "/api/agents")["agents"]
    ann = next(a for a in agents if a["id"] == scenario.ann)
    assert ann["queues"] == [scenario.queue] and ann["presence"]["state"] in ("logged_out", "ready", "not_ready")
    reasons = sightline.ok("GET", "/api/presence-reasons")["presenceReasons"]
    assert "lunch" in [r["code"] for r in reasons]


def test_a_queues_abandon_thresholds_reach_the_board_and_bad_ones_change_nothing(sightline):
    qid = unique("q-abandon")
    sightline.add_queue(qid, "Abandons", abandonWarningPercent=8, abandonAlarmPercent=15)
    def thresholds():
        queue = next((q for q in sightline.board()["board"]["queues"] if q["id"] == qid), None)
        return queue and queue["thresholds"]
    deadline = time.time() + 10
    while time.time() < deadline and not thresholds():
        time.sleep(0.1)
    t = thresholds()
    assert t["abandonWarningPercent"] == 8 and t["abandonAlarmPercent"] == 15, t
    listed = next(q for q in sightline.ok("GET", "/api/queues")["queues"] if q["id"] == qid)
    assert listed["thresholds"]["abandonAlarmPercent"] == 15, listed
    for bad in ({"abandonWarningPercent": 20, "abandonAlarmPercent": 10}, {"abandonAlarmPercent": 0},
                {"abandonWarningPercent": 101}, {"abandonAlarmPercent": "15"}):
        status, data = sightline.api("POST", "/api/queues", {"id": qid, "name": "Changed", **bad})
        assert status == 400 and "abandon" in data["error"]["message"], (bad, status, data)
    listed = next(q for q in sightline.ok("GET", "/api/queues")["queues"] if q["id"] == qid)
    assert listed["name"] == "Abandons" and listed["thresholds"]["abandonWarningPercent"] == 8, listed


def test_live_figures_and_the_history_api_agree_for_the_same_interval(sightline, scenario):
    watcher = LiveClient(sightline.ws_url, queues=[scenario.queue])
    snap = snapshot_with(watcher, scenario.ann)
    figures = snap["board"]["figures"] or recv_type(watcher, "figures", timeout=5)["figures"]
    end = parse(figures["interval"]["end"])
    if (end - datetime.now(timezone.utc)).total_seconds() < 40:
        # Too close to the next interval for the writes below: wait for it.
        time.sleep(max(0, (end - datetime.now(timezone.utc)).total_seconds()) + 1)
        figures = recv_type(watcher, "figures", lambda m: parse(m["figures"]["interval"]["start"]) >= end, 15)["figures"]
    start = parse(figures["interval"]["start"])
    now = datetime.now(timezone.utc)
    t = max(start, now - timedelta(seconds=60))

    sightline.ok("POST", f"/api/agents/{scenario.ann}/presence", {"state": "ready", "at": iso(t)})
    # Answered after 4 s, talked 10 s with a 3 s hold, 2 s of wrap-up.
    a = sightline.create(at=iso(t))
    for step, dt, agent in (("queued", 0, None), ("delivery_pending", 3, scenario.ann), ("delivered", 4, None),
                            ("held", 8, scenario.ann), ("delivered", 11, scenario.ann), ("after_call_work", 14, None),
                            ("completed", 16, None)):
        sightline.transition(a, step, agent=agent, queue=scenario.queue if step == "queued" else None,
                             at=iso(t + timedelta(seconds=dt)))
    # Abandoned after 2 s (short) and after 30 s.
    for wait in (2, 30):
        b = sightline.create(at=iso(t))
        sightline.transition(b, "queued", queue=scenario.queue, at=iso(t + timedelta(seconds=1)))
        sightline.transition(b, "completed", at=iso(t + timedelta(seconds=1 + wait)))

    def live_queue():
        return watcher.figures["queues"].get(scenario.queue, {}).get("interval", {}) if watcher.figures else {}

    deadline = time.time() + 15
    while time.time() < deadline and live_queue().get("offered") != 3:
        try:
            watcher.recv(timeout=max(0.1, deadline - time.time()))
        except TimeoutError:
            break
    live = live_queue()
    assert live["offered"] == 3 and live["answered"] == 1 and live["abandoned"] == 2 and live["shortAbandoned"] == 1
    assert live["held"] == 1 and abs(live["holdSeconds"] - 3) < 1e-6 and abs(live["asaSeconds"] - 4) < 1e-6
    assert abs(live["serviceLevelPercent"] - 50.0) < 1e-6, live   # 1 within 20 s of 1 answered + 2 abandoned - 1 short
    assert watcher.figures["queues"][scenario.queue]["now"]["agentsReady"] == 1

    history = sightline.ok("GET", f"/api/figures?granularity=interval&from={iso(start)}&to={iso(start + timedelta(minutes=15))}"
                                  f"&queues={scenario.queue}&agents={scenario.ann}")
    assert history["timeZone"] == figures["timeZone"]
    [period] = history["queues"][scenario.queue]
    assert parse(period["start"]) == start
    assert period["figures"] == live, "the history API and the live board count the same interval the same"
    [agent_period] = history["agents"][scenario.ann]
    live_agent = watcher.figures["agents"][scenario.ann]["interval"]
    for key in ("answered", "handled", "talkSeconds", "holdSeconds", "afterCallWorkSeconds", "held", "transfers"):
        assert agent_period["figures"][key] == live_agent[key], key
    day = sightline.ok("GET", f"/api/figures?granularity=day&queues={scenario.queue}&agents=")["queues"][scenario.queue]
    assert len(day) == 1 and day[0]["figures"]["offered"] >= 3
    watcher.close()


def test_figures_requests_with_bad_parameters_are_refused(sightline, scenario):
    for query, status in (("granularity=week", 400), ("from=yesterday", 400),
                          ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400),
                          ("granularity=interval&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", 400),
                          ("granularity=day&from=2020-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", 400)):
        got, data = sightline.api("GET", f"/api/figures?{query}")
        assert got == status, (query, data)
        assert data["error"]["message"]
    got, _ = sightline.api("POST", "/api/figures", {})
    assert got == 405
