// recausal explorer: a single page on the service's JSON API (no framework, no build step).
// State lives in the URL hash (a permalink): m model, u user or h pasted history, k, x explainer,
// r the explained rank, off the positions taken out, g=1 the whole graph.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

const state = { m: "", u: "", h: null, k: 10, x: "", r: null, off: new Set(), g: false };
let health = null; // GET /health
let hist = null; // {history, window_start, capacity, titles}
let top = []; // the top-k rows of the whole history
let expl = null; // the last POST /explain answer
let showOlder = false;
let editSeq = 0;

// ------------------------------------------------------------------ helpers
function el(tag, attrs = {}, ...kids) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  node.append(...kids);
  return node;
}

function svg(tag, attrs = {}, ...kids) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...kids);
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

const title = (tok) => (hist && hist.titles[tok]) || (expl && expl.explanation.titles[tok]) || tok;
const source = () => (state.h ? { history: state.h } : { user: state.u });
const edited = () => hist.history.filter((_, pos) => !state.off.has(pos));

function download(text, type, name) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ------------------------------------------------------------------ the URL hash
function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  state.m = p.get("m") || "";
  state.u = p.get("u") || "";
  state.h = p.get("h") ? p.get("h").split(",").filter(Boolean) : null;
  state.k = Math.min(100, Math.max(1, Number(p.get("k")) || 10));
  state.x = p.get("x") || "";
  state.r = p.get("r") ? Number(p.get("r")) : null;
  state.off = new Set((p.get("off") || "").split(",").filter(Boolean).map(Number));
  state.g = p.get("g") === "1";
  const named = (x) => health.explainers.includes(x) && x;
  state.x = named(state.x) || named("causal") || named("occlusion") || health.explainers[0];
  if (!health.models.some((m) => m.name === state.m)) state.m = health.default_model;
}

function writeHash() {
  const p = new URLSearchParams();
  if (state.m) p.set("m", state.m);
  if (state.h) p.set("h", state.h.join(","));
  else if (state.u) p.set("u", state.u);
  p.set("k", state.k);
  if (state.x) p.set("x", state.x);
  if (state.r) p.set("r", state.r);
  if (state.off.size) p.set("off", [...state.off].sort((a, b) => a - b).join(","));
  if (state.g) p.set("g", "1");
  history.replaceState(null, "", `#${p.toString().replaceAll("%2C", ",")}`);
}

// ------------------------------------------------------------------ loading
async function start() {
  health = await api("/health");
  $("model").replaceChildren(...health.models.map((m) => el("option", { value: m.name, text: m.name, title: `${m.family}, ${m.n_items} items, window ${m.capacity}` })));
  $("explainer").replaceChildren(...health.explainers.map((x) => el("option", { value: x, text: x })));
  readHash();
  syncForm();
  if (state.u || state.h) await load();
  else status("Pick a user (or paste a history) and press Load.");
}

function syncForm() {
  $("model").value = state.m;
  $("user").value = state.h ? "" : state.u;
  $("k").value = state.k;
  $("explainer").value = state.x;
}

async function load() {
  status("Loading…");
  expl = null;
  $("explanation").hidden = true;
  $("export-json").disabled = true;
  const model = state.m;
  const capacity = health.models.find((m) => m.name === model).capacity;
  const off = [...state.off];
  if (state.h) {
    const items = state.h;
    hist = { history: items, window_start: Math.max(0, items.length - capacity), capacity, titles: {} };
  } else {
    hist = await api(`/explorer/history/${encodeURIComponent(state.u)}?model=${encodeURIComponent(model)}`);
  }
  state.off = new Set(off.filter((p) => p >= 0 && p < hist.history.length));
  const histories = state.off.size ? [hist.history, edited()] : [hist.history];
  const batch = await api("/recommend/batch", { model, histories, k: state.k });
  Object.assign(hist.titles, batch.titles);
  top = batch.results[0].recommendations;
  $("main").hidden = false;
  renderTimeline(true);
  renderTop();
  renderEdited(batch.results[1]);
  writeHash();
  status(`${state.h ? "Pasted history" : `User ${state.u}`}, ${model}.`);
  if (state.r && state.r <= top.length) await explain(state.r);
}

