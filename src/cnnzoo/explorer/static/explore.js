/* The explorer's script: it draws, sorts and filters what the page's JSON holds, and computes
   nothing of the network's arithmetic (every figure comes from cnnzoo.analyze in Python). */
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("page-data").textContent);
  const app = document.getElementById("app");
  const SVG = "http://www.w3.org/2000/svg"; // the SVG namespace name, not a resource

  // ---- small helpers ---------------------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }
  function s(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  const count = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"));
  function short(n) { // the notes' three significant figures: 3.2M, 854M
    for (const [d, u] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]]) {
      if (Math.abs(n) >= d) return Number((n / d).toPrecision(3)) + u;
    }
    return String(n);
  }
  function mb(n) { // decimal units, as the notes write memory
    for (const [d, u] of [[1e9, "GB"], [1e6, "MB"], [1e3, "kB"]]) if (n >= d) return (n / d).toFixed(1) + " " + u;
    return n + " B";
  }
  const rfText = (rf, glob) => (glob ? "global" : String(rf));
  const measure = document.createElement("canvas").getContext("2d");
  let measureFont = "";
  function textWidth(t, font) { // pixels of text in a CSS font, for the layout and the columns
    if (font !== measureFont) measure.font = measureFont = font; // parsing a font is slow
    return measure.measureText(t).width;
  }
  function onActivate(e, fn) { // click, or Enter / Space from the keyboard
    e.addEventListener("click", fn);
    e.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); fn(ev); }
    });
  }

  // ---- theme -----------------------------------------------------------------------------
  const root = document.documentElement;
  try { const t = localStorage.getItem("cnnzoo-theme"); if (t) root.dataset.theme = t; } catch (e) { /* file:// may refuse storage */ }
  document.getElementById("theme").addEventListener("click", () => {
    const dark = root.dataset.theme ? root.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = dark ? "light" : "dark";
    try { localStorage.setItem("cnnzoo-theme", root.dataset.theme); } catch (e) { /* as above */ }
  });
  if (D.links && D.links.compare && D.kind !== "compare") {
    document.getElementById("nav-extra").append(h("a", { href: D.links.compare, text: "compare" }));
  }

  // ---- a sortable, filterable table --------------------------------------------------------
  // cols: {key, title, num, value(row) for sorting, cell(row) -> text, link(row) -> href, bar}
  // A grid of rows rather than a <table>: each row is laid out only when scrolled into view
  // (content-visibility), so an 800-row network opens as fast as AlexNet. The rows are written
  // as one HTML string, share one listener, and sorting moves the existing rows.
  const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  function table(cols, rows, opts) {
    const max = {}, width = {}, text = {};
    const font = getComputedStyle(document.body).fontFamily;
    for (const c of cols) {
      text[c.key] = rows.map((r) => String(c.cell(r)));
      if (c.bar) max[c.key] = Math.max(1e-12, ...rows.map((r) => c.value(r) || 0));
      // the column fits its widest text: measure the few longest strings, not all of them
      const cellFont = c.cls === "formula" ? "15px ui-monospace, 'DejaVu Sans Mono', monospace" : `17px ${font}`;
      const longest = [...new Set(text[c.key])].sort((a, b) => b.length - a.length).slice(0, 8);
      width[c.key] = Math.max(textWidth(c.title + " \u25BC", `600 17px ${font}`),
        ...longest.map((t) => textWidth(t, cellFont))) + 24; // + the cell's padding
    }
    // the first opts.pin columns (the row's number and name) stay in view when the table
    // scrolls sideways, as on a projector's 1280 pixels: each is stuck at the sum of those before
    const pin = {};
    cols.slice(0, opts.pin || 0).reduce((left, c) => { pin[c.key] = left; return left + Math.ceil(width[c.key]); }, 0);
    const pinned = (c) => (c.key in pin ? { cls: " pin", style: `left:${pin[c.key]}px;` } : { cls: "", style: "" });
    const html = rows.map((r, i) => {
      const id = opts.rowId ? opts.rowId(r, i) : i;
      const cells = cols.map((c) => {
        const cls = ["cell", c.num ? "num" : "", c.cls || "", c.bar ? "bar " + c.bar : ""].join(" ").trim() + pinned(c).cls;
        let v = esc(text[c.key][i]);
        if (c.link) v = `<a href="${esc(c.link(r))}">${v}</a>`;
        if (c.cls === "formula") v = `<span class="mono">${v}</span>`;
        // a bar is the cell's background, drawn to the row's share of the largest value
        const style = (c.bar ? `--w:${(100 * (c.value(r) || 0) / max[c.key]).toFixed(1)}%` : "") + pinned(c).style;
        return `<div role="cell" class="${cls}"${style ? ` style="${style}"` : ""}>${v}</div>`;
      });
      return `<div role="row" class="row" tabindex="0" data-i="${i}" data-row="${esc(id)}">${cells.join("")}</div>`;
    });
    const body = h("div", { role: "rowgroup", class: "rows" });
    body.innerHTML = html.join("");
    const trs = Array.from(body.children);
    if (opts.onSelect) {
      onActivate(body, (ev) => {
        const tr = ev.target.closest(".row");
        if (tr && !ev.target.closest("a")) opts.onSelect(Number(tr.dataset.i));
      });
    }
    const head = h("div", { role: "row", class: "row head" });
    let order = rows.map((_, i) => i);
    let sortKey = null, dir = 1;
    for (const c of cols) {
      const th = h("div", { role: "columnheader", class: "cell" + (c.num ? " num" : "") + pinned(c).cls, style: pinned(c).style || null, tabindex: "0", title: c.help || "sort by " + c.title, text: c.title });
      onActivate(th, () => {
        dir = sortKey === c.key ? -dir : (c.num ? -1 : 1);
        sortKey = c.key;
        for (const o of head.children) o.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
        order = rows.map((_, i) => i).sort((a, b) => {
          const x = c.value(rows[a]), y = c.value(rows[b]);
          return (x < y ? -1 : x > y ? 1 : a - b) * dir;
        });
        draw();
      });
      head.append(th);
    }
    let filter = "";
    const words = rows.map((r) => opts.text(r).toLowerCase());
    function draw() {
      body.replaceChildren(...order.filter((i) => !filter || words[i].includes(filter)).map((i) => trs[i]));
    }
    const hint = opts.placeholder || "filter";
    // wide enough for its whole hint (+ the box's padding, border and the search field's clear button)
    const input = h("input", { type: "search", placeholder: hint, "aria-label": "filter the rows",
      style: `width:${Math.ceil(textWidth(hint, `17px ${font}`)) + 48}px` });
    input.addEventListener("input", () => { filter = input.value.trim().toLowerCase(); draw(); });
    const grid = cols.map((c) => `${Math.ceil(width[c.key])}px`).join(" ");
    const t = h("div", { role: "table", class: "grid-table", id: opts.id, style: `--cols:${grid}` }, head, body);
    return { input, element: h("div", { class: "table-box" }, t), trs };
  }

  // ---- the model page --------------------------------------------------------------------
  function modelPage() {
    const R = D.report, L = R.layers, T = R.total, batch = R.batch;
    const per = batch === 1 ? "" : ` (batch ${batch})`;
    const ref = D.reference;
    const intro = h("section", {});
    if (D.paper) intro.append(h("p", { class: "paper", text: D.paper }));
    const tl = h("ul", { class: "totals", id: "totals" });
    for (const line of D.totals) tl.append(h("li", { text: line }));
    if (ref && ref.top1 !== null) {
      tl.append(h("li", {}, `Published ImageNet top-1: ${ref.top1}% `,
        ref.url ? h("a", { href: ref.url, title: ref.cite, text: `[${ref.source}]` }) : `[${ref.source}]`,
        ref.note ? ` (${ref.note})` : ""));
    } else if (ref && ref.why) tl.append(h("li", { text: `No ImageNet top-1: ${ref.why}.` }));
    for (const w of D.weights || []) {
      const [c, ih, iw] = w.input_size;
      const top1 = w.top1 === null ? "" : `, top-1 ${w.top1}%`;
      tl.append(h("li", { class: "weights" }, `Published weights ${w.name} (${w.source}${top1}): input ${ih}x${iw}x${c}, ${w.interpolation} resize, crop ${w.crop_pct}, mean ${w.mean.join("/")}, std ${w.std.join("/")} `,
        h("code", { text: `create_model("${w.name}", pretrained=True)` })));
    }
    intro.append(h("p", { text: `Input ${D.input_text}, ${L.length} rows.` }), tl);
    app.append(intro);

    // graph + side panel (selected row, receptive field)
    const gsec = h("section", { class: "two" });
    const gleft = h("div", {});
    const depthSel = h("select", { id: "depth", "aria-label": "collapse the graph by module level" });
    const deepest = Math.max(1, ...L.map((r) => r.name.split("#")[0].split(".").length));
    depthSel.append(h("option", { value: "0", text: "every layer" }));
    for (let d = 1; d <= deepest; d++) depthSel.append(h("option", { value: String(d), text: `modules, level ${d}` }));
    depthSel.value = String(D.depth);
    gleft.append(h("h2", { text: "Graph" }),
      h("div", { class: "controls" }, h("label", {}, "show ", depthSel),
        h("span", { class: "hint", text: "edges carry the tensor's shape (HxWxC); click a layer to see its row, a dashed module to open it" })));
    const gbox = h("div", { class: "graph-box", id: "graph" });
    gleft.append(gbox);
    const side = h("div", {});
    const details = h("div", { class: "details", id: "details", "aria-live": "polite" });
    side.append(h("h2", { text: "Selected layer" }), details);
    const rfsec = h("div", { class: "rf", id: "rf" });
    side.append(h("h2", { text: "Receptive field", style: "margin-top:1rem" }), rfsec);
    gsec.append(gleft, side);
    app.append(gsec);

    // the table
    const prof = D.profile;
    const cols = [
      { key: "i", title: "#", num: true, value: (r) => r.i, cell: (r) => String(r.i + 1) },
      { key: "label", title: "layer", value: (r) => D.labels[r.i], cell: (r) => D.labels[r.i] },
      { key: "name", title: "module", value: (r) => r.name, cell: (r) => r.name },
      { key: "type", title: "type", value: (r) => r.type, cell: (r) => r.type },
      { key: "out", title: "output", value: (r) => r.activations, cell: (r) => D.outputs[r.i], help: "output volume, HxWxC" },
      { key: "formula", title: "formula", cls: "formula", value: (r) => r.param_formula, cell: (r) => (r.params ? r.param_formula : (r.shared.length ? "shared" : "")) },
      { key: "params", title: "params", num: true, bar: "params", value: (r) => r.params, cell: (r) => count(r.params) },
      { key: "macs", title: "MACs" + per, num: true, bar: "macs", value: (r) => r.macs, cell: (r) => count(r.macs) },
      { key: "mem", title: "memory" + per, num: true, bar: "mem", value: (r) => r.act_bytes, cell: (r) => mb(r.act_bytes), help: "bytes of the output" },
      { key: "rf", title: "RF", num: true, value: (r) => (r.rf_global ? Infinity : r.rf), cell: (r) => rfText(r.rf, r.rf_global), help: "receptive field, input pixels" },
      { key: "stride", title: "stride", num: true, value: (r) => r.stride, cell: (r) => String(r.stride), help: "effective stride, input pixels" },
    ];
    if (prof) {
      cols.push({ key: "time", title: "forward ms", num: true, bar: "time", value: (r) => prof.forward_ms[r.i] ?? -1, cell: (r) => (prof.forward_ms[r.i] === null ? "" : prof.forward_ms[r.i].toFixed(3)), help: "measured forward time" });
    }
    const rows = L.map((r, i) => Object.assign({ i }, r));
    const tsec = h("section", {});
    const tb = table(cols, rows, {
      id: "layers", placeholder: "filter: conv, inception3a, 28x28 ...", pin: 2,
      text: (r) => [D.labels[r.i], r.name, r.type, D.outputs[r.i]].join(" "),
      onSelect: (i) => select(i, "table"),
    });
    tsec.append(h("h2", { text: "Layers" }),
      h("div", { class: "controls" }, tb.input,
        h("span", { class: "legend" }, ...[["params", "parameters"], ["macs", "MACs"], ["mem", "activation memory"]].concat(prof ? [["time", "measured time"]] : []).map(([c, t]) =>
          h("span", {}, h("i", { style: `background:var(--${c})` }), t)))),
      tb.element);
    if (prof) tsec.append(h("p", { class: "hint", text: `Measured on ${prof.machine}, batch ${prof.batch}: total ${prof.total_ms} ms, of which ${prof.outside_layers_ms} ms outside the layers.` }));
    app.append(tsec);

    // training memory
    const M = D.memory;
    const msec = h("section", { id: "memory" });
    const stack = h("div", { class: "stack", role: "img", "aria-label": "training memory breakdown" });
    const legend = h("div", { class: "legend" });
    M.parts.forEach(([name, bytes], k) => {
      stack.append(h("div", { class: "m" + k, style: `width:${(100 * bytes / M.total).toFixed(2)}%`, title: `${name}: ${mb(bytes)}` }));
      legend.append(h("span", {}, h("i", { class: "m" + k }), `${name} ${mb(bytes)}`));
    });
    msec.append(h("h2", { text: `Training memory, batch of ${M.batch}: ${mb(M.total)}` }), stack, legend);
    app.append(msec);

    // --- graph -------------------------------------------------------------------------------
    let depth = D.depth;
    const font = getComputedStyle(document.body).fontFamily;
    const mono = "12px ui-monospace, 'DejaVu Sans Mono', monospace";
    const expanded = new Set();
    let nodeOfRow = [];
    let selected = -1;
    function keyOf(i) {
      if (depth === 0) return "r" + i;
      const parts = L[i].name.split("#")[0].split(".");
      let k = depth;
      while (k < parts.length && expanded.has(parts.slice(0, k).join("."))) k++;
      return k >= parts.length ? "r" + i : "g" + parts.slice(0, k).join(".");
    }
    function drawGraph() {
      const nodes = new Map();
      nodeOfRow = L.map((_, i) => keyOf(i));
      nodes.set("in", { rows: [], lines: ["INPUT", D.input_text, ""] });
      nodeOfRow.forEach((id, i) => {
        if (!nodes.has(id)) nodes.set(id, { rows: [] });
        nodes.get(id).rows.push(i);
      });
      for (const [id, n] of nodes) {
        if (id === "in") continue;
        const last = n.rows[n.rows.length - 1];
        if (id[0] === "r") {
          const r = L[last];
          n.lines = [D.labels[last] ? `${D.labels[last]}  ${r.type}` : r.type, r.name, D.outputs[last]];
        } else {
          n.group = id.slice(1);
          n.lines = [n.group, `${n.rows.length} rows`, D.outputs[last]];
        }
      }
      const g = new dagre.graphlib.Graph({ multigraph: true });
      g.setGraph({ rankdir: "TB", nodesep: 22, ranksep: 34, edgesep: 14, marginx: 14, marginy: 14, ranker: "tight-tree" });
      for (const [id, n] of nodes) {
        const w = Math.max(textWidth(n.lines[0], `600 14px ${font}`), textWidth(n.lines[1], `12.5px ${font}`), textWidth(n.lines[2], `12.5px ${font}`));
        g.setNode(id, { width: Math.ceil(w) + 20, height: 58 });
      }
      const seen = new Set();
      const edges = [];
      for (const [src, dst, shape] of D.edges) {
        const a = src < 0 ? "in" : nodeOfRow[src], b = nodeOfRow[dst];
        const key = `${a}|${b}|${shape}`;
        if (a === b || seen.has(key)) continue;
        seen.add(key);
        edges.push({ a, b, shape, name: key });
        g.setEdge(a, b, { width: Math.ceil(textWidth(shape, mono)) + 8, height: 16, labelpos: "c" }, key);
      }
      dagre.layout(g);
      const G = g.graph();
      const svg = s("svg", { width: Math.ceil(G.width), height: Math.ceil(G.height), id: "graph-svg" });
      const defs = s("defs");
      const marker = s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
      const tip = s("path", { d: "M0,0 L10,5 L0,10 z", style: "fill:var(--edge)" });
      marker.append(tip); defs.append(marker); svg.append(defs);
      const eg = s("g"), ng = s("g");
      for (const e of edges) {
        const lay = g.edge(e.a, e.b, e.name);
        const ge = s("g", { class: "edge", "data-from": e.a, "data-to": e.b });
        ge.append(s("path", { d: "M" + lay.points.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" L"), "marker-end": "url(#arrow)" }));
        const w = lay.width;
        ge.append(s("rect", { x: (lay.x - w / 2).toFixed(1), y: (lay.y - 8).toFixed(1), width: w, height: 16, rx: 3 }));
        const t = s("text", { class: "shape", x: lay.x.toFixed(1), y: (lay.y + 4).toFixed(1), "text-anchor": "middle" });
        t.textContent = e.shape;
        ge.append(t);
        eg.append(ge);
      }
      for (const [id, n] of nodes) {
        const lay = g.node(id);
        const gn = s("g", { class: "node" + (n.group ? " group" : ""), id: "node-" + id, tabindex: "0", role: "button", "data-rows": n.rows.join(","), transform: `translate(${(lay.x - lay.width / 2).toFixed(1)},${(lay.y - lay.height / 2).toFixed(1)})` });
        gn.setAttribute("aria-label", n.group ? `module ${n.group}, ${n.rows.length} rows: open it` : n.lines.join(", "));
        gn.append(s("rect", { width: lay.width, height: lay.height, rx: 6 }));
        n.lines.forEach((line, k) => {
          const t = s("text", { class: "l" + (k + 1), x: lay.width / 2, y: 18 + 17 * k, "text-anchor": "middle" });
          t.textContent = line;
          gn.append(t);
        });
        if (id !== "in") {
          onActivate(gn, () => {
            if (n.group) { expanded.add(n.group); drawGraph(); select(n.rows[0], "graph"); }
            else select(n.rows[0], "graph");
          });
        }
        ng.append(gn);
      }
      svg.append(eg, ng);
      gbox.replaceChildren(svg);
      markNode();
    }
    function markNode() {
      for (const e of gbox.querySelectorAll(".node.sel")) e.classList.remove("sel");
      if (selected < 0) return;
      const n = document.getElementById("node-" + nodeOfRow[selected]);
      if (n) n.classList.add("sel");
      return n;
    }
    depthSel.addEventListener("change", () => { depth = Number(depthSel.value); expanded.clear(); drawGraph(); if (selected >= 0) select(selected, "depth"); });

    // --- selection: table row, graph node, details, receptive field --------------------------------
    let marked = [];
    function select(i, from) {
      selected = i;
      for (const tr of marked) tr.classList.remove("sel", "ingroup");
      const group = nodeOfRow[i][0] === "g" ? nodeOfRow[i] : null;
      marked = group ? tb.trs.filter((_, k) => nodeOfRow[k] === group) : [];
      for (const tr of marked) tr.classList.add("ingroup");
      const tr = tb.trs[i];
      tr.classList.add("sel");
      marked.push(tr);
      if (from !== "table" && from !== "init") tr.scrollIntoView({ block: "nearest" });
      const n = markNode();
      if (n && from !== "graph" && from !== "init") n.scrollIntoView({ block: "nearest", inline: "nearest" });
      showDetails(i);
      rfSel.value = String(i);
      drawRF();
    }
    function showDetails(i) {
      const r = L[i];
      const dl = h("dl", {});
      const add = (k, v) => dl.append(h("dt", { text: k }), h("dd", { text: v }));
      add("layer", `${D.labels[i] ? D.labels[i] + " " : ""}${r.name} (${r.type})`);
      add("output", D.outputs[i]);
      const reads = D.edges.filter((e) => e[1] === i); // in the order of r.inputs
      add("reads", reads.map(([j, , shape]) => `${j < 0 ? "INPUT" : L[j].name} (${shape})`).join(", "));
      add("params", r.params ? `${r.param_formula} = ${count(r.params)}` : (r.shared.length ? `shared with ${r.shared.join(", ")}` : "0"));
      add("MACs" + per, `${count(r.macs)} (${short(r.macs)})`);
      add("memory" + per, `${count(r.activations)} values, ${mb(r.act_bytes)}`);
      add("receptive field", `${rfText(r.rf, r.rf_global)}${r.rf_global ? "" : " px"}, effective stride ${r.stride}`);
      const unc = Object.entries(r.uncounted);
      if (unc.length) add("not in MACs", unc.map(([k, v]) => `${k} x${v}`).join(", "));
      if (prof && prof.forward_ms[i] !== null) add("forward", `${prof.forward_ms[i].toFixed(3)} ms`);
      details.replaceChildren(dl);
    }

    // --- receptive field over the sample image ----------------------------------------------------
    const [C, H, W] = R.input;
    const rfSel = h("select", { id: "rf-layer", "aria-label": "layer whose receptive field to draw" });
    rfSel.innerHTML = L.map((r, i) => `<option value="${i}">${i + 1} ${esc(D.labels[i] || r.type)} ${esc(r.name)}</option>`).join("");
    const zoomSel = h("select", { id: "rf-zoom", "aria-label": "image pixels per input pixel" });
    for (const z of [1, 2, 3, 4, 8]) zoomSel.append(h("option", { value: String(z), text: `${z} px per input pixel` }));
    zoomSel.value = String([8, 4, 3, 2, 1].find((z) => z * Math.max(H, W) <= 460) || 1);
    const caption = h("p", { id: "rf-caption", "aria-live": "polite" });
    const picture = h("div", {});
    let centre = [W / 2, H / 2];
    rfsec.append(h("div", { class: "controls" }, rfSel, zoomSel), picture, caption,
      h("p", { class: "hint", text: "Click the image to move the unit: it moves in steps of the effective stride. Dashed: the receptive field of the next unit to the right." }));
    rfSel.addEventListener("change", () => select(Number(rfSel.value), "rf"));
    zoomSel.addEventListener("change", drawRF);
    function drawRF() {
      const i = Number(rfSel.value), r = L[i], z = Number(zoomSel.value);
      if (!D.image) { caption.textContent = `receptive field ${rfText(r.rf, r.rf_global)}, effective stride ${r.stride}`; return; }
      const svg = s("svg", { width: W * z, height: H * z, viewBox: `0 0 ${W} ${H}`, id: "rf-svg", "data-scale": z });
      const clip = s("clipPath", { id: "rf-clip" });
      clip.append(s("rect", { x: 0, y: 0, width: W, height: H }));
      svg.append(clip);
      svg.append(s("image", { href: D.image, x: 0, y: 0, width: W, height: H }));
      const side = r.rf_global ? Math.max(W, H) : r.rf;
      const [cx, cy] = r.rf_global ? [W / 2, H / 2] : centre;
      const unit = s("rect", { class: "unit", id: "rf-square", x: cx - side / 2, y: cy - side / 2, width: side, height: side, "clip-path": "url(#rf-clip)", "data-rf": side });
      if (!r.rf_global && r.stride < W) {
        svg.append(s("rect", { class: "next", x: cx - side / 2 + r.stride, y: cy - side / 2, width: side, height: side, "clip-path": "url(#rf-clip)" }));
      }
      svg.append(unit, s("circle", { class: "centre", cx, cy, r: Math.max(0.8, Math.min(2.5, W / 80)) }));
      svg.addEventListener("click", (ev) => {
        const box = svg.getBoundingClientRect();
        const x = (ev.clientX - box.left) / z, y = (ev.clientY - box.top) / z;
        const snap = (v, mid) => mid + Math.round((v - mid) / r.stride) * r.stride;
        centre = [snap(x, W / 2), snap(y, H / 2)];
        drawRF();
      });
      picture.replaceChildren(svg);
      const lab = `${D.labels[i] ? D.labels[i] + " " : ""}${r.name}`;
      caption.textContent = r.rf_global
        ? `${lab}: one unit sees the whole ${H}x${W} input (global pooling on its path).`
        : `${lab}: one unit sees ${r.rf}x${r.rf} input pixels${r.rf > Math.min(H, W) ? " (more than the image: clipped to it)" : ""}; neighbouring units are ${r.stride} pixels apart (effective stride). Drawn at ${z} px per input pixel.`;
    }

    drawGraph();
    select(L.length > 0 ? 0 : -1, "init");
    window.scrollTo(0, 0);
  }

  // ---- index and comparison pages ------------------------------------------------------------
  function modelsTable() {
    const M = D.models;
    const top1 = (r) => (r.reference && r.reference.top1 !== null && r.reference.top1 !== undefined ? r.reference.top1 : null);
    const cols = [
      { key: "name", title: "model", value: (r) => r.name, cell: (r) => r.name, link: (r) => D.pages[r.name] },
      { key: "input", title: "input", value: (r) => r.input, cell: (r) => r.input },
      { key: "layers", title: "rows", num: true, value: (r) => r.layers, cell: (r) => String(r.layers) },
      { key: "params", title: "params", num: true, bar: "params", value: (r) => r.params, cell: (r) => count(r.params) },
      { key: "macs", title: "MACs / image", num: true, bar: "macs", value: (r) => r.macs, cell: (r) => short(r.macs) },
      { key: "mem", title: "forward memory / image", num: true, bar: "mem", value: (r) => r.forward_bytes, cell: (r) => mb(r.forward_bytes) },
      { key: "train", title: "training memory", num: true, value: (r) => r.training_bytes, cell: (r) => mb(r.training_bytes) },
      { key: "rf", title: "RF", num: true, value: (r) => (r.rf_global ? Infinity : r.rf), cell: (r) => rfText(r.rf, r.rf_global) },
      { key: "top1", title: "top-1 %", num: true, value: (r) => top1(r) ?? -1, cell: (r) => (top1(r) === null ? (r.reference && r.reference.why ? "n/a" : "") : `${top1(r)} [${r.reference.source}]`) },
    ];
    const tb = table(cols, M, { id: "models", placeholder: "filter models", pin: 1, text: (r) => r.name, rowId: (r) => r.name });
    app.append(h("section", {}, h("div", { class: "controls" }, tb.input), tb.element));
    return tb;
  }
  function indexPage() {
    app.prepend(h("p", { class: "paper", text: `${D.models.length} models, each analysed at its input size by cnnzoo.analyze. Open one for its table, graph, receptive fields and training memory.` }));
    modelsTable();
  }
  function comparePage() {
    const chart = app.querySelector("svg.chart");
    const tb = modelsTable();
    if (chart) {
      app.prepend(h("h2", { text: "Complexity: published top-1 against operations, bubble area = parameters" }), chart);
      // hovering a row highlights its bubble, and the other way round
      for (const tr of tb.trs) {
        const b = chart.querySelector(`a[data-model="${CSS.escape(tr.dataset.row)}"]`);
        if (!b) continue;
        tr.addEventListener("mouseenter", () => b.classList.add("hl"));
        tr.addEventListener("mouseleave", () => b.classList.remove("hl"));
        b.addEventListener("mouseenter", () => tr.classList.add("sel"));
        b.addEventListener("mouseleave", () => tr.classList.remove("sel"));
      }
    }
    if (D.left_out.length) app.append(h("p", { class: "hint", text: `Not on the chart (no published ImageNet top-1): ${D.left_out.join(", ")}.` }));
    const cited = new Map();
    for (const r of D.models) if (r.reference && r.reference.source) cited.set(r.reference.source, r.reference);
    const ul = h("ul", { class: "sources" });
    for (const [k, ref] of cited) ul.append(h("li", {}, `[${k}] ${ref.cite} `, ref.url ? h("a", { href: ref.url, text: ref.url }) : ""));
    app.append(h("section", {}, h("h2", { text: "Sources of the published figures" }), ul));
  }

  ({ model: modelPage, index: indexPage, compare: comparePage })[D.kind]();
  // Ready once the first frame is drawn (layout and paint done), not when the script ends.
  requestAnimationFrame(() => setTimeout(() => { document.body.dataset.ready = performance.now().toFixed(1); }));
})();
