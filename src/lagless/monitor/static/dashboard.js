// The lagless dashboard: polls api/summary every two seconds and draws it with plain DOM and
// hand-made SVG (sparklines, stacked layer bars, a waterfall). Every string from the server is
// set with textContent, never as HTML: route names and SQL come from the monitored app.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LAYERS = ["db", "cache", "http", "serialize", "mw", "app"];
const LAYER_NAMES = {
  db: "database", cache: "cache", http: "outgoing HTTP", serialize: "serialization",
  mw: "middleware", app: "app code", network: "network + browser", server: "server",
};
const REFRESH_MS = 2000;
const BAR_W = 160;
let paused = false;
let selectedRoute = null;
let selectedSample = null;
let last = null;

function color(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim() || "#adb5bd";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

function fmtCount(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

function speedClass(ms) {
  if (ms === null || ms === undefined) return "muted";
  if (ms < 100) return "good";
  if (ms < 500) return "warn";
  return "bad";
}

function sparkline(series) {
  const w = 90, h = 24;
  const max = Math.max(1, ...series);
  const step = w / Math.max(1, series.length - 1);
  const pts = series.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`);
  const node = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img" });
  node.append(svg("polygon", { points: `0,${h} ${pts.join(" ")} ${w},${h}`, fill: "#dbe4ff" }));
  node.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: color("accent"), "stroke-width": 1.5 }));
  return node;
}

function stackedBar(parts, scaleMs, width) {
  const h = 12;
  const node = svg("svg", { width, height: h, viewBox: `0 0 ${width} ${h}`, role: "img" });
  node.append(svg("rect", { x: 0, y: 0, width, height: h, rx: 3, fill: "#f1f3f5" }));
  let x = 0;
  for (const [name, ms] of parts) {
    if (!ms) continue;
    const w = Math.max(1, (ms / scaleMs) * width);
    const rect = svg("rect", { x: x.toFixed(1), y: 0, width: w.toFixed(1), height: h, fill: color(name) });
    const title = svg("title", {});
    title.textContent = `${LAYER_NAMES[name] || name}: ${fmtMs(ms)}`;
    rect.append(title);
    node.append(rect);
    x += w;
  }
  return node;
}

function renderKpis(data) {
  document.getElementById("k-requests").textContent = fmtCount(data.requests);
  document.getElementById("k-rps").textContent = data.rps.toFixed(1);
  const err = document.getElementById("k-errors");
  err.textContent = `${(data.error_rate * 100).toFixed(1)}%`;
  err.className = data.error_rate > 0.01 ? "bad" : "";
  document.getElementById("k-routes").textContent = `${data.routes.length}/${data.max_routes}`;
  document.getElementById("k-workers").textContent = data.processes;
  document.getElementById("routes-sub").textContent =
    `Server time per route template (percentiles within ±${(data.relative_error * 100).toFixed(1)}%); ` +
    `throughput and errors over the last ${data.rate_window_s} s` +
    (data.folded ? ` · ${fmtCount(data.folded)} requests folded into <other>` : "");
}

function renderRoutes(data) {
  const body = document.querySelector("#routes tbody");
  body.replaceChildren();
  document.getElementById("routes-empty").hidden = data.routes.length > 0;
  const widest = Math.max(1, ...data.routes.map((r) =>
    Math.max(LAYERS.reduce((s, l) => s + (r.layers[l] || 0), 0), r.browser ? (r.browser.p50_ms || 0) : 0)));
  for (const r of data.routes) {
    const key = `${r.method} ${r.route}`;
    // Long templates are cut with an ellipsis (CSS) so the table fits; the title keeps the full name.
    const routeCell = el("td", { class: "left route-cell", title: key },
      el("span", { class: "method" }, r.method), el("span", { class: "route" }, r.route));
    if (r.findings.length) {
      const tags = el("div", { class: "tags" });
      for (const code of r.findings) tags.append(el("span", { class: "tag", title: "finding" }, code));
      routeCell.append(tags);
    }
    const parts = LAYERS.map((l) => [l, r.layers[l] || 0]);
    const layerCell = el("td", { class: "left bar-cell" }, stackedBar(parts, widest, BAR_W),
      el("div", { class: "bar-label" },
        parts.filter(([, ms]) => ms >= 0.05).map(([l, ms]) => `${l} ${fmtMs(ms)}`).join(" · ")));
    let browserCell;
    if (r.browser) {
      const b = r.browser;
      const server = b.server_p50_ms || 0;
      const network = b.network_p50_ms || Math.max(0, (b.p50_ms || 0) - server);
      browserCell = el("td", { class: "left bar-cell" },
        stackedBar([["server", server], ["network", network]], widest, BAR_W),
        el("div", { class: "bar-label" },
          `client ${fmtMs(b.p50_ms)} · server ${fmtMs(b.server_p50_ms)} · network ${fmtMs(network)}`),
        el("div", { class: "bar-label" }, `p50 of ${b.count} call${b.count === 1 ? "" : "s"} from browsers`));
    } else {
      browserCell = el("td", { class: "left muted" }, "no browser data");
    }
    const row = el("tr", { "data-route": key },
      routeCell,
      el("td", {}, fmtCount(r.count)),
      el("td", {}, el("div", { class: "spark" }, sparkline(r.series)), el("div", { class: "bar-label" }, `${r.rps.toFixed(1)}/s`)),
      el("td", { class: speedClass(r.p50_ms) }, fmtMs(r.p50_ms)),
      el("td", { class: speedClass(r.p95_ms) }, fmtMs(r.p95_ms)),
      el("td", { class: `p99 ${speedClass(r.p99_ms)}` }, fmtMs(r.p99_ms)),
      el("td", { class: r.error_rate > 0 ? "bad" : "muted" }, `${(r.error_rate * 100).toFixed(1)}%`),
      layerCell,
      browserCell);
    if (key === selectedRoute) row.classList.add("selected");
    row.addEventListener("click", () => {
      selectedRoute = selectedRoute === key ? null : key;
      render(last);
    });
    body.append(row);
  }
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  for (const name of [...LAYERS, "network"]) {
    const item = el("span", {}, LAYER_NAMES[name]);
    item.style.setProperty("--swatch", color(name));
    legend.append(item);
  }
  const note = el("span", {}, "browser bar: server time (dark blue) + what only the user felt (red)");
  note.style.setProperty("--swatch", "transparent");
  legend.append(note);
}

function renderSlow(data) {
  const list = document.getElementById("slow");
  list.replaceChildren();
  const samples = data.slow.filter((s) => !selectedRoute || `${s.method} ${s.route}` === selectedRoute);
  document.getElementById("slow-empty").hidden = samples.length > 0;
  if (selectedSample && !samples.some((s) => s.id === selectedSample)) selectedSample = null;
  if (!selectedSample && samples.length) selectedSample = samples[0].id;
  for (const s of samples) {
    const when = new Date(s.time * 1000).toLocaleTimeString([], { hour12: false });
    const item = el("li", {},
      el("span", { class: "muted" }, when),
      el("span", {}, el("span", { class: "method" }, s.method), el("span", { class: "route" }, s.route)),
      el("span", { class: s.status >= 500 ? "bad" : "muted" }, s.status),
      el("span", { class: `dur ${speedClass(s.duration_ms)}` }, fmtMs(s.duration_ms)));
    if (s.id === selectedSample) item.classList.add("selected");
    item.addEventListener("click", () => { selectedSample = s.id; render(last); });
    list.append(item);
  }
  drawWaterfall(samples.find((s) => s.id === selectedSample));
}

function drawWaterfall(sample) {
  const box = document.getElementById("waterfall");
  box.replaceChildren();
  if (!sample) return;
  const maxRows = 40;
  const spans = sample.spans.slice(0, maxRows);
  const total = Math.max(sample.duration_ms, 0.001);
  const width = 760, labelW = 270, rowH = 18, top = 22;
  const plotW = width - labelW - 60;
  const height = top + (spans.length + 1) * rowH + 6;
  const node = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
  const axis = svg("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const x = labelW + (plotW * i) / 4;
    axis.append(svg("line", { x1: x, x2: x, y1: 14, y2: height }));
    const t = svg("text", { x, y: 10, "text-anchor": "middle" });
    t.textContent = fmtMs((total * i) / 4);
    axis.append(t);
  }
  node.append(axis);
  const rows = [{ kind: "request", name: `${sample.method} ${sample.path}`, offset_ms: 0, duration_ms: sample.duration_ms }, ...spans];
  rows.forEach((s, i) => {
    const y = top + i * rowH;
    const label = svg("text", { x: 0, y: y + 12 });
    const text = i === 0 ? s.name : `${s.kind} · ${s.name}`;
    const name = text.length > 42 ? `${text.slice(0, 41)}…` : text;
    label.textContent = name;
    const full = svg("title", {});
    full.textContent = s.name;
    label.append(full);
    node.append(label);
    const x = labelW + (s.offset_ms / total) * plotW;
    const w = Math.max(1.5, (s.duration_ms / total) * plotW);
    const fill = i === 0 ? "#495057" : s.error ? color("bad") : color(s.kind === "pool" ? "pool" : s.kind);
    node.append(svg("rect", { x: x.toFixed(1), y: y + 3, width: w.toFixed(1), height: rowH - 6, rx: 2, fill }));
    const d = svg("text", { x: (x + w + 4).toFixed(1), y: y + 12 });
    d.textContent = fmtMs(s.duration_ms);
    node.append(d);
  });
  box.append(el("div", { class: "sub" },
    `${sample.method} ${sample.path} → ${sample.status}, ${fmtMs(sample.duration_ms)} ` +
    `(${sample.reason === "p99" ? `over the route's p99 of ${fmtMs(sample.p99_ms)}` : "over the slow threshold"})` +
    (sample.more_spans ? ` · ${sample.more_spans + sample.spans.length - spans.length} more spans not drawn` : "")));
  box.append(node);
}

function renderFindings(data) {
  const list = document.getElementById("findings");
  list.replaceChildren();
  const items = data.findings.filter((f) => !selectedRoute || `${f.method} ${f.route}` === selectedRoute);
  document.getElementById("findings-empty").hidden = items.length > 0;
  for (const f of items.slice(0, 20)) {
    list.append(el("li", { class: f.severity || "" },
      el("div", { class: "title" }, f.title),
      el("div", { class: "meta" }, el("code", {}, f.code), ` · ${f.method} ${f.route} · ~${fmtMs(f.cost_ms)} per request · seen in ${f.samples} sample(s)`),
      el("div", { class: "fix" }, f.fix)));
  }
}

function render(data) {
  if (!data) return;
  renderKpis(data);
  renderRoutes(data);
  renderSlow(data);
  renderFindings(data);
}

async function refresh() {
  if (!paused) {
    try {
      const response = await fetch("api/summary", { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      last = await response.json();
      render(last);
      document.getElementById("updated").textContent =
        `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    } catch (err) {
      document.getElementById("updated").textContent = `refresh failed: ${err.message}`;
    }
  }
  setTimeout(refresh, REFRESH_MS);
}

document.getElementById("pause").addEventListener("click", (event) => {
  paused = !paused;
  event.target.textContent = paused ? "Resume" : "Pause";
  document.querySelector(".pill").classList.toggle("paused", paused);
  document.querySelector(".pill").textContent = paused ? "paused" : "live";
});
refresh();
