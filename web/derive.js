// Pure views of the board (no DOM): what the panels show.

export const STATE_LABEL = {
  idle: "Idle", data_collection: "Voice app", queued: "Queued", delivery_pending: "Ringing",
  delivered: "Talking", held: "On hold", after_call_work: "Wrap-up",
};

export function waiting(board, queue) {
  return [...board.interactions.values()]
    .filter((i) => i.state === "queued" && !i.transfer && i.queue === queue)
    .sort((a, b) => Date.parse(a.queuedAt || a.stateSince) - Date.parse(b.queuedAt || b.stateSince));
}

export function held(board) {
  return [...board.interactions.values()].filter((i) => i.state === "held")
    .sort((a, b) => Date.parse(a.stateSince) - Date.parse(b.stateSince));
}

/// Per agent: activity (available, ringing, talking, holding, wrap_up), its interaction, since.
export function agentStates(board) {
  const busy = new Map();
  for (const i of board.interactions.values()) {
    if (!i.agent) continue;
    const working = ["delivery_pending", "delivered", "held", "after_call_work"].includes(i.state) || i.transfer;
    if (!working) continue;
    const other = busy.get(i.agent);
    if (!other || Date.parse(other.stateSince) < Date.parse(i.stateSince)) busy.set(i.agent, i);
  }
  const out = [];
  for (const a of board.agents.values()) {
    if (a.voiceApplication) continue;
    const i = busy.get(a.id);
    let activity = "available";
    if (i) activity = i.transfer ? "transferring" : { delivery_pending: "ringing", held: "holding", after_call_work: "wrap_up" }[i.state] || "talking";
    out.push({ agent: a, activity, interaction: i || null, since: i ? i.stateSince : null });
  }
  return out.sort((x, y) => x.agent.name.localeCompare(y.agent.name));
}

export function queueSummary(board, queue, now) {
  const q = board.queues.get(queue);
  const w = waiting(board, queue);
  const longest = w.length ? (now - Date.parse(w[0].queuedAt || w[0].stateSince)) / 1000 : 0;
  const members = agentStates(board).filter((s) => s.agent.queues.includes(queue));
  const count = (act) => members.filter((s) => act.includes(s.activity)).length;
  const t = q.thresholds;
  const level = w.length === 0 ? "ok" : longest >= t.waitAlarmSeconds ? "alarm" : longest >= t.waitWarningSeconds ? "warn" : "ok";
  const sl = q.today.serviceLevelPercent;
  return {
    queue: q, waiting: w.length, longest, level,
    available: count(["available"]), onCall: count(["ringing", "talking", "holding", "transferring"]), wrapUp: count(["wrap_up"]),
    serviceLevel: sl, serviceLevelOk: sl == null || sl >= t.serviceLevelTargetPercent,
    abandon: q.today.abandonPercent,
  };
}

export function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  const mm = String(m).padStart(2, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
}

export function percent(v) { return v == null ? "—" : `${Math.round(v)}%`; }
