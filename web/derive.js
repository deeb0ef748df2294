// Pure views of the board state (no DOM, no clock: `now` is the server's time in ms): what the
// panels show. derive() runs once per render and computes every figure the panels share.
// Figures that SQL computes (service level, abandon rate, ASA, AHT, intervals) are read as the
// server sends them, never computed here; a figure the server does not send is null ("—").

export const STATE_LABEL = new Map([
  ["idle", "Idle"], ["data_collection", "Voice app"], ["queued", "Queued"], ["delivery_pending", "Ringing"],
  ["delivered", "Talking"], ["held", "On hold"], ["after_call_work", "Wrap-up"], ["completed", "Completed"],
]);
export const stateLabel = (s) => STATE_LABEL.get(s) || String(s ?? "");

export const ACTIVITY_LABEL = new Map([
  ["ringing", "ringing"], ["talking", "talking"], ["holding", "holding"], ["wrap_up", "wrap-up"],
  ["transferring", "transferring"], ["ready", "ready"], ["not_ready", "not ready"], ["logged_out", "logged out"],
  ["no_call", "no call"],
]);
export const activityLabel = (a) => ACTIVITY_LABEL.get(a) || String(a ?? "");

/// One collator for every name comparison (localeCompare with options builds one per call).
export const compareNames = new Intl.Collator(undefined, { numeric: true }).compare;

const LEVEL_RANK = new Map([["ok", 0], ["warn", 1], ["alarm", 2]]);
export const LEVEL_TEXT = new Map([["ok", "OK"], ["warn", "Warning"], ["alarm", "Alarm"]]);
export const LEVEL_ICON = new Map([["ok", "✓"], ["warn", "▲"], ["alarm", "✖"]]);
export const worse = (a, b) => (LEVEL_RANK.get(b) > LEVEL_RANK.get(a) ? b : a);

const COUNTED = new Map([["delivery_pending", "ringing"], ["delivered", "talking"], ["held", "onHold"], ["after_call_work", "wrapUp"]]);
const WORKING = new Set(["delivery_pending", "delivered", "held", "after_call_work"]);
const time = (text) => (text ? Date.parse(text) : NaN);
const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

/// An agent's presence as the server sends it ({state, reason, since}), or null when the server
/// sends none (then the board shows what the interactions say, and no "ready" count).
export function presenceOf(agent) {
  const p = agent.presence;
  if (!p) return null;
  if (typeof p === "string") return { state: p, reason: agent.presenceReason ?? null, since: agent.presenceSince ?? null };
  if (typeof p === "object" && typeof p.state === "string") return { state: p.state, reason: p.reason ?? null, since: p.since ?? null };
  return null;
}

/// The figures PostgreSQL counted for a queue or an agent ({interval, today, now}), or null
/// before the first ones arrived (then the page shows "—": it counts none itself).
export function figuresOf(state, kind, id) {
  return state.figures ? state.figures[kind].get(id) || null : null;
}

/// The level of one queue and why: the worst of the longest wait, the service level against its
/// target and the abandon rate, each judged by the queue's own thresholds. `today`: the queue's
/// figures of today from PostgreSQL (FIGURES), `{}` when none arrived yet.
export function queueLevel(queue, longest, waiting, today = {}) {
  const t = queue.thresholds || {};
  const reasons = [];
  if (waiting > 0 && num(t.waitAlarmSeconds) != null && longest >= t.waitAlarmSeconds) reasons.push(["alarm", `longest wait over ${t.waitAlarmSeconds} s`]);
  else if (waiting > 0 && num(t.waitWarningSeconds) != null && longest >= t.waitWarningSeconds) reasons.push(["warn", `longest wait over ${t.waitWarningSeconds} s`]);
  const sl = num(today.serviceLevelPercent);
  if (sl != null) {
    if (num(t.serviceLevelAlarmPercent) != null && sl < t.serviceLevelAlarmPercent) reasons.push(["alarm", `service level under ${t.serviceLevelAlarmPercent}%`]);
    else if (num(t.serviceLevelTargetPercent) != null && sl < t.serviceLevelTargetPercent) reasons.push(["warn", `service level under target ${t.serviceLevelTargetPercent}%`]);
  }
  const ab = num(today.abandonPercent);
  if (ab != null) {
    if (num(t.abandonAlarmPercent) != null && ab >= t.abandonAlarmPercent) reasons.push(["alarm", `abandoned ${t.abandonAlarmPercent}% or more`]);
    else if (num(t.abandonWarningPercent) != null && ab >= t.abandonWarningPercent) reasons.push(["warn", `abandoned ${t.abandonWarningPercent}% or more`]);
  }
  const level = reasons.reduce((l, [r]) => worse(l, r), "ok");
  reasons.sort((a, b) => LEVEL_RANK.get(b[0]) - LEVEL_RANK.get(a[0]));
  return { level, reasons: reasons.map(([, why]) => why) };
}

