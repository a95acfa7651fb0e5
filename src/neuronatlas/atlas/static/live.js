// neuronatlas live page: the streamed visualiser and the drawing canvas. Plain JS, no build.
// Needs common.js (NA) first. Declares no global: everything lives in this function.
// Text from the server (class names, errors, the library's names) is set as text, never
// as markup. The names the controls offer (objectives, parametrisations, optimisers,
// presets, starts) and every field's default and help come from /api/model: none is
// typed here or in live.html.
(() => {
"use strict";

const { $, neuronName, parseTarget } = NA;
const state = { model: null, drawn: null, controller: null, timer: null, curve: [] };

// ---- shared helpers --------------------------------------------------------------------
/** A number as the atlas shows it; null (JSON has no NaN or inf) is "not finite". */
const fmt = (x) => NA.fmt(x, "not finite");

/** An element with a class and text (never markup). */
function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** An option element of a select: its value and its text, both plain text. */
function option(value, text = value) {
  const node = el("option", "", text);
  node.value = value;
  return node;
}

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; }
  catch { return `${response.status} ${response.statusText}`; }
}

// Paint an image of the model's input shape (H*W*C bytes 0..255, channel-last; shape
// [H, W, C], C = 1 grey or 3 colour) into a canvas of H x W pixels.
function paint(canvas, pixels, shape = [28, 28, 1]) {
  const [h, w, c] = shape;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const rgb = c === 3 ? [pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]]
      : [pixels[i], pixels[i], pixels[i]];
    img.data.set([...rgb, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

const modelShape = () => state.model.input_shape;
const isMnistShape = () => modelShape().join() === "28,28,1";

// A class as the user knows it: "3" for digits, "0 T-shirt/top" for named classes.
const className = (k) => NA.className(state.model.class_names, k);

function decodeImage(b64) {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

// ---- the visualiser --------------------------------------------------------------------
// The switches are the checkboxes of live.html, each named by its VisConfig field.
const SWITCHES = [...document.querySelectorAll(".switches input[type=checkbox]")].map((c) => c.id);
// The start the drawing or upload enables: init "image", with the request's image.
const DRAWN = "image";

const options = () => state.model.vis_options;
const fieldHelp = (name) => (options().fields[name] || {}).help || "";

// A slider's ticks: live.html's, with VisConfig's default and every preset's value (a
// preset is sent as it is, never rounded to a tick), none above the server's cap.
function ticks(name, listed) {
  const field = options().fields[name], cap = field.cap ?? Infinity;
  const values = [...listed, field.default, ...Object.values(state.model.presets).map((c) => c[name])];
  return [...new Set(values)].filter((v) => typeof v === "number" && v <= cap).sort((a, b) => a - b);
}

function buildSliders() {
  for (const box of document.querySelectorAll(".slider")) {
    const name = box.dataset.name;
    const values = ticks(name, box.dataset.values.split(" ").map(Number));
    const label = el("label", "", box.dataset.label || name);
    label.htmlFor = `s-${name}`;
    const input = el("input");
    Object.assign(input, { type: "range", id: `s-${name}`, min: "0", max: String(values.length - 1),
                           step: "1", value: "0", title: fieldHelp(name) });
    const output = el("output");
    output.id = `o-${name}`;
    box.replaceChildren(label, input, output);
    input.show = () => { $(`o-${name}`).textContent = values[input.value]; };
    input.addEventListener("input", () => { input.show(); markCustom(); schedule(); });
    input.values = values;
  }
}

// The choices of the select fields and the starts, as the library names them.
function buildChoices() {
  for (const sel of document.querySelectorAll("select.field")) {
    const name = sel.dataset.name;
    sel.replaceChildren(...(options().choices[name] || []).map((v) => option(v)));
    sel.title = fieldHelp(name);
  }
  const indexed = options().init_indexed;
  $("init").replaceChildren(...options().inits.map((v) => option(v)),
                            option(indexed, `${indexed}:<test index>`));
  $("init").title = fieldHelp("init");
  $("init").value = options().fields.init.default;
  for (const name of SWITCHES) $(name).parentElement.title = fieldHelp(name);
}

// The presets (from /api/model): choosing one sets every control to its values.
function buildPresets() {
  for (const p of options().presets.filter((p) => p.live)) {
    $("preset").add(option(p.name));
  }
  $("preset").add(option("custom"));
  $("preset").value = state.model.default_preset;
  applyPreset(state.model.default_preset);
  $("preset").addEventListener("change", () => {
    if ($("preset").value !== "custom") { applyPreset($("preset").value); schedule(); }
  });
}

function applyPreset(name) {
  const config = state.model.presets[name];
  for (const box of document.querySelectorAll(".slider")) setControl(box.dataset.name, config);
  for (const sel of document.querySelectorAll("select.field")) setControl(sel.dataset.name, config);
  for (const field of SWITCHES) setControl(field, config);
  const preset = options().presets.find((p) => p.name === name);
  $("preset-info").textContent = preset ? preset.description : "";
}

// Set the control of field `name` to config[name]: a slider to its tick (the nearest,
// for a value typed into no preset), a select to the choice, a switch on or off.
function setControl(name, config) {
  const want = config[name], input = $(`s-${name}`);
  if (input) {
    let best = 0;
    input.values.forEach((v, i) => {
      if (Math.abs(v - want) < Math.abs(input.values[best] - want)) best = i;
    });
    input.value = String(best);
    input.show();
  } else if (SWITCHES.includes(name)) {
    $(name).checked = want;
  } else {
    const sel = document.querySelector(`select.field[data-name="${name}"]`);
    if (sel) sel.value = want;
  }
}

function markCustom() {
  $("preset").value = "custom";
  $("preset-info").textContent = "your own settings";
}

function sliderValue(name) {
  const input = $(`s-${name}`);
  return input.values[input.value];
}

function buildNeuronPicker() {
  const sizes = state.model.sizes, L = sizes.length - 1;
  for (let l = 1; l <= L; l++) {
    const label = l === L ? `${l} — output (${sizes[l]})` : `${l} (${sizes[l]})`;
    $("layer").add(option(String(l), label));
  }
  const fromHash = hashNeuron();
  const layer = fromHash ? fromHash[0] : Math.min(7, L - 1) || L;
  const index = fromHash ? fromHash[1] : 1;
  $("layer").value = String(layer >= 1 && layer <= L ? layer : L);
  $("neuron").value = String(index);
  updateNeuronRange();
}

// The neuron the URL's hash names (#7:1, as the atlas reads it), or null.
function hashNeuron() {
  const t = parseTarget(location.hash.slice(1));
  return t && t[1] !== null ? t : null;
}

function updateNeuronRange() {
  const n = state.model.sizes[Number($("layer").value)];
  $("neuron").max = String(n - 1);
  $("neuron-range").textContent = `0..${n - 1}`;
}

function target() {
  return { layer: Number($("layer").value), neuron: Number($("neuron").value) };
}

function visRequest() {
  const config = {};
  for (const box of document.querySelectorAll(".slider")) {
    config[box.dataset.name] = sliderValue(box.dataset.name);
  }
  for (const sel of document.querySelectorAll("select.field")) config[sel.dataset.name] = sel.value;
  for (const name of SWITCHES) config[name] = $(name).checked;
  // the fields the page has no control for come from the preset
  const preset = $("preset").value;
  config.preset = preset === "custom" ? state.model.default_preset : preset;
  const init = $("init").value, indexed = options().init_indexed;
  config.init = init === indexed ? `${indexed}:${Number($("mnist-index").value) || 0}` : init;
  const body = { ...target(), config };
  if (init === DRAWN) body.image = state.drawn;
  return body;
}

// Restart the optimisation shortly after the last change (debounced).
function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(runVisualiser, 250);
}

function setStatus(text, isError = false) {
  $("vis-status").textContent = text;
  $("vis-status").classList.toggle("error", isError);
}

async function runVisualiser() {
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const body = visRequest();
  const { layer, neuron } = body;
  history.replaceState(null, "", `#${neuronName(layer, neuron)}`);
  $("vis-atlas").href = `index.html#${neuronName(layer, neuron)}`;
  $("vis-final").replaceChildren();
  state.curve = [];
  drawCurve(body.config.steps);
  setStatus(`starting ${neuronName(layer, neuron)}…`);
  let response;
  try {
    response = await fetch("api/visualize", {
      method: "POST", signal: controller.signal,
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (err) {
    if (err.name !== "AbortError") setStatus(`network error: ${err.message}`, true);
    return;
  }
  if (!response.ok) { setStatus(await errorText(response), true); return; }
  try {
    await readEvents(response, (kind, data) => onEvent(kind, data, body));
  } catch (err) {
    if (err.name !== "AbortError") setStatus(`stream broken: ${err.message}`, true);
  }
}

// Parse a server-sent-event stream from a fetch response.
async function readEvents(response, handle) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      handle(kind, JSON.parse(data));
    }
  }
}

function onEvent(kind, data, request) {
  const canvas = $("vis-image"), steps = request.config.steps;
  if (kind === "step") {
    paint(canvas, decodeImage(data.image), modelShape());
    state.curve.push([data.step, data.activation]);
    drawCurve(steps);
    setStatus(`step ${data.step + 1}/${steps} · activation ${fmt(data.activation)}`);
  } else if (kind === "done") {
    paint(canvas, decodeImage(data.image), modelShape());
    canvas.dataset.runs = String(Number(canvas.dataset.runs) + 1);
    canvas.dataset.config = JSON.stringify(request.config);
    canvas.dataset.activation = String(data.activation);
    setStatus(data.stopped ? data.stopped : `done: ${data.steps_run} steps`, Boolean(data.stopped));
    showFinal(data);
  } else if (kind === "error") {
    setStatus(data.error, true);
  }
}

// what a ratio that is no number means (the server's ratio_kind; vis/query.py RATIO_KINDS)
const RATIO_KINDS = {
  infinite: "inf: only this neuron is active",
  undefined: "none: a negative activation",
  output: "none: an output neuron (compare the probabilities)",
};

const percent = (p) => (typeof p === "number" ? `${(100 * p).toFixed(1)}%` : fmt(p));

function showFinal(d) {
  const top = d.top3.map((t) => `${className(t.class)} (${percent(t.probability)})`).join(", ");
  const rows = [
    ["activation", fmt(d.activation)],
    ["next highest", `${fmt(d.next_activation)} (neuron ${neuronName(d.layer, d.next_index)})`],
    ["ratio", d.ratio_kind === "finite" ? fmt(d.ratio) : RATIO_KINDS[d.ratio_kind] || "none"],
    ["top-3 outputs", top],
  ];
  $("vis-final").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", "", k), el("dd", "", v)]));
}

function drawCurve(steps) {
  const canvas = $("vis-curve"), ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = { l: 52, r: 10, t: 10, b: 24 };
  ctx.clearRect(0, 0, W, H);
  const ys = state.curve.map((p) => p[1]);
  const lo = Math.min(0, ...ys), hi = Math.max(1e-6, ...ys);
  const x = (s) => pad.l + (W - pad.l - pad.r) * s / Math.max(steps - 1, 1);
  const y = (v) => H - pad.b - (H - pad.t - pad.b) * (v - lo) / (hi - lo);
  ctx.strokeStyle = "#e2e5eb";
  ctx.fillStyle = "#6b7385";
  ctx.font = "12px system-ui, sans-serif";
  for (const v of [lo, (lo + hi) / 2, hi]) {
    ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(W - pad.r, y(v)); ctx.stroke();
    ctx.fillText(fmt(v), 4, y(v) + 4);
  }
  ctx.fillText("0", pad.l, H - 6);
  ctx.fillText(`step ${steps}`, W - pad.r - 60, H - 6);
  if (!state.curve.length) return;
  ctx.strokeStyle = "#d9480f";
  ctx.lineWidth = 2;
  ctx.beginPath();
  state.curve.forEach(([s, v], i) => (i ? ctx.lineTo(x(s), y(v)) : ctx.moveTo(x(s), y(v))));
  ctx.stroke();
}

function wireControls() {
  $("layer").addEventListener("change", () => { updateNeuronRange(); schedule(); });
  $("neuron").addEventListener("input", schedule);
  $("init").addEventListener("change", () => {
    $("mnist-index").hidden = $("init").value !== options().init_indexed;
    schedule();
  });
  $("mnist-index").addEventListener("input", schedule);
  for (const name of SWITCHES) {
    $(name).addEventListener("change", () => { markCustom(); schedule(); });
  }
  for (const sel of document.querySelectorAll("select.field")) {
    sel.addEventListener("change", () => { applyResets(sel); markCustom(); schedule(); });
  }
  window.addEventListener("hashchange", () => {
    const m = hashNeuron();
    if (!m) return;
    $("layer").value = String(m[0]);
    $("neuron").value = String(m[1]);
    updateNeuronRange();
    document.getElementById("vis").scrollIntoView();
    schedule();
  });
}

// A choice some fields cannot go with (MACO keeps the image's spectrum fixed: no blur) sets
// them back to VisConfig's defaults; the server derives which from VisConfig's checks.
function applyResets(sel) {
  const back = (options().resets[sel.dataset.name] || {})[sel.value] || [];
  const defaults = Object.fromEntries(back.map((f) => [f, options().fields[f].default]));
  for (const field of back) setControl(field, defaults);
}

// The init option the drawing enables (none if the library has no such start).
function enableDrawn(on) {
  const opt = [...$("init").options].find((o) => o.value === DRAWN);
  if (opt) opt.disabled = !on;
}

// ---- the drawing canvas ----------------------------------------------------------------
const pad = { ctx: null, drawing: false, last: null, busy: false, dirty: false };

function setupPad() {
  const canvas = $("pad");
  pad.ctx = canvas.getContext("2d", { willReadFrequently: true });
  clearPad();
  canvas.addEventListener("pointerdown", (e) => {
    pad.drawing = true;
    pad.last = padPoint(e);
    canvas.setPointerCapture(e.pointerId);
    stroke(pad.last);
  });
  canvas.addEventListener("pointermove", (e) => { if (pad.drawing) stroke(padPoint(e)); });
  const stop = () => { pad.drawing = false; pad.last = null; };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("clear").addEventListener("click", () => { clearPad(); showProbabilities(null); });
  $("use-drawing").addEventListener("click", () => {
    $("init").value = DRAWN;
    $("mnist-index").hidden = true;
    document.getElementById("vis").scrollIntoView({ behavior: "smooth" });
    schedule();
  });
}

function padPoint(e) {
  const r = $("pad").getBoundingClientRect();
  return [(e.clientX - r.left) * 280 / r.width, (e.clientY - r.top) * 280 / r.height];
}

function clearPad() {
  pad.ctx.fillStyle = "#000";
  pad.ctx.fillRect(0, 0, 280, 280);
  state.drawn = null;
  paint($("pad28"), new Uint8Array(784));
  $("use-drawing").disabled = true;
  enableDrawn(false);
}

// A stroke segment as thick as MNIST's pen (about 2.5 of its 28 pixels).
function stroke(point) {
  const ctx = pad.ctx;
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 22;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(...pad.last);
  ctx.lineTo(...point);
  ctx.stroke();
  pad.last = point;
  sendQuery();
}

// MNIST's preprocessing: fit the digit's box into 20x20, average down to 28x28,
// then shift its centre of mass to the middle.
function padTo28() {
  const src = pad.ctx.getImageData(0, 0, 280, 280).data;
  let x0 = 280, y0 = 280, x1 = -1, y1 = -1;
  for (let y = 0; y < 280; y++) {
    for (let x = 0; x < 280; x++) {
      if (src[4 * (280 * y + x)] > 0) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  const w = x1 - x0 + 1, h = y1 - y0 + 1, s = 200 / Math.max(w, h);
  const tmp = document.createElement("canvas");
  tmp.width = tmp.height = 280;
  const t = tmp.getContext("2d", { willReadFrequently: true });
  t.fillStyle = "#000";
  t.fillRect(0, 0, 280, 280);
  t.imageSmoothingQuality = "high";
  t.drawImage($("pad"), x0, y0, w, h, 140 - w * s / 2, 140 - h * s / 2, w * s, h * s);
  const big = t.getImageData(0, 0, 280, 280).data;
  const small = new Float32Array(784);
  for (let y = 0; y < 280; y++) {
    for (let x = 0; x < 280; x++) small[28 * (y / 10 | 0) + (x / 10 | 0)] += big[4 * (280 * y + x)] / 25500;
  }
  return centreOfMass(small);
}

function centreOfMass(img) {
  let m = 0, cx = 0, cy = 0;
  img.forEach((v, i) => { m += v; cx += v * (i % 28); cy += v * Math.floor(i / 28); });
  const dx = Math.round(13.5 - cx / m), dy = Math.round(13.5 - cy / m);
  const out = new Float32Array(784);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const sx = x - dx, sy = y - dy;
      if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) out[28 * y + x] = Math.min(1, img[28 * sy + sx]);
    }
  }
  return out;
}

// One query in flight at a time; the latest drawing is sent when it returns.
async function sendQuery() {
  if (pad.busy) { pad.dirty = true; return; }
  const image = padTo28();
  if (!image) return;
  paint($("pad28"), image.map((v) => Math.round(255 * v)));
  await postQuery(image);
}

// An uploaded picture, resampled to the model's input shape, as the image to query and
// to start from (any input shape; drawing is for 28x28 grey inputs only).
function upload(file) {
  const [h, w, c] = modelShape();
  const img = new Image();
  img.onload = async () => {
    const tmp = document.createElement("canvas");
    tmp.width = w;
    tmp.height = h;
    const t = tmp.getContext("2d", { willReadFrequently: true });
    t.imageSmoothingQuality = "high";
    t.drawImage(img, 0, 0, w, h);
    const px = t.getImageData(0, 0, w, h).data;
    const image = new Float32Array(h * w * c);
    for (let i = 0; i < h * w; i++) {
      if (c === 3) for (let k = 0; k < 3; k++) image[3 * i + k] = px[4 * i + k] / 255;
      else image[i] = (px[4 * i] + px[4 * i + 1] + px[4 * i + 2]) / 765;
    }
    URL.revokeObjectURL(img.src);
    paint($("pad28"), image.map((v) => Math.round(255 * v)), [h, w, c]);
    await postQuery(image);
  };
  img.onerror = () => { $("strip-tip").textContent = "that file is not an image the browser can read"; };
  img.src = URL.createObjectURL(file);
}

async function postQuery(image) {
  pad.busy = true;
  state.drawn = Array.from(image, (v) => Math.round(v * 1000) / 1000);
  $("use-drawing").disabled = false;
  enableDrawn(true);
  try {
    const response = await fetch("api/query", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: state.drawn }),
    });
    if (response.ok) {
      showQuery(await response.json());
      await explainInput(state.drawn);
    } else $("strip-tip").textContent = await errorText(response);
  } finally {
    pad.busy = false;
    if (pad.dirty) { pad.dirty = false; sendQuery(); }
  }
}

