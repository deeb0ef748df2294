// The supervisor's board: the state comes from the reducer (state.js) fed by the transport
// (live.js); this file only draws it. At most one render per animation frame; every panel is
// built once and updated in place by key, long tables are windowed, and the 1-second tick
// re-derives the figures but writes only what changed (timer text, a level crossing a threshold).
import { Live, authHeaders } from "./live.js";
import { connectionLevel, describeConnection, initialState, reduce, serverNow } from "./state.js";
import {
  ACTIVITY_LABEL, LEVEL_ICON, LEVEL_TEXT, STATE_LABEL, compareNames, sortQueues, activityLabel, agentRows, count, derive, duration, interactionRows,
  percent, since, stateLabel,
} from "./derive.js";
import { KeyedTable, el, frameScheduler, setAttr, setClass, setOptions, setText, show, syncKeyed } from "./dom.js";
import { PathView } from "./path.js";

const $ = (id) => document.getElementById(id);
let state = initialState();
let view = null;
const ui = {
  detail: null,                                   // queue id shown in the detail panel
  agents: { queue: "", activity: "", sort: "name", dir: 1 },
  calls: { queue: "", status: "", agent: "", sort: "wait", dir: 1 },
};

const agentName = (id) => (id == null ? "—" : state.agents.get(id)?.name || id);
const queueName = (id) => (id == null ? "—" : state.queues.get(id)?.name || id);
const path = new PathView({ root: $("path"), panel: $("path-panel"), title: $("path-title"), agentName, queueName });

export function dispatch(event) {
  state = reduce(state, { ...event, at: Date.now() });
  if (event.type === "deltas") path.touched(event.deltas.map((d) => d.transition).filter(Boolean));
  schedule();
}

const live = new Live({
  position: () => state.position,
  onMessage: (msg) => dispatch(msg),
  onConnection: (c) => dispatch({ type: "connection", ...c }),
});
const schedule = frameScheduler(render);
setInterval(schedule, 1000);

// -- queue tiles -------------------------------------------------------------------------------
const tiles = new Map();
const localDepth = new Map();   // queue id -> [[ms, n]] sampled by this page every 30 s
setInterval(() => {
  if (!view) return;
  for (const [id, s] of view.queues) {
    let list = localDepth.get(id);
    if (!list) localDepth.set(id, (list = []));
    list.push([view.now, s.waitingCount]);
    while (list.length && view.now - list[0][0] > 3600e3) list.shift();
  }
}, 30000);

function figure(label, testid) {
  const dd = el("b", { class: "v", "data-testid": testid });
  const dt = el("span", { class: "k", text: label });
  return { node: el("div", {}, [dt, dd]), dd, dt };
}

function buildTile(s) {
  const t = {};
  t.open = el("button", { type: "button", class: "tile-open", "aria-expanded": "false", "data-testid": "queue-open" });
  t.badge = el("span", { class: "badge", "data-testid": "queue-level" });
  t.why = el("p", { class: "why", "data-testid": "queue-why" });
  t.waiting = el("span", { "data-testid": "waiting-count" });
  t.longest = el("b", { "data-testid": "longest-wait" });
  t.sl = figure("service level", "service-level");
  t.ab = figure("abandoned", "abandoned");
  t.asa = figure("ASA", "asa");
  t.aht = figure("AHT", "aht");
  t.ready = figure("ready", "agents-ready");
  t.here = figure("on this queue", "agents-here");
  t.elsewhere = figure("busy elsewhere", "agents-elsewhere");
  t.notReady = figure("not ready", "agents-not-ready");
  t.spark = el("div", { class: "spark-box" });
  t.node = el("article", { class: "tile", "data-testid": "queue-tile" }, [
    el("header", {}, [el("h3", {}, t.open), t.badge]),
    t.why,
    el("div", { class: "big" }, [t.waiting, el("small", { text: "waiting" })]),
    el("div", { class: "longest" }, ["longest ", t.longest]),
    el("div", { class: "figs" }, [t.sl.node, t.ab.node, t.asa.node, t.aht.node]),
    el("div", { class: "agents" }, [t.ready.node, t.here.node, t.elsewhere.node, t.notReady.node]),
    t.spark,
  ]);
  t.node.dataset.queue = s.id;
  t.open.addEventListener("click", () => openDetail(s.id));
  return t;
}

