// Small DOM helpers for pages that update in place: elements built once, text and attributes
// written only when they change, table rows kept by key and windowed to what is on screen.

/// el("td", {class: "num"}, "text" | Node | [children])
export function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of [].concat(children)) if (c != null) e.append(c);
  return e;
}

export function setText(e, text) {
  text = String(text ?? "");
  if (e._text !== text) { e.textContent = text; e._text = text; }
}

export function setAttr(e, name, value) {
  const key = "_a_" + name;
  if (e[key] === value) return;
  e[key] = value;
  if (value == null || value === false) e.removeAttribute(name); else e.setAttribute(name, value === true ? "" : value);
}

export function setClass(e, cls) { if (e.className !== cls) e.className = cls; }
export function show(e, visible) { if (e.hidden === visible) e.hidden = !visible; }

/// Keeps the focused element focused across DOM moves (moving a node blurs it in Chromium).
export function keepFocus(fn) {
  const focused = document.activeElement;
  fn();
  if (focused && focused !== document.body && focused.isConnected && document.activeElement !== focused) {
    focused.focus({ preventScroll: true });
  }
}

/// Children of `parent` (after `after`, or from the start) made equal to `nodes`, in order, moving
/// only what is out of place.
export function placeChildren(parent, nodes, after = null, before = null) {
  let cursor = after ? after.nextSibling : parent.firstChild;
  for (const n of nodes) {
    if (n === cursor) { cursor = cursor.nextSibling; continue; }
    parent.insertBefore(n, cursor);
  }
  while (cursor && cursor !== before) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

/// A table body whose rows are kept by key and windowed: only the rows inside the scroller's
/// visible area (plus a margin) exist; spacer rows keep the scroll height of the whole list.
export class KeyedTable {
  /// build(item) -> tr (once per key); update(tr, item) writes what changed.
  constructor({ scroller, tbody, columns, rowHeight = 33, overscan = 8, key, build, update }) {
    Object.assign(this, { scroller, tbody, columns, rowHeight, overscan, key, build, update });
    this.rows = new Map();
    this.top = el("tr", { class: "spacer", "aria-hidden": "true" }, el("td", { colspan: columns }));
    this.bottom = el("tr", { class: "spacer", "aria-hidden": "true" }, el("td", { colspan: columns }));
    tbody.append(this.top, this.bottom);
  }

  /// Reads the scroll position and height: call it before any DOM write of the frame, so that
  /// reading layout never forces a second one.
  measure() {
    this.view = Math.max(this.scroller.clientHeight, 400);
    this.offset = Math.max(0, this.scroller.scrollTop - (this.tbody.offsetTop || 0));
  }

  render(items) {
    const n = items.length;
    const h = this.rowHeight;
    if (this.view === undefined) this.measure();
    const { view, offset } = this;
    const first = Math.max(0, Math.floor(offset / h) - this.overscan);
    const last = Math.min(n, Math.ceil((offset + view) / h) + this.overscan);
    const visible = items.slice(first, last);
    const keep = new Set();
    const nodes = [];
    for (const item of visible) {
      const k = this.key(item);
      keep.add(k);
      let tr = this.rows.get(k);
      if (!tr) { tr = this.build(item); this.rows.set(k, tr); }
      this.update(tr, item);
      nodes.push(tr);
    }
    for (const [k, tr] of this.rows) if (!keep.has(k)) { tr.remove(); this.rows.delete(k); }
    this.top.firstChild.style.height = `${first * h}px`;
    this.bottom.firstChild.style.height = `${(n - last) * h}px`;
    show(this.top, first > 0);
    show(this.bottom, last < n);
    keepFocus(() => placeChildren(this.tbody, nodes, this.top, this.bottom));
    return { first, last, total: n };
  }
}

/// At most one render per animation frame, however many times it is asked for.
export function frameScheduler(render) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  };
}

/// The children of `parent` made to be one element per item, by key, without windowing (short
/// lists). cache: a Map key -> element kept by the caller between renders.
export function syncKeyed(parent, cache, items, key, build, update) {
  const keep = new Set();
  const nodes = items.map((item) => {
    const k = key(item);
    keep.add(k);
    let e = cache.get(k);
    if (!e) { e = build(item); cache.set(k, e); }
    update(e, item);
    return e;
  });
  for (const [k, e] of cache) if (!keep.has(k)) { e.remove(); cache.delete(k); }
  keepFocus(() => placeChildren(parent, nodes));
}

/// A <select>'s options set to [[value, label]] after a first fixed option, only when they changed.
export function setOptions(select, options) {
  const sig = JSON.stringify(options);
  if (select._sig === sig) return;
  select._sig = sig;
  const value = select.value;
  while (select.options.length > 1) select.remove(1);
  for (const [v, label] of options) select.add(new Option(label, v));
  select.value = options.some(([v]) => v === value) ? value : "";
}
