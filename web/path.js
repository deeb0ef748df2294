// The caller path: one lane per linked interaction, state spans along a shared time axis,
// transfers drawn as arrows (failed ones dashed red). Refetched while the path grows.
import { STATE_LABEL } from "./derive.js";
import { tokenFromPage } from "./live.js";

const COLORS = {
  idle: "#6b7280", data_collection: "#8b5cf6", queued: "#f59e0b", delivery_pending: "#38bdf8",
  delivered: "#22c55e", held: "#ef4444", after_call_work: "#a78bfa", completed: "#334155",
};
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

export class PathView {
  constructor(root, panel, title, agentName) {
    Object.assign(this, { root, panel, title, agentName });
    this.current = null;
    this.timer = null;
  }

  async open(id) {
    this.id = id;
    this.panel.hidden = false;
    await this.load();
    this.panel.scrollIntoView({ block: "nearest" });
  }

  close() {
    this.panel.hidden = true;
    this.current = null;
  }

  touched(transitions) {
    if (!this.current || this.panel.hidden) return;
    if (!transitions.some((t) => t.callId === this.current.callId)) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 150);
  }

  async load() {
    const res = await fetch(`/api/interactions/${this.id}/path`, { headers: { Authorization: `Bearer ${tokenFromPage()}` } });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      this.current = null;
      this.title.textContent = "";
      this.root.innerHTML = `<p class="empty">Interaction ${esc(this.id)}: ${esc(body.error?.message || res.statusText)}</p>`;
      return;
    }
    this.current = await res.json();
    this.render();
  }

  render() {
    const p = this.current;
    const lanes = p.interactions;
    const now = Date.now();
    const times = lanes.flatMap((l) => l.transitions.map((t) => Date.parse(t.at)));
    const t0 = Math.min(...times);
    const live = lanes.some((l) => l.state !== "completed");
    const t1 = Math.max(live ? now : 0, ...times, t0 + 1000);
    const W = 1000, left = 150, laneH = 46, top = 24;
    const x = (t) => left + (W - left - 10) * (t - t0) / (t1 - t0);
    const y = new Map(lanes.map((l, n) => [l.id, top + n * laneH]));
    const H = top + lanes.length * laneH + 10;
    let svg = `<svg class="path-svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="caller path of ${esc(p.callId)}">`;
    svg += `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#e5e7eb"/></marker>
      <marker id="arrow-failed" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#ef4444"/></marker></defs>`;
    svg += `<text x="${left}" y="14" class="axis">${new Date(t0).toLocaleTimeString()}</text><text x="${W - 10}" y="14" class="axis" text-anchor="end">${live ? "now" : new Date(t1).toLocaleTimeString()}</text>`;
    for (const lane of lanes) {
      const ly = y.get(lane.id);
      svg += `<g data-testid="path-lane" data-interaction="${lane.id}"><text x="4" y="${ly + 17}" class="lane-label">#${lane.id}</text>
        <text x="4" y="${ly + 32}" class="lane-sub">${esc(lane.agent ? this.agentName(lane.agent) : lane.queue || "")}</text>`;
      lane.transitions.forEach((t, n) => {
        if (t.to === "completed") return;
        const start = Date.parse(t.at);
        const end = n + 1 < lane.transitions.length ? Date.parse(lane.transitions[n + 1].at) : now;
        const x0 = x(start), w = Math.max(2, x(end) - x0);
        const label = [STATE_LABEL[t.to] || t.to, t.to === "held" ? this.agentName(t.heldBy) : t.to === "queued" ? t.queue : t.agent && ["delivery_pending", "delivered", "after_call_work"].includes(t.to) ? this.agentName(t.agent) : ""].filter(Boolean).join(" · ");
        svg += `<rect x="${x0.toFixed(1)}" y="${ly + 4}" width="${w.toFixed(1)}" height="30" rx="3" fill="${COLORS[t.to]}"><title>${esc(label)} from ${new Date(start).toLocaleTimeString()}</title></rect>`;
        if (w > 60) svg += `<text x="${(x0 + 4).toFixed(1)}" y="${ly + 23}" class="span-label">${esc(label)}</text>`;
      });
      svg += `</g>`;
    }
    for (const link of p.links) {
      const ax = x(Date.parse(link.at));
      const y0 = y.get(link.from) + 34, y1 = y.get(link.to) + 4;
      const failed = link.status === "failed";
      svg += `<line data-testid="path-arrow" data-status="${link.status}" x1="${ax}" y1="${y0}" x2="${ax}" y2="${y1}" class="arrow ${failed ? "failed" : ""}" marker-end="url(#${failed ? "arrow-failed" : "arrow"})"><title>transfer to ${esc(link.kind.replace("_", " "))} ${esc(link.target)}: ${link.status}</title></line>`;
    }
    svg += `</svg>`;
    const links = p.links.map((l) => `<li class="${l.status}">#${l.from} → #${l.to}: ${esc(l.kind.replace("_", " "))} ${esc(l.target)} — ${l.status}</li>`).join("");
    this.title.textContent = `${p.callId} · ${lanes.length} interaction${lanes.length === 1 ? "" : "s"}`;
    this.root.innerHTML = svg + (links ? `<ul class="links">${links}</ul>` : "");
  }
}