/// Everything the panels show, computed once. `now`: server time, ms.
export function derive(state, now) {
  // Agents: what each is doing, from its newest working interaction, else its presence.
  const busy = new Map();
  const waitingByQueue = new Map();
  const held = [];
  // Per queue, the counts a wallboard token gets from the server (WallboardView.swift), counted
  // the same way here from the interactions: a call being transferred counts only as such.
  const counts = new Map();
  const countsOf = (q) => counts.get(q) || counts.set(q, { ringing: 0, talking: 0, onHold: 0, wrapUp: 0, transferring: 0 }).get(q);
  for (const i of state.interactions.values()) {
    if (i.state === "held") held.push(i);
    if (i.queue != null) {
      const c = countsOf(i.queue), key = i.transfer ? "transferring" : COUNTED.get(i.state);
      if (key) c[key]++;
    }
    if (i.state === "queued" && !i.transfer && i.queue != null) {
      let list = waitingByQueue.get(i.queue);
      if (!list) waitingByQueue.set(i.queue, (list = []));
      list.push(i);
    }
    if (i.agent == null || !(WORKING.has(i.state) || i.transfer)) continue;
    const other = busy.get(i.agent);
    if (!other || time(other.stateSince) < time(i.stateSince)) busy.set(i.agent, i);
  }
  const waitStart = (i) => time(i.queuedAt || i.stateSince);
  for (const list of waitingByQueue.values()) list.sort((a, b) => waitStart(a) - waitStart(b));
  held.sort((a, b) => time(a.stateSince) - time(b.stateSince));

  const agents = [];
  const agentById = new Map();
  for (const a of state.agents.values()) {
    if (a.voiceApplication) continue;
    const i = busy.get(a.id) || null;
    const presence = presenceOf(a);
    let activity, since;
    if (i) {
      activity = i.transfer ? "transferring" : i.state === "delivery_pending" ? "ringing" : i.state === "held" ? "holding" : i.state === "after_call_work" ? "wrap_up" : "talking";
      since = i.stateSince;
    } else if (presence) {
      activity = presence.state;
      since = presence.since;
    } else {
      activity = "no_call";
      since = null;
    }
    const fig = figuresOf(state, "agents", a.id);
    const row = { agent: a, activity, interaction: i, since, presence, queues: Array.isArray(a.queues) ? a.queues : [],
                  handled: num(fig?.today?.handled), aht: num(fig?.today?.ahtSeconds),
                  occupancy: num(fig?.today?.occupancyPercent) };
    agents.push(row);
    agentById.set(a.id, row);
  }
  agents.sort((x, y) => compareNames(String(x.agent.name), String(y.agent.name)) || (x.agent.id < y.agent.id ? -1 : 1));

  const members = new Map();
  for (const row of agents) for (const q of new Set(row.queues)) {
    let list = members.get(q);
    if (!list) members.set(q, (list = []));
    list.push(row);
  }

  const queues = new Map();
  for (const q of state.queues.values()) {
    const w = waitingByQueue.get(q.id) || [];
    // A wallboard token's view has no interaction and no agent: the server's counts instead.
    const wb = state.wallboard ? state.wallboard.get(q.id) || {} : null;
    const waitingCount = wb ? num(wb.waiting) ?? 0 : w.length;
    const longestSince = wb ? time(wb.longestWaitingSince) : w.length ? waitStart(w[0]) : NaN;
    const longest = waitingCount && Number.isFinite(longestSince) ? Math.max(0, (now - longestSince) / 1000) : 0;
    const c = wb || counts.get(q.id) || {};
    const m = members.get(q.id) || [];
    const fig = figuresOf(state, "queues", q.id);
    const today = fig?.today || {};
    // Staffing as PostgreSQL counted it when the server sends figures; else only what the live
    // interactions say (no presence: nobody is counted ready or not ready).
    const staff = fig?.now || null;
    let ready = 0, here = 0, elsewhere = 0, notReady = 0, free = 0, loggedOut = 0;
    for (const row of m) {
      if (row.interaction) { if (row.interaction.queue === q.id) here++; else elsewhere++; }
      else if (row.activity === "ready") ready++;
      else if (row.activity === "not_ready") notReady++;
      else if (row.activity === "logged_out") loggedOut++;
      else free++;
    }
    const presenceKnown = staff != null || m.some((row) => row.presence);
    const { level, reasons } = queueLevel(q, longest, waitingCount, today);
    queues.set(q.id, {
      id: q.id, queue: q, name: String(q.name ?? q.id), waiting: w, waitingCount, longest, level, reasons, members: m,
      presenceKnown, free: wb ? null : free,
      ringing: num(c.ringing) ?? 0, talking: num(c.talking) ?? 0, onHold: num(c.onHold) ?? 0,
      wrapUp: num(c.wrapUp) ?? 0, transferring: num(c.transferring) ?? 0,
      agents: wb ? num(wb.agents) : m.length,
      ready: staff ? num(staff.agentsReady) : presenceKnown ? ready : null,
      here: staff ? num(staff.agentsInteracting) : wb ? null : here,
      elsewhere: staff ? num(staff.agentsBusyElsewhere) : elsewhere,
      notReady: staff ? num(staff.agentsNotReady) : presenceKnown ? notReady : null,
      loggedOut: staff ? num(staff.agentsLoggedOut) : presenceKnown ? loggedOut : null,
      serviceLevel: num(today.serviceLevelPercent), abandon: num(today.abandonPercent),
      serviceLevelTarget: num(q.serviceLevel?.targetPercent ?? q.thresholds?.serviceLevelTargetPercent),
      offered: num(today.offered), answered: num(today.answered), abandoned: num(today.abandoned),
      asa: num(today.asaSeconds), aht: num(today.ahtSeconds),
      interval: fig?.interval || null,
    });
  }
  return { now, queues, agents, agentById, waitingByQueue, held };
}

