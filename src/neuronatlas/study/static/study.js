/* The study page: every number from study-data.js (STUDY.set({...}), written by
 * neuronatlas study from study.zarr), shown as tables and small SVG charts. All markup
 * goes through NA.html (common.js), so no name from a spec can become markup. */
(() => {
"use strict";
const { $, html, setHTML, fmt, cssURL, neuronName } = NA;
let D = null;
window.STUDY = { set(doc) { D = doc; } };

const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
const colour = (v) => (v === null || v === undefined ? "#eee"
  : `hsl(${Math.round(220 - 180 * v)}, 70%, ${Math.round(92 - 42 * v)}%)`);

function networks() {
  const axes = D.axes;
  const head = html`<tr><th class="name">network</th>${axes.map((a) => html`<th>${a}</th>`)}
    <th>sizes</th><th>test accuracy</th><th>training s</th><th>atlas</th></tr>`;
  const rows = D.networks.map((n) => html`<tr><td class="name">${n.name}</td>
    ${axes.map((a) => html`<td>${n.axes[a] === undefined ? "" : String(n.axes[a])}</td>`)}
    <td>${n.sizes.join("-")}</td><td>${pct(n.test_accuracy)}</td>
    <td>${fmt(n.train_seconds, "–")}</td>
    <td>${n.atlas ? html`<a href="${n.atlas}">open</a>` : "–"}</td></tr>`);
  setHTML($("networks"), html`${head}${rows}`);
}

function grid(layer, field) {
  const names = D.networks.map((n) => n.name);
  const value = (a, b) => {
    if (a === b) return 1;
    const p = D.pairs.find((q) => (q.a === a && q.b === b) || (q.a === b && q.b === a));
    return p ? p[field][layer - 1] : undefined;
  };
  const head = html`<tr><th></th>${names.map((n, i) => html`<th title="${n}">${i + 1}</th>`)}</tr>`;
  const rows = names.map((a, i) => html`<tr><th class="name">${i + 1} ${a}</th>${names.map((b) => {
    const v = value(a, b);
    return html`<td style="background:${colour(v)}">${v === undefined ? "" : fmt(v, "–")}</td>`;
  })}</tr>`);
  return html`<table class="grid"><caption>layer ${layer}: ${field === "cka" ? "linear CKA"
    : "matched at r ≥ 0.9"}</caption>${head}${rows}</table>`;
}

function pairs() {
  const blocks = D.layers.map((l) => html`<div class="grids">${grid(l, "share_0_9")}${grid(l, "cka")}</div>`);
  setHTML($("pairs"), D.pairs.length ? html`${blocks}` : html`<p>No pair was compared.</p>`);
}

function universality() {
  const head = html`<tr><th class="name">network</th>${D.layers.map((l) => html`<th>layer ${l}:
    universal</th><th>median excess</th><th>best / rotated</th>`)}</tr>`;
  const rows = D.networks.map((n, i) => html`<tr><td class="name">${n.name}</td>${D.layers.map(
    (l, j) => {
      const u = D.universality[i][j];
      return u ? html`<td>${pct(u.universal)}</td><td>${fmt(u.excess, "–")}</td>
        <td>${fmt(u.best, "–")} / ${fmt(u.null, "–")}</td>` : html`<td>–</td><td>–</td><td>–</td>`;
    })}</tr>`);
  setHTML($("universality"), html`${head}${rows}`);
}

function chart(series, steps) {
  const W = 360, H = 160, pad = 28;
  const maxStep = Math.max(1, ...steps);
  const x = (s) => pad + (W - 2 * pad) * (s / maxStep);
  const y = (v) => H - pad - (H - 2 * pad) * v;
  const colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
  const lines = series.map((vals, k) => {
    const pts = vals.map((v, s) => (v === null ? null : `${x(steps[s])},${y(v)}`)).filter(Boolean);
    return html`<polyline fill="none" stroke="${colours[k % 7]}" stroke-width="2"
      points="${pts.join(" ")}"/><text x="${W - pad + 2}" y="${y(vals[vals.length - 1] ?? 0) + 11 * k}"
      font-size="10" fill="${colours[k % 7]}">L${k + 1}</text>`;
  });
  return html`<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
    <line x1="${pad}" y1="${y(0)}" x2="${W - pad}" y2="${y(0)}" stroke="#999"/>
    <line x1="${pad}" y1="${y(1)}" x2="${W - pad}" y2="${y(1)}" stroke="#ddd"/>
    <text x="2" y="${y(1) + 4}" font-size="10">1</text><text x="2" y="${y(0) + 4}" font-size="10">0</text>
    <text x="${W - pad}" y="${H - 6}" font-size="10" text-anchor="end">step ${maxStep}</text>
    ${lines}</svg>`;
}

function formation() {
  const shown = D.networks.map((n, i) => [n, D.formation[i]]).filter(([, f]) => f);
  setHTML($("formation"), shown.length ? html`<div class="grids">${shown.map(([n, f]) => html`
    <figure><figcaption>${n.name}</figcaption>${chart(f.cka_to_final, f.steps)}</figure>`)}</div>`
    : html`<p>No network kept snapshots (snapshots = K in the spec).</p>`);
}

/* --- every neuron: a layer's tiles, and a neuron's panel beside its matches ------------ */
const COLS = 32;  // tiles per sprite row (atlas/sprites.py)
const ZOOM = 2;

/** One tile of a sprite sheet, as a span with the sheet as its background. */
function tile(net, sheet, index, title, zoom = ZOOM) {
  const url = net.neurons[`${sheet}_sheet`];
  const [h, w] = net.shape;
  if (!url) return html`<span class="tile none" style="width:${w * zoom}px;height:${h * zoom}px"
    title="not rendered">–</span>`;
  const x = (index % COLS) * w * zoom, y = Math.floor(index / COLS) * h * zoom;
  return html`<span class="tile" title="${title}" style="width:${w * zoom}px;height:${h * zoom}px;
    background-image:${cssURL(url)};background-size:${COLS * w * zoom}px auto;
    background-position:-${x}px -${y}px"></span>`;
}

const flat = (net, layer, j) => net.neurons.offsets[layer - 1] + j;

/** A neuron's top examples, as tiles. */
function examples(net, layer, j, zoom = ZOOM) {
  const k = net.neurons.examples;
  if (!k) return html`<span class="note">no examples</span>`;
  const base = flat(net, layer, j) * k;
  return html`${Array.from({ length: k }, (_, e) => tile(net, "examples", base + e,
    `top example ${e + 1}`, zoom))}`;
}

/** Where neuron j of `layer` of network `i` went in every network it was compared with:
 * the Hungarian match (B's index for A's neuron, or A's for B's) and its correlation. */
function matchesOf(i, layer, j) {
  const name = D.networks[i].name;
  const out = [];
  for (const p of D.pairs) {
    if (!p.done || (p.a !== name && p.b !== name)) continue;
    const assign = p.assignment[layer - 1], corr = p.matched_corr[layer - 1];
    if (!assign) continue;
    let other, k, r;
    if (p.a === name) {
      other = p.b; k = assign[j] ?? -1; r = k >= 0 ? corr[j] : null;
    } else {
      other = p.a; const a = assign.indexOf(j); k = a; r = a >= 0 ? corr[a] : null;
    }
    out.push({ net: D.networks.findIndex((n) => n.name === other), neuron: k, r });
  }
  return out;
}

function neuronTitle(i, layer, j) { return `${D.networks[i].name} · ${neuronName(layer, j)}`; }

function link(i, layer, j, body) {
  return html`<a href="#n=${i}/${layer}/${j}" data-n="${i}/${layer}/${j}">${body}</a>`;
}

function panel(i, layer, j) {
  const net = D.networks[i];
  const u = layer >= 1 ? net.neurons.layers[layer - 1] : undefined;
  if (!u || j >= net.sizes[layer]) { setHTML($("panel"), html`<p>No such neuron.</p>`); return; }
  const num = (f) => fmt(u[f][j], "–");
  const at = u.formed_at[j], steps = net.neurons.film_steps;
  const formed = !steps.length ? "– (no snapshots)" : at === null ? "never (r to its final self < 0.9)"
    : `snapshot ${at} (step ${steps[at]})`;
  const universal = u.universal[j] === null ? "–" : u.universal[j] >= 1 ? "yes" : "no";
  const K = net.neurons.film;
  const when = (k) => (steps[k] === undefined ? `snapshot ${k}` : `step ${steps[k]}`);
  const film = K ? html`<div class="film">${Array.from({ length: K }, (_, k) =>
    html`<figure>${tile(net, "film", flat(net, layer, j) * K + k,
      when(k))}<figcaption>${when(k)}</figcaption></figure>`)}</div>`
    : html`<p class="note">No filmstrip: this network kept no snapshots.</p>`;
  const rows = matchesOf(i, layer, j).map((m) => {
    const other = D.networks[m.net];
    if (m.neuron < 0) {
      const why = layer >= other.sizes.length - 1 ? `it has no layer ${layer}`
        : "unmatched: a dead neuron on one side, or more neurons here than there";
      return html`<tr><td class="name">${other.name}</td><td>–</td>
        <td>${why}</td><td></td><td></td></tr>`;
    }
    return html`<tr><td class="name">${other.name}</td>
      <td>${link(m.net, layer, m.neuron, neuronName(layer, m.neuron))}</td>
      <td>${fmt(m.r, "–")}</td>
      <td>${link(m.net, layer, m.neuron, tile(other, "pictures", flat(other, layer, m.neuron),
        neuronTitle(m.net, layer, m.neuron)))}</td>
      <td class="ex">${examples(other, layer, m.neuron, 1)}</td></tr>`;
  });
  setHTML($("panel"), html`<h3>${neuronTitle(i, layer, j)}</h3>
    <div class="me">${tile(net, "pictures", flat(net, layer, j), neuronTitle(i, layer, j), 4)}
      <div><p>best match r (mean over the others) ${num("best")}; against a rotated layer
      ${num("null")}; excess ${num("excess")}; universal: ${universal}; formed at
      ${formed}</p><div class="ex">${examples(net, layer, j)}</div></div></div>
    <h4>Over training (${D.preset} picture at each snapshot)</h4>${film}
    <h4>Its one-to-one match in the other networks</h4>
    ${rows.length ? html`<table class="matches"><tr><th class="name">network</th><th>neuron</th>
      <th>r</th><th>picture</th><th>top examples</th></tr>${rows}</table>`
      : html`<p class="note">Not compared with any network.</p>`}`);
}

function layerTiles() {
  const i = +$("net").value, layer = +$("layer").value;
  const net = D.networks[i];
  const n = net.sizes[layer] !== undefined && layer < net.sizes.length - 1 ? net.sizes[layer] : 0;
  setHTML($("tiles"), n ? html`${Array.from({ length: n }, (_, j) => link(i, layer, j,
    tile(net, "pictures", flat(net, layer, j), neuronName(layer, j), 1)))}`
    : html`<p class="note">This network has no layer ${layer}.</p>`);
}

function show(hash) {
  const m = /^#n=(\d+)\/(\d+)\/(\d+)$/.exec(hash || "");
  if (!m || !D.networks[+m[1]]) return;
  if (!D.layers.includes(+m[2])) { setHTML($("panel"), html`<p>No layer ${m[2]}.</p>`); return; }
  $("net").value = m[1]; $("layer").value = m[2];
  layerTiles(); panel(+m[1], +m[2], +m[3]);
}

function neurons() {
  setHTML($("net"), html`${D.networks.map((n, i) => html`<option value="${i}">${n.name}</option>`)}`);
  setHTML($("layer"), html`${D.layers.map((l) => html`<option value="${l}">layer ${l}</option>`)}`);
  $("net").addEventListener("change", layerTiles);
  $("layer").addEventListener("change", layerTiles);
  window.addEventListener("hashchange", () => show(location.hash));
  layerTiles();
  show(location.hash || "#n=0/1/0");
}

document.addEventListener("DOMContentLoaded", () => {
  if (!D) { $("summary").textContent = "study-data.js is missing"; return; }
  $("title").textContent = `study: ${D.title}`;
  const images = [...new Set(D.pairs.map((p) => p.images))].join(" or ");
  $("summary").textContent = `${D.networks.length} networks, ${D.pairs.length} pairs compared ` +
    `on ${images || 0} test images; every number here is in study.zarr`;
  const failed = D.networks.filter((n) => !n.done).length + D.pairs.filter((p) => !p.done).length;
  if (failed || !D.universal_done) {
    $("warning").textContent = `Not every task finished (${failed} networks or pairs missing` +
      `${D.universal_done ? "" : "; universality is not computed: it needs every pair"}); ` +
      "what is shown is what finished. See study.json.";
  }
  networks(); pairs(); universality(); formation(); neurons();
});
})();
