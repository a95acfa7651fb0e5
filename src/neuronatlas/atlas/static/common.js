/* neuronatlas: what the atlas page (atlas.js) and the live page (live.js) share. Plain JS,
 * no build; loaded before the page's own script, it declares one global, NA.
 *
 * Markup is built only with the html`...` tag: every value interpolated into it is
 * escaped unless it is itself html`...` (or a list of them), and setHTML takes nothing
 * else. A class name, a label or a number from a data file or the server can never
 * become markup.
 */
"use strict";

const NA = (() => {
  const $ = (id) => document.getElementById(id);

  /** Text made safe for HTML text and for attribute values in either quotes. */
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  /** Markup: what html`...` returns; only it is inserted unescaped. */
  class Html {
    constructor(text) { this.text = text; }
    toString() { return this.text; }
  }

  const piece = (v) => (v instanceof Html ? v.text
    : Array.isArray(v) ? v.map(piece).join("") : esc(v));

  /** The tag for markup: html`<b>${name}</b>` escapes `name`; nested html`` is kept. */
  function html(strings, ...values) {
    let out = strings[0];
    values.forEach((v, i) => { out += piece(v) + strings[i + 1]; });
    return new Html(out);
  }

  /** Set an element's markup; refuses anything but html`...` (a plain string). */
  function setHTML(el, markup) {
    if (!(markup instanceof Html)) throw new TypeError("setHTML takes html`...` markup only");
    el.innerHTML = markup.text;
  }

  /** A CSS url(...) of a file name: quoted, with the characters that end it encoded. */
  const cssURL = (url) => `url("${String(url).replace(/["\\\n\r]/g, encodeURIComponent)}")`;

  /** A number with 4 significant digits, no trailing zeros (1.2e-5 stays short); null
   * is `none` (the atlas: an infinite ratio, "∞"; the live page: not finite). */
  function fmt(x, none = "∞") {
    if (x === null || x === undefined) return none;
    if (typeof x !== "number") return String(x);
    if (x === 0) return "0";
    const a = Math.abs(x);
    if (a >= 1e-3 && a < 1e5) return String(Number(x.toPrecision(4)));
    return x.toExponential(2);
  }

  /** A class as the user knows it, as plain text: "3" for digits, "0 T-shirt/top" for
   * named classes (`names` from the model; missing: the index). */
  function className(names, k) {
    const n = (names || [])[k];
    return n === undefined || n === null || String(n) === String(k) ? String(k) : `${k} ${n}`;
  }

  /** A neuron as docs/format.md names it: "layer:index". */
  const neuronName = (layer, index) => `${layer}:${index}`;

  /** "7:1", "L7N1", "7 1" (or a URL hash without its #) -> [7, 1]; "7" or "L7" ->
   * [7, null]; else null. A malformed %-escape ("50%") is read as it is. */
  function parseTarget(text) {
    let t = String(text);
    try { t = decodeURIComponent(t); } catch (e) { /* "50%": not an escape, keep it */ }
    t = t.trim();
    let m = /^L?(\d+)\s*[:N,\s]\s*(\d+)$/i.exec(t);
    if (m) return [+m[1], +m[2]];
    m = /^L?(\d+)$/i.exec(t);
    return m ? [+m[1], null] : null;
  }

  return Object.freeze({$, esc, html, setHTML, cssURL, fmt, className, neuronName,
                        parseTarget});
})();