/// Queue summaries in wallboard order: by severity (alarm first, then longest wait), or by name.
export function sortQueues(summaries, by = "severity") {
  const byName = (a, b) => compareNames(a.name, b.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const list = [...summaries];
  if (by === "name") return list.sort(byName);
  return list.sort((a, b) => LEVEL_RANK.get(b.level) - LEVEL_RANK.get(a.level) || b.longest - a.longest || byName(a, b));
}

/// The interactions table: filtered by queue, state and agent, sorted by a column.
export function interactionRows(state, now, { queue = "", status = "", agent = "", sort = "wait", dir = 1 } = {}) {
  const all = state.interactions.size;
  let list = [...state.interactions.values()];
  if (queue) list = list.filter((i) => i.queue === queue);
  if (status) list = list.filter((i) => i.state === status);
  if (agent) list = list.filter((i) => i.agent === agent);
  const key = {
    id: (i) => i.id,
    state: (i) => stateLabel(i.state),
    wait: (i) => time(i.stateSince),            // oldest first = longest in its state first
    queue: (i) => String(i.queue ?? ""),
    agent: (i) => String(i.agent ?? ""),
  }[sort] || ((i) => time(i.stateSince));
  const keyed = list.map((i) => [key(i), i]);   // each key computed once, not per comparison
  keyed.sort(([x, a], [y, b]) => (x < y ? -1 : x > y ? 1 : a.id - b.id) * dir);
  return { rows: keyed.map(([, i]) => i), total: all };
}

/// The agents table: filtered by queue and activity, sorted by a column.
export function agentRows(view, { queue = "", activity = "", sort = "name", dir = 1 } = {}) {
  let list = view.agents;
  if (queue) list = list.filter((r) => r.queues.includes(queue));
  if (activity) list = list.filter((r) => r.activity === activity);
  if (sort === "name") {                        // derive() already sorted them by name
    list = dir > 0 ? [...list] : [...list].reverse();
  } else {
    const key = {
      activity: (r) => activityLabel(r.activity),
      since: (r) => (r.since ? time(r.since) : Infinity),
      handled: (r) => r.handled ?? -1,
    }[sort] || ((r) => activityLabel(r.activity));
    const keyed = list.map((r, n) => [key(r), n, r]);   // ties keep the name order
    keyed.sort(([x, m], [y, n]) => (x < y ? -1 : x > y ? 1 : m - n) * (x === y ? 1 : dir));
    list = keyed.map(([, , r]) => r);
  }
  return { rows: list, total: view.agents.length };
}

export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  const mm = String(m).padStart(2, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
}

export const since = (text, now) => (text ? duration((now - time(text)) / 1000) : "");
export function percent(v) { return v == null ? "—" : `${Math.round(v)}%`; }
export function count(v) { return v == null ? "—" : String(v); }