async function refreshEdited() {
  renderTimeline();
  writeHash();
  const seq = ++editSeq;
  if (!state.off.size) return renderEdited(null);
  if (state.off.size === hist.history.length) return renderEdited(null, "Nothing left: put an item back.");
  const batch = await api("/recommend/batch", { model: state.m, histories: [edited()], k: state.k });
  if (seq === editSeq) renderEdited(batch.results[0]);
}

async function explain(rank) {
  state.r = rank;
  writeHash();
  renderTop();
  status(`Explaining #${rank} with ${state.x}…`);
  const body = { ...source(), model: state.m, k: state.k, rank, explainer: state.x };
  expl = await api("/explain", body);
  const e = expl.explanation;
  if (e.replacement && !(e.replacement in hist.titles) && !(e.replacement in e.titles)) {
    const q = `model=${encodeURIComponent(state.m)}&items=${encodeURIComponent(e.replacement)}`;
    Object.assign(hist.titles, (await api(`/explorer/titles?${q}`)).titles);
  }
  renderExplanation();
  performance.mark("recausal:explained");
  status(`Explained #${rank} with ${state.x}.`);
}

async function compare() {
  const e = expl.explanation;
  const rows = health.explainers.map((name) => el("tr", { "data-explainer": name },
    el("th", {}, el("button", { type: "button", class: "link", "data-use": name, text: name })),
    el("td", { colspan: 4, text: "…" })));
  $("comparison").replaceChildren(el("table", { class: "compare" },
    el("thead", {}, el("tr", {}, ...["explainer", "size", "items", "new rank", "replacement"].map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows)));
  for (const [i, name] of health.explainers.entries()) {
    const body = { ...source(), model: state.m, k: state.k, rank: e.rank, explainer: name, include_graph: false };
    let cells;
    try {
      const got = (await api("/explain", body)).explanation;
      const set = got.sets[0];
      cells = [got.valid ? String(got.size) : got.complete === false ? "none (out of time)" : "none",
        set ? set.positions.map((p) => `#${p} ${title(hist.history[p])}`).join("; ") : "—",
        got.new_rank ? String(got.new_rank) : "—", got.replacement ? title(got.replacement) : "—"];
    } catch (err) {
      cells = [err.message, "", "", ""];
    }
    rows[i].classList.toggle("current", name === state.x);
    rows[i].replaceChildren(rows[i].firstChild, ...cells.map((c) => el("td", { text: c })));
  }
}

// ------------------------------------------------------------------ rendering
function renderTimeline(focus = false) {
  const tl = $("timeline");
  const scroll = tl.scrollTop;
  const ws = hist.window_start;
  const causes = new Set(expl ? expl.explanation.sets[0]?.positions || [] : []);
  const kept = hist.history.map((_, p) => p).filter((p) => !state.off.has(p));
  const slid = new Set(kept.slice(-hist.capacity).filter((p) => p < ws));
  $("history-note").textContent = `${hist.history.length} items; the model reads the last ${hist.capacity}`
    + (ws ? ` (from #${ws})` : "");
  $("older").hidden = ws === 0;
  $("older").textContent = `${showOlder ? "▾" : "▸"} ${ws} earlier items, outside the model's window`;
  $("timeline").replaceChildren(...hist.history.map((tok, pos) => {
    if (pos < ws && !showOlder && !slid.has(pos)) return "";
    const cls = ["item", pos < ws ? "outside" : "window", state.off.has(pos) && "off",
      causes.has(pos) && "cause", slid.has(pos) && "slid"].filter(Boolean).join(" ");
    return el("li", { class: cls },
      el("button", { type: "button", "data-pos": pos, "aria-pressed": String(state.off.has(pos)), title: `item ${tok}` },
        el("span", { class: "pos", text: `#${pos}` }), ` ${title(tok)}`));
  }));
  $("reset").hidden = !state.off.size;
  const first = tl.querySelector(".cause");
  if (!focus) tl.scrollTop = scroll;
  else if (first) tl.scrollTop = first.offsetTop - tl.offsetTop - 40;
  else tl.scrollTop = tl.scrollHeight;
}

function row(r, extra = "") {
  const cls = ["row", !extra && state.r === r.rank && "selected"].filter(Boolean).join(" ");
  return el("li", { class: cls },
    el("button", { type: "button", "data-rank": r.rank, "data-item": r.item },
      el("span", { class: "rank", text: `${r.rank}` }), el("span", { class: "name", text: r.title || r.item }),
      el("span", { class: "score", text: r.score === null ? "" : r.score.toFixed(3) }),
      extra ? el("span", { class: "delta", text: extra }) : ""));
}

function renderTop() {
  $("topk").replaceChildren(...top.map((r) => row(r)));
}

function renderEdited(result, note = "") {
  $("edited-box").hidden = !result && !note;
  if (!result) {
    $("edited").replaceChildren();
    $("slid").textContent = note;
    return;
  }
  const before = new Map(top.map((r) => [r.item, r.rank]));
  $("edited").replaceChildren(...result.recommendations.map((r) => {
    const was = before.get(r.item);
    const delta = was === undefined ? "new" : was === r.rank ? "=" : was > r.rank ? `↑ was ${was}` : `↓ was ${was}`;
    const li = row(r, delta);
    li.querySelector("button").disabled = true;
    if (was === undefined) li.classList.add("new");
    return li;
  }));
  const ws = hist.window_start;
  const kept = hist.history.map((_, p) => p).filter((p) => !state.off.has(p));
  const slid = kept.slice(-hist.capacity).filter((p) => p < ws);
  $("slid").textContent = slid.length
    ? `Slid into the window: ${slid.map((p) => `#${p} ${title(hist.history[p])}`).join("; ")}`
    : "No older item slides into the window.";
}

function renderExplanation() {
  const e = expl.explanation;
  const set = e.sets[0];
  const name = (tok) => el("b", { text: title(tok) });
  const parts = [el("p", { class: "target" }, `#${e.rank} `, name(e.recommended),
    ` (score ${e.score.toFixed(3)}), explained by `, el("code", { text: e.explainer }), ".")];
  if (e.valid && set) {
    const what = e.rank === 1 ? "it is no longer the top-1" : "it leaves the top-k";
    parts.push(el("p", {}, `Take out ${set.positions.length === 1 ? "this item" : `these ${set.positions.length} items`} and ${what}:`),
      el("ul", { class: "causes" }, ...set.positions.map((p) => el("li", { "data-pos": p }, el("span", { class: "pos", text: `#${p}` }), ` ${title(hist.history[p])}`))),
      el("p", {}, "It falls to rank ", el("b", { class: "new-rank", text: e.new_rank ?? `below ${hist.history.length}` }),
        e.replacement ? el("span", {}, `; in its place at #${e.rank}: `, name(e.replacement),
          e.replacement_rank ? ` (was #${e.replacement_rank})` : " (from outside the top-k)") : "", "."));
    if (e.slid_in.length) parts.push(el("p", {}, "Slid into the window: ", e.slid_in.map((s) => `#${s.position} ${title(s.item)}`).join("; ")));
    if (e.sets.length > 1) parts.push(el("p", { class: "hint" }, `Other minimal sets: ${e.sets.slice(1).map((s) => `{${s.positions.map((p) => `#${p}`).join(", ")}}`).join(" ")}`));
    if (e.complete === false) parts.push(el("p", { class: "hint" }, "The time budget ran out before the search ended: other sets as small may exist."));
  } else if (e.complete === false) {
    parts.push(el("p", {}, "No set found before the time budget ran out (the search is incomplete)."));
  } else {
    parts.push(el("p", {}, `No set of up to ${e.max_size} items changes it.`));
  }
  $("why").replaceChildren(...parts);
  $("h-why").textContent = `Why ${title(e.recommended)}?`;
  $("apply").hidden = !(e.valid && set);
  $("comparison").replaceChildren();
  $("explanation").hidden = false;
  $("export-json").disabled = false;
  renderTimeline(true);
  renderGraph();
}

// ------------------------------------------------------------------ the causal graph
// Layered drawing: the explained item (T) on the right, each node in the column of its
// distance from T, ordered by its neighbours in the column to its right.
const COL = 170;
const ROW = 62;

function graphLayout(g, shown, dist, far) {
  const cols = new Map();
  for (const n of shown) {
    const d = dist.get(n.id) ?? far;
    cols.set(d, [...(cols.get(d) || []), n.id]);
  }
  const depth = Math.max(...cols.keys());
  const tall = Math.max(...[...cols.values()].map((c) => c.length));
  const at = new Map();
  const near = new Map(g.nodes.map((n) => [n.id, []]));
  for (const e of g.edges) { near.get(e.source).push(e.target); near.get(e.target).push(e.source); }
  for (let d = 0; d <= depth; d++) {
    const ids = cols.get(d) || [];
    const key = (id) => {
      const ys = near.get(id).filter((v) => at.has(v)).map((v) => at.get(v)[1]);
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : 0;
    };
    ids.sort((a, b) => key(a) - key(b) || a - b);
    const top = 30 + ((tall - ids.length) * ROW) / 2;
    ids.forEach((id, i) => at.set(id, [60 + (depth - d) * COL, top + i * ROW + 10]));
  }
  const control = ([x1, y1], [x2, y2]) => {
    const bend = x1 === x2 ? 40 + Math.abs(y2 - y1) * 0.3 : 0;
    return [(x1 + x2) / 2 - bend, (y1 + y2) / 2];
  };
  return { at, control, width: 120 + depth * COL, height: 40 + tall * ROW };
}

function timelineLayout(g) {
  // the whole graph: positions left to right (T last), edges as arcs above the line
  const gap = 30;
  const longest = Math.max(1, ...g.edges.map((e) => Math.abs(e.target - e.source)));
  const lift = (span) => Math.min(520, span * gap * 0.7);
  const base = 30 + lift(longest) / 2;
  const at = new Map(g.nodes.map((n) => [n.id, [30 + n.id * gap, base]]));
  const control = ([x1, y1], [x2]) => [(x1 + x2) / 2, y1 - lift(Math.abs(x2 - x1) / gap)];
  return { at, control, width: 60 + (g.n_nodes - 1) * gap, height: base + 50 };
}

function edgeShape(e, at, radius, control) {
  const [x1, y1] = at.get(e.source);
  const [x2, y2] = at.get(e.target);
  const [cx, cy] = control([x1, y1], [x2, y2]);
  const unit = (x, y) => { const l = Math.hypot(x - cx, y - cy) || 1; return [(x - cx) / l, (y - cy) / l]; };
  const [ua, va] = unit(x1, y1);
  const [ub, vb] = unit(x2, y2);
  const a = [x1 - ua * radius(e.source), y1 - va * radius(e.source), ua, va];
  const b = [x2 - ub * radius(e.target), y2 - vb * radius(e.target), ub, vb];
  return { a, b, d: `M${a[0].toFixed(1)},${a[1].toFixed(1)} Q${cx.toFixed(1)},${cy.toFixed(1)} ${b[0].toFixed(1)},${b[1].toFixed(1)}` };
}

function edgeMark(kind, [x, y, ux, uy]) {
  // (x, y) on the node's rim, (ux, uy) the direction into the node
  if (kind === "circle") return svg("circle", { class: "mark-circle", cx: x - ux * 4, cy: y - uy * 4, r: 4 });
  if (kind !== "arrow") return "";
  const [bx, by] = [x - ux * 10, y - uy * 10];
  const pts = [[x, y], [bx - uy * 5, by + ux * 5], [bx + uy * 5, by - ux * 5]];
  return svg("polygon", { class: "mark-arrow", points: pts.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" ") });
}