function buildProbabilities() {
  const K = state.model.sizes[state.model.sizes.length - 1];
  $("probs").replaceChildren(...Array.from({ length: K }, (_, k) => {
    const row = el("div", "prob"), bar = el("div", "bar");
    row.id = `p${k}`;
    bar.append(el("i"));
    row.append(el("b", "", className(k)), bar, el("span"));
    return row;
  }));
}

function showProbabilities(probs) {
  $("probs").dataset.probs = probs ? JSON.stringify(probs) : "";
  const best = probs ? probs.indexOf(Math.max(...probs)) : -1;
  const K = state.model.sizes[state.model.sizes.length - 1];
  for (let k = 0; k < K; k++) {
    const row = $(`p${k}`), p = probs ? probs[k] : 0;
    row.querySelector("i").style.width = `${100 * p}%`;
    row.querySelector("span").textContent = probs ? `${(100 * p).toFixed(1)}%` : "";
    row.classList.toggle("best", k === best);
  }
  if (!probs) { $("strips").querySelectorAll("canvas").forEach(clearStrip); $("top-neurons").replaceChildren(); }
}

function showQuery(res) {
  showProbabilities(res.probabilities);
  const L = state.model.sizes.length - 1;
  for (let l = 1; l <= L; l++) paintStrip(l, res.layers[String(l)]);
  const items = [];
  for (let l = 1; l < L; l++) {
    const acts = res.layers[String(l)];
    const best = acts.map((v, i) => [v, i]).filter(([v]) => v > 0).sort((a, b) => b[0] - a[0]).slice(0, 4);
    const links = best.map(([v, i]) => {
      const a = el("a", "", `${neuronName(l, i)} `);
      a.href = `index.html#${neuronName(l, i)}`;
      a.append(el("small", "", fmt(v)));
      return a;
    });
    const item = el("li");
    item.append(el("b", "", `layer ${l}`), ...(links.length ? links : [el("span", "muted", "silent")]));
    items.push(item);
  }
  $("top-neurons").replaceChildren(...items);
}

