"""The status page at the admin listener's `/`: one HTML document, inline CSS and JavaScript.

No external asset (fonts, scripts, CDNs), so it works on an offline host
and through an SSH tunnel. It polls `/status` every 2 s and draws each
route's requests per second over the last two minutes as a sparkline,
computed in the browser from successive counts (the server keeps no history).
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flexilib status</title>
<style>
  :root { --fg: #1d2330; --muted: #6b7385; --line: #e3e6ec; --ok: #1a7f37; --bad: #c62828;
          --accent: #3b6fd8; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: var(--fg); background: var(--bg); }
  header { display: flex; gap: 1.5rem; align-items: baseline; padding: 1rem 1.5rem;
           background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  h1 { font-size: 1.2rem; margin: 0; }
  h2 { font-size: 1rem; margin: 1.5rem 1.5rem .5rem; }
  .pill { padding: .1rem .6rem; border-radius: 1rem; color: #fff; font-weight: 600; }
  .ready { background: var(--ok); } .notready { background: var(--bad); }
  .muted { color: var(--muted); }
  table { border-collapse: collapse; margin: 0 1.5rem; background: #fff; min-width: 60%;
          border: 1px solid var(--line); }
  th, td { padding: .35rem .7rem; border-bottom: 1px solid var(--line); text-align: left;
           white-space: nowrap; }
  th { font-weight: 600; color: var(--muted); font-size: .8rem; text-transform: uppercase; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.err { color: var(--bad); }
  code { font: 12px ui-monospace, monospace; }
  svg.spark { vertical-align: middle; }
  footer { margin: 1.5rem; color: var(--muted); font-size: .8rem; }
</style>
</head>
<body>
<header>
  <h1>flexilib <span id="version" class="muted"></span></h1>
  <span id="state" class="pill notready">loading</span>
  <span>up <b id="uptime">-</b></span>
  <span>config <code id="config">-</code></span>
  <span id="reload" class="muted"></span>
</header>
<h2>Routes</h2>
<table id="routes">
  <thead><tr><th>route</th><th>target</th><th>kind</th><th>version</th><th>loaded</th>
  <th>requests</th><th>errors</th><th>p50 ms</th><th>p99 ms</th><th>in flight</th>
  <th>req/s (2 min)</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Workers</h2>
<table id="workers">
  <thead><tr><th>#</th><th>pid</th><th>started</th><th>restarts</th><th>requests</th>
  <th>connections</th><th>memory</th><th>serving</th></tr></thead>
  <tbody></tbody>
</table>
<footer>Refreshed every 2 s from <a href="status">/status</a> &middot;
  <a href="metrics">/metrics</a> &middot; <a href="readyz">/readyz</a></footer>
<script>
"use strict";
const history = {};  // route key -> [requests per second, ...]
let last = null;     // {time, counts: {key: requests}}
const KEEP = 60;

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  return td;
}

function duration(seconds) {
  const s = Math.floor(seconds), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

function clock(iso) { return iso ? new Date(iso).toLocaleTimeString() : "-"; }

function spark(values) {
  const w = 120, h = 24, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("width", w); svg.setAttribute("height", h);
  const top = Math.max(1, ...values), step = w / (KEEP - 1), start = KEEP - values.length;
  const points = values.map((v, i) =>
    ((start + i) * step).toFixed(1) + "," + (h - 2 - (v / top) * (h - 4)).toFixed(1));
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("fill", "none"); line.setAttribute("stroke", "#3b6fd8");
  line.setAttribute("stroke-width", "1.5");
  svg.appendChild(line);
  const title = document.createElementNS(ns, "title");
  title.textContent = (values.length ? values[values.length - 1].toFixed(1) : "0") + " req/s";
  svg.appendChild(title);
  return svg;
}

function render(s) {
  document.getElementById("version").textContent = "v" + s.version;
  const state = document.getElementById("state");
  state.textContent = s.ready ? "ready" : "not ready: " + s.reason;
  state.className = "pill " + (s.ready ? "ready" : "notready");
  document.getElementById("uptime").textContent = duration(s.uptime_s);
  document.getElementById("config").textContent =
    s.config.path + " (generation " + s.config.generation + ")";
  const r = s.config.last_reload;
  document.getElementById("reload").textContent = r
    ? "last reload " + clock(r.time) + ": " + r.result + (r.error ? " \\u2014 " + r.error : "")
    : "no reload yet";

  const now = performance.now() / 1000, counts = {};
  const body = document.querySelector("#routes tbody");
  body.replaceChildren();
  for (const route of s.routes) {
    counts[route.key] = route.requests;
    if (last && route.key in last.counts) {
      const rate = (route.requests - last.counts[route.key]) / Math.max(now - last.time, 0.001);
      const h = history[route.key] = history[route.key] || [];
      h.push(Math.max(rate, 0));
      if (h.length > KEEP) h.shift();
    }
    const row = body.insertRow();
    row.dataset.route = route.key;
    const key = document.createElement("code");
    key.textContent = route.key;
    row.insertCell().appendChild(key);
    cell(row, route.target);
    cell(row, route.kind);
    cell(row, route.version, "num");
    cell(row, clock(route.loaded_at));
    cell(row, route.requests, "num requests");
    cell(row, route.errors, route.errors ? "num err errors" : "num errors");
    cell(row, route.p50_ms === null ? null : route.p50_ms.toFixed(2), "num");
    cell(row, route.p99_ms === null ? null : route.p99_ms.toFixed(2), "num");
    cell(row, route.in_flight, "num");
    const rates = history[route.key] || [], rate = rates.length ? rates[rates.length - 1] : 0;
    const trend = row.insertCell();
    trend.className = "num";
    trend.append(spark(rates), " " + rate.toFixed(rate < 10 ? 1 : 0));
  }
  last = {time: now, counts: counts};

  const workers = document.querySelector("#workers tbody");
  workers.replaceChildren();
  for (const w of s.workers) {
    const row = workers.insertRow();
    cell(row, w.number, "num"); cell(row, w.pid, "num"); cell(row, clock(w.started));
    cell(row, w.restarts, "num"); cell(row, w.requests, "num"); cell(row, w.connections, "num");
    cell(row, (w.rss_bytes / 1048576).toFixed(1) + " MB", "num");
    cell(row, w.serving ? "yes" : "no");
  }
  document.body.dataset.loaded = "1";
}

async function refresh() {
  try {
    const answer = await fetch("status", {cache: "no-store"});
    render(await answer.json());
  } catch (e) {
    const state = document.getElementById("state");
    state.textContent = "admin port unreachable";
    state.className = "pill notready";
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