function updateTile(t, s) {
  setClass(t.node, `tile level-${s.level}`);
  setAttr(t.node, "data-level", s.level);
  setText(t.open, s.name);
  setAttr(t.open, "aria-expanded", ui.detail === s.id ? "true" : "false");
  setText(t.badge, `${LEVEL_ICON.get(s.level)} ${LEVEL_TEXT.get(s.level)}`);
  setClass(t.badge, `badge level-${s.level}`);
  setText(t.why, s.reasons.join("; ") || "within thresholds");
  setText(t.waiting, s.waitingCount);
  setText(t.longest, duration(s.longest));
  const slBad = s.serviceLevel != null && s.serviceLevelTarget != null && s.serviceLevel < s.serviceLevelTarget;
  setText(t.sl.dt, s.serviceLevelTarget == null ? "service level" : `SL · target ${percent(s.serviceLevelTarget)}`);
  setText(t.sl.dd, s.serviceLevel == null ? "—" : `${percent(s.serviceLevel)}${slBad ? " ▼ under" : ""}`);
  setClass(t.sl.dd, slBad ? "v bad" : "v");
  setText(t.ab.dd, percent(s.abandon));
  setText(t.asa.dd, s.asa == null ? "—" : duration(s.asa));
  setText(t.aht.dd, s.aht == null ? "—" : duration(s.aht));
  // Without presence from the server an agent with no interaction is "no call", never "ready".
  setText(t.ready.dt, s.presenceKnown ? "ready" : "no call");
  setText(t.ready.dd, count(s.presenceKnown ? s.ready : s.free));
  setText(t.here.dd, count(s.here));
  setText(t.elsewhere.dd, count(s.elsewhere));
  setText(t.notReady.dd, count(s.notReady));
  const samples = [...(state.depth.get(s.id) || []).map(([at, n]) => [Date.parse(at), n]), ...(localDepth.get(s.id) || [])];
  const sig = samples.length ? `${samples.length}:${samples[samples.length - 1]}` : "";
  if (t.sparkSig !== sig) { t.sparkSig = sig; t.spark.innerHTML = sparkline(samples); }
}

function sparkline(points) {
  if (points.length < 2) return "";
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const max = Math.max(1, ...points.map((p) => p[1]));
  const xy = points.map(([t, n]) => `${(120 * (t - t0) / Math.max(1, t1 - t0)).toFixed(1)},${(26 - 24 * n / max).toFixed(1)}`);
  return `<svg class="spark" viewBox="0 0 120 28" role="img" aria-label="waiting callers over the last hour, at most ${max}"><polyline points="${xy.join(" ")}"/></svg>`;
}

function renderQueues() {
  const list = sortQueues(view.queues.values(), "name");
  syncKeyed($("queues"), tiles, list, (s) => s.id, (s) => {
    const t = buildTile(s);
    t.node._tile = t;
    return t.node;
  }, (node, s) => updateTile(node._tile, s));
  show(emptyQueues, list.length === 0);
}
const emptyQueues = el("p", { class: "empty", text: "No queue configured." });
$("queues").after(emptyQueues);

// -- queue detail (drill-down) -------------------------------------------------------------------
const DETAIL_LIMIT = 50;
const detailParts = {};
function openDetail(id) {
  ui.detail = id;
  show($("detail-panel"), true);
  schedule();
  requestAnimationFrame(() => $("detail-panel").scrollIntoView({ block: "nearest" }));
}
function closeDetail() {
  const id = ui.detail;
  ui.detail = null;
  show($("detail-panel"), false);
  schedule();
  const tile = id != null && tiles.get(id);
  if (tile) tile._tile.open.focus();
}
$("detail-close").addEventListener("click", closeDetail);

