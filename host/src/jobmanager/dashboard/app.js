// Eddy's dashboard: a single page over the JobManager's HTTP API (docs/http-api.md).
// No framework and no build step: the JobManager serves this file from its binary.
// Everything shown comes from tenants' jobs (names, arguments, log lines), so every
// value reaches the page through esc() or textContent, never as markup.
"use strict";

const KEY = "eddy-api-key";
const REFRESH_MS = 1000;
const LOG_LINES_SHOWN = 1000;

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// ---- formatting -------------------------------------------------------------

const DASH = "–";

function fmtNum(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return DASH;
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  const units = ["k", "M", "G", "T", "P"];
  let v = n, u = -1;
  while (Math.abs(v) >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)) + " " + units[u];
}

function fmtRate(n) { return n === null || n === undefined ? DASH : fmtNum(n) + "/s"; }

function fmtBytes(n) {
  if (n === null || n === undefined) return DASH;
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n, u = -1;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + units[u];
}

function fmtDur(ms) {
  if (ms === null || ms === undefined || ms < 0) return DASH;
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d > 0) return `${d} d ${h % 24} h`;
  if (h > 0) return `${h} h ${m % 60} min`;
  return `${m} min ${Math.floor(s % 60)} s`;
}

function fmtTime(ms) {
  if (!ms || ms < 0) return DASH;
  const d = new Date(ms), now = new Date();
  const time = d.toLocaleTimeString([], { hour12: false });
  return d.toDateString() === now.toDateString() ? time : d.toLocaleDateString() + " " + time;
}

function fmtWatermark(w) {
  if (w === null || w === undefined || w <= -9e15) return DASH;
  // i64::MAX: the sources ended, so event time is complete.
  if (w >= 9e18) return "end of input";
  // Event times in ms since the epoch print as times; small ones are counters.
  if (w > 1e11 && w < 1e14) {
    const d = new Date(w);
    return d.toISOString().replace("T", " ").replace("Z", "");
  }
  return String(w);
}

function pct(r) { return r === null || r === undefined ? DASH : Math.round(r * 100) + "%"; }

// The page's policy allows no inline styles: a bar's width is set by sizeBars() after it is drawn.
function bar(r, cls = "") {
  const w = Math.max(0, Math.min(1, r || 0)) * 100;
  return `<span class="bar ${cls}"><i data-width="${w.toFixed(0)}"></i></span>${pct(r)}`;
}

function sizeBars(root) {
  $$(".bar > i[data-width]", root).forEach((i) => { i.style.width = i.dataset.width + "%"; });
}

function badge(status) { return `<span class="badge s-${esc(status)}">${esc(status)}</span>`; }

function shortId(id) { return String(id).length > 12 ? String(id).slice(0, 8) + "…" : String(id); }

// ---- the API ------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

let identity = null;

async function api(method, path, body, raw) {
  for (;;) {
    const key = sessionStorage.getItem(KEY);
    const headers = {};
    if (key) headers.Authorization = "Bearer " + key;
    let payload;
    if (raw) { payload = raw.body; headers["Content-Type"] = raw.type; }
    else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
    const resp = await fetch(path, { method, headers, body: payload, cache: "no-store" });
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    const why = (data && Array.isArray(data.errors) && data.errors.join("; ")) || text || resp.statusText;
    if (resp.status === 401) {
      await askForKey(key ? why : null);
      continue;
    }
    if (!resp.ok) throw new ApiError(resp.status, why);
    return data;
  }
}

// One prompt for every request that found no valid key.
let keyPrompt = null;

function askForKey(why) {
  if (keyPrompt) return keyPrompt;
  sessionStorage.removeItem(KEY);
  keyPrompt = new Promise((resolve) => {
    const dialog = $("#login"), form = $("#login-form"), input = $("#login-key"), error = $("#login-error");
    error.hidden = !why;
    error.textContent = why ? "That key was refused: " + why : "";
    input.value = "";
    const onCancel = (e) => e.preventDefault(); // no way around it: nothing works without a key
    dialog.addEventListener("cancel", onCancel);
    form.onsubmit = async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      const resp = await fetch("/whoami", { headers: { Authorization: "Bearer " + key }, cache: "no-store" });
      if (!resp.ok) {
        const data = await resp.json().catch(() => null);
        error.textContent = "That key was refused: " + ((data && data.errors && data.errors.join("; ")) || resp.statusText);
        error.hidden = false;
        input.select();
        return;
      }
      sessionStorage.setItem(KEY, key);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      keyPrompt = null;
      identity = await resp.json();
      showIdentity();
      resolve();
    };
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return keyPrompt;
}

function showIdentity() {
  const who = $("#who");
  if (!identity) { who.textContent = ""; $("#signout").hidden = true; return; }
  who.textContent = identity.tenant ? `tenant ${identity.tenant} · ${identity.role}` : "admin";
  $("#signout").hidden = !sessionStorage.getItem(KEY);
}

const mayWrite = () => identity && identity.role !== "viewer";
const isAdmin = () => identity && !identity.tenant;

let toastTimer = null;
function toast(message, bad = false) {
  const t = $("#toast");
  t.textContent = message;
  t.className = bad ? "bad" : "";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 9000 : 5000);
}