// ---- which neurons the image used, and the neurons it drives hardest -------------------
const NEURON_TILE = 42;  // px of a neuron's atlas picture (1.5x)

async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  return response.ok ? { ok: true, doc: await response.json() } : { ok: false, error: await errorText(response) };
}

async function explainInput(image) {
  const [att, like] = await Promise.all([postJSON("api/attribute", { image }),
                                         postJSON("api/search", { image })]);
  if (att.ok) {
    const d = att.doc;
    const worst = Math.max(...Object.values(d.layers).map((x) => Math.abs(x.completeness_error)));
    $("ig-info").textContent = `(integrated gradients of class ${className(d.target)}'s logit ` +
      `from a blank image: ${fmt(d.baseline_logit)} → ${fmt(d.logit)}; each layer's shares sum ` +
      `to the difference within ${fmt(worst)})`;
    showNeuronRows($("ig-neurons"), d.layers, (x) => x.top.filter((t) => t.attribution > 0)
      .slice(0, 6).map((t) => [t.neuron, t.attribution, `+${fmt(t.attribution)}`]));
  } else {
    $("ig-info").textContent = att.error;
    $("ig-neurons").replaceChildren();
  }
  if (like.ok) {
    showNeuronRows($("like-neurons"), like.doc.layers, (rows) => rows.slice(0, 6)
      .map((t) => [t.neuron, t.share, `${Math.round(100 * t.share)}%`]));
  } else {
    $("like-neurons").replaceChildren(el("p", "muted", like.error));
  }
}

