/* The study page: every number from study-data.js (STUDY.set({...}), written by
 * neuronatlas study from study.zarr), shown as tables and small SVG charts. All markup
 * goes through NA.html (common.js), so no name from a spec can become markup. */
(() => {
"use strict";
const { $, html, setHTML, fmt } = NA;
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

document.addEventListener("DOMContentLoaded", () => {
  if (!D) { $("summary").textContent = "study-data.js is missing"; return; }
  $("title").textContent = `study: ${D.title}`;
  $("summary").textContent = `${D.networks.length} networks, ${D.pairs.length} pairs compared ` +
    `on ${D.images} test images; every number here is in study.zarr`;
  networks(); pairs(); universality(); formation();
});
})();
