import { Live } from "./live.js";
import { STATE_LABEL, agentStates, duration, held, percent, queueSummary, waiting } from "./derive.js";
import { PathView } from "./path.js";

const live = new Live();
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const agentName = (id) => live.board.agents.get(id)?.name || id || "—";
const path = new PathView($("path"), $("path-panel"), $("path-title"), agentName);

$("legend").innerHTML = Object.entries(STATE_LABEL).map(([k, v]) => `<li><span class="dot s-${k}"></span>${v}</li>`).join("");

function sparkline(samples, extra) {
  const points = [...samples.map(([t, n]) => [Date.parse(t), n]), ...extra];
  if (points.length < 2) return `<svg class="spark" viewBox="0 0 120 28"></svg>`;
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  const max = Math.max(1, ...points.map((p) => p[1]));
  const xy = points.map(([t, n]) => `${(120 * (t - t0) / Math.max(1, t1 - t0)).toFixed(1)},${(26 - 24 * n / max).toFixed(1)}`);
  return `<svg class="spark" viewBox="0 0 120 28" aria-label="queue depth, last hour"><polyline points="${xy.join(" ")}"/></svg>`;
}

const localDepth = new Map();   // queue -> [[ms, n]] sampled by this page
setInterval(() => {
  const now = live.now();
  for (const q of live.board.queues.keys()) {
    const list = localDepth.get(q) || [];
    list.push([now, waiting(live.board, q).length]);
    while (list.length && now - list[0][0] > 3600e3) list.shift();
    localDepth.set(q, list);
  }
}, 30000);

function renderQueues(now) {
  const html = [...live.board.queues.keys()].sort().map((id) => {
    const s = queueSummary(live.board, id, now);
    return `<article class="tile level-${s.level}" data-testid="queue-tile" data-queue="${esc(id)}">
      <header><h3>${esc(s.queue.name)}</h3><span class="sl ${s.serviceLevelOk ? "" : "bad"}" title="Answered within ${s.queue.serviceLevelSeconds} s today, of calls offered minus short abandons (target ${s.queue.thresholds.serviceLevelTargetPercent}%)">SL ${percent(s.serviceLevel)}</span></header>
      <div class="big"><span data-testid="waiting-count">${s.waiting}</span><small>waiting</small></div>
      <div class="longest">longest <b data-testid="longest-wait">${duration(s.longest)}</b></div>
      <dl class="agents"><div><dt>available</dt><dd>${s.available}</dd></div><div><dt>on a call</dt><dd>${s.onCall}</dd></div><div><dt>wrap-up</dt><dd>${s.wrapUp}</dd></div><div><dt>abandoned</dt><dd>${percent(s.abandon)}</dd></div></dl>
      ${sparkline(live.board.depth[id] || [], localDepth.get(id) || [])}
    </article>`;
  });
  $("queues").innerHTML = html.join("") || `<p class="empty">No queue configured.</p>`;
}

function renderHeld(now) {
  const rows = held(live.board).map((i) => {
    const q = live.board.queues.get(i.queue);
    const secs = (now - Date.parse(i.stateSince)) / 1000;
    const alarm = q && secs >= q.thresholds.holdAlarmSeconds;
    return `<tr class="${alarm ? "alarm" : ""}" data-testid="held-row" data-interaction="${i.id}" data-agent="${esc(i.heldBy)}">
      <td class="num">${duration(secs)}</td><td>${esc(agentName(i.heldBy))} <small>${esc(i.heldBy)}</small></td><td>${esc(q?.name || i.queue || "—")}</td>
      <td><a href="#" data-open="${i.id}">#${i.id}</a></td></tr>`;
  });
  $("held").innerHTML = rows.join("");
  $("held-count").textContent = rows.length ? String(rows.length) : "";
  $("held-empty").hidden = rows.length > 0;
}

function renderAgents(now) {
  $("agents").innerHTML = agentStates(live.board).map((s) => {
    const t = s.agent.today || {};
    const handle = (t.talkSeconds || 0) + (t.holdSeconds || 0) + (t.afterCallWorkSeconds || 0);
    return `<tr data-testid="agent-row" data-agent="${esc(s.agent.id)}"><td>${esc(s.agent.name)}</td>
      <td><span class="pill a-${s.activity}">${s.activity.replace("_", "-")}</span></td>
      <td class="num">${s.since ? duration((now - Date.parse(s.since)) / 1000) : ""}</td>
      <td>${s.interaction ? `<a href="#" data-open="${s.interaction.id}">#${s.interaction.id}</a>` : ""}</td>
      <td class="num">${t.handled || 0}</td><td class="num">${duration(handle)}</td></tr>`;
  }).join("");
}

function renderCalls(now) {
  const list = [...live.board.interactions.values()].sort((a, b) => b.id - a.id).slice(0, 200);
  $("calls").innerHTML = list.map((i) => `<tr data-testid="call-row" data-interaction="${i.id}">
      <td><a href="#" data-open="${i.id}">#${i.id}</a></td><td><span class="pill s-${i.state}">${STATE_LABEL[i.state] || i.state}</span></td>
      <td class="num">${duration((now - Date.parse(i.stateSince)) / 1000)}</td><td>${esc(live.board.queues.get(i.queue)?.name || i.queue || "—")}</td>
      <td>${esc(i.agent ? agentName(i.agent) : "—")}</td>
      <td>${i.transfer ? `→ #${i.transfer.to} (${esc(i.transfer.kind.replace("_", " "))} ${esc(i.transfer.target)})` : i.transferFrom ? `from #${i.transferFrom}` : ""}</td></tr>`).join("");
}

function render() {
  const now = live.now();
  renderQueues(now);
  renderHeld(now);
  renderAgents(now);
  renderCalls(now);
  const status = $("status");
  status.textContent = live.describe();
  status.className = `status st-${live.state}`;
}

live.on((kind, detail) => {
  if (kind === "board") {
    render();
    if (detail.transitions) path.touched(detail.transitions);
  } else if (kind === "tick" || kind === "status") {
    render();
  } else if (kind === "alert") {
    const li = document.createElement("li");
    li.className = `alert ${detail.state === "resolved" ? "resolved" : detail.severity}`;
    li.textContent = `${new Date(detail.since || Date.now()).toLocaleTimeString()} ${detail.state === "resolved" ? "resolved: " : ""}${detail.message}`;
    $("alerts").prepend(li);
    while ($("alerts").children.length > 50) $("alerts").lastChild.remove();
    $("alerts-empty").hidden = true;
  }
});

document.addEventListener("click", (event) => {
  const a = event.target.closest("[data-open]");
  if (!a) return;
  event.preventDefault();
  path.open(Number(a.dataset.open));
});
$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = Number($("search-input").value.trim().replace(/^#/, ""));
  if (id > 0) path.open(id);
});
$("path-close").addEventListener("click", () => path.close());
render();
