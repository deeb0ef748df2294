"""The pages on a database of their own: the wallboard with 16 queues at 1920x1080 (checked from
element geometry), ids that are special words in JavaScript, and the page's pure modules (reducer
and derived figures) run in the same headless Chromium."""
import time

import pytest
from selenium.webdriver.common.by import By

from conftest import unique
from browser_support import (chromium, inside, overlap, rects, run_module, screenshot, severe_logs, status_text,
                             viewport, wait_until)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def wall_tiles(driver):
    return driver.find_elements(By.CSS_SELECTOR, "[data-testid=wallboard-tile]")


def wall_ids(driver):
    """The queue ids of the tiles on the wallboard now, in order (read at once: pages rotate)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('[data-testid=wallboard-tile]')].map(t => t.dataset.queue)")


def test_wallboard_shows_16_queues_at_1920x1080_with_every_name_and_figure_visible(browser, isolated_server):
    server = isolated_server()
    names = ["Sales", "Support", "Billing", "VIP", "Claims", "Renewals", "Retention", "Technical support tier 2",
             "Returns", "Orders", "Accounts", "Fraud", "Roaming", "Business", "Outbound callbacks", "Spanish"]
    for n, name in enumerate(names, 1):
        server.add_queue(f"q{n}", name, waitWarningSeconds=2, waitAlarmSeconds=4)
    server.add_agent("ag1", "Ann", ["q1", "q2"])
    for q in ("q3", "q10", "q10"):
        iid = server.create()
        server.transition(iid, "queued", queue=q)
    try:
        assert viewport(browser, 1920, 1080) == [1920, 1080]
        browser.get(f"{server.base_url}/wallboard")
        wait_until(lambda: status_text(browser) == "live", 10)
        browser.get_log("browser")          # what the previous page logged
        wait_until(lambda: len(wall_tiles(browser)) == 16, 10)
        # The waiting queues pass their alarm threshold and sort first (severity order).
        wait_until(lambda: set(wall_ids(browser)[:2]) == {"q10", "q3"}, 10)
        wait_until(lambda: [t.get_attribute("data-level") for t in wall_tiles(browser)[:3]] == ["alarm", "alarm", "ok"], 10)
        assert "Alarm" in wall_tiles(browser)[0].find_element(By.CSS_SELECTOR, "[data-testid=wall-level]").text
        screen = {"left": 0, "top": 0, "right": 1920, "bottom": 1080}
        tiles = rects(browser, "[data-testid=wallboard-tile]")
        assert len(tiles) == 16
        for n, a in enumerate(tiles):
            assert inside(a, screen), f"tile {n} off screen: {a}"
            for b in tiles[n + 1:]:
                assert not overlap(a, b), f"tiles overlap: {a} {b}"
        parts = ("wall-name", "wall-level", "wall-waiting", "wall-longest", "wall-sl", "wall-abandoned", "wall-asa",
                 "wall-ready", "wall-oncall")
        for n in range(16):
            tile_css = f"[data-testid=wallboard-tile]:nth-child({n + 1})"
            box = rects(browser, tile_css)[0]
            shown = [rects(browser, f"{tile_css} [data-testid={p}]")[0] for p in parts]
            labels = rects(browser, f"{tile_css} .wall-label")
            for p, r in zip(parts, shown):
                assert r["width"] > 0 and r["height"] > 0, f"tile {n} {p} not shown: {r}"
                assert inside(r, box), f"tile {n} {p} outside its tile: {r} {box}"
                assert not r["clipped"], f"tile {n} {p} cut: {r}"
                assert r["height"] >= 14, f"tile {n} {p} too small to read: {r}"
            for r in labels:
                assert inside(r, box) and not r["clipped"], f"tile {n} label {r['text']!r} cut or outside: {r}"
            everything = shown + labels
            for i, a in enumerate(everything):
                for b in everything[i + 1:]:
                    if inside(a, b) or inside(b, a):
                        continue        # a label inside its own line
                    assert not overlap(a, b), f"tile {n}: {a['text']!r} overlaps {b['text']!r}"
        names_shown = sorted(r["text"] for r in rects(browser, "[data-testid=wall-name]"))
        assert names_shown == sorted(names)
        screenshot(browser, server, "wallboard-16-queues.png")
        # Sorted by name on request (numeric-aware: q2 before q10 by name order of the names).
        browser.get(f"{server.base_url}/wallboard?sort=name")
        wait_until(lambda: len(wall_tiles(browser)) == 16, 10)
        shown = [t.find_element(By.CSS_SELECTOR, "[data-testid=wall-name]").text for t in wall_tiles(browser)]
        assert shown == sorted(names, key=str.lower)
        # Stale data is dimmed and said to be stale.
        browser.execute_script("window.sightline.live.onMessage({type: 'status', database: 'down', since: new Date().toISOString()})")
        wait_until(lambda: "stale" in status_text(browser), 10)
        assert browser.execute_script("return document.body.classList.contains('stale')")
        assert float(browser.execute_script("return getComputedStyle(document.getElementById('wall')).opacity")) < 0.6
        screenshot(browser, server, "wallboard-stale.png")
        assert severe_logs(browser) == []
    finally:
        browser.set_window_size(1920, 1200)


def test_more_queues_than_fit_are_paginated(browser, isolated_server):
    server = isolated_server()
    for n in range(40):
        server.add_queue(f"p{n:02}", f"Queue {n:02}")
    try:
        viewport(browser, 1920, 1080)
        browser.get(f"{server.base_url}/wallboard?rotate=3")
        wait_until(lambda: status_text(browser) == "live", 10)
        page = lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid=wallboard-page]").text
        wait_until(lambda: page().startswith("page 1 of "), 10)
        first = set(wall_ids(browser))
        pages = int(page().split(" of ")[1].split()[0])
        assert pages >= 2 and 0 < len(first) < 40
        seen = set(first)
        deadline = time.time() + 3 * pages + 8
        while len(seen) < 40 and time.time() < deadline:
            seen |= set(wall_ids(browser))
            time.sleep(0.5)
        assert len(seen) == 40, f"{40 - len(seen)} queues never shown"
        screen = {"left": 0, "top": 0, "right": 1920, "bottom": 1080}
        assert all(inside(r, screen) for r in rects(browser, "[data-testid=wallboard-tile]"))
    finally:
        browser.set_window_size(1920, 1200)


def test_queue_ids_that_are_javascript_words_and_ids_that_differ_by_case(browser, isolated_server):
    server = isolated_server()
    ids = ["constructor", "__proto__", "toString", "hasOwnProperty", "Sales", "sales"]
    for qid in ids:
        server.add_queue(qid, f"Queue {qid}")
    server.add_agent("__proto__", "Proto Agent", ["__proto__", "constructor"])
    waiting = {}
    for qid in ids:
        iid = server.create(call_id=f"Call-{qid}")
        server.transition(iid, "queued", queue=qid)
        waiting[qid] = iid
    server.transition(waiting["sales"], "completed")
    browser.get(server.base_url + "/")
    wait_until(lambda: status_text(browser) == "live", 10)
    browser.get_log("browser")              # what the previous page logged
    tiles = wait_until(lambda: (lambda t: t if len(t) == len(ids) else None)(
        browser.find_elements(By.CSS_SELECTOR, "[data-testid=queue-tile]")), 10)
    by_id = {t.get_attribute("data-queue"): t for t in tiles}
    assert set(by_id) == set(ids)
    for qid in ids:
        count = by_id[qid].find_element(By.CSS_SELECTOR, "[data-testid=waiting-count]").text
        assert count == ("0" if qid == "sales" else "1"), (qid, count)
    assert by_id["__proto__"].find_element(By.CSS_SELECTOR, "[data-testid=queue-open]").text == "Queue __proto__"
    row = browser.find_element(By.CSS_SELECTOR, "[data-testid=agent-row]")
    assert row.get_attribute("data-agent") == "__proto__" and "Proto Agent" in row.text
    # The wallboard too, with the ids kept exactly as written.
    browser.get(f"{server.base_url}/wallboard?queues=__proto__,Sales,constructor")
    wait_until(lambda: sorted(wall_ids(browser)) == ["Sales", "__proto__", "constructor"], 10)
    assert severe_logs(browser) == []


def test_reducer_and_derived_figures(browser, sightline):
    browser.get(sightline.base_url + "/")
    wait_until(lambda: status_text(browser) == "live", 10)
    result = run_module(browser, """
      const { initialState, reduce, describeConnection } = await import("/state.js");
      const { derive, queueLevel, sortQueues, interactionRows } = await import("/derive.js");
      const out = {};
      const q = (id, extra = {}) => ({ id, name: "Q " + id, serviceLevelSeconds: 20,
        thresholds: { waitWarningSeconds: 30, waitAlarmSeconds: 60, holdAlarmSeconds: 120, serviceLevelTargetPercent: 80, ...extra.thresholds } });
      // A queue's figures of today, as PostgreSQL counts them (FIGURES).
      const todayOf = (extra = {}) => ({ offered: 3, answered: 1, serviceLevelPercent: 100, abandonPercent: 0, ...extra.today });
      // Messages come from JSON.parse, where "__proto__" is an own key (in a literal it is not).
      // FIGURES with the queue entries of `queuesJSON` (a JSON text) and the agent entries of `agents`.
      const figures = (queuesJSON, agents = {}) => JSON.parse('{"timeZone": "UTC", "interval": {"start": "2026-11-24T10:15:00Z", "end": "2026-11-24T10:30:00Z"}, '
        + '"day": {"start": "2026-11-24T00:00:00Z", "end": "2026-11-25T00:00:00Z"}, "asOf": "2026-11-24T10:15:02Z", '
        + '"queues": ' + queuesJSON + ', "agents": ' + JSON.stringify(agents) + "}");
      const T = JSON.stringify(todayOf());
      const at = Date.parse("2026-11-24T10:15:00Z");
      let s = reduce(initialState(), { type: "snapshot", position: "1.1", serverTime: "2026-11-24T10:15:00Z", database: "up", at,
        board: { queues: [q("__proto__"), q("constructor"), q("ok")], agents: [{ id: "a1", name: "Ann", queues: ["__proto__"] }],
                 interactions: [{ id: 7, callId: "c", state: "queued", queue: "__proto__", queuedAt: "2026-11-24T10:14:00Z", stateSince: "2026-11-24T10:14:00Z", version: 2 }],
                 depth: JSON.parse('{"__proto__": [["2026-11-24T10:14:30Z", 1]]}'),
                 figures: figures(`{"__proto__": {"today": ${T}}, "constructor": {"today": ${T}}, "ok": {"today": ${T}}}`) } });
      out.queues = [...s.queues.keys()];
      // Without "alerts" in the snapshot the server has no alert rules; with it (even empty) it has.
      out.alertsSeen = [s.alertsSeen, reduce(s, { type: "snapshot", alerts: [], board: {}, at }).alertsSeen];
      const firing = reduce(s, { type: "snapshot", board: {}, at, alerts: [{ id: "a1", rule: "longest_wait", state: "firing" }] });
      out.alertFlow = [firing.alerts.size, reduce(firing, { type: "alert", alert: { id: "a1", state: "resolved" }, at }).alerts.size];
      out.depthKeys = [...s.depth.keys()];
      out.objectPrototypeUntouched = Object.getPrototypeOf({}) === Object.prototype && ({}).polluted === undefined;
      let v = derive(s, at);
      out.protoWaiting = v.queues.get("__proto__").waiting.length;
      out.protoLevel = v.queues.get("__proto__").level;           // 60 s waiting: alarm
      // A delta: 7 is answered by a1 on __proto__; then PostgreSQL's figures of __proto__ change.
      const before = s;
      s = reduce(s, { type: "deltas", position: "1.2", at: at + 1000, deltas: [{ position: "1.2",
        transition: { interaction: 7, from: "queued", to: "delivery_pending" },
        interaction: { id: 7, callId: "c", state: "delivery_pending", queue: "__proto__", agent: "a1", stateSince: "2026-11-24T10:15:01Z", version: 3 } }] });
      const beforeFigures = s;
      s = reduce(s, { type: "figures", serverTime: "2026-11-24T10:15:01Z", complete: false, at: at + 1000,
        figures: figures('{"__proto__": {"today": {"serviceLevelPercent": 40, "abandonPercent": 10}}, "unknown": {"today": {"serviceLevelPercent": 1}}}') });
      out.pure = before.interactions.get(7).state === "queued" && beforeFigures.figures.queues.get("__proto__").today.serviceLevelPercent === 100;
      v = derive(s, at + 1000);
      out.after = { state: s.interactions.get(7).state, position: s.position, sl: s.figures.queues.get("__proto__").today.serviceLevelPercent,
                    activity: v.agents[0].activity, here: v.queues.get("__proto__").here, level: v.queues.get("__proto__").level,
                    reasons: v.queues.get("__proto__").reasons, unknownQueue: s.queues.has("unknown") };
      // Completion removes it.
      s = reduce(s, { type: "deltas", position: "1.3", at: at + 2000, deltas: [{ position: "1.3", transition: { interaction: 7, to: "completed" }, interaction: null }] });
      out.completed = s.interactions.has(7);
      // Levels: each threshold from the queue's configuration; the worst wins.
      const lvl = (extra, longest = 0, waiting = 0) => queueLevel(q("x", extra), longest, waiting, todayOf(extra));
      out.levels = [
        lvl({}).level,
        lvl({}, 31, 1).level, lvl({}, 61, 1).level, lvl({}, 61, 0).level,
        lvl({ today: { serviceLevelPercent: 79 } }).level,
        lvl({ today: { serviceLevelPercent: 33, abandonPercent: 67 } }).level,
        lvl({ today: { serviceLevelPercent: 33, abandonPercent: 67 }, thresholds: { abandonWarningPercent: 5, abandonAlarmPercent: 10 } }).level,
        lvl({ today: { abandonPercent: 6 }, thresholds: { abandonWarningPercent: 5, abandonAlarmPercent: 10 } }).level,
        lvl({ today: { serviceLevelPercent: 50 }, thresholds: { serviceLevelAlarmPercent: 60 } }).level,
        lvl({ today: { serviceLevelPercent: null, abandonPercent: null } }).level,
      ];
      // Severity order: alarm first, then longest wait; by name numeric-aware.
      const sum = (id, name, level, longest) => ({ id, name, level, longest });
      out.severity = sortQueues([sum("a", "A", "ok", 0), sum("b", "B", "alarm", 5), sum("c", "C", "warn", 9), sum("d", "D", "alarm", 50)]).map((x) => x.id);
      out.byName = sortQueues([sum("q10", "Q10", "ok", 0), sum("q2", "Q2", "alarm", 0), sum("q1", "Q1", "ok", 0)], "name").map((x) => x.id);
      // Tables: agents by name (a collator: case and accents as people read them), by handled
      // (ties in name order), reversed; interactions filtered by queue and sorted by wait.
      const { agentRows } = await import("/derive.js");
      const t = reduce(s, { type: "snapshot", at, board: { queues: [q("ok")], interactions: [
          { id: 1, state: "queued", queue: "ok", stateSince: "2026-11-24T10:14:00Z" }, { id: 2, state: "queued", queue: "x", stateSince: "2026-11-24T10:13:00Z" },
          { id: 3, state: "queued", queue: "ok", stateSince: "2026-11-24T10:12:00Z" }],
        agents: [{ id: "e", name: "Émile", queues: ["ok"] }, { id: "b", name: "bob", queues: [] }, { id: "a", name: "Ann", queues: ["ok"] }],
        figures: figures("{}", { e: { today: { handled: 1 } }, b: { today: { handled: 5 } }, a: { today: { handled: 1 } } }) } });
      const tv = derive(t, at);
      const ids = (rows) => rows.map((r) => r.agent.id);
      out.agentSorts = [ids(agentRows(tv).rows), ids(agentRows(tv, { sort: "name", dir: -1 }).rows),
                        ids(agentRows(tv, { sort: "handled", dir: -1 }).rows), ids(agentRows(tv, { queue: "ok" }).rows)];
      out.calls = interactionRows(t, at, { queue: "ok" }).rows.map((i) => i.id).concat(interactionRows(t, at, { sort: "wait", dir: -1 }).rows.map((i) => i.id));
      // A wallboard token's view: counts per queue (ids kept as sent), then a wallboard message
      // replacing them, and PostgreSQL's figures; the longest wait runs from longestWaitingSince.
      let w = reduce(initialState(), { type: "snapshot", view: "wallboard", position: "2.1", serverTime: "2026-11-24T10:15:00Z", at,
        board: { queues: [q("__proto__")], agents: [], interactions: [],
                 figures: figures(`{"__proto__": {"today": ${T}}}`) },
        wallboard: JSON.parse('{"__proto__": {"waiting": 3, "longestWaitingSince": "2026-11-24T10:14:00Z", "talking": 2, "onHold": 1, "agents": 4}}') });
      const wv = (st, now) => { const x = derive(st, now).queues.get("__proto__");
        return [x.waitingCount, x.longest, x.talking, x.onHold, x.agents, x.level, x.serviceLevel]; };
      out.wall = [wv(w, at)];
      w = reduce(w, { type: "wallboard", position: "2.2", at: at + 5000,
        queues: JSON.parse('{"__proto__": {"waiting": 0, "longestWaitingSince": null, "talking": 1, "onHold": 0, "agents": 4}}') });
      w = reduce(w, { type: "figures", serverTime: "2026-11-24T10:15:05Z", complete: false, at: at + 5000,
        figures: figures('{"__proto__": {"today": {"serviceLevelPercent": 50}}}') });
      out.wall.push(wv(w, at + 5000), w.position, w.view);
      out.stale = describeConnection(reduce(s, { type: "status", database: "down", since: "2026-11-24T10:14:00Z", at: at + 3000 }), at + 63000);
      return out;
    """)
    assert result["queues"] == ["__proto__", "constructor", "ok"]
    assert result["alertsSeen"] == [False, True]
    assert result["alertFlow"] == [1, 0]
    assert result["depthKeys"] == ["__proto__"]
    assert result["objectPrototypeUntouched"]
    assert result["protoWaiting"] == 1 and result["protoLevel"] == "alarm"
    assert result["pure"], "reduce changed the state it was given"
    assert result["after"] == {"state": "delivery_pending", "position": "1.2", "sl": 40, "activity": "ringing", "here": 1,
                               "level": "warn", "reasons": ["service level under target 80%"], "unknownQueue": False}
    assert result["completed"] is False
    assert result["levels"] == ["ok", "warn", "alarm", "ok", "warn", "warn", "alarm", "warn", "alarm", "ok"]
    assert result["severity"] == ["d", "b", "c", "a"]
    assert result["byName"] == ["q1", "q2", "q10"]
    assert result["stale"].startswith("stale: database unreachable, data ")
    assert result["agentSorts"] == [["a", "b", "e"], ["e", "b", "a"], ["b", "a", "e"], ["a", "e"]]
    assert result["calls"] == [3, 1, 1, 2, 3]
    assert result["wall"] == [[3, 60, 2, 1, 4, "alarm", 100], [0, 0, 1, 0, 4, "warn", 50], "2.2", "wallboard"]


def test_reducer_takes_presence_and_the_figures_postgresql_counted(browser, sightline):
    """The protocol's presence deltas and `figures` messages (docs/protocol.md): the page shows
    PostgreSQL's figures as they are, replaces what a partial message sends, everything on a
    complete one."""
    browser.get(sightline.base_url + "/")
    wait_until(lambda: status_text(browser) == "live", 10)
    result = run_module(browser, """
      const { initialState, reduce } = await import("/state.js");
      const { derive } = await import("/derive.js");
      const at = Date.parse("2026-11-24T10:15:00Z");
      const fig = (sl, ready) => ({ interval: { offered: 1, serviceLevelPercent: sl }, today: { offered: 4, serviceLevelPercent: sl, abandonPercent: 0, asaSeconds: 11.5, ahtSeconds: 242.7 },
                                    now: { agentsReady: ready, agentsInteracting: 0, agentsBusyElsewhere: 1, agentsNotReady: 2, agentsLoggedOut: 5 } });
      const figures = (queues, agents) => JSON.parse(JSON.stringify({ timeZone: "UTC", interval: { start: "2026-11-24T10:15:00Z", end: "2026-11-24T10:30:00Z" },
        day: { start: "2026-11-24T00:00:00Z", end: "2026-11-25T00:00:00Z" }, asOf: "2026-11-24T10:15:02Z", queues, agents }));
      const q = (id) => ({ id, name: id, thresholds: { waitWarningSeconds: 30, waitAlarmSeconds: 60, serviceLevelTargetPercent: 80 }, serviceLevel: { targetPercent: 80 },
                           today: { serviceLevelPercent: 100 } });   // what servers before FIGURES counted: never shown
      let s = reduce(initialState(), { type: "snapshot", position: "1.1", serverTime: "2026-11-24T10:15:00Z", database: "up", at,
        board: { queues: [q("sales"), q("support")], interactions: [], depth: {},
                 agents: [{ id: "ann", name: "Ann", queues: ["sales"], presence: { state: "not_ready", reason: "break", since: "2026-11-24T10:02:11Z", version: 7 } }],
                 presenceReasons: [{ code: "break", name: "Break" }],
                 figures: figures({ sales: fig(90, 3), support: fig(95, 1) }, { ann: { today: { handled: 11, ahtSeconds: 229.1 } } }) } });
      const out = {};
      let v = derive(s, at);
      const pick = (x) => ({ sl: x.serviceLevel, asa: x.asa, aht: x.aht, ready: x.ready, notReady: x.notReady, elsewhere: x.elsewhere, level: x.level });
      out.snapshot = { sales: pick(v.queues.get("sales")), ann: [v.agents[0].activity, v.agents[0].since, v.agents[0].handled, v.agents[0].aht],
                       reason: s.presenceReasons.get("break") };
      s = reduce(s, { type: "deltas", position: "1.2", at: at + 1000, deltas: [{ position: "1.2",
        presence: { id: 9, agent: "ann", from: "not_ready", to: "ready", at: "2026-11-24T10:15:01Z", version: 8 }, agent: "ann",
        agentPresence: { state: "ready", reason: null, since: "2026-11-24T10:15:01Z", version: 8 } }] });
      out.afterPresence = [s.position, derive(s, at + 1000).agents[0].activity, s.agents.get("ann").presence.version];
      s = reduce(s, { type: "figures", serverTime: "2026-11-24T10:15:03Z", complete: false, figures: figures({ sales: fig(70, 0) }, {}), at: at + 2000 });
      v = derive(s, at + 2000);
      out.partial = [pick(v.queues.get("sales")), pick(v.queues.get("support")).sl, v.agents[0].handled];
      s = reduce(s, { type: "figures", serverTime: "2026-11-24T10:30:00Z", complete: true, figures: figures({ support: fig(50, 2) }, {}), at: at + 3000 });
      v = derive(s, at + 3000);
      out.complete = [v.queues.get("sales").serviceLevel, v.queues.get("sales").ready, v.queues.get("support").serviceLevel];
      return out;
    """)
    assert result["snapshot"] == {"sales": {"sl": 90, "asa": 11.5, "aht": 242.7, "ready": 3, "notReady": 2, "elsewhere": 1, "level": "ok"},
                                  "ann": ["not_ready", "2026-11-24T10:02:11Z", 11, 229.1], "reason": "Break"}
    assert result["afterPresence"] == ["1.2", "ready", 8]
    assert result["partial"] == [{"sl": 70, "asa": 11.5, "aht": 242.7, "ready": 0, "notReady": 2, "elsewhere": 1, "level": "warn"}, 95, 11]
    # A complete message replaces everything: sales has no figures left, so it shows none (not a
    # queue's `today` of an older server: PostgreSQL's figures only), and its staffing is what the live board says (Ann is ready and
    # has no call).
    assert result["complete"] == [None, 1, 50]


def test_presence_and_the_figures_of_the_server_on_the_board_and_in_the_drill_down(browser, isolated_server):
    server = isolated_server()
    server.add_queue("care", "Care", service_level_seconds=20)
    for aid, name in (("zoe", "Zoe Ready"), ("yan", "Yan Break")):
        server.add_agent(aid, name, ["care"])
        server.ok("POST", f"/api/agents/{aid}/presence", {"state": "ready"})
    server.ok("POST", "/api/agents/yan/presence", {"state": "not_ready", "reason": "break"})
    for _ in range(2):                     # two callers answered by Zoe and finished
        iid = server.create()
        server.transition(iid, "queued", queue="care")
        server.transition(iid, "delivery_pending", agent="zoe")
        server.transition(iid, "delivered")
        server.transition(iid, "after_call_work")
        server.transition(iid, "completed")
    browser.get(server.base_url + "/")
    wait_until(lambda: status_text(browser) == "live", 10)
    browser.get_log("browser")

    def tile(testid):
        return browser.find_element(By.CSS_SELECTOR, f"[data-testid=queue-tile][data-queue=care] [data-testid={testid}]").text
    # Staffing and ASA as PostgreSQL counted them (figures), presence with its reason.
    wait_until(lambda: (tile("agents-ready"), tile("agents-not-ready")) == ("1", "1"), 10)
    wait_until(lambda: tile("asa") != "—", 10)
    yan = browser.find_element(By.CSS_SELECTOR, "[data-testid=agent-row][data-agent=yan]").text
    assert "not ready · Break" in yan, yan
    # The drill-down lists today's 15-minute rows (GET /api/figures) with a trend chart.
    browser.find_element(By.CSS_SELECTOR, "[data-testid=queue-tile][data-queue=care] [data-testid=queue-open]").click()
    def sums():
        """offered, answered, abandoned over the rows (the calls may straddle an interval boundary)"""
        cells = browser.execute_script("return [...document.querySelectorAll("
                                       "'[data-testid=detail-intervals] [data-testid=interval-row]')].map(r => [...r.cells].map(c => c.textContent))")
        return [sum(int(c[k]) for c in cells) for k in (1, 2, 3)] if cells else None
    # The live figures may lag the log by a second or so: wait for both calls.
    wait_until(lambda: sums() == [2, 2, 0], 30)
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=detail-intervals] svg.trend")
    browser.execute_script("document.querySelector('[data-testid=queue-detail]').scrollIntoView()")
    screenshot(browser, server, "board-drill-down-figures.png")
    assert severe_logs(browser) == []


WALL_FIGURES = """
  return Object.fromEntries([...document.querySelectorAll('[data-testid=wallboard-tile]')].map(t => [t.dataset.queue,
    Object.fromEntries([...t.querySelectorAll('[data-testid^=wall-]')].map(e => [e.dataset.testid, e.textContent]))]))"""


def seconds(text):
    """'1:05' -> 65 (the wallboard's durations)."""
    parts = [int(p) for p in text.split(":")]
    return sum(p * 60 ** n for n, p in enumerate(reversed(parts)))


def test_a_wallboard_token_shows_the_same_figures_as_an_admin_token_and_no_call_or_agent(browser, isolated_server):
    server = isolated_server(bootstrap=True)
    server.add_queue("sales", "Sales", waitWarningSeconds=1, waitAlarmSeconds=600)
    server.add_queue("support", "Support")
    server.add_agent("ag-ann", "Ann Hallway", ["sales"])
    server.add_agent("ag-bo", "Bo Corridor", ["sales", "support"])
    calls = []

    def call(queue, *steps):
        call_id = unique("wallcall")
        iid = server.create(call_id)
        calls.append(call_id)
        server.transition(iid, "queued", queue=queue)
        for to, agent in steps:
            server.transition(iid, to, agent=agent)

    call("sales", ("delivery_pending", "ag-ann"), ("delivered", None), ("after_call_work", None), ("completed", None))
    call("sales", ("completed", None))                                  # abandoned
    call("sales", ("delivery_pending", "ag-bo"), ("delivered", None), ("held", "ag-bo"))
    call("sales", ("delivery_pending", "ag-ann"), ("delivered", None))
    call("sales")
    call("sales")
    call("support")
    admin, wall = server.mint_token("admin"), server.mint_token("wallboard")
    try:
        browser.get(f"{server.base_url}/wallboard#token={admin}")
        wait_until(lambda: status_text(browser) == "live", 10)
        assert "token" not in browser.current_url           # the page took it out of the address bar
        browser.get_log("browser")                          # what the previous page logged
        # Complete once the queue waits past its 1 s warning and SQL's figures arrived.
        full = wait_until(lambda: (lambda f: f if f.get("sales", {}).get("wall-level", "").endswith("Warning")
                                   and f["sales"]["wall-asa"] != "—" else None)(browser.execute_script(WALL_FIGURES)), 10)
        assert browser.execute_script("return window.sightline.state.view") == "full"
        sales = full["sales"]
        assert (sales["wall-waiting"], sales["wall-talking"], sales["wall-onhold"], sales["wall-agents"]) == ("2", "1", "1", "2"), sales
        assert (full["support"]["wall-waiting"], full["support"]["wall-agents"]) == ("1", "1"), full["support"]
        assert sales["wall-abandoned"] != "—" and sales["wall-sl"] != "—", sales

        browser.get(f"{server.base_url}/wallboard#token={wall}")
        wait_until(lambda: browser.execute_script("return window.sightline.state.view") == "wallboard", 10)
        wait_until(lambda: status_text(browser) == "live", 10)
        browser.get_log("browser")                          # the admin page's socket, cut by the reload
        state = browser.execute_script("const s = window.sightline.state; return [s.interactions.size, s.agents.size]")
        assert state == [0, 0]

        def same_as_full():
            now = browser.execute_script(WALL_FIGURES)
            strip = lambda f: {q: {k: v for k, v in figs.items() if k != "wall-longest"} for q, figs in f.items()}
            return now if strip(now) == strip(full) else None
        try:
            shown = wait_until(same_as_full, 10)
        except AssertionError:
            raise AssertionError(f"wallboard token {browser.execute_script(WALL_FIGURES)} != admin {full}")
        # The longest wait ticks from the server's longestWaitingSince.
        first = seconds(shown["sales"]["wall-longest"])
        assert first >= seconds(full["sales"]["wall-longest"])
        wait_until(lambda: seconds(browser.execute_script(WALL_FIGURES)["sales"]["wall-longest"]) >= first + 2, 10)
        screenshot(browser, server, "wallboard-token.png")
        page = browser.page_source
        leaks = [w for w in calls + ["ag-ann", "ag-bo", "Ann Hallway", "Bo Corridor"] if w in page]
        assert not leaks, leaks
        assert severe_logs(browser) == []

        # The board with a wallboard token says so, links to the wallboard and shows the queue tiles only.
        browser.get(f"{server.base_url}/#token={wall}")
        notice = wait_until(lambda: (lambda n: n if n and n[0].is_displayed() else None)(
            browser.find_elements(By.CSS_SELECTOR, "[data-testid=wallboard-token-notice]")), 10)[0]
        assert "wallboard token" in notice.text
        assert notice.find_element(By.TAG_NAME, "a").get_attribute("href").endswith("/wallboard")
        wait_until(lambda: {t.get_attribute("data-queue"): t.find_element(By.CSS_SELECTOR, "[data-testid=waiting-count]").text
                            for t in browser.find_elements(By.CSS_SELECTOR, "[data-testid=queue-tile]")} == {"sales": "2", "support": "1"}, 10)
        assert not browser.find_element(By.CSS_SELECTOR, "[data-testid=path-search]").is_displayed()
        screenshot(browser, server, "board-wallboard-token.png")
        page = browser.page_source
        assert not [w for w in calls + ["Ann Hallway", "Bo Corridor"] if w in page]
        assert severe_logs(browser) == []
    finally:
        browser.execute_script("localStorage.removeItem('sightline.token')")