function buildDetail() {
  const d = detailParts;
  d.figs = el("div", { class: "figs wide", "data-testid": "detail-figures" });
  d.waitingTitle = el("h3", {});
  d.waiting = el("ol", { class: "waiting", "data-testid": "detail-waiting" });
  d.waitingCache = new Map();
  d.waitingMore = el("p", { class: "empty" });
  d.agentsTitle = el("h3", {});
  d.agents = el("tbody", {});
  d.agentsCache = new Map();
  d.intervals = el("div", { class: "intervals", "data-testid": "detail-intervals" });
  $("detail").append(
    el("div", { class: "detail-col" }, [el("h3", { text: "Today" }), d.figs, el("h3", { text: "15-minute intervals" }), d.intervals]),
    el("div", { class: "detail-col" }, [d.waitingTitle, d.waiting, d.waitingMore]),
    el("div", { class: "detail-col" }, [d.agentsTitle, el("div", { class: "scroll" }, el("table", { class: "table" }, [
      el("thead", {}, el("tr", {}, ["Agent", "State", "For", "Queues", "Interaction", "Handled", "AHT"].map((h) => el("th", { scope: "col", text: h })))), d.agents]))]),
  );
}

function renderDetail() {
  if (ui.detail == null) return;
  const s = view.queues.get(ui.detail);
  if (!s) { setText($("detail-title"), `Queue ${ui.detail}: no longer configured`); return; }
  if (!detailParts.figs) buildDetail();
  const d = detailParts;
  setText($("detail-title"), `${s.name} · ${LEVEL_ICON.get(s.level)} ${LEVEL_TEXT.get(s.level)}`);
  const figs = [
    ["offered", count(s.offered)], ["answered", count(s.answered)], ["abandoned", count(s.abandoned)],
    ["service level", `${percent(s.serviceLevel)} (target ${percent(s.serviceLevelTarget)})`], ["abandon rate", percent(s.abandon)],
    ["ASA", s.asa == null ? "—" : duration(s.asa)], ["AHT", s.aht == null ? "—" : duration(s.aht)],
    ["waiting", String(s.waiting.length)], ["longest wait", duration(s.longest)],
    ["ready", count(s.ready)], ["not ready", count(s.notReady)], ["logged out", count(s.loggedOut)],
  ];
  if (d.figs._sig !== JSON.stringify(figs)) {
    d.figs._sig = JSON.stringify(figs);
    d.figs.replaceChildren(...figs.map(([k, v]) => el("div", {}, [el("span", { class: "k", text: k }), el("b", { class: "v", text: v })])));
  }
  renderIntervals(d.intervals, s);
  const shown = s.waiting.slice(0, DETAIL_LIMIT);
  setText(d.waitingTitle, `Waiting callers, longest first (${shown.length < s.waiting.length ? `${shown.length} of ${s.waiting.length}` : s.waiting.length})`);
  syncKeyed(d.waiting, d.waitingCache, shown, (i) => i.id, (i) => {
    const li = el("li", { "data-testid": "waiting-caller", "data-interaction": String(i.id) });
    li._wait = el("span", { class: "num" });
    li.append(el("a", { href: "#", "data-open": String(i.id), text: `#${i.id}` }), " ", el("span", { class: "muted", text: i.callId }), " waiting ", li._wait);
    return li;
  }, (li, i) => setText(li._wait, since(i.queuedAt || i.stateSince, view.now)));
  setText(d.waitingMore, s.waiting.length === 0 ? "Nobody is waiting." : shown.length < s.waiting.length ? `${s.waiting.length - shown.length} more not shown.` : "");
  setText(d.agentsTitle, `Agents of this queue (${s.members.length})`);
  syncKeyed(d.agents, d.agentsCache, s.members, (r) => r.agent.id, buildAgentRow, updateAgentRow);
}