/** One row per layer of clickable atlas tiles: pick(layer's doc) -> [[neuron, value, text]]. */
function showNeuronRows(box, layers, pick) {
  const rows = [];
  const L = state.model.sizes.length - 1;
  for (const [key, doc] of Object.entries(layers)) {
    const l = Number(key);
    const row = el("div", "neuron-row");
    row.append(el("b", "", l === L ? "output" : `layer ${l}`));
    const chosen = pick(doc);
    if (!chosen.length) row.append(el("span", "muted", "none"));
    for (const [i, value, text] of chosen) {
      const a = el("a", "ntile");
      a.href = `index.html#${neuronName(l, i)}`;
      a.title = `${neuronName(l, i)}: ${text} — open its atlas panel`;
      a.dataset.neuron = neuronName(l, i);
      a.dataset.value = String(value);
      const tile = el("span", "sprite");
      tile.setAttribute("style", spriteStyle(l, i));
      a.append(tile, el("small", "", `${neuronName(l, i)} ${text}`));
      row.append(a);
    }
    rows.push(row);
  }
  box.replaceChildren(...rows);
}

/** CSS of neuron i's tile in the atlas's sprite sheet of layer l (sprites/L{l}.png). */
function spriteStyle(l, i) {
  const cols = state.model.sprite_cols, n = state.model.sizes[l];
  const [h, w] = modelShape();
  const s = NEURON_TILE / Math.max(h, w);
  const tw = Math.round(w * s), th = Math.round(h * s);
  return `background-image:url("sprites/L${l}.png");background-size:${cols * tw}px ` +
    `${Math.ceil(n / cols) * th}px;background-position:-${(i % cols) * tw}px ` +
    `-${Math.floor(i / cols) * th}px;width:${tw}px;height:${th}px`;
}