function renderGraph() {
  const g = expl.explanation.graph;
  $("graph-box").hidden = !g;
  if (!g) return;
  const ws = expl.explanation.window_start;
  const near = new Map(g.nodes.map((n) => [n.id, []]));
  for (const e of g.edges) { near.get(e.source).push(e.target); near.get(e.target).push(e.source); }
  const dist = new Map([[g.target, 0]]);
  const queue = [g.target];
  while (queue.length) {
    const u = queue.shift();
    for (const v of near.get(u)) if (!dist.has(v)) { dist.set(v, dist.get(u) + 1); queue.push(v); }
  }
  const far = Math.max(...dist.values()) + 1;
  const shown = g.nodes.filter((n) => state.g || (dist.get(n.id) ?? far) <= 2);
  const { at, control, width, height } = state.g ? timelineLayout(g) : graphLayout(g, shown, dist, far);
  const hot = new Set([g.target, ...(expl.explanation.sets[0]?.positions || []).map((p) => p - ws)]);
  const radius = (id) => (id === g.target ? 17 : state.g ? 11 : 13);
  const edges = g.edges.filter((e) => at.has(e.source) && at.has(e.target)).map((e) => {
    const { a, b, d } = edgeShape(e, at, radius, control);
    const strong = hot.has(e.source) && hot.has(e.target) ? " strong" : "";
    const name = (id) => (id === g.target ? "T" : `#${id + ws}`);
    return svg("g", { class: `edge${strong}`, "data-source": e.source, "data-target": e.target, "data-text": e.text },
      svg("path", { d }), edgeMark(e.source_mark, a), edgeMark(e.target_mark, b),
      svg("title", {}, `${name(e.source)} ${e.text} ${name(e.target)}`));
  });
  const nodes = shown.map((n) => {
    const [x, y] = at.get(n.id);
    const isT = n.id === g.target;
    const tok = n.item ?? (isT ? expl.explanation.recommended : hist.history[n.id + ws]);
    const cls = `node${isT ? " target" : ""}${hot.has(n.id) && !isT ? " highlight" : ""}`;
    const label = title(tok);
    return svg("g", { class: cls, "data-node": n.id },
      svg("circle", { cx: x, cy: y, r: radius(n.id) }),
      svg("text", { x, y: y + 4, class: "id" }, isT ? "T" : String(n.id + ws)),
      state.g ? "" : svg("text", { x, y: y + radius(n.id) + 11, class: "label" }, label.length > 22 ? `${label.slice(0, 21)}…` : label),
      svg("title", {}, `${isT ? "explained item" : `#${n.id + ws}`}: ${label}`));
  });
  $("graph").replaceChildren(svg("svg", { viewBox: `0 0 ${width} ${height}`, width, class: state.g ? "pag whole" : "pag", role: "img", "aria-label": "causal graph" },
    svg("g", { class: "edges" }, ...edges), svg("g", { class: "nodes" }, ...nodes)));
  const away = [...hot].filter((id) => !at.has(id)).map((id) => `#${id + ws}`);
  $("graph-note").textContent = state.g ? `all ${g.n_nodes} nodes`
    : `the ${shown.length} nodes within 2 steps of the explained item, of ${g.n_nodes}`
      + (away.length ? `; the explanation's ${away.join(", ")} lie${away.length > 1 ? "" : "s"} further out` : "");
  $("graph-all").textContent = state.g ? "Show the neighbourhood only" : "Show the whole graph";
  $("graph").scrollLeft = $("graph").scrollWidth; // the recent end: the causes and T
}

// ------------------------------------------------------------------ export
async function exportPage() {
  const css = await (await fetch("/static/explorer/explorer.css")).text();
  const page = document.documentElement.cloneNode(true);
  const live = document.querySelectorAll("input, select, textarea");
  page.querySelectorAll("input, select, textarea").forEach((n, i) => {
    if (n.tagName === "SELECT") n.querySelectorAll("option").forEach((o) => o.toggleAttribute("selected", o.value === live[i].value));
    else if (n.tagName === "TEXTAREA") n.textContent = live[i].value;
    else n.setAttribute("value", live[i].value);
  });
  page.querySelectorAll("script, link[rel=stylesheet]").forEach((n) => n.remove());
  page.querySelector("head").append(el("style", { text: css }));
  page.querySelector("body").prepend(el("p", { class: "snapshot", text: `A snapshot of ${location.href}, ${new Date().toISOString()}` }));
  const who = state.h ? "history" : `user${state.u}`;
  download(`<!doctype html>\n${page.outerHTML}`, "text/html", `recausal-${who}.html`);
}

// ------------------------------------------------------------------ events
function guard(fn) {
  return (...args) => fn(...args).catch((err) => status(err.message, true));
}

let searchTimer = 0;
$("user").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(guard(async () => {
    const q = encodeURIComponent($("user").value.trim());
    const found = await api(`/explorer/users?model=${encodeURIComponent($("model").value)}&q=${q}`);
    $("users").replaceChildren(...found.users.map((u) => el("option", { value: u })));
  }), 200);
});
$("pick").addEventListener("submit", guard(async (event) => {
  event.preventDefault();
  Object.assign(state, { m: $("model").value, u: $("user").value.trim(), h: null, k: Number($("k").value) || 10,
    x: $("explainer").value, r: null, off: new Set() });
  if (state.u) await load();
}));
$("paste-form").addEventListener("submit", guard(async (event) => {
  event.preventDefault();
  const items = $("paste-items").value.split(/[\s,;]+/).filter(Boolean);
  if (!items.length) return;
  Object.assign(state, { m: $("model").value, h: items, u: "", k: Number($("k").value) || 10, r: null, off: new Set() });
  await load();
}));
$("explainer").addEventListener("change", guard(async () => {
  state.x = $("explainer").value;
  if (hist && state.r) await explain(state.r);
  else writeHash();
}));
$("topk").addEventListener("click", guard(async (event) => {
  const button = event.target.closest("button[data-rank]");
  if (!button) return;
  await explain(Number(button.dataset.rank));
  $("explanation").scrollIntoView({ block: "nearest" });
}));
$("timeline").addEventListener("click", guard(async (event) => {
  const button = event.target.closest("button[data-pos]");
  if (!button) return;
  const pos = Number(button.dataset.pos);
  if (state.off.has(pos)) state.off.delete(pos);
  else state.off.add(pos);
  await refreshEdited();
}));
$("older").addEventListener("click", () => { showOlder = !showOlder; renderTimeline(); });
$("reset").addEventListener("click", guard(async () => { state.off.clear(); await refreshEdited(); }));
$("apply").addEventListener("click", guard(async () => {
  state.off = new Set(expl.explanation.sets[0].positions);
  await refreshEdited();
}));
$("compare").addEventListener("click", guard(compare));
$("comparison").addEventListener("click", guard(async (event) => {
  const button = event.target.closest("button[data-use]");
  if (!button) return;
  state.x = button.dataset.use;
  $("explainer").value = state.x;
  await explain(state.r);
}));
$("graph-all").addEventListener("click", () => { state.g = !state.g; writeHash(); renderGraph(); });
$("export-json").addEventListener("click", () => {
  const e = expl.explanation;
  download(JSON.stringify(expl, null, 2), "application/json", `explanation-${state.u || "history"}-${e.rank}.json`);
});
$("export-html").addEventListener("click", guard(exportPage));
window.addEventListener("hashchange", guard(async () => { readHash(); syncForm(); if (state.u || state.h) await load(); }));

guard(start)();
