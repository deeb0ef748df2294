// The caller path: one lane per linked interaction, state spans along a shared time axis with
// ticks, transfers drawn as arrows (failed ones dashed red). Span labels are clipped inside their
// span and carry the span's duration; the original of a transfer in progress reads "transferring
// to <target>". Refetched when a transition of the same call arrives; redrawn every second while
// the call is live. Escape or × closes it and gives focus back to where it was opened from.
import { stateLabel, duration } from "./derive.js";
import { authHeaders } from "./live.js";

const COLORS = new Map([
  ["idle", "#9ca3af"], ["data_collection", "#a78bfa"], ["queued", "#fbbf24"], ["delivery_pending", "#7dd3fc"],
  ["delivered", "#4ade80"], ["held", "#f87171"], ["after_call_work", "#c4b5fd"], ["transferring", "#fdba74"],
]);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000);

export class PathView {
  constructor({ root, panel, title, agentName, queueName }) {
    Object.assign(this, { root, panel, title, agentName, queueName });
    this.current = null;
    this.timer = null;
    this.drawnAt = 0;
  }

  async open(id, returnTo = null) {
    this.id = id;
    this.returnTo = returnTo;
    this.panel.hidden = false;
    await this.load();
    this.panel.scrollIntoView({ block: "nearest" });
  }

  message(text) {
    this.current = null;
    this.panel.hidden = false;
    this.title.textContent = "";
    this.root.replaceChildren(Object.assign(document.createElement("p"), { className: "empty", textContent: text }));
  }

  close() {
    this.panel.hidden = true;
    this.current = null;
    const back = this.returnTo;
    this.returnTo = null;
    if (back && back.isConnected) back.focus();
  }