// Today's 15-minute rows of the queue in the detail panel, from GET /api/figures (the same SQL
// as the live figures), fetched when the panel opens and again every minute or new interval; the
// current interval's row is the live one.
const intervals = { queue: null, rows: null, error: null, loadedAt: 0, interval: null, loading: false };
function loadIntervals(id) {
  const current = state.figures?.interval?.start ?? null;
  const fresh = intervals.queue === id && Date.now() - intervals.loadedAt < 60000 && intervals.interval === current;
  if (intervals.loading || fresh) return;
  intervals.loading = true;
  fetch(`/api/figures?granularity=interval&queues=${encodeURIComponent(id)}`, { headers: authHeaders() })
    .then(async (res) => {
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(res.status === 404 || res.status === 405 ? "This server does not send interval figures yet." : `Interval figures: ${body.error?.message || res.statusText}`);
      intervals.rows = new Map(Object.entries(body.queues || {})).get(id) || [];
      intervals.error = null;
    })
    .catch((e) => { intervals.rows = null; intervals.error = e.message; })
    .finally(() => {
      Object.assign(intervals, { loading: false, queue: id, loadedAt: Date.now(), interval: current });
      schedule();
    });
}

function renderIntervals(box, s) {
  if (!state.figures) {     // a server without figures has no figure history either
    if (box._sig !== "absent") { box._sig = "absent"; box.replaceChildren(el("p", { class: "empty", text: "This server does not send interval figures yet." })); }
    return;
  }
  loadIntervals(s.id);
  let rows = intervals.queue === s.id ? intervals.rows : null;
  if (rows && s.interval && state.figures?.interval) {
    const start = state.figures.interval.start;
    rows = rows.map((r) => (r.start === start ? { ...r, figures: s.interval } : r));
  }
  const sig = rows ? JSON.stringify(rows) : `none:${intervals.error}`;
  if (box._sig === sig) return;
  box._sig = sig;
  if (!rows) {
    box.replaceChildren(el("p", { class: "empty", text: intervals.error || "Loading interval figures…" }));
    return;
  }
  const shown = rows.filter((r) => (r.figures?.offered ?? 0) > 0 || r.start === state.figures?.interval?.start);
  if (shown.length === 0) {
    box.replaceChildren(el("p", { class: "empty", text: "No caller was offered to this queue yet today." }));
    return;
  }
  const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  const table = el("table", { class: "table" }, [
    el("thead", {}, el("tr", {}, ["Interval", "Offered", "Answered", "Abandoned", "Service level", "ASA", "AHT"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, shown.map(({ start, figures: f = {} }) => el("tr", { "data-testid": "interval-row" }, [
      hhmm(start), count(f.offered), count(f.answered), count(f.abandoned),
      percent(f.serviceLevelPercent), f.asaSeconds == null ? "—" : duration(f.asaSeconds), f.ahtSeconds == null ? "—" : duration(f.ahtSeconds),
    ].map((v) => el("td", { text: v }))))),
  ]);
  box.replaceChildren(trendChart(shown, s.serviceLevelTarget), el("div", { class: "scroll" }, table));
}

/// Service level per interval, with axes (time below, 0-100% left) and the target as a line.
function trendChart(rows, target) {
  const W = 320, H = 120, L = 34, B = 20, T = 8, R = 8;
  const sl = (r) => r.figures?.serviceLevelPercent;
  const pts = rows.filter((r) => typeof sl(r) === "number");
  const x = (n) => L + (W - L - R) * (rows.length <= 1 ? 0.5 : n / (rows.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / 100);
  let svg = `<svg class="trend" viewBox="0 0 ${W} ${H}" role="img" aria-label="service level per 15-minute interval today">`;
  svg += `<line class="ax" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/><line class="ax" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/>`;
  for (const v of [0, 50, 100]) svg += `<text class="tick" x="${L - 4}" y="${y(v) + 4}" text-anchor="end">${v}%</text>`;
  const label = (n) => new Date(rows[n].start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  svg += `<text class="tick" x="${x(0)}" y="${H - 4}" text-anchor="start">${label(0)}</text>`;
  if (rows.length > 1) svg += `<text class="tick" x="${x(rows.length - 1)}" y="${H - 4}" text-anchor="end">${label(rows.length - 1)}</text>`;
  if (target != null) svg += `<line class="target" x1="${L}" y1="${y(target)}" x2="${W - R}" y2="${y(target)}"><title>target ${target}%</title></line><text class="tick" x="${W - R}" y="${y(target) - 3}" text-anchor="end">target ${target}%</text>`;
  const line = rows.map((r, n) => (typeof sl(r) === "number" ? `${x(n).toFixed(1)},${y(sl(r)).toFixed(1)}` : null)).filter(Boolean);
  if (pts.length > 1) svg += `<polyline class="sl-line" points="${line.join(" ")}"/>`;
  for (const p of line) { const [px, py] = p.split(","); svg += `<circle class="sl-dot" cx="${px}" cy="${py}" r="2.5"/>`; }
  svg += `</svg>`;
  const box = el("div", {});
  box.innerHTML = svg;
  return box.firstChild;
}

// -- agents table --------------------------------------------------------------------------------
function buildAgentRow(r) {
  const tr = el("tr", { "data-testid": "agent-row" });
  tr.dataset.agent = r.agent.id;
  tr._name = el("td", {});
  tr._state = el("span", { class: "pill" });
  tr._for = el("td", { class: "num" });
  tr._queues = el("td", { class: "muted" });
  tr._link = el("a", { href: "#" });
  tr._handled = el("td", { class: "num" });
  tr._aht = el("td", { class: "num" });
  tr.append(tr._name, el("td", {}, tr._state), tr._for, tr._queues, el("td", {}, tr._link), tr._handled, tr._aht);
  return tr;
}

function updateAgentRow(tr, r) {
  setText(tr._name, r.agent.name);
  const reason = r.presence && r.activity === "not_ready" && r.presence.reason != null
    ? ` · ${state.presenceReasons.get(r.presence.reason) ?? r.presence.reason}` : "";
  setText(tr._state, activityLabel(r.activity) + reason);
  setClass(tr._state, `pill a-${r.activity}`);
  setText(tr._for, since(r.since, view.now));
  setText(tr._queues, r.queues.map(queueName).join(", "));
  if (r.interaction) { setText(tr._link, `#${r.interaction.id}`); setAttr(tr._link, "data-open", String(r.interaction.id)); show(tr._link, true); }
  else { setText(tr._link, ""); setAttr(tr._link, "data-open", null); show(tr._link, false); }
  setText(tr._handled, count(r.handled));
  setText(tr._aht, r.aht == null ? "—" : duration(r.aht));
}

const agentsTable = new KeyedTable({
  scroller: $("agents-scroll"), tbody: $("agents"), columns: 7,
  key: (r) => r.agent.id, build: buildAgentRow, update: updateAgentRow,
});

// -- interactions table ----------------------------------------------------------------------------
function buildCallRow(i) {
  const tr = el("tr", { "data-testid": "call-row" });
  tr.dataset.interaction = String(i.id);
  tr._link = el("a", { href: "#", "data-open": String(i.id), text: `#${i.id}` });
  tr._state = el("span", { class: "pill" });
  tr._for = el("td", { class: "num" });
  tr._queue = el("td", {});
  tr._agent = el("td", {});
  tr._call = el("td", { class: "muted" });
  tr._transfer = el("td", {});
  tr.append(el("td", {}, tr._link), el("td", {}, tr._state), tr._for, tr._queue, tr._agent, tr._call, tr._transfer);
  return tr;
}

function updateCallRow(tr, i) {
  setAttr(tr, "data-version", String(i.version));
  setText(tr._state, stateLabel(i.state));
  setClass(tr._state, `pill s-${i.state}`);
  setText(tr._for, since(i.stateSince, view.now));
  setText(tr._queue, queueName(i.queue));
  setText(tr._agent, i.agent == null ? "—" : agentName(i.agent));
  setText(tr._call, i.callId);
  setText(tr._transfer, i.transfer ? `→ #${i.transfer.to} (${String(i.transfer.kind).replace("_", " ")} ${i.transfer.target ?? "outside your queues"})` : i.transferFrom ? `from #${i.transferFrom}` : "");
}

const callsTable = new KeyedTable({
  scroller: $("calls-scroll"), tbody: $("calls"), columns: 7,
  key: (i) => i.id, build: buildCallRow, update: updateCallRow,
});

// -- held calls ------------------------------------------------------------------------------------
const heldCache = new Map();
function renderHeld() {
  syncKeyed($("held"), heldCache, view.held, (i) => i.id, (i) => {
    const tr = el("tr", { "data-testid": "held-row", "data-interaction": String(i.id) });
    tr._for = el("td", { class: "num" });
    tr._by = el("td", {});
    tr._queue = el("td", {});
    tr.append(tr._for, tr._by, tr._queue, el("td", {}, el("a", { href: "#", "data-open": String(i.id), text: `#${i.id}` })));
    return tr;
  }, (tr, i) => {
    const q = state.queues.get(i.queue);
    const secs = (view.now - Date.parse(i.stateSince)) / 1000;
    const alarm = q && secs >= q.thresholds?.holdAlarmSeconds;
    setAttr(tr, "data-agent", i.heldBy ?? "");
    setClass(tr, alarm ? "alarm" : "");
    setText(tr._for, `${duration(secs)}${alarm ? " ✖ over limit" : ""}`);
    setText(tr._by, `${agentName(i.heldBy)} (${i.heldBy ?? "—"})`);
    setText(tr._queue, queueName(i.queue));
  });
  setText($("held-count"), view.held.length ? String(view.held.length) : "");
  show($("held-empty"), view.held.length === 0);
}

// -- alerts ----------------------------------------------------------------------------------------
const alertCache = new Map();
function renderAlerts() {
  // Critical first, then the newest: the list scrolls inside its panel.
  const list = [...state.alerts.values()].reverse().sort((a, b) => (b.severity === "critical") - (a.severity === "critical"));
  syncKeyed($("alerts"), alertCache, list, (a) => a.id, (a) => {
    const li = el("li", { "data-testid": "alert" });
    li.dataset.rule = String(a.rule ?? "");
    li.dataset.queue = String(a.queue ?? "");
    return li;
  }, (li, a) => {
    const critical = a.severity === "critical";
    setClass(li, `alert ${critical ? "critical" : "warning"}`);
    const when = a.since ? ` since ${new Date(a.since).toLocaleTimeString([], { hour12: false })}` : "";
    setText(li, `${critical ? "✖ Critical" : "▲ Warning"}${when}: ${a.message ?? a.rule ?? ""}`);
  });
  setText($("alerts-count"), list.length ? String(list.length) : "");
  const empty = $("alerts-empty");
  show(empty, list.length === 0);
  setText(empty, state.alertsSeen ? "No alert is firing." : "Alerts are not configured on this server.");
}

// -- filters and sorting ---------------------------------------------------------------------------
let filterInputs = null;
function renderFilters() {
  if (filterInputs && filterInputs[0] === state.queues && filterInputs[1] === state.agents && filterInputs[2] === state.figures) return;
  filterInputs = [state.queues, state.agents, state.figures];
  const queues = [...state.queues.values()].map((q) => [q.id, String(q.name ?? q.id)]).sort((a, b) => compareNames(a[1], b[1]));
  setOptions($("agents-queue"), queues);
  setOptions($("calls-queue"), queues);
  setOptions($("agents-activity"), [...ACTIVITY_LABEL].map(([a, label]) => [a, label]));
  setOptions($("calls-state"), [...STATE_LABEL.keys()].filter((s) => s !== "completed").map((s) => [s, stateLabel(s)]));
  setOptions($("calls-agent"), view.agents.map((r) => [r.agent.id, String(r.agent.name)]));
}

function bindFilter(id, part, field) {
  $(id).addEventListener("change", () => { ui[part][field] = $(id).value; schedule(); });
}
bindFilter("agents-queue", "agents", "queue");
bindFilter("agents-activity", "agents", "activity");
bindFilter("calls-queue", "calls", "queue");
bindFilter("calls-state", "calls", "status");
bindFilter("calls-agent", "calls", "agent");
for (const [attr, part] of [["sortAgents", "agents"], ["sortCalls", "calls"]]) {
  document.querySelectorAll(`[data-${attr.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}]`).forEach((button) => {
    button.addEventListener("click", () => {
      const key = button.dataset[attr];
      const o = ui[part];
      o.dir = o.sort === key ? -o.dir : 1;
      o.sort = key;
      schedule();
    });
  });
}
function renderSortMarks() {
  for (const [attr, part] of [["data-sort-agents", "agents"], ["data-sort-calls", "calls"]]) {
    for (const b of document.querySelectorAll(`[${attr}]`)) {
      const on = b.getAttribute(attr) === ui[part].sort;
      setAttr(b.parentElement, "aria-sort", on ? (ui[part].dir > 0 ? "ascending" : "descending") : null);
    }
  }
}

// -- render ----------------------------------------------------------------------------------------
const renderTimes = [];   // the last 600 render durations (ms), for the page benchmark
function render() {
  const started = performance.now();
  agentsTable.measure();        // layout is read once, before this frame writes anything
  callsTable.measure();
  const now = serverNow(state, Date.now());
  view = derive(state, now);
  const status = $("status");
  setText(status, describeConnection(state, Date.now()));
  setClass(status, `status st-${connectionLevel(state)}`);
  document.body.classList.toggle("stale", connectionLevel(state) !== "live");
  show($("wallboard-token"), state.view === "wallboard");
  document.body.classList.toggle("wallboard-view", state.view === "wallboard");
  renderQueues();
  renderDetail();
  renderHeld();
  renderAlerts();
  renderFilters();
  renderSortMarks();
  const a = agentRows(view, ui.agents);
  agentsTable.render(a.rows);
  setText($("agents-count"), a.rows.length < a.total ? `${a.rows.length} of ${a.total}` : String(a.total));
  const c = interactionRows(state, now, ui.calls);
  callsTable.render(c.rows);
  setText($("calls-count"), c.rows.length < c.total ? `${c.rows.length} of ${c.total}` : String(c.total));
  openPendingSearch();
  path.tick();
  renderTimes.push(performance.now() - started);
  if (renderTimes.length > 600) renderTimes.shift();
}
for (const id of ["agents-scroll", "calls-scroll"]) $(id).addEventListener("scroll", schedule, { passive: true });

// -- caller path and search -----------------------------------------------------------------------
document.addEventListener("click", (event) => {
  const a = event.target.closest("[data-open]");
  if (!a) return;
  event.preventDefault();
  pendingSearch = null;
  path.open(Number(a.dataset.open), a);
});
// A call id is looked up among the live interactions the board holds. One the ACD has just
// created may not have reached the board yet (the stream runs behind the write by a moment, more
// on a busy server): the search waits for it up to SEARCH_WAIT_MS, checked at every render.
const SEARCH_WAIT_MS = 10000;
let pendingSearch = null;       // {callId, until}
const liveCall = (callId) => [...state.interactions.values()].filter((i) => i.callId === callId).sort((a, b) => a.id - b.id)[0];
function openPendingSearch() {
  if (!pendingSearch) return;
  const match = liveCall(pendingSearch.callId);
  if (match) {
    pendingSearch = null;
    path.open(match.id, $("search-input"));
  } else if (Date.now() >= pendingSearch.until) {
    const text = pendingSearch.callId;
    pendingSearch = null;
    path.message(`No live interaction has call id "${text}" (ids are case-sensitive; a completed call is found by its interaction id).`);
  }
}
$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  pendingSearch = null;
  const text = $("search-input").value.trim();
  if (!text) return;
  const id = /^#?\d+$/.test(text) ? Number(text.replace(/^#/, "")) : null;
  if (id > 0) { path.open(id, $("search-input")); return; }
  pendingSearch = { callId: text, until: Date.now() + SEARCH_WAIT_MS };
  if (!liveCall(text)) path.message(`Looking for call id "${text}" among the live interactions…`);
  openPendingSearch();
});
$("path-close").addEventListener("click", () => { pendingSearch = null; path.close(); });
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (!$("path-panel").hidden) { pendingSearch = null; path.close(); }
  else if (!$("detail-panel").hidden) closeDetail();
});

window.sightline = { get state() { return state; }, dispatch, live, renderTimes };
render();