// Every layer as a strip of cells, up to 125 per row, brighter = more active.
const STRIP_COLS = 125;

function buildStrips() {
  const sizes = state.model.sizes, L = sizes.length - 1;
  $("strips").replaceChildren();
  for (let l = 1; l <= L; l++) {
    const cols = Math.min(sizes[l], STRIP_COLS), rows = Math.ceil(sizes[l] / cols);
    const row = document.createElement("div");
    row.className = "strip";
    row.append(el("span", "", l === L ? "output" : `layer ${l}`));
    const canvas = document.createElement("canvas");
    canvas.width = cols;
    canvas.height = rows;
    canvas.style.height = `${Math.max(10, rows * (cols < 20 ? 18 : 5))}px`;
    canvas.dataset.layer = String(l);
    canvas.addEventListener("mousemove", (e) => stripTip(e, canvas));
    canvas.addEventListener("click", (e) => {
      const i = stripIndex(e, canvas);
      if (i !== null) location.href = `index.html#${neuronName(l, i)}`;
    });
    row.appendChild(canvas);
    $("strips").appendChild(row);
    clearStrip(canvas);
  }
}

function clearStrip(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#eef0f3";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function paintStrip(layer, acts) {
  const canvas = $("strips").querySelector(`canvas[data-layer="${layer}"]`);
  canvas.acts = acts;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(canvas.width, canvas.height);
  const hi = Math.max(...acts, 1e-9);
  for (let i = 0; i < canvas.width * canvas.height; i++) {
    const v = i < acts.length ? acts[i] / hi : -1;
    // white (silent) to deep orange (the layer's most active); beyond the layer: grey
    const rgb = v < 0 ? [238, 240, 243] : [255 - 38 * v, 255 - 183 * v, 255 - 240 * v];
    img.data.set([...rgb, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

function stripIndex(e, canvas) {
  const r = canvas.getBoundingClientRect();
  const col = Math.floor((e.clientX - r.left) * canvas.width / r.width);
  const row = Math.floor((e.clientY - r.top) * canvas.height / r.height);
  const i = row * canvas.width + col;
  return i >= 0 && i < state.model.sizes[Number(canvas.dataset.layer)] ? i : null;
}

function stripTip(e, canvas) {
  const i = stripIndex(e, canvas), l = canvas.dataset.layer;
  if (i === null) return;
  const value = canvas.acts ? ` = ${fmt(canvas.acts[i])}` : "";
  $("strip-tip").textContent = `neuron ${neuronName(l, i)}${value} — click for its atlas panel`;
}

// ---- start -----------------------------------------------------------------------------
async function main() {
  const response = await fetch("api/model");
  if (!response.ok) { setStatus(await errorText(response), true); return; }
  state.model = await response.json();
  const m = state.model;
  $("run").textContent = `run ${m.run} · ${m.sizes.join("-")} · ${m.activations.join("/")}` +
    ` · ${m.dataset}`;
  $("pad").hidden = $("clear").hidden = !isMnistShape();
  $("no-pad").hidden = isMnistShape();
  $("upload").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); });
  buildNeuronPicker();
  buildSliders();
  buildChoices();
  buildPresets();
  wireControls();
  setupPad();
  buildProbabilities();
  buildStrips();
  drawCurve(sliderValue("steps"));
  if (location.hash === "#draw") document.getElementById("draw").scrollIntoView();
  runVisualiser();
}

main();
})();