  touched(transitions) {
    if (!this.current || this.panel.hidden) return;
    if (!transitions.some((t) => t.callId === this.current.callId)) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 150);
  }

  /// Called on every board render: redraws a live path once a second so its spans grow.
  tick() {
    if (!this.current || this.panel.hidden || !this.live) return;
    if (Date.now() - this.drawnAt < 1000) return;
    this.render();
  }

  async load() {
    const id = this.id;
    let res;
    try {
      res = await fetch(`/api/interactions/${encodeURIComponent(id)}/path`, { headers: authHeaders() });
    } catch (e) {
      this.message(`Interaction ${id}: the server did not answer (${e.message}). Try again when the board is live.`);
      return;
    }
    if (id !== this.id) return;
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      this.message(`Interaction ${id}: ${body.error?.message || res.statusText}`);
      return;
    }
    this.current = await res.json();
    this.render();
  }

  spanLabel(t, lane, transfer) {
    if (transfer) return `transferring to ${transfer.kind === "agent" ? this.agentName(transfer.target) : transfer.kind === "queue" ? this.queueName(transfer.target) : "voice application"}`;
    const who = t.to === "held" ? this.agentName(t.heldBy ?? t.agent) : t.to === "queued" ? this.queueName(t.queue ?? lane.queue)
      : ["delivery_pending", "delivered", "after_call_work"].includes(t.to) ? this.agentName(t.agent ?? lane.agent) : "";
    return [stateLabel(t.to), who].filter(Boolean).join(" · ");
  }

  render() {
    const p = this.current;
    const lanes = p.interactions;
    const now = Date.now();
    this.drawnAt = now;
    const times = lanes.flatMap((l) => l.transitions.map((t) => Date.parse(t.at)));
    const t0 = Math.min(...times);
    this.live = lanes.some((l) => l.state !== "completed");
    const t1 = Math.max(this.live ? now : 0, ...times, t0 + 1000);
    const W = 1000, left = 170, laneH = 50, top = 34;
    const x = (t) => left + (W - left - 10) * (t - t0) / (t1 - t0);
    const y = new Map(lanes.map((l, n) => [l.id, top + n * laneH]));
    const H = top + lanes.length * laneH + 6;
    const parts = [];
    parts.push(`<svg class="path-svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="caller path of ${esc(p.callId)}: ${lanes.length} interaction${lanes.length === 1 ? "" : "s"}, ${p.links.length} transfer${p.links.length === 1 ? "" : "s"}">`);
    parts.push(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#e5e7eb"/></marker>
      <marker id="arrow-failed" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#f87171"/></marker></defs>`);
    // The time axis: a tick every round step, about six across.
    const step = STEPS.find((s) => (t1 - t0) / s <= 6) || 3600e3 * 4;
    parts.push(`<line class="axis-line" x1="${left}" y1="${top - 8}" x2="${W - 10}" y2="${top - 8}"/>`);
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const tx = x(t);
      parts.push(`<line class="tick-line" x1="${tx.toFixed(1)}" y1="${top - 12}" x2="${tx.toFixed(1)}" y2="${H - 4}" data-testid="path-tick"/>`);
      parts.push(`<text x="${tx.toFixed(1)}" y="${top - 16}" class="axis" text-anchor="middle">${clock(t)}</text>`);
    }
    parts.push(`<text x="4" y="${top - 16}" class="axis">${this.live ? "live" : "ended " + clock(t1)}</text>`);
    for (const lane of lanes) {
      const ly = y.get(lane.id);
      const sub = lane.agent ? this.agentName(lane.agent) : lane.queue ? this.queueName(lane.queue) : "";
      parts.push(`<g data-testid="path-lane" data-interaction="${lane.id}">`);
      parts.push(`<svg x="0" y="${ly}" width="${left - 8}" height="${laneH}"><text x="4" y="18" class="lane-label">#${lane.id}${lane.state === "completed" ? " ✓" : ""}</text><text x="4" y="34" class="lane-sub">${esc(sub)}</text></svg>`);
      lane.transitions.forEach((t, n) => {
        if (t.to === "completed") return;
        const start = Date.parse(t.at);
        const end = n + 1 < lane.transitions.length ? Date.parse(lane.transitions[n + 1].at) : now;
        const transfer = t.to === "queued" && t.from === "delivered"
          ? p.links.find((l) => l.from === lane.id && Math.abs(Date.parse(l.at) - start) < 2000) : null;
        const x0 = x(start), w = Math.max(2, x(end) - x0);
        const label = this.spanLabel(t, lane, transfer);
        const text = `${label} · ${duration((end - start) / 1000)}`;
        const fill = COLORS.get(transfer ? "transferring" : t.to) || "#9ca3af";
        parts.push(`<rect x="${x0.toFixed(1)}" y="${ly + 4}" width="${w.toFixed(1)}" height="30" rx="3" fill="${fill}" data-testid="path-span" data-state="${esc(t.to)}"><title>${esc(text)}, from ${clock(start)}${n + 1 < lane.transitions.length ? " to " + clock(end) : ""}</title></rect>`);
        if (w > 28) parts.push(`<svg x="${x0.toFixed(1)}" y="${ly + 4}" width="${(w - 2).toFixed(1)}" height="30" class="span-clip"><text x="4" y="19" class="span-label" data-testid="span-label">${esc(text)}</text></svg>`);
      });
      parts.push(`</g>`);
    }
    for (const link of p.links) {
      if (!y.has(link.from) || !y.has(link.to)) continue;
      const ax = x(Date.parse(link.at));
      const down = y.get(link.to) > y.get(link.from);
      const y0 = y.get(link.from) + (down ? 34 : 4), y1 = y.get(link.to) + (down ? 4 : 34);
      const failed = link.status === "failed";
      parts.push(`<line data-testid="path-arrow" data-status="${esc(link.status)}" x1="${ax.toFixed(1)}" y1="${y0}" x2="${ax.toFixed(1)}" y2="${y1}" class="arrow ${failed ? "failed" : ""}" marker-end="url(#${failed ? "arrow-failed" : "arrow"})"><title>transfer to ${esc(link.kind.replace("_", " "))} ${esc(link.target)}: ${esc(link.status)}</title></line>`);
    }
    parts.push(`</svg>`);
    const laneById = new Map(lanes.map((l) => [l.id, l]));
    const items = p.links.map((l) => {
      const target = l.kind === "agent" ? this.agentName(l.target) : l.kind === "queue" ? this.queueName(l.target) : "voice application";
      let text = `#${l.from} → #${l.to}: transfer to ${esc(l.kind.replace("_", " "))} ${esc(target)} at ${clock(Date.parse(l.at))} — ${esc(l.status)}`;
      if (l.status === "failed") {
        const leg = laneById.get(l.to);
        const ts = leg?.transitions || [];
        const last = ts[ts.length - 1];
        const before = ts.length > 1 ? ts[ts.length - 2] : null;
        const ended = l.endedAt || last?.at;
        const where = before ? this.spanLabel(before, leg, null) : "its first state";
        text += ` at ${ended ? clock(Date.parse(ended)) : "?"}: the new leg ended in ${esc(where)}${ended ? ` after ${duration((Date.parse(ended) - Date.parse(l.at)) / 1000)}` : ""}; the caller went back to #${l.from}`;
      } else if (l.status === "succeeded" && l.endedAt) {
        text += ` at ${clock(Date.parse(l.endedAt))}`;
      }
      return `<li class="${esc(l.status)}" data-testid="path-link">${text}</li>`;
    }).join("");
    this.title.textContent = `${p.callId} · ${lanes.length} interaction${lanes.length === 1 ? "" : "s"}`;
    this.root.innerHTML = parts.join("") + (items ? `<ul class="links">${items}</ul>` : "");
  }
}
