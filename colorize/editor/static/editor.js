// The hint editor page: place, move, recolour, delete and undo points; every change recolours the preview.
// Points are kept exactly as the hints file stores them ({x, y, color, size} in photo pixels); the server
// parses them with the file's own parser. body[data-version] counts changes; the preview image's
// data-version says which change it shows (tests wait on these, never on time).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null, points: [], selected: -1, history: [], suggestions: [], cursor: { x: 0, y: 0 },
  size: 1, version: 0, inflight: false, pending: false, drag: null, objectUrl: null,
};

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!res.ok) {
    let message = `${res.status}`;
    try { message = (await res.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return res;
}

// ---------------------------------------------------------------------------------------------- history
function snapshot() { return JSON.stringify({ points: state.points, selected: state.selected }); }

function change(mutate) {
  state.history.push(snapshot());
  if (state.history.length > 500) state.history.shift();
  mutate();
  changed();
}

function changed() {
  state.version += 1;
  document.body.dataset.version = String(state.version);
  document.body.dataset.points = String(state.points.length);
  render();
  recolour();
}

function undo() {
  const last = state.history.pop();
  if (last === undefined) { setStatus("Nothing to undo."); return; }
  const prev = JSON.parse(last);
  state.points = prev.points;
  state.selected = Math.min(prev.selected, state.points.length - 1);
  state.suggestions = [];
  changed();
}

// --------------------------------------------------------------------------------------------- drawing
function toPercent(x, y) {
  const { width, height } = state.info;
  return [((x + 0.5) / width) * 100, ((y + 0.5) / height) * 100];
}

function render() {
  const hadFocus = document.activeElement && document.activeElement.classList.contains("marker");
  const box = $("markers");
  box.replaceChildren();
  const scale = $("photo").clientWidth / state.info.width;
  state.points.forEach((p, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "marker" + (i === state.selected ? " selected" : "");
    const [left, top] = toPercent(p.x, p.y);
    b.style.left = `${left}%`;
    b.style.top = `${top}%`;
    b.style.width = b.style.height = `${Math.max(14, p.size * scale)}px`;
    b.style.background = p.color;
    b.dataset.index = String(i);
    b.setAttribute("aria-label", `point ${i + 1} at ${p.x}, ${p.y}, colour ${p.color}, size ${p.size}`);
    b.addEventListener("pointerdown", (ev) => startDrag(ev, i));
    b.addEventListener("focus", () => { if (state.selected !== i) select(i); });
    b.addEventListener("keydown", (ev) => markerKey(ev, i));
    box.appendChild(b);
  });
  if (hadFocus && state.selected >= 0) box.children[state.selected].focus();
  const [cl, ct] = toPercent(state.cursor.x, state.cursor.y);
  $("cursor").style.left = `${cl}%`;
  $("cursor").style.top = `${ct}%`;
  renderTools();
}

function renderTools() {
  const p = state.points[state.selected];
  $("selected-info").textContent = p
    ? `Point ${state.selected + 1} of ${state.points.length}: x ${p.x}, y ${p.y}, ${p.color}`
    : `${state.points.length} point(s). Click the photo to place one.`;
  $("delete").disabled = !p;
  $("undo").disabled = state.history.length === 0;
  if (p) { $("picker").value = p.color; $("size").value = String(p.size); }
  const box = $("suggestions");
  box.replaceChildren();
  state.suggestions.forEach((c, i) => {
    const s = document.createElement("button");
    s.type = "button";
    s.className = "swatch" + (p && p.color === c ? " current" : "");
    s.style.background = c;
    s.textContent = String(i + 1);
    s.dataset.color = c;
    s.setAttribute("aria-label", `model colour ${i + 1}: ${c}`);
    s.disabled = !p;
    s.addEventListener("click", () => setColour(c));
    box.appendChild(s);
  });
}

// -------------------------------------------------------------------------------------------- recolour
async function recolour() {
  if (state.inflight) { state.pending = true; return; }
  state.inflight = true;
  document.body.dataset.busy = "1";
  const version = state.version;
  try {
    const res = await api("/api/preview", { points: state.points });
    const blob = await res.blob();
    if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
    state.objectUrl = URL.createObjectURL(blob);
    const img = $("preview");
    await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = state.objectUrl; });
    img.dataset.digest = res.headers.get("X-Preview-Digest") || "";
    img.dataset.version = String(version);
    setStatus(`${state.points.length} point(s).`);
  } catch (err) {
    setStatus(err.message, true);
    $("preview").dataset.version = String(version);
    $("preview").dataset.error = err.message;
  } finally {
    state.inflight = false;
    if (state.pending) { state.pending = false; recolour(); } else { document.body.dataset.busy = "0"; }
  }
}

// -------------------------------------------------------------------------------------------- editing
function clampPixel(x, y) {
  const { width, height } = state.info;
  return { x: Math.min(width - 1, Math.max(0, Math.round(x))), y: Math.min(height - 1, Math.max(0, Math.round(y))) };
}

function eventPixel(ev) {
  const r = $("photo").getBoundingClientRect();
  return clampPixel(((ev.clientX - r.left) / r.width) * state.info.width - 0.5,
                    ((ev.clientY - r.top) / r.height) * state.info.height - 0.5);
}

async function loadSuggestions(x, y) {
  try {
    state.suggestions = (await (await api("/api/suggest", { x, y })).json()).colors;
  } catch (err) {
    state.suggestions = [];
    setStatus(err.message, true);
  }
}

async function place(x, y) {
  if (state.points.length >= state.info.max_points) {
    setStatus(`At most ${state.info.max_points} points.`, true);
    return;
  }
  await loadSuggestions(x, y);
  const color = state.suggestions[0] || $("picker").value;
  change(() => {
    state.points.push({ x, y, color, size: state.size });
    state.selected = state.points.length - 1;
  });
}

