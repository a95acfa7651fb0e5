/* neuronatlas: the static atlas page.
 *
 * Data arrive as scripts that call this global: data/meta.js calls ATLAS.setMeta and
 * data/layerN.js calls ATLAS.addLayer (file:// forbids fetch()). A layer's data and
 * sprite sheet are loaded only when the layer is shown. Neurons are "L:I" as in
 * docs/format.md: layers 1..L (L = output), neurons 0-based; #7:1 opens a neuron's panel.
 * Tile sizes below are for the larger side of the model's input image; the other side
 * follows its aspect. Classes are shown with their names where the dataset has them.
 * Needs common.js (NA) first; markup only through NA.html, which escapes every value.
 */
"use strict";

const ATLAS = (() => {
  const GRID_TILE = 56;   // px of a tile in the overview (2x the 28-pixel image) ...
  const GRID_TILE_BIG = 84;  // ... and 3x for layers of at most BIG_LAYER neurons
  const BIG_LAYER = 128;
  const BIG_TILE = 168;   // px of the visualisation in the panel (6x)
  const SMALL_TILE = 84;  // px of variants and averages (3x)
  const DIGIT_TILE = 42;  // px of a dataset example (1.5x)
  const HIST_PX = 64;     // px of the tallest bar of the class histogram
  const VOTE_PX = 30;     // px of the longest bar of a signed bar chart, each way
  const SOURCE_TILE = 56; // px of an incoming neuron's tile (2x)
  const LIVE = location.protocol.startsWith("http");

  const state = {meta: null, layers: {}, loading: {}, resolve: {}, layer: null,
                 open: null, order: []};
  const {$, html, setHTML, cssURL, fmt, neuronName, parseTarget} = NA;

  // --- formatting ----------------------------------------------------------------------
  /** A probability as a percentage: 2 decimals, 2 significant digits below 0.01%. */
  const pct = (p) => (p >= 1e-4 ? (100 * p).toFixed(2) : (100 * p).toPrecision(2)) + "%";
  const num = (field, x) => html`<span data-field="${field}" data-value="${x === null ? "inf" : x}">${fmt(x)}</span>`;
  const link = (l, i) => html`<a href="#${neuronName(l, i)}" class="nlink">${neuronName(l, i)}</a>`;
  /** A class as the user knows it (plain text: html`` escapes it where it is shown). */
  const cname = (c) => NA.className(state.meta.class_names, c);
  /** [width, height] in px of a tile whose larger side is `size` px. */
  function dims(size) {
    const [h, w] = state.meta.tile;
    const m = Math.max(h, w);
    return [Math.round((size * w) / m), Math.round((size * h) / m)];
  }

  // --- data ----------------------------------------------------------------------------
  const layerMeta = (l) => state.meta.layers[l - 1];
  const nLayers = () => state.meta.layers.length;

  function loadLayer(l) {
    if (state.layers[l]) return Promise.resolve(state.layers[l]);
    if (!state.loading[l]) {
      state.loading[l] = new Promise((resolve, reject) => {
        state.resolve[l] = resolve;
        const s = document.createElement("script");
        s.src = layerMeta(l).data;
        s.onerror = () => reject(new Error(`cannot load ${s.src}`));
        document.head.appendChild(s);
      });
    }
    return state.loading[l];
  }

  function addLayer(doc) {
    doc.explain_top = doc.explain.top_class;  // the class most of its top images have
    doc.explain_k = state.meta.explain_k;
    state.layers[doc.layer] = doc;
    if (state.resolve[doc.layer]) state.resolve[doc.layer](doc);
  }

  // --- sprites -------------------------------------------------------------------------
  /** CSS that shows tile i of a sheet holding n tiles, at size px. */
  function spriteCSS(url, i, n, size) {
    const cols = state.meta.cols;
    const rows = Math.ceil(n / cols);
    const [w, h] = dims(size);
    return `background-image:${cssURL(url)};background-size:${cols * w}px ${rows * h}px;` +
      `background-position:-${(i % cols) * w}px -${Math.floor(i / cols) * h}px;` +
      `width:${w}px;height:${h}px`;
  }

  function digitCSS(u, size) {
    const d = state.meta.digits;
    const sheet = Math.floor(u / d.per_sheet);
    const inSheet = Math.min(d.per_sheet, d.count - sheet * d.per_sheet);
    return spriteCSS(d.sheets[sheet], u % d.per_sheet, inSheet, size);
  }

  // --- overview ------------------------------------------------------------------------
  function buildTabs() {
    const nav = $("layers");
    setHTML(nav, html`${state.meta.layers.map((m) => html`<button type="button" data-layer="${m.layer}"
      title="layer ${m.layer}: ${m.size} neurons"><b>${m.layer}</b><small>${m.output ? "out" : m.size}</small></button>`)}`);
    nav.addEventListener("click", (e) => {
      const b = e.target.closest("button");
      if (b) { closePanel(); showLayer(+b.dataset.layer); }
    });
  }

  async function showLayer(l) {
    if (state.layer === l && state.layers[l]) return state.layers[l];
    state.layer = l;
    for (const b of $("layers").children) b.classList.toggle("active", +b.dataset.layer === l);
    const doc = await loadLayer(l);
    if (state.layer !== l) return doc;
    buildGrid(l, doc);
    fillClusterFilter(doc);
    describeLayer(l);
    applyView();
    if (!state.open) history.replaceState(null, "", `#${l}`);
    return doc;
  }

  function buildGrid(l, doc) {
    const m = layerMeta(l);
    const grid = $("grid");
    const rows = Math.ceil(m.size / state.meta.cols);
    // layer 1 shows each neuron's signed weights beside its picture: a tile twice as wide
    const wide = m.sprites.overview ? 2 : 1;
    const [w1, th] = dims(m.size <= BIG_LAYER ? GRID_TILE_BIG : GRID_TILE);
    const tw = wide * w1;
    grid.style.setProperty("--sprite", cssURL(m.sprites.overview || m.sprites.vis));
    grid.style.setProperty("--sheet", `${state.meta.cols * tw}px ${rows * th}px`);
    grid.style.setProperty("--tile", `${tw}px`);
    grid.style.setProperty("--tile-h", `${th}px`);
    const frag = document.createDocumentFragment();
    for (let i = 0; i < m.size; i++) {
      const t = document.createElement("button");
      t.type = "button";
      t.className = `tile ${doc.status[i]}${doc.unmoved[i] ? " unmoved" : ""}`;
      t.dataset.i = i;
      t.style.backgroundPosition =
        `-${(i % state.meta.cols) * tw}px -${Math.floor(i / state.meta.cols) * th}px`;
      t.title = `${neuronName(l, i)} · ratio ${fmt(doc.ratio[i])} (${fmt(doc.activation[i])})` +
        ` · class ${cname(doc.preferred[i])}${doc.status[i] === "alive" ? "" : " · " + doc.status[i]}` +
        (doc.unmoved[i] ? " · no method moves it off 0" : "");
      const idx = document.createElement("span");
      idx.className = "idx";
      idx.textContent = String(i);
      t.appendChild(idx);
      if (disagrees(doc, i)) {  // the picture tells another story than the data
        const w = document.createElement("span");
        w.className = "warn";
        w.textContent = "≠";
        t.appendChild(w);
        t.title += ` · its picture is read as ${cname(doc.explain.picture_class[i])}, its top ` +
          `images are mostly ${cname(doc.explain_top[i])}`;
      }
      frag.appendChild(t);
    }
    grid.replaceChildren(frag);
  }

  function describeLayer(l) {
    const m = layerMeta(l);
    const parts = [`${m.size} neurons`];
    if (!m.output) parts.push(`${m.dead} dead`, `${m.clusters} clusters`);
    if (m.ratio_median !== null) parts.push(`median ratio ${fmt(m.ratio_median)}`);
    const tiles = m.sprites.overview ? html` · tiles: its input weights (<span class="pos">+</span> /
      <span class="neg">&minus;</span>) beside its picture` : "";
    setHTML($("layer-info"), html`<b>${m.output ? "Output layer" : "Hidden layer"} ${l}</b> · ${
      parts.join(" · ")} <span class="muted">· visualisations: ${state.meta.vis_label}${tiles}</span>`);
  }

  function fillClusterFilter(doc) {
    const sel = $("f-cluster");
    const opts = [["all", "any"], ["any", "in a cluster"], ["none", "in no cluster"]];
    doc.clusters.forEach((g, c) => opts.push([String(c), `#${c + 1} (${g.length})`]));
    setHTML(sel, html`${opts.map(([v, t]) => html`<option value="${v}">${t}</option>`)}`);
    sel.disabled = doc.clusters.length === 0;
  }

  /** Whether neuron i's picture is read as another class than most of its top images
   * (a neuron that is dead or that no method moves has no picture to judge). */
  const disagrees = (doc, i) => doc.status[i] !== "dead" && !doc.unmoved[i] &&
    doc.explain.class_agreement[i] === 0;

  function keepFilter(doc) {
    const st = $("f-status").value, cls = $("f-class").value, cl = $("f-cluster").value;
    const pic = $("f-picture").value, sel = +$("f-selectivity").value;
    return (i) =>
      (st === "all" || doc.status[i] === st || (st === "alive" && doc.status[i] !== "dead")) &&
      (cls === "all" || doc.preferred[i] === +cls) &&
      (cl === "all" || (cl === "any" ? doc.cluster[i] >= 0
        : cl === "none" ? doc.cluster[i] < 0 : doc.cluster[i] === +cl)) &&
      (pic === "all" || (pic === "disagrees") === disagrees(doc, i)) &&
      doc.explain.selectivity[i] >= sel;
  }

  const SORTS = {
    index: () => null,
    ratio: (doc) => (a, b) => val(doc.ratio[b]) - val(doc.ratio[a]) || a - b,
    activation: (doc) => (a, b) => doc.activation[b] - doc.activation[a] || a - b,
    class: (doc) => (a, b) => doc.preferred[a] - doc.preferred[b] ||
      doc.purity[b] - doc.purity[a] || a - b,
    selectivity: (doc) => desc(doc.explain.selectivity),
    reach: (doc) => desc(doc.explain.reach),
    two_choice: (doc) => desc(doc.explain.two_choice),
    disagrees: (doc) => (a, b) => disagrees(doc, b) - disagrees(doc, a) || a - b,
  };
  const val = (x) => (x === null ? Infinity : x);
  /** Largest first; a number that is not there (null: NaN) last. */
  const desc = (col) => (a, b) => nval(col[b]) - nval(col[a]) || a - b;
  const nval = (x) => (x === null ? -Infinity : x);

  /** Filter and sort the tiles of the shown layer; state.order is what arrows walk. */
  function applyView() {
    const doc = state.layers[state.layer];
    if (!doc) return;
    const n = doc.activation.length;
    let idx = [...Array(n).keys()];
    const cmp = SORTS[$("sort").value](doc);
    if (cmp) idx.sort(cmp);
    const keep = keepFilter(doc);
    const grid = $("grid");
    const tiles = [...grid.children];
    const frag = document.createDocumentFragment();
    for (const i of idx) {
      tiles[i].hidden = !keep(i);
      frag.appendChild(tiles[i]);
    }
    grid.replaceChildren(frag);
    state.order = idx.filter(keep);
    $("count").textContent = `${state.order.length} of ${n} shown`;
  }

  // --- the panel -----------------------------------------------------------------------
  async function openNeuron(l, i) {
    if (!(l >= 1 && l <= nLayers()) || !(i >= 0 && i < layerMeta(l).size)) {
      return searchError(`no neuron ${l}:${i} (layers 1..${nLayers()})`);
    }
    searchError("");
    await showLayer(l);
    state.open = [l, i];
    const panel = $("panel");
    setHTML(panel, panelHTML(l, i, state.layers[l]));
    panel.hidden = false;
    panel.scrollTop = 0;
    document.body.classList.add("panel-open");
    for (const t of document.querySelectorAll(".tile.selected")) t.classList.remove("selected");
    const tile = $("grid").children.length ? document.querySelector(`.tile[data-i="${i}"]`) : null;
    if (tile) {
      tile.classList.add("selected");
      tile.scrollIntoView({block: "nearest"});
    }
    history.replaceState(null, "", `#${l}:${i}`);
  }

  function closePanel() {
    if (!state.open) return;
    state.open = null;
    $("panel").hidden = true;
    document.body.classList.remove("panel-open");
    for (const t of document.querySelectorAll(".tile.selected")) t.classList.remove("selected");
    if (state.layer) history.replaceState(null, "", `#${state.layer}`);
  }

  function panelHTML(l, i, doc) {
    const m = layerMeta(l);
    const what = m.output ? `output layer ${l} · class ${cname(i)}` : `hidden layer ${l} · neuron ${i}`;
    return html`
      <div class="panel-head">
        <div><h2>Neuron <span class="nid">${neuronName(l, i)}</span></h2>
          <div class="muted">${what} of ${m.size}</div></div>
        <div class="nav">
          <button type="button" data-go="prev" title="previous neuron (←)">&larr;</button>
          <button type="button" data-go="next" title="next neuron (→)">&rarr;</button>
          <button type="button" data-go="close" title="close (Esc)">&times;</button>
        </div>
      </div>
      ${heroHTML(l, i, doc, m)}
      ${explainHTML(l, i, doc, m)}
      ${diverseHTML(l, i, doc, m)}
      ${variantsHTML(l, i, doc, m)}
      ${examplesHTML(l, i, doc, m)}
      ${histogramHTML(i, doc)}
      ${m.output ? "" : clusterHTML(l, i, doc)}
      ${LIVE ? html`<p class="live-row"><a class="live" href="live.html#${neuronName(l, i)}">live visualiser &rarr;</a></p>` : ""}`;
  }

  function heroHTML(l, i, doc, m) {
    const top3 = doc.top3[i].map((c, j) =>
      html`<span class="out${j === 0 ? " first" : ""}"><b>${cname(c)}</b> ${pct(doc.top3_probs[i][j])}</span>`);
    const status = m.output ? "" : html`<dt>state</dt><dd><span class="badge ${doc.status[i]}">${
      doc.status[i] === "revivable" ? "silent on data, revivable" : doc.status[i]}</span></dd>`;
    const unmoved = doc.unmoved[i] ? html`<b>No method moves this neuron off 0</b>: there is no
      picture of it, only of the regularisers, so none is shown. ` : "";
    return html`
      <div class="hero">
        <div class="big sprite" style="${spriteCSS(m.sprites.vis, i, m.size, BIG_TILE)}"></div>
        <dl class="nums">
          <dt>ratio <span class="muted">(activation)</span></dt>
          <dd class="ratio-line"><span class="ratio">${num("ratio", doc.ratio[i])}</span>
            <span class="raw">(${num("activation", doc.activation[i])})</span></dd>
          <dt>next-highest</dt>
          <dd>${link(l, doc.next_index[i])} at ${num("next_activation", doc.next_activation[i])}</dd>
          <dt>top-3 outputs</dt><dd class="top3">${top3}</dd>
          ${status}
          <dt>preferred class</dt>
          <dd><b>${cname(doc.preferred[i])}</b> <span class="muted">(${Math.round(100 * doc.purity[i])}% of top ${state.meta.k})</span></dd>
        </dl>
      </div>
      <p class="caption">${unmoved}${state.meta.vis_label}; ratio = activation / next-highest
        activation in the layer${m.output ? " (SoftMax)" : ""}</p>`;
  }

  /** What the numbers say: the description, how far to trust the picture, how the
   * neuron is built from the layer below, its input filter and its votes. */
  function explainHTML(l, i, doc, m) {
    const e = doc.explain;
    return html`<p class="description" data-field="description">${e.description[i]}</p>
      ${trustHTML(l, i, doc, m)}${incomingHTML(l, i, doc, m)}${m.output ? "" : votesHTML(i, e)}`;
  }

  function trustHTML(l, i, doc, m) {
    const e = doc.explain;
    const pc = e.picture_class[i], top = doc.explain_top[i];
    const agree = e.class_agreement[i] === 1;
    const reach = e.reach[i] === null ? "never active on the training images"
      : `${Math.round(100 * e.reach[i])}% of its strongest training image's activation`;
    const tc = e.two_choice[i] === null ? "no clear strong test images"
      : `${Math.round(100 * e.two_choice[i])}% (chance 50%)`;
    const verdict = doc.unmoved[i] || doc.status[i] === "dead" ? html`<span class="muted">no picture to judge</span>`
      : agree ? html`<span class="badge agrees">agrees with its data</span>`
        : html`<span class="badge disagrees">disagrees with its data</span>`;
    return html`<h3>How far to trust its picture ${verdict}</h3>
      <dl class="nums trust">
        <dt>class agreement</dt><dd data-field="class_agreement" data-value="${e.class_agreement[i]}">the
          network reads the picture as <b>${cname(pc)}</b>; its top ${e.top_classes[i]} images are
          mostly <b>${cname(top)}</b></dd>
        <dt>reach</dt><dd data-field="reach" data-value="${e.reach[i] === null ? "nan" : e.reach[i]}">the
          picture reaches ${reach}</dd>
        <dt>two-choice</dt><dd data-field="two_choice">of two held-out images, likeness to the picture
          picks the stronger: ${tc}</dd>
        <dt>selectivity · sparsity</dt><dd>${Math.round(100 * e.selectivity[i])}% of its top
          ${e.top_classes[i]} are one class · it fires on ${(100 * e.sparsity[i]).toFixed(1)}% of the images</dd>
      </dl>`;
  }

  function incomingHTML(l, i, doc, m) {
    const e = doc.explain;
    const src = e.incoming[i];
    let sources;
    if (l === 1) {
      const w = state.meta.tile[1], ch = state.meta.channels;
      sources = src.map((j, k) => {
        const p = Math.floor(j / ch);
        return html`<li>pixel ${j} <span class="muted">(row ${Math.floor(p / w)}, column ${p % w})</span>:
          ${num("contribution", e.incoming_contribution[i][k])}</li>`;
      });
      sources = html`<ol class="pixels">${sources}</ol>`;
    } else {
      const below = layerMeta(l - 1);
      sources = src.map((j, k) => html`<figure class="source">
        <a href="#${neuronName(l - 1, j)}" title="${neuronName(l - 1, j)}: weight ${fmt(e.incoming_weight[i][k])}">
          <div class="sprite" style="${spriteCSS(below.sprites.vis, j, below.size, SOURCE_TILE)}"></div></a>
        <figcaption>${link(l - 1, j)}<br>${num("contribution", e.incoming_contribution[i][k])}</figcaption>
      </figure>`);
      sources = html`<div class="row sources">${sources}</div>`;
    }
    const what = l === 1 ? "pixels" : `neurons of layer ${l - 1}`;
    const filter = avgFigure(m.sprites.filter, i, m, l === 1
      ? html`input filter: its weight row <span class="pos">+</span> / <span class="neg">&minus;</span>`
      : html`input filter: mean &part;z/&part;x over its top ${doc.explain_k} images
        <span class="pos">+</span> / <span class="neg">&minus;</span>`);
    return html`<h3>Built from <span class="muted">(the ${src.length} ${what} with the largest mean
      weight &times; activation over its top ${doc.explain_k} images)</span></h3>${sources}
      <p class="caption">mean pre-activation ${num("mean_pre_activation", e.mean_pre_activation[i])}
        = every contribution + bias ${num("bias", e.bias[i])}</p>
      <div class="row">${filter}</div>`;
  }

  /** Bars up (orange) for positive values and down (blue) for negative, one per class. */
  function signedBars(values, field) {
    const top = Math.max(1e-30, ...values.map((v) => Math.abs(v || 0)));
    const h = (v) => Math.round((VOTE_PX * Math.abs(v || 0)) / top);
    const bars = values.map((v, c) => html`<div class="sbar" title="class ${cname(c)}: ${fmt(v, "none")}">
        <span class="up"><span class="fill pos" style="height:${v > 0 ? h(v) : 0}px"></span></span>
        <span class="down"><span class="fill neg" style="height:${v < 0 ? h(v) : 0}px"></span></span>
        <span class="cls">${c}</span></div>`);
    return html`<div class="sbars" data-field="${field}">${bars}</div>`;
  }

  function votesHTML(i, e) {
    const finite = e.effect[i].filter((v) => v !== null);  // null: not a number
    const best = finite.length ? cname(e.effect[i].indexOf(Math.max(...finite))) : "no class";
    const acc = e.accuracy_change[i];
    return html`<h3>Votes <span class="muted">(mean &part;logit/&part;a over its top images: the classes it
      pushes up and down; it votes for ${best})</span></h3>${signedBars(e.effect[i], "effect")}
      <h3>Set to 0 <span class="muted">(on ${state.meta.ablation_images} test images: the change of each
      class's mean log-probability; test accuracy ${acc > 0 ? "+" : ""}${(100 * acc).toFixed(1)} points)</span></h3>
      ${signedBars(e.ablation[i], "ablation")}`;
  }

  function diverseHTML(l, i, doc, m) {
    if (doc.unmoved[i]) return "";
    const figs = m.sprites.diverse.map((url, j) => html`
      <figure>
        <div class="sprite" style="${spriteCSS(url, i, m.size, SMALL_TILE)}"></div>
        <figcaption>${fmt(doc.diverse_activation[i][j])}</figcaption>
      </figure>`);
    return html`<h3>${m.sprites.diverse.length} diverse pictures <span class="muted">(${
      state.meta.diverse_label}: pushed apart; their activations)</span></h3><div class="row">${figs}</div>`;
  }

  function variantsHTML(l, i, doc, m) {
    const figs = doc.variants.map((v, j) => html`
      <figure>
        <div class="sprite" style="${spriteCSS(m.sprites.variants[j], i, m.size, SMALL_TILE)}"></div>
        <figcaption><span class="ratio">${fmt(v.ratio[i])}</span> (${fmt(v.activation[i])})
          <br><span class="muted">&rarr; ${cname(v.top1[i])} ${pct(v.top1_prob[i])}</span>
          <br><small>${state.meta.variant_labels[j]}</small></figcaption>
      </figure>`);
    return html`<h3>The paper's method <span class="muted">(first) and its regularisation
      variants</span></h3><div class="row">${figs}</div>`;
  }

  /** A figure of tile i of a sheet, with a caption (markup). */
  const avgFigure = (url, i, m, caption) => html`<figure>
      <div class="sprite" style="${spriteCSS(url, i, m.size, SMALL_TILE)}"></div>
      <figcaption><small>${caption}</small></figcaption></figure>`;

  function examplesHTML(l, i, doc, m) {
    const k = doc.examples[i].length;
    const tiles = doc.examples[i].map((u, j) => {
      const row = doc.example_rows[i][j];
      const where = row < state.meta.n_train ? `train #${row}` : `test #${row - state.meta.n_train}`;
      return html`<div class="digit sprite" style="${digitCSS(u, DIGIT_TILE)}"
        title="${where} · class ${cname(doc.example_labels[i][j])} · activation ${fmt(doc.example_activation[i][j])}">
        <span>${doc.example_labels[i][j]}</span></div>`;
    });
    const avgs = [avgFigure(m.sprites.mean_topk, i, m, `average of the top ${k}`),
      avgFigure(m.sprites.mean_p99, i, m,
                `average of the ${doc.p99_count[i]} images at or above the 99th percentile`)];
    if (m.sprites.weights) {
      avgs.push(avgFigure(m.sprites.weights, i, m, state.meta.channels === 3
        ? "input weights (each channel's, mid-grey = 0)"
        : html`input weights <span class="pos">+</span> / <span class="neg">&minus;</span>`));
    }
    if (m.sprites.exact) {  // layer 1: the exact maximum over the image box
      avgs.push(avgFigure(m.sprites.exact, i, m, html`exact maximum (pixels of positive weight
        on): ${num("exact_activation", doc.exact_activation[i])}; the visualisation reaches
        ${Math.round(100 * doc.exact_reached[i])}% of its z range`));
    }
    return html`<h3>Top ${k} dataset images</h3><div class="digits">${tiles}</div>
      <div class="row">${avgs}</div>`;
  }

  function histogramHTML(i, doc) {
    const h = doc.histogram[i];
    const top = Math.max(1, ...h);
    const bars = h.map((c, cls) => html`
      <div class="bar${cls === doc.preferred[i] ? " pref" : ""}" title="class ${cname(cls)}: ${c}">
        <span class="n">${c || ""}</span>
        <span class="fill" style="height:${Math.round((HIST_PX * c) / top)}px"></span>
        <span class="cls">${cls}</span></div>`);
    return html`<h3>Classes of the top ${h.reduce((a, b) => a + b, 0)}</h3><div class="hist">${bars}</div>`;
  }

  function clusterHTML(l, i, doc) {
    const c = doc.cluster[i];
    let text;
    if (c < 0) {
      text = html`<p class="muted">In no cluster: its activations over the dataset correlate with no
        other neuron's strongly enough (average r &ge; 0.5).</p>`;
    } else {
      const members = doc.clusters[c].map((j) =>
        (j === i ? html`<b class="self">${neuronName(l, j)}</b> ` : html`${link(l, j)} `));
      const classes = [...new Set(doc.cluster_classes[c])].sort((a, b) => a - b).map(cname).join(", ");
      text = html`<p>Cluster <b>#${c + 1}</b> of layer ${l}: ${doc.clusters[c].length} neurons whose
        activations rise and fall together over the dataset; their preferred classes: ${classes}.</p>
        <p class="members">${members}</p>`;
    }
    const rising = doc.co_risers_top[i].map((j) => html`${link(l, j)} `);
    const more = doc.co_risers[i] > doc.co_risers_top[i].length ? html`&hellip;` : "";
    return html`<h3>Cluster</h3>${text}
      <p>Co-risers on its visualisation (&ge; half its activation): <b>${doc.co_risers[i]}</b>
        ${rising.length ? html`<span class="members">${rising}${more}</span>` : ""}</p>`;
  }

  // --- navigation ----------------------------------------------------------------------
  function stepNeuron(d) {
    const [l, i] = state.open;
    const pos = state.order.indexOf(i);
    const n = layerMeta(l).size;
    const next = pos < 0 ? Math.min(n - 1, Math.max(0, i + d))
      : state.order[Math.min(state.order.length - 1, Math.max(0, pos + d))];
    if (next !== i) openNeuron(l, next);
  }

  function stepLayer(d) {
    const l = (state.open ? state.open[0] : state.layer) + d;
    if (l < 1 || l > nLayers()) return;
    if (state.open) openNeuron(l, Math.min(state.open[1], layerMeta(l).size - 1));
    else showLayer(l);
  }

  function onKey(e) {
    const typing = e.target.matches && e.target.matches("input, select, textarea");
    if (e.key === "Escape") { closePanel(); if (typing) e.target.blur(); return; }
    if (typing || e.altKey || e.ctrlKey || e.metaKey) return;
    const open = Boolean(state.open);
    const acts = {
      ArrowLeft: open && (() => stepNeuron(-1)), ArrowRight: open && (() => stepNeuron(1)),
      ArrowUp: open && (() => stepLayer(-1)), ArrowDown: open && (() => stepLayer(1)),
      PageUp: () => stepLayer(-1), PageDown: () => stepLayer(1),
    };
    if (acts[e.key]) { e.preventDefault(); acts[e.key](); }
  }

  function go(text) {
    const t = parseTarget(text);
    if (!t) return searchError(text.trim() ? `"${text.trim()}": type layer:neuron, e.g. 7:1` : "");
    if (t[1] !== null) return openNeuron(t[0], t[1]);
    if (!(t[0] >= 1 && t[0] <= nLayers())) return searchError(`no layer ${t[0]}`);
    closePanel();
    return showLayer(t[0]);
  }

  function searchError(msg) { $("search-error").textContent = msg; }

  function bindEvents() {
    $("search-form").addEventListener("submit", (e) => { e.preventDefault(); go($("search").value); });
    for (const id of ["f-status", "f-class", "f-cluster", "f-picture", "f-selectivity", "sort"]) {
      $(id).addEventListener("change", applyView);
    }
    $("grid").addEventListener("click", (e) => {
      const t = e.target.closest(".tile");
      if (t) openNeuron(state.layer, +t.dataset.i);
    });
    $("panel").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-go]");
      if (b) ({prev: () => stepNeuron(-1), next: () => stepNeuron(1), close: closePanel})[b.dataset.go]();
    });
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", () => go(location.hash.slice(1)));
  }

  function setMeta(meta) {
    state.meta = meta;
    const acc = Number.isFinite(meta.test_accuracy)
      ? ` · test accuracy ${(100 * meta.test_accuracy).toFixed(2)}%` : "";
    const acts = meta.activations && meta.activations.length ? ` · ${meta.activations.join("/")}` : "";
    const data = meta.dataset ? ` · ${meta.dataset}` : "";
    $("model").textContent = `${meta.run} · ${meta.sizes.join("-")}${acts}${data}${acc}`;
    const classes = meta.sizes[meta.sizes.length - 1];
    for (let c = 0; c < classes; c++) $("f-class").add(new Option(cname(c), String(c)));
    $("draw").hidden = !LIVE;
    buildTabs();
    bindEvents();
    const hash = location.hash.slice(1);
    if (!hash || !parseTarget(hash)) showLayer(1);
    else go(hash);
  }

  return {setMeta, addLayer};
})();
