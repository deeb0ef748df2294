// The board's state as a pure reducer: reduce(state, event) -> state. No DOM, no clock, no
// socket: every event carries what it needs (`at`: the page's clock when it happened), so the
// browser tests can drive it directly. Ids from the server are keys of Maps only (a queue may be
// called "constructor" or "__proto__"), and are kept exactly as sent (case-sensitive).
// Protocol: docs/protocol.md.

export function initialState() {
  return {
    queues: new Map(), agents: new Map(), interactions: new Map(), depth: new Map(),
    position: null,
    connection: "connecting",   // connecting | live | reconnecting | refused
    attempt: 0,
    database: "up",
    dataTime: null,             // server time of the newest data we hold (ms)
    serverOffset: 0,            // server clock - page clock (ms)
    figures: null,              // FIGURES from PostgreSQL: {timeZone, interval, day, asOf, queues: Map, agents: Map}
    view: "full",               // "full", or "wallboard" (a wallboard token: counts per queue, no agent, no interaction)
    wallboard: null,            // wallboard view: queue id -> {waiting, longestWaitingSince, talking, onHold, agents, ...}
    presenceReasons: new Map(), // not-ready reason code -> name
    alerts: new Map(),          // alert id -> newest alert message
    alertsSeen: false,          // the server evaluates alerts (its snapshot lists them, or one arrived)
    changed: 0,                 // grows with every change of the board (for memoised views)
  };
}

const entries = (object) => (object && typeof object === "object" ? Object.entries(object) : []);

/// Applies one event: a server message ({type: "snapshot" | "deltas" | ...}) or a connection
/// event ({type: "connection", state, attempt, why}). Unknown types change nothing.
export function reduce(state, event) {
  switch (event.type) {
    case "connection":
      return { ...state, connection: event.state, attempt: event.attempt ?? state.attempt, why: event.why ?? null };
    case "snapshot": {
      const b = event.board || {};
      const offset = serverOffset(event.serverTime, event.at, state.serverOffset);
      return {
        ...state,
        queues: new Map((b.queues || []).map((q) => [q.id, q])),
        agents: new Map((b.agents || []).map((a) => [a.id, a])),
        interactions: new Map((b.interactions || []).map((i) => [i.id, i])),
        depth: new Map(entries(b.depth)),
        figures: b.figures ? mergeFigures(null, b.figures, true) : null,
        presenceReasons: new Map((b.presenceReasons || []).map((r) => [r.code, r.name ?? r.code])),
        view: event.view === "wallboard" ? "wallboard" : "full",
        wallboard: event.view === "wallboard" ? new Map(entries(event.wallboard)) : null,
        // A server with alert rules sends the firing ones with every snapshot: replace the list.
        ...(Array.isArray(event.alerts)
          ? { alerts: new Map(event.alerts.filter((a) => a && a.id != null && a.state !== "resolved").map((a) => [a.id, a])), alertsSeen: true }
          : {}),
        position: event.position ?? null,
        database: event.database || "up",
        serverOffset: offset,
        dataTime: parseTime(event.serverTime) ?? state.dataTime,
        connection: "live", attempt: 0,
        changed: state.changed + 1,
      };
    }
    case "resumed":
      return { ...state, connection: "live", attempt: 0 };
    case "deltas": {
      const interactions = new Map(state.interactions);
      const queues = state.queues;
      let agents = state.agents;
      for (const d of event.deltas || []) {
        if (d.presence) {            // a presence change: the agent's presence is replaced
          const a = agents.get(d.agent ?? d.presence.agent);
          if (!a) continue;
          if (agents === state.agents) agents = new Map(agents);
          agents.set(a.id, { ...a, presence: d.agentPresence ?? null });
          continue;
        }
        const id = d.transition?.interaction;
        if (d.interaction) interactions.set(d.interaction.id, d.interaction);
        else if (id != null) interactions.delete(id);
      }
      return {
        ...state, interactions, queues, agents,
        position: event.position ?? state.position,
        dataTime: event.at + state.serverOffset,
        changed: state.changed + 1,
      };
    }
    case "wallboard":
      // The live counts of every queue the token sees, whole: they replace the previous ones.
      // (The counted figures of the day come in FIGURES, as for every view.)
      if (!event.queues || typeof event.queues !== "object") return state;
      return {
        ...state, view: "wallboard", wallboard: new Map(entries(event.queues)),
        position: event.position ?? state.position,
        dataTime: event.at + state.serverOffset,
        changed: state.changed + 1,
      };
    case "figures":
      if (!event.figures) return state;
      return { ...state, figures: mergeFigures(state.figures, event.figures, event.complete === true || !state.figures), changed: state.changed + 1 };
    case "heartbeat":
      return {
        ...state,
        position: event.position ?? state.position,
        serverOffset: serverOffset(event.serverTime, event.at, state.serverOffset),
        dataTime: state.database === "down" && event.database !== "up" ? state.dataTime : (parseTime(event.serverTime) ?? state.dataTime),
        database: event.database || state.database,
      };
    case "status":
      return {
        ...state,
        database: event.database,
        dataTime: event.database === "down" ? (parseTime(event.since) ?? state.dataTime) : state.dataTime,
      };
    case "alert": {
      const a = event.alert;
      if (!a || a.id == null) return { ...state, alertsSeen: true };
      const alerts = new Map(state.alerts);
      alerts.delete(a.id);            // newest last; a resolved alert leaves the list
      if (a.state !== "resolved") alerts.set(a.id, a);
      while (alerts.size > 100) alerts.delete(alerts.keys().next().value);
      return { ...state, alerts, alertsSeen: true };
    }
    default:
      return state;
  }
}

/// FIGURES with their per-queue and per-agent entries in Maps; `complete` replaces every entry,
/// otherwise the entries sent replace those with the same id and the others stay.
function mergeFigures(previous, f, complete) {
  const queues = complete || !previous ? new Map() : new Map(previous.queues);
  const agents = complete || !previous ? new Map() : new Map(previous.agents);
  for (const [id, v] of entries(f.queues)) queues.set(id, v);
  for (const [id, v] of entries(f.agents)) agents.set(id, v);
  return { timeZone: f.timeZone, interval: f.interval, day: f.day, asOf: f.asOf, queues, agents };
}

function parseTime(text) {
  if (!text) return null;
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : null;
}

function serverOffset(text, at, previous) {
  const t = parseTime(text);
  return t == null || at == null ? previous : t - at;
}

/// The server's clock now, from the page's clock.
export function serverNow(state, pageNow) { return pageNow + state.serverOffset; }

/// What the connection badge says: "live", "reconnecting (attempt 3), data 42 s old", ...
export function describeConnection(state, pageNow) {
  const age = state.dataTime ? Math.max(0, Math.round((serverNow(state, pageNow) - state.dataTime) / 1000)) : 0;
  if (state.connection === "refused") return `refused: ${state.why || "check the token"}`;
  if (state.connection === "reconnecting") return `reconnecting (attempt ${state.attempt}), data ${age} s old`;
  if (state.connection === "connecting") return "connecting";
  if (state.database === "down") return `stale: database unreachable, data ${age} s old`;
  return "live";
}

/// live | stale | reconnecting | connecting | refused: the look of the connection badge.
export function connectionLevel(state) {
  if (state.connection === "live" && state.database === "down") return "stale";
  return state.connection;
}