function select(i) {  // marks the markers in place: rebuilding them would lose focus and pointer capture
  state.selected = i;
  state.suggestions = [];
  Array.from($("markers").children).forEach((b, j) => b.classList.toggle("selected", j === i));
  renderTools();
  if (i >= 0) {
    const p = state.points[i];
    loadSuggestions(p.x, p.y).then(renderTools);
  }
}

function setColour(color) {
  const p = state.points[state.selected];
  if (!p || p.color === color) return;
  change(() => { p.color = color; });
}

function removeSelected() {
  if (state.selected < 0) return;
  change(() => {
    state.points.splice(state.selected, 1);
    state.selected = -1;
    state.suggestions = [];
  });
  $("stage").focus();
}

function moveTo(i, x, y) {
  const p = state.points[i];
  const to = clampPixel(x, y);
  if (p.x === to.x && p.y === to.y) return;
  change(() => { p.x = to.x; p.y = to.y; });
}

function startDrag(ev, i) {
  ev.stopPropagation();
  ev.preventDefault();
  if (state.selected !== i) select(i);
  ev.target.focus();
  state.drag = { i, start: snapshot(), moved: false, target: ev.target };
  ev.target.setPointerCapture(ev.pointerId);
  ev.target.addEventListener("pointermove", dragMove);
  ev.target.addEventListener("pointerup", dragEnd, { once: true });
}

function dragMove(ev) {
  const d = state.drag;
  if (!d) return;
  const p = state.points[d.i];
  const to = eventPixel(ev);
  if (to.x === p.x && to.y === p.y) return;
  p.x = to.x;
  p.y = to.y;
  d.moved = true;
  const [left, top] = toPercent(p.x, p.y);
  d.target.style.left = `${left}%`;
  d.target.style.top = `${top}%`;
}

function dragEnd() {
  const d = state.drag;
  state.drag = null;
  if (!d) return;
  d.target.removeEventListener("pointermove", dragMove);
  if (d.moved) {  // one undo step for the whole drag
    state.history.push(d.start);
    changed();
    const p = state.points[d.i];
    loadSuggestions(p.x, p.y).then(renderTools);
  }
}

// ------------------------------------------------------------------------------------------- keyboard
function step(ev) {
  const one = Math.max(1, Math.round(state.info.width / state.info.preview.width));
  return ev.shiftKey ? 10 * one : one;
}

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

function markerKey(ev, i) {
  if (ARROWS[ev.key]) {
    ev.preventDefault();
    const [dx, dy] = ARROWS[ev.key];
    const p = state.points[i];
    moveTo(i, p.x + dx * step(ev), p.y + dy * step(ev));
  }
}

function stageKey(ev) {
  if (ev.target !== $("stage")) return;
  if (ARROWS[ev.key]) {
    ev.preventDefault();
    const [dx, dy] = ARROWS[ev.key];
    state.cursor = clampPixel(state.cursor.x + dx * step(ev), state.cursor.y + dy * step(ev));
    render();
  } else if (ev.key === "Enter" || ev.key === " ") {
    ev.preventDefault();
    place(state.cursor.x, state.cursor.y);
  }
}

function globalKey(ev) {
  const typing = ev.target instanceof HTMLInputElement;
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "z") { ev.preventDefault(); undo(); return; }
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "s") { ev.preventDefault(); save(); return; }
  if (typing) return;
  if (ev.key === "Delete" || ev.key === "Backspace") { ev.preventDefault(); removeSelected(); }
  else if (ev.key === "Escape") { select(-1); $("stage").focus(); }
  else if (/^[1-5]$/.test(ev.key) && state.suggestions[Number(ev.key) - 1]) setColour(state.suggestions[Number(ev.key) - 1]);
}

// ---------------------------------------------------------------------------------------------- save
async function save() {
  $("saved").classList.remove("error");
  $("saved").textContent = "Saving the full-size image…";
  try {
    const r = await (await api("/api/save", { points: state.points })).json();
    $("saved").textContent = `Saved ${r.points} point(s) to ${r.hints} and the image to ${r.image}.`;
    document.body.dataset.saved = r.hints;
  } catch (err) {
    $("saved").textContent = err.message;
    $("saved").classList.add("error");
  }
}

// ---------------------------------------------------------------------------------------------- start
async function start() {
  state.info = await (await api("/api/state")).json();
  state.points = state.info.points;
  state.size = state.info.default_size;
  state.cursor = { x: Math.floor(state.info.width / 2), y: Math.floor(state.info.height / 2) };
  $("name").textContent = state.info.name;
  $("size").max = String(state.info.max_size);
  $("size").value = String(state.size);
  $("stage").addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 || ev.target.classList.contains("marker")) return;
    const at = eventPixel(ev);
    state.cursor = at;
    place(at.x, at.y);
  });
  $("stage").addEventListener("keydown", stageKey);
  document.addEventListener("keydown", globalKey);
  $("picker").addEventListener("change", () => setColour($("picker").value.toLowerCase()));
  $("size").addEventListener("change", () => {
    const v = Math.round(Number($("size").value));
    if (!(v >= 1 && v <= state.info.max_size)) { setStatus(`Patch size is 1 to ${state.info.max_size} px.`, true); return; }
    state.size = v;
    const p = state.points[state.selected];
    if (p && p.size !== v) change(() => { p.size = v; });
  });
  $("delete").addEventListener("click", removeSelected);
  $("undo").addEventListener("click", undo);
  $("save").addEventListener("click", save);
  window.addEventListener("resize", render);
  $("photo").addEventListener("load", render);
  changed();
  document.body.dataset.ready = "1";
}

start().catch((err) => setStatus(err.message, true));