// ---- pages and their refresh loop ---------------------------------------------

let generation = 0;

function route() {
  const gen = ++generation;
  const parts = (location.hash.replace(/^#/, "") || "/").split("/").filter(Boolean).map(decodeURIComponent);
  let page = overviewPage, arg = null, nav = "overview";
  if (parts[0] === "jobs" && parts[1]) { page = jobPage; arg = parts[1]; nav = null; }
  else if (parts[0] === "taskmanagers" && parts[1]) { page = taskManagerPage; arg = parts[1]; nav = "taskmanagers"; }
  else if (parts[0] === "taskmanagers") { page = taskManagersPage; nav = "taskmanagers"; }
  else if (parts[0] === "submit") { page = submitPage; nav = "submit"; }
  else if (parts.length) { page = notFoundPage; nav = null; }
  $$(".top nav a").forEach((a) => a.classList.toggle("on", a.dataset.nav === nav));
  const view = $("#view");
  view.innerHTML = "";
  const ctx = { view, alive: () => gen === generation };
  const refresh = page(ctx, arg);
  if (refresh) loop(ctx, refresh);
}

async function loop(ctx, refresh) {
  const live = $("#live");
  live.hidden = false;
  while (ctx.alive()) {
    try {
      await refresh();
      live.classList.remove("stale");
      live.textContent = "live";
    } catch (e) {
      if (!ctx.alive()) return;
      live.classList.add("stale");
      live.textContent = e instanceof ApiError ? "error" : "offline";
      live.title = e.message;
      if (e instanceof ApiError && e.status === 404) {
        ctx.view.innerHTML = `<div class="panel"><h1>Not found</h1><p class="muted">${esc(e.message)}</p></div>`;
        return;
      }
    }
    await new Promise((r) => setTimeout(r, REFRESH_MS));
  }
}

function notFoundPage(ctx) {
  ctx.view.innerHTML = `<div class="panel"><h1>Not found</h1><p><a href="#/">Back to the overview</a></p></div>`;
  $("#live").hidden = true;
  return null;
}

// ---- overview -------------------------------------------------------------------

function overviewPage(ctx) {
  ctx.view.innerHTML = `
    <div id="cards" class="cards"></div>
    <div class="panel flush"><h2>Jobs</h2><div id="jobs"></div></div>
    <div class="panel flush"><h2>TaskManagers</h2><div id="tms"></div></div>`;
  return async () => {
    const [overview, jobs, tms] = await Promise.all([
      api("GET", "/overview"),
      api("GET", "/jobs/overview"),
      api("GET", "/taskmanagers").catch((e) => (e.status === 403 ? null : Promise.reject(e))),
    ]);
    if (!ctx.alive()) return;
    const card = (label, value, sub = "") => `<div class="card"><div class="label">${esc(label)}</div><div class="value">${esc(value)}</div><div class="sub">${sub}</div></div>`;
    let cards = "";
    if (overview.taskmanagers !== undefined) {
      cards += card("TaskManagers", overview.taskmanagers);
      cards += card("Free slots", `${overview["slots-available"]} / ${overview["slots-total"]}`, "available / total");
    }
    cards += card("Running jobs", overview["jobs-running"]);
    cards += card("Finished", overview["jobs-finished"]);
    cards += card("Failed", overview["jobs-failed"]);
    cards += card("Cancelled", overview["jobs-cancelled"]);
    $("#cards").innerHTML = cards;
    $("#jobs").innerHTML = jobsTable(jobs.jobs);
    $("#tms").innerHTML = tms ? taskManagersTable(tms.taskmanagers) : `<p class="empty">Only the cluster's admin sees the TaskManagers.</p>`;
  };
}

const ACTIVE = new Set(["CREATED", "RUNNING", "RESTARTING"]);

function jobsTable(jobs) {
  if (!jobs.length) return `<p class="empty">No jobs yet. <a href="#/submit">Submit one</a>.</p>`;
  jobs = jobs.slice().sort((a, b) => (ACTIVE.has(b.state) - ACTIVE.has(a.state)) || (b["start-time"] - a["start-time"]));
  const rows = jobs.map((j) => {
    const t = j.tasks || {};
    const tasks = t.total ? `${t.running ?? 0} running · ${t.finished ?? 0} finished · ${t.total} in all` : DASH;
    return `<tr class="link" data-job="${esc(j.jid)}">
      <td><a href="#/jobs/${encodeURIComponent(j.jid)}">${esc(j.name)}</a></td>
      <td>${badge(j.state)}</td>
      <td>${fmtTime(j["start-time"])}</td>
      <td class="num">${fmtDur(j.duration)}</td>
      <td>${tasks}</td>
      <td class="mono muted" title="${esc(j.jid)}">${esc(shortId(j.jid))}</td></tr>`;
  });
  return `<table id="jobs-table"><thead><tr><th>Name</th><th>Status</th><th>Started</th><th class="num">Duration</th><th>Subtasks</th><th>Id</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function taskManagersTable(tms) {
  if (!tms.length) return `<p class="empty">No TaskManager has registered. Start one with <code>eddy taskmanager --jobmanager HOST:PORT</code>.</p>`;
  const rows = tms.map((t) => `<tr class="link" data-taskmanager="${esc(t.id)}">
      <td><a href="#/taskmanagers/${encodeURIComponent(t.id)}">${esc(t.id)}</a></td>
      <td class="mono">${esc(t.dataAddress)}</td>
      <td class="num">${t.slotsNumber}</td>
      <td class="num">${t.freeSlots}</td>
      <td class="num">${t.runningTasks}</td>
      <td class="num">${fmtDur(t.lastHeartbeatMsAgo)} ago</td></tr>`);
  return `<table id="taskmanagers-table"><thead><tr><th>Id</th><th>Data address</th><th class="num">Slots</th><th class="num">Free</th><th class="num">Running subtasks</th><th class="num">Last heartbeat</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

// Rows link to their page; clicks on the row anywhere follow it.
document.addEventListener("click", (e) => {
  const row = e.target.closest("tr.link");
  if (!row || e.target.closest("a, button, input, select")) return;
  const link = row.querySelector("a[href]");
  if (link) location.hash = link.getAttribute("href");
});

// ---- TaskManagers ---------------------------------------------------------------

function taskManagersPage(ctx) {
  ctx.view.innerHTML = `<div class="panel flush"><h2>TaskManagers</h2><div id="tms"></div></div>`;
  return async () => {
    let tms;
    try { tms = await api("GET", "/taskmanagers"); } catch (e) {
      if (e.status !== 403 || !ctx.alive()) throw e;
      $("#tms").innerHTML = `<p class="empty">Only the cluster's admin sees the TaskManagers.</p>`;
      return;
    }
    if (ctx.alive()) $("#tms").innerHTML = taskManagersTable(tms.taskmanagers);
  };
}

function taskManagerPage(ctx, id) {
  ctx.view.innerHTML = `<div class="jobhead"><h1>TaskManager <span class="mono">${esc(id)}</span></h1></div>
    <div id="tm-facts" class="facts"></div><div class="panel flush"><h2>Slots</h2><div id="slots"></div></div>`;
  return async () => {
    const t = await api("GET", "/taskmanagers/" + encodeURIComponent(id));
    if (!ctx.alive()) return;
    $("#tm-facts").innerHTML = `<span>Data address <b class="mono">${esc(t.dataAddress)}</b></span>
      <span>Slots <b>${t.slotsNumber}</b></span><span>Free <b>${t.freeSlots}</b></span>
      <span>Running subtasks <b>${t.runningTasks}</b></span><span>Last heartbeat <b>${fmtDur(t.lastHeartbeatMsAgo)} ago</b></span>`;
    const rows = t.slots.map((s) => {
      const job = s.job ? `<a href="#/jobs/${encodeURIComponent(s.job)}">${esc(s["job-name"] || s.job)}</a>` : `<span class="muted">free</span>`;
      const subtasks = s.subtasks.map((x) => `${esc(x["task-name"])} <span class="muted">#${x.subtask}</span>`).join("<br>") || DASH;
      return `<tr data-slot="${s.slot}"><td class="num">${s.slot}</td><td>${job}</td><td>${subtasks}</td></tr>`;
    });
    $("#slots").innerHTML = `<table><thead><tr><th class="num narrow">Slot</th><th>Job</th><th>Subtasks</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
  };
}

// ---- a job ------------------------------------------------------------------------

function jobPage(ctx, id) {
  const ui = { task: null, tab: "subtasks", logsAfter: null, logLines: [], logsDropped: 0, job: null };
  ctx.view.innerHTML = `
    <div class="jobhead"><h1 id="job-name"></h1><span id="job-status"></span>
      <div class="actions">
        <button id="savepoint" hidden>Savepoint</button>
        <button id="stop" hidden>Stop with savepoint</button>
        <button id="cancel" class="danger" hidden>Cancel</button>
      </div></div>
    <div id="job-facts" class="facts"></div>
    <div id="job-failure" class="failure" hidden></div>
    <div class="panel"><h2>Dataflow</h2><div id="graph" class="graph"></div></div>
    <div class="panel">
      <div class="tabs" role="tablist">
        <button data-tab="subtasks" class="on">Subtasks</button>
        <button data-tab="checkpoints">Checkpoints</button>
        <button data-tab="exceptions">Exceptions</button>
        <button data-tab="logs">Logs</button>
        <button data-tab="configuration">Configuration</button>
      </div>
      <div id="tab"></div>
    </div>`;

  $$(".tabs button", ctx.view).forEach((b) => b.addEventListener("click", () => {
    ui.tab = b.dataset.tab;
    $$(".tabs button", ctx.view).forEach((x) => x.classList.toggle("on", x === b));
    drawTab(ui);
    if (ui.tab === "logs") refreshLogs(ctx, id, ui).catch(() => {});
  }));
  $("#graph").addEventListener("click", (e) => {
    const node = e.target.closest("g.node");
    ui.task = node && Number(node.dataset.task) !== ui.task ? Number(node.dataset.task) : null;
    if (ui.job) { drawGraph(ui.job, ui); drawTab(ui); }
  });
  $("#cancel").addEventListener("click", async () => {
    if (!confirm(`Cancel job ${ui.job ? ui.job.name : id}? Its subtasks stop at once and its output is not committed further.`)) return;
    try { await api("DELETE", "/jobs/" + encodeURIComponent(id)); toast("Cancelling the job"); } catch (e) { toast(e.message, true); }
  });
  const savepoint = async (stop) => {
    const path = "/jobs/" + encodeURIComponent(id) + (stop ? "/stop" : "/savepoints");
    try {
      const t = await api("POST", path, stop ? {} : { stop: false });
      toast(stop ? "Stopping the job with a savepoint…" : "Taking a savepoint…");
      for (;;) {
        await new Promise((r) => setTimeout(r, 500));
        const s = await api("GET", `/jobs/${encodeURIComponent(id)}/savepoints/${encodeURIComponent(t["request-id"])}`);
        if (s.status.id === "COMPLETED") { toast("Savepoint completed: " + s.operation.location); return; }
      }
    } catch (e) { toast(e.message, true); }
  };
  $("#savepoint").addEventListener("click", () => savepoint(false));
  $("#stop").addEventListener("click", () => {
    if (confirm("Stop the job with a savepoint? It ends once the savepoint is taken; resume from it with eddy run -s.")) savepoint(true);
  });

  return async () => {
    const job = await api("GET", "/jobs/" + encodeURIComponent(id));
    if (!ctx.alive()) return;
    ui.job = job;
    drawJob(job, ui);
    if (ui.tab === "logs") await refreshLogs(ctx, id, ui);
  };
}

function drawJob(job, ui) {
  const name = $("#job-name");
  name.textContent = job.name;
  document.title = job.name + " · Eddy";
  $("#job-status").innerHTML = badge(job.status);
  const running = job.status === "RUNNING";
  const active = ACTIVE.has(job.status);
  $("#cancel").hidden = !(active && mayWrite());
  $("#savepoint").hidden = !(running && mayWrite() && job.tasks);
  $("#stop").hidden = !(running && mayWrite() && job.tasks);
  const facts = [
    ["Id", `<b class="mono">${esc(job.jid)}</b>`],
    ["Started", `<b>${fmtTime(job["start-time"])}</b>`],
    ["Duration", `<b>${fmtDur(job.duration)}</b>`],
    ["Records in", `<b id="records-in">${fmtNum(job["records-in"])}</b>`],
    ["Records out", `<b id="records-out">${fmtNum(job["records-out"])}</b>`],
  ];
  if (job.tasks) {
    const sources = sourceTasks(job);
    const rate = sources.reduce((s, t) => s + ((t.metrics && t.metrics["records-out-per-second"]) || 0), 0);
    if (running) facts.push(["Sources", `<b>${fmtRate(rate)}</b>`]);
    if (job.input && job.input.bytes) facts.push(["Input read", `<b>${pct(job.input["bytes-read"] / job.input.bytes)}</b> of ${fmtBytes(job.input.bytes)}`]);
    facts.push(["State", `<b>${fmtBytes(job["state-bytes"])}</b>`]);
  }
  facts.push(["Restarts", `<b>${job.restarts ?? 0}</b>`]);
  if (job.tenant) facts.push(["Tenant", `<b>${esc(job.tenant)}</b>`]);
  $("#job-facts").innerHTML = facts.map(([k, v]) => `<span>${k} ${v}</span>`).join("");
  const failure = $("#job-failure");
  const why = job.failure || (job.status === "CREATED" && job.waiting ? "Waiting: " + job.waiting : null);
  failure.hidden = !why;
  failure.textContent = why || "";
  if (job.tasks) drawGraph(job, ui);
  else $("#graph").innerHTML = `<p class="empty">This job ended before the JobManager last started; only its summary is kept.</p>`;
  drawTab(ui);
}

function sourceTasks(job) {
  const fed = new Set((job.edges || []).map((e) => e.target));
  return job.tasks.filter((t) => !fed.has(t.task));
}

// Tasks in columns by their distance from the sources; edges as curves between them.
function drawGraph(job, ui) {
  const tasks = job.tasks, edges = job.edges || [];
  const W = 212, GAP_X = 72, GAP_Y = 26, LINE = 15, MAX_OPS = 4;
  const depth = tasks.map(() => 0);
  for (let round = 0; round < tasks.length; round++) {
    for (const e of edges) depth[e.target] = Math.max(depth[e.target], depth[e.source] + 1);
  }
  const columns = [];
  tasks.forEach((t, i) => { (columns[depth[i]] = columns[depth[i]] || []).push(i); });
  const height = (t) => 62 + LINE * Math.min(t.operators.length, MAX_OPS + 1) + 3 * LINE;
  const colHeight = columns.map((c) => c.reduce((s, i) => s + height(tasks[i]), 0) + GAP_Y * (c.length - 1));
  const total = Math.max(...colHeight, 0);
  const pos = [];
  columns.forEach((c, d) => {
    let y = 20 + (total - colHeight[d]) / 2;
    for (const i of c) { pos[i] = { x: 20 + d * (W + GAP_X), y, h: height(tasks[i]) }; y += pos[i].h + GAP_Y; }
  });
  const running = job.status === "RUNNING";
  let svg = "";
  for (const e of edges) {
    const a = pos[e.source], b = pos[e.target];
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + a.h / 2, x2 = b.x - 6, y2 = b.y + b.h / 2, mx = (x1 + x2) / 2;
    const label = e["side-output"] ? "late records" : e.partitioning.toUpperCase();
    svg += `<path class="edge${e["side-output"] ? " side" : ""}" data-source="${e.source}" data-target="${e.target}" data-partitioning="${esc(e.partitioning)}"
      d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}" marker-end="url(#arrow)"></path>
      <text class="edge-label" x="${mx}" y="${(y1 + y2) / 2 - 6}" text-anchor="middle">${esc(label)}</text>`;
  }
  tasks.forEach((t, i) => {
    const p = pos[i], m = t.metrics;
    const level = running && m && m["records-in"] !== undefined ? m["backpressure-level"] : "none";
    const ops = t.operators.slice(0, MAX_OPS).map((o) => o.length > 28 ? o.slice(0, 27) + "…" : o);
    if (t.operators.length > MAX_OPS) ops.push(`+ ${t.operators.length - MAX_OPS} more`);
    let y = p.y + 22;
    let body = `<text class="small" x="${p.x + 12}" y="${y}">Task ${t.task}${t.operators.length > 1 ? " · chained" : ""}</text>
      <rect class="par" x="${p.x + W - 58}" y="${y - 13}" width="46" height="18"></rect>
      <text class="par" x="${p.x + W - 35}" y="${y}" text-anchor="middle">×${t.parallelism}</text>`;
    y += 6;
    for (const o of ops) { y += LINE; body += `<text class="title" x="${p.x + 12}" y="${y}">${esc(o)}</text>`; }
    y += 8;
    // Rates while it runs; once it ended, what passed in all.
    const rates = !m ? "no report yet" : running ? `in ${fmtRate(m["records-in-per-second"])} · out ${fmtRate(m["records-out-per-second"])}`
      : `${fmtNum(m["records-in"])} in · ${fmtNum(m["records-out"])} out`;
    y += LINE; body += `<text x="${p.x + 12}" y="${y}" class="rates">${esc(rates)}</text>`;
    if (m && running) {
      const load = `busy ${pct(m["busy-ratio"])} · back-pressured ${pct(m["backpressured-ratio"])}`;
      y += LINE; body += `<text class="small" x="${p.x + 12}" y="${y}">${esc(load)}</text>`;
    }
    y += LINE; body += `<text class="small" x="${p.x + 12}" y="${y}">watermark ${esc(fmtWatermark(m && m.watermark))}</text>`;
    svg += `<g class="node bp-${esc(level)}${ui.task === t.task ? " sel" : ""}" data-task="${t.task}" data-parallelism="${t.parallelism}" tabindex="0">
      <title>${esc(t.name)} (parallelism ${t.parallelism})</title>
      <rect class="box" x="${p.x}" y="${p.y}" width="${W}" height="${p.h}"></rect>${body}</g>`;
  });
  const width = 40 + columns.length * W + (columns.length - 1) * GAP_X;
  const legend = `<g class="legend" transform="translate(20, ${total + 44})">
    <rect class="lg-ok" x="0" y="-10" width="12" height="12"></rect><text x="18" y="0">not back-pressured</text>
    <rect class="lg-low" x="150" y="-10" width="12" height="12"></rect><text x="168" y="0">back-pressured over 10%</text>
    <rect class="lg-high" x="330" y="-10" width="12" height="12"></rect><text x="348" y="0">over 50%</text></g>`;
  const graph = $("#graph"), left = graph.scrollLeft;
  graph.innerHTML = `<svg xmlns="http://www.w3.org/2000/svg" width="${Math.max(width, 520)}" height="${total + 60}">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
      <path d="M0,0 L10,5 L0,10 z" fill="#8593a3"></path></marker></defs>${svg}${legend}</svg>`;
  graph.scrollLeft = left;
}

// Redraws `box` with `html`, keeping where its scrolling parts were scrolled to:
// the page redraws every second, and a table of 100 subtasks must not jump back.
function redraw(box, html) {
  const kept = $$(".scroll, .graph", box).map((e) => [e.scrollTop, e.scrollLeft]);
  box.innerHTML = html;
  $$(".scroll, .graph", box).forEach((e, i) => { if (kept[i]) [e.scrollTop, e.scrollLeft] = kept[i]; });
}

function drawTab(ui) {
  const job = ui.job, tab = $("#tab");
  if (!job) return;
  if (ui.tab === "subtasks") { redraw(tab, subtasksTab(job, ui)); sizeBars(tab); }
  else if (ui.tab === "checkpoints") redraw(tab, checkpointsTab(job));
  else if (ui.tab === "exceptions") tab.innerHTML = exceptionsTab(job);
  else if (ui.tab === "logs") drawLogs(ui);
  else tab.innerHTML = configurationTab(job);
}

function subtasksTab(job, ui) {
  if (!job.tasks) return `<p class="empty">No subtasks are kept of this job.</p>`;
  const shown = ui.task === null ? job.tasks : job.tasks.filter((t) => t.task === ui.task);
  // Rates and shares of time describe a running job; an ended one keeps its totals.
  const running = job.status === "RUNNING";
  const rate = (v) => (running ? fmtRate(v) : DASH);
  const share = (v, cls) => (running ? bar(v, cls) : DASH);
  const head = `<tr><th>Subtask</th><th>TaskManager</th><th class="num">Records in</th><th class="num">Records out</th>
    <th class="num">In/s</th><th class="num">Out/s</th><th class="num">Bytes in</th><th class="num">Bytes out</th>
    <th>Busy</th><th>Back-pressured</th><th>Idle</th><th>Watermark</th><th class="num">Queue</th></tr>`;
  let rows = "";
  for (const t of shown) {
    const m = t.metrics || {};
    // The operators' own counters, summed over the task's subtasks.
    const counters = Object.entries(t.counters || {}).map(([k, v]) => `${esc(k)} <b>${fmtNum(v)}</b>`).join(" · ");
    rows += `<tr class="group" data-task-row="${t.task}"><td colspan="13"><b>${esc(t.name)}</b> <span class="muted">task ${t.task} · parallelism ${t.parallelism} ·
      ${fmtNum(m["records-in"])} in · ${fmtNum(m["records-out"])} out</span>${counters ? ` <span class="counters">counters: ${counters}</span>` : ""}</td></tr>`;
    for (const s of t.subtasks) {
      const x = s.metrics;
      const tm = s.taskmanager ? (isAdmin() ? `<a href="#/taskmanagers/${encodeURIComponent(s.taskmanager)}">${esc(s.taskmanager)}</a>` : esc(s.taskmanager)) : DASH;
      const slot = s.slot !== null && s.slot !== undefined ? ` <span class="muted">slot ${s.slot}</span>` : "";
      if (!x) { rows += `<tr data-task="${t.task}" data-subtask="${s.subtask}"><td>${s.subtask}</td><td>${tm}${slot}</td><td colspan="11" class="muted">no report yet</td></tr>`; continue; }
      rows += `<tr data-task="${t.task}" data-subtask="${s.subtask}"><td>${s.subtask}</td><td>${tm}${slot}</td>
        <td class="num" data-metric="records-in" data-value="${x["records-in"]}">${fmtNum(x["records-in"])}</td>
        <td class="num" data-metric="records-out" data-value="${x["records-out"]}">${fmtNum(x["records-out"])}</td>
        <td class="num">${rate(x["records-in-per-second"])}</td><td class="num">${rate(x["records-out-per-second"])}</td>
        <td class="num">${fmtBytes(x["bytes-in"])}</td><td class="num">${fmtBytes(x["bytes-out"])}</td>
        <td class="nowrap">${share(x["busy-ratio"])}</td><td class="nowrap bp-${esc(x["backpressure-level"])}">${share(x["backpressured-ratio"], "bp")}</td>
        <td class="num">${running ? pct(x["idle-ratio"]) : DASH}</td>
        <td class="mono">${esc(fmtWatermark(x.watermark))}</td><td class="num">${x["input-queue-capacity"] ? `${x["input-queue"]}/${x["input-queue-capacity"]}` : DASH}</td></tr>`;
    }
  }
  const hint = ui.task === null ? `<p class="muted">Click a task in the dataflow to show only its subtasks.</p>` : `<p class="muted">Task ${ui.task} only; click it again to show every task.</p>`;
  return `${hint}<div class="scroll"><table id="subtasks-table"><thead>${head}</thead><tbody>${rows}</tbody></table></div>`;
}

function checkpointsTab(job) {
  const c = job.checkpoints;
  if (!c) return `<p class="empty">No checkpoints are kept of this job.</p>`;
  const summary = `<div class="facts"><span>Interval <b>${c["interval-ms"] ? fmtDur(c["interval-ms"]) : "savepoints only"}</b></span>
    <span>Mode <b>${esc(c.mode)}</b></span><span>Completed <b>${c.completed}</b></span><span>Failed <b>${c.failed}</b></span>
    <span>Latest <b class="mono">${esc(c.latest || DASH)}</b></span></div>`;
  if (!c.history || !c.history.length) return summary + `<p class="empty">No checkpoint has been taken yet.</p>`;
  const rows = c.history.slice().reverse().map((h) => `<tr><td class="num">${h.id}</td><td>${esc(h.kind)}</td><td>${badge(String(h.status).toUpperCase())}</td>
    <td class="num">${fmtDur(h["duration-ms"])}</td><td class="num">${fmtDur(h["sync-ms"])}</td><td class="num">${fmtBytes(h["state-bytes"])}</td>
    <td class="mono">${esc(h.failure || h.location || DASH)}</td></tr>`);
  return summary + `<div class="scroll"><table id="checkpoints-table"><thead><tr><th class="num">Id</th><th>Kind</th><th>Status</th><th class="num">Duration</th><th class="num">Sync</th><th class="num">Size</th><th>Location</th></tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function exceptionsTab(job) {
  const ex = job.exceptions || [];
  if (!ex.length) return `<p class="empty">No failures${job.failure ? "" : " so far"}.</p>`;
  const rows = ex.slice().reverse().map((e) => `<tr><td>${fmtTime(e.timestamp)}</td><td class="mono">${esc(e.exception)}</td></tr>`);
  return `<table id="exceptions-table"><thead><tr><th>When</th><th>Exception</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function configurationTab(job) {
  const programs = (job.programs || []).map((p) => `<tr><td class="mono">${esc(shortId(p.module))}</td><td>${esc(p.entry)}</td><td class="mono">${esc((p.args || []).join(" ")) || DASH}</td></tr>`);
  const restart = job["restart-strategy"] ? esc(JSON.stringify(job["restart-strategy"])) : DASH;
  return `<div class="facts"><span>Parallelism <b>${job.parallelism ?? DASH}</b></span><span>Bounded <b>${job.bounded ? "yes" : "no"}</b></span>
    <span>Restart strategy <b class="mono">${restart}</b></span></div>
    ${programs.length ? `<table><thead><tr><th>Component</th><th>Entry</th><th>Arguments</th></tr></thead><tbody>${programs.join("")}</tbody></table>` : ""}`;
}

async function refreshLogs(ctx, id, ui) {
  const after = ui.logsAfter === null ? "" : `?after=${ui.logsAfter}`;
  const logs = await api("GET", `/jobs/${encodeURIComponent(id)}/logs${after}`);
  if (!ctx.alive()) return;
  if (logs.lines.length) {
    ui.logLines.push(...logs.lines);
    ui.logLines.splice(0, Math.max(0, ui.logLines.length - LOG_LINES_SHOWN));
    ui.logsAfter = logs.lines[logs.lines.length - 1].seq;
  }
  ui.logsDropped = logs.dropped;
  if (ui.tab === "logs") drawLogs(ui);
}

function drawLogs(ui) {
  const tab = $("#tab");
  let box = $("#logs", tab);
  if (!box) {
    tab.innerHTML = `<p class="muted" id="logs-note"></p><div id="logs" class="logs"></div>`;
    box = $("#logs", tab);
  }
  $("#logs-note").textContent = `What the job's operators logged (info and above), newest last.` +
    (ui.logsDropped ? ` ${ui.logsDropped} lines were dropped: over the job's log rate, or older than what is kept.` : "");
  const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  if (!ui.logLines.length) { box.textContent = "Nothing logged yet."; return; }
  box.innerHTML = ui.logLines.map((l) => `<div class="l-${esc(l.level)}"><span class="meta">${esc(new Date(l.timestamp).toLocaleTimeString([], { hour12: false }))} ${esc(l.level.toUpperCase())} ${esc(l.operator)} #${l.subtask} on ${esc(l.taskmanager)}</span> ${esc(l.message)}</div>`).join("");
  if (atEnd) box.scrollTop = box.scrollHeight;
}

// ---- submitting a job ---------------------------------------------------------------

// Splits arguments as a shell would for words and quotes (no variables, no escapes).
function splitArgs(text) {
  const out = [];
  let cur = null, quote = null;
  for (const ch of text) {
    if (quote) { if (ch === quote) quote = null; else cur += ch; }
    else if (ch === '"' || ch === "'") { quote = ch; cur = cur ?? ""; }
    else if (/\s/.test(ch)) { if (cur !== null) { out.push(cur); cur = null; } }
    else cur = (cur ?? "") + ch;
  }
  if (quote) throw new Error(`unclosed ${quote} in the arguments`);
  if (cur !== null) out.push(cur);
  return out;
}

function submitPage(ctx) {
  $("#live").hidden = true;
  ctx.view.innerHTML = `
    <div class="panel"><h2>Upload a component</h2>
      <div id="drop" class="drop">
        <p>Drop a <code>.wasm</code> component of the <code>eddy:stream/job</code> world here, or choose it.</p>
        <input id="upload-file" type="file" accept=".wasm,application/wasm">
        <button id="upload-button" class="primary" disabled>Upload</button>
      </div></div>
    <div class="panel"><h2>Components</h2><div id="jars"><p class="empty">Loading…</p></div></div>`;
  const file = $("#upload-file"), button = $("#upload-button"), drop = $("#drop");
  let chosen = null;
  const choose = (f) => { chosen = f; button.disabled = !f || !mayWrite(); button.textContent = f ? `Upload ${f.name}` : "Upload"; };
  file.addEventListener("change", () => choose(file.files[0] || null));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files[0] || null); });
  button.addEventListener("click", async () => {
    if (!chosen) return;
    button.disabled = true;
    try {
      const body = await chosen.arrayBuffer();
      const up = await api("POST", "/jars/upload?name=" + encodeURIComponent(chosen.name), undefined, { body, type: "application/wasm" });
      toast(`Uploaded ${chosen.name}`);
      await drawJars(ctx, up.id);
    } catch (e) { toast(e.message, true); }
    choose(chosen);
  });
  drawJars(ctx, null).catch((e) => { $("#jars").innerHTML = `<p class="empty error">${esc(e.message)}</p>`; });
  return null;
}

async function drawJars(ctx, fresh) {
  const jars = (await api("GET", "/jars")).files;
  if (!ctx.alive()) return;
  const box = $("#jars");
  if (!jars.length) { box.innerHTML = `<p class="empty">No component uploaded yet.</p>`; return; }
  jars.sort((a, b) => (b.id === fresh) - (a.id === fresh) || a.name.localeCompare(b.name));
  box.innerHTML = jars.map((j) => `<div class="jar" data-jar="${esc(j.id)}">
    <h3>${esc(j.name)} ${j.id === fresh ? `<span class="badge s-FINISHED">new</span>` : ""}</h3>
    <p class="muted">${fmtBytes(j.size)} · <span class="mono" title="${esc(j.id)}">${esc(shortId(j.id))}</span> · entries: ${j.entries.map(esc).join(", ") || DASH}</p>
    <form class="run-form">
      <label>Entry<select name="entry" required>${j.entries.map((e) => `<option>${esc(e)}</option>`).join("")}</select></label>
      <label>Arguments<input name="args" placeholder="--input /data/words.txt" autocomplete="off"></label>
      <label>Parallelism<input name="parallelism" type="number" min="1" max="1024" value="1" required></label>
      <label>Checkpoint every (ms)<input name="interval" type="number" min="1" placeholder="none"></label>
      <button type="submit" class="primary" ${mayWrite() && j.entries.length ? "" : "disabled"}>Run</button>
    </form><p class="error" data-error></p></div>`).join("");
  $$("form.run-form", box).forEach((form) => form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const jar = form.closest(".jar").dataset.jar, error = $("[data-error]", form.closest(".jar"));
    error.textContent = "";
    try {
      const body = { entry: form.entry.value, args: splitArgs(form.args.value), parallelism: Number(form.parallelism.value) };
      if (form.interval.value) body["checkpoint-interval-ms"] = Number(form.interval.value);
      const run = await api("POST", `/jars/${encodeURIComponent(jar)}/run`, body);
      location.hash = "#/jobs/" + encodeURIComponent(run.jobid);
    } catch (err) { error.textContent = err.message; }
  }));
}

// ---- start ----------------------------------------------------------------------------

$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  identity = null;
  showIdentity();
  generation++;
  $("#view").innerHTML = "";
  askForKey(null).then(route);
});

window.addEventListener("hashchange", route);
(async () => {
  try { identity = await api("GET", "/whoami"); } catch (e) { toast(e.message, true); }
  showIdentity();
  route();
})();
