// vram-eval web: the page. Every number comes from the server (the library the CLI uses); this
// file only lays them out: the form, the URL, the table, the charts (SVG drawn here, no library).
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const UNIT_BYTES = {GiB: 2 ** 30, GB: 1e9, MiB: 2 ** 20, MB: 1e6, TiB: 2 ** 40, TB: 1e12};
const COLORS = {
  "weights": "#4e79a7", "gradients": "#f28e2b", "optimizer states": "#e15759", "activations": "#76b7b2",
  "recompute workspace": "#59a14f", "KV cache": "#edc948", "recurrent state": "#b07aa1",
  "I/O buffers": "#ff9da7", "sharding buffers": "#9c755f", "runtime overhead": "#bab0ac",
};
const MORE_COLORS = ["#86bcb6", "#d4a6c8", "#8cd17d", "#b6992d", "#499894", "#d37295", "#a0cbe8", "#ffbe7d"];
function color(row, rows) { return COLORS[row] || MORE_COLORS[Math.max(0, rows.indexOf(row)) % MORE_COLORS.length]; }
const LINE_COLORS = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2"];
const URL_CONFIG_LIMIT = 60000; // characters of an uploaded text a link still carries

const state = {fields: [], specs: [], gpus: [], config: null, configFormat: "json", configName: "",
               train: null, trainFormat: "json", trainName: "", model: null, modelName: "", ggufHead: 16 * 2 ** 20,
               last: null, explain: null, seq: 0, pending: 0, calls: 0, solveAsked: false, sweepAsked: false};

// --- talking to the server -------------------------------------------------------------------

function busy(delta) {
  state.pending += delta;
  document.body.dataset.pending = String(state.pending);
  if (delta < 0) document.body.dataset.calls = String(++state.calls);
}

async function api(path, body) {
  busy(1);
  try {
    return await ask(path, body);
  } finally {
    busy(-1);
  }
}

async function ask(path, body) {
  const opts = body === undefined ? {} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  let response;
  try {
    response = await fetch(path, opts);
  } catch (e) {
    return {error: {kind: "network", message: "vram-eval web: the server does not answer (is it still running?)\n"}};
  }
  const type = response.headers.get("Content-Type") || "";
  if (type.startsWith("application/json")) return response.json();
  return {error: {kind: "server", message: await response.text()}};
}

// --- formatting ---------------------------------------------------------------------------------

function units() { return $("#units").value || "GiB"; }

function mem(bytes, unit) {
  if (bytes === null || bytes === undefined) return "—";
  unit = unit || units();
  const v = bytes / UNIT_BYTES[unit];
  const digits = Math.abs(v) < 0.1 && v !== 0 ? 4 : 2;
  return v.toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits}) + " " + unit;
}

function num(v) {
  if (typeof v !== "number") return String(v);
  return v.toLocaleString("en-US", {maximumFractionDigits: 3});
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function shown(v) { return typeof v === "boolean" ? String(v) : Array.isArray(v) ? v.join(",") : String(v); }

// --- the form and the URL -----------------------------------------------------------------------

function fieldElement(f) {
  let input;
  if (f.allowed || f.unit === "bool") {
    input = el("select", {id: "f-" + f.name, name: f.name});
    input.append(el("option", {value: ""}, "(spec)"));
    for (const v of f.allowed || ["true", "false"]) input.append(el("option", {value: v}, v));
    if (f.unit === "list") { // a list (lora_targets) is typed: q,k,v,o
      input = el("input", {id: "f-" + f.name, name: f.name, size: 12});
    }
  } else {
    input = el("input", {id: "f-" + f.name, name: f.name, size: 8});
  }
  const label = el("label", {title: f.doc || ""});
  label.append(el("span", {}, f.name), input);
  return label;
}

function settings() {
  const s = {set: [], units: units()};
  if (state.model !== null) s.model = {files: state.model};
  else if (state.config !== null) s.config = {text: state.config, format: state.configFormat};
  else s.spec = $("#spec").value;
  if (state.train !== null) s.train_config = {text: state.train, format: state.trainFormat};
  if ($("#gpu").value) s.gpu = $("#gpu").value;
  if ($("#regime").value) s.regime = $("#regime").value;
  for (const f of state.fields) {
    const v = $("#f-" + f.name).value.trim();
    if (v !== "") s.set.push(f.name + "=" + v);
  }
  for (const line of $("#sets").value.split("\n")) if (line.trim()) s.set.push(line.trim());
  return s;
}

function b64encode(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function bytesB64(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

// A model's files as the server reads them: texts, and each weight file's first bytes and size
// (a safetensors header: the 8-byte length and the JSON; a GGUF: its metadata and tensor table).
async function modelFiles(files) {
  const out = [];
  for (const f of files) {
    const depth = (f.webkitRelativePath || f.name).split("/").length;
    if (depth > 2) continue; // the folder's own files, not its subfolders'
    if (f.name === "config.json" || f.name === "model.safetensors.index.json") {
      out.push({name: f.name, text: await f.text()});
    } else if (/\.safetensors$/.test(f.name)) {
      const n = Number(new DataView(await f.slice(0, 8).arrayBuffer()).getBigUint64(0, true));
      const take = Math.min(f.size, 8 + Math.min(n, 100 * 2 ** 20)); // a header says more: the server says so
      out.push({name: f.name, head: bytesB64(new Uint8Array(await f.slice(0, take).arrayBuffer())), size: f.size});
    } else if (/\.gguf$/.test(f.name)) {
      const take = Math.min(f.size, state.ggufHead);
      out.push({name: f.name, head: bytesB64(new Uint8Array(await f.slice(0, take).arrayBuffer())), size: f.size});
    }
  }
  return out;
}

function b64decode(text) {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function writeURL() {
  const q = new URLSearchParams();
  const s = settings();
  if (s.spec) q.set("spec", s.spec);
  if (s.gpu) q.set("gpu", s.gpu);
  if (s.regime) q.set("regime", s.regime);
  if (s.units !== "GiB") q.set("units", s.units);
  for (const a of s.set) q.append("set", a);
  if (state.explain) q.set("explain", state.explain);
  if (state.solveAsked) {
    q.set("solve", $("#solve-for").value);
    if ($("#budget").value.trim()) q.set("budget", $("#budget").value.trim());
    if ($("#solve-target").value) q.set("target", $("#solve-target").value);
  }
  if (state.sweepAsked) {
    q.set("sweep", $("#sweep-range").value.trim());
    if ($("#sweep-targets").value.trim()) q.set("sweep_targets", $("#sweep-targets").value.trim());
  }
  let hash = "";
  $("#use-spec").hidden = state.config === null && state.model === null;
  if (state.model !== null) {
    $("#model-source").textContent = `model: your ${state.modelName} (${state.model.length} files, headers only)` +
      " — a link carries the other settings, not the model's files";
    const url = location.pathname + "?" + q.toString();
    history.replaceState(null, "", url);
    $("#share").href = url;
    return;
  }
  $("#model-source").textContent = state.config === null ? "" :
    `model: your ${state.configName || "text"} (${state.config.length.toLocaleString("en-US")} characters)`;
  if (state.config !== null) {
    if (state.config.length <= URL_CONFIG_LIMIT) {
      const h = new URLSearchParams({format: state.configFormat, name: state.configName});
      hash = "#" + h.toString() + "&config=" + b64encode(state.config);
    } else {
      $("#model-source").textContent += " — too large for a link: the link has the other settings only";
    }
  }
  $("#no-train").hidden = state.train === null;
  $("#train-source").textContent = state.train === null ? "" :
    `training config: your ${state.trainName} (${state.train.length.toLocaleString("en-US")} characters)`;
  if (state.train !== null) {
    if (state.train.length <= URL_CONFIG_LIMIT) {
      const h = new URLSearchParams({tformat: state.trainFormat, tname: state.trainName});
      hash = (hash ? hash + "&" : "#") + h.toString() + "&train=" + b64encode(state.train);
    } else {
      $("#train-source").textContent += " — too large for a link";
    }
  }
  const url = location.pathname + "?" + q.toString() + hash;
  history.replaceState(null, "", url);
  $("#share").href = url;
}

function gpuId(name) { // an id or an alias (h100 → h100-sxm), as --gpu takes it
  const key = name.trim().toLowerCase().replace(/[_ ]/g, "-");
  const gpu = state.gpus.find((g) => g.id === key || (g.aliases || []).includes(key));
  return gpu ? gpu.id : name;
}

function readURL() {
  const q = new URLSearchParams(location.search);
  if (q.get("spec")) $("#spec").value = q.get("spec");
  if (q.get("gpu") !== null) $("#gpu").value = gpuId(q.get("gpu"));
  if (q.get("regime") !== null) $("#regime").value = q.get("regime");
  if (q.get("units")) $("#units").value = q.get("units");
  const extra = [];
  for (const a of q.getAll("set")) {
    const name = a.split("=")[0].trim();
    const field = document.getElementById("f-" + name);
    if (field && state.fields.some((f) => f.name === name)) field.value = a.slice(a.indexOf("=") + 1);
    else extra.push(a);
  }
  $("#sets").value = extra.join("\n");
  state.explain = q.get("explain");
  if (q.get("solve")) {
    state.solveAsked = true;
    $("#solve-for").value = q.get("solve");
    $("#budget").value = q.get("budget") || "";
    $("#solve-target").value = q.get("target") || "";
  }
  if (q.get("sweep")) {
    state.sweepAsked = true;
    $("#sweep-range").value = q.get("sweep");
    $("#sweep-targets").value = q.get("sweep_targets") || "";
  }
  if (location.hash.length > 1) {
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.get("config") !== null) {
      try {
        state.config = b64decode(h.get("config"));
        state.configFormat = h.get("format") || "json";
        state.configName = h.get("name") || "config.json";
      } catch (e) {
        showError({message: "link: error: the link's uploaded file is damaged (not base64 of UTF-8 text)\n"});
      }
    }
    if (h.get("train") !== null) {
      try {
        state.train = b64decode(h.get("train"));
        state.trainFormat = h.get("tformat") === "yaml" ? "yaml" : "json";
        state.trainName = h.get("tname") || "train_config." + state.trainFormat;
      } catch (e) {
        showError({message: "link: error: the link's training config is damaged (not base64 of UTF-8 text)\n"});
      }
    }
  }
}

// --- errors --------------------------------------------------------------------------------------

function showError(err) {
  $("#error-text").textContent = err.message || String(err);
  $("#error").hidden = false;
  $("#error").dataset.kind = err.kind || "";
}

function clearError() { $("#error").hidden = true; $("#error-text").textContent = ""; }

// --- the report ----------------------------------------------------------------------------------

async function evaluate() {
  writeURL();
  const seq = ++state.seq;
  $("#busy").hidden = false;
  const data = await api("/api/eval", settings());
  if (seq !== state.seq) return; // a newer question was asked meanwhile
  $("#busy").hidden = true;
  if (data.error) {
    showError(data.error);
    $("#report").hidden = true;
    state.last = null;
    return;
  }
  clearError();
  state.last = data;
  renderReport(data);
  if (state.explain) await explain(state.explain);
  if (state.solveAsked) await solve();
  if (state.sweepAsked) await sweep();
}

function cliLine(command, after) {
  const s = settings();
  const parts = ["vram-eval"];
  if (command) parts.push(command);
  parts.push(s.model ? state.modelName : s.config ? (state.configName || "config.json") : s.spec);
  if (after) parts.push(after);
  if (s.train_config) parts.push("--train-config " + (state.trainName || "train_config.json"));
  if (s.gpu && !command) parts.push("--gpu " + s.gpu);
  const sets = s.set.slice();
  if (s.gpu && command) sets.unshift("gpu=" + s.gpu);
  if (s.regime) sets.push("regime=" + s.regime);
  for (const a of sets) parts.push("--set " + (/[\s'"]/.test(a) ? "'" + a.replace(/'/g, "'\\''") + "'" : a));
  return parts.join(" ");
}

function settingsWords(report, except) {
  const i = report.inputs;
  const words = [];
  for (const [name, label] of [["weight_dtype", "weights"], ["b", "b"], ["s", "s"], ["dp", "dp"], ["tp", "tp"],
                               ["pp", "pp"], ["zero_stage", "ZeRO"], ["recompute", "recompute"]]) {
    if (i[name] !== undefined && name !== except) words.push(label + " " + shown(i[name]));
  }
  return words.join(", ");
}

function renderReport(data) {
  const r = data.report;
  const o = r.outputs;
  $("#report").hidden = false;
  $("#title").textContent = (r.name || r.spec || "model") +
    (o.params !== undefined ? ` — ${num(o.params)} parameters` : "");
  const gpu = r.gpu ? `${r.gpu.name}, ${mem(r.gpu.usable_bytes)} usable` :
    (r.inputs.gpu_memory !== undefined ? `GPU memory ${mem(r.inputs.gpu_memory)}` : "no GPU chosen");
  $("#subtitle").textContent = `${settingsWords(r)}; ${gpu}` + (r.spec ? `   (${r.spec})` : "");
  $("#cli").textContent = cliLine("") + (units() !== "GiB" ? " --units " + units() : "");
  for (const f of state.fields) {
    const v = r.inputs[f.name];
    const input = $("#f-" + f.name);
    if (input.tagName === "SELECT") input.options[0].textContent = v === undefined ? "(spec)" : `(${shown(v)})`;
    else input.placeholder = v === undefined ? "" : shown(v);
  }
  renderTable(data);
  drawBars(data);
  const warnings = $("#warnings");
  warnings.replaceChildren();
  for (const w of [...(data.problem_warnings || []), ...(r.warnings || [])]) warnings.append(el("li", {}, "warning: " + w));
  $("#report-text").textContent = data.text;
}

function rowsShown(data) {
  const o = data.report.outputs;
  const rows = [];
  for (const job of data.jobs) {
    for (const [row, out] of job.rows) {
      if (!rows.includes(row) && o[out] !== undefined && o[out] !== null && o[out] !== 0) rows.push(row);
    }
  }
  const order = [];
  for (const job of data.jobs) for (const [row] of job.rows) if (!order.includes(row)) order.push(row);
  return order.filter((row) => rows.includes(row));
}

function cell(tr, output, value, attrs) {
  const td = el("td", Object.assign({class: "num"}, attrs || {}));
  if (output && value !== undefined && value !== null) {
    const a = el("a", {href: "#", "data-output": output, "data-bytes": String(value), title: "explain " + output},
                 mem(value));
    a.addEventListener("click", (e) => { e.preventDefault(); explain(output); });
    td.append(a);
  } else {
    td.textContent = "—";
  }
  tr.append(td);
  return td;
}

function renderTable(data) {
  const o = data.report.outputs;
  const table = $("#breakdown");
  table.replaceChildren();
  const head = el("tr");
  head.append(el("th"));
  for (const job of data.jobs) head.append(el("th", {scope: "col"}, job.heading));
  table.append(head);
  const uncalibrated = (data.report.uncalibrated || []).length > 0;
  for (const row of rowsShown(data)) {
    const tr = el("tr");
    tr.append(el("th", {scope: "row"}, row + (row === "runtime overhead" && uncalibrated ? " (uncalibrated)" : "")));
    for (const job of data.jobs) {
      const pair = job.rows.find(([r]) => r === row);
      cell(tr, pair && pair[1], pair ? o[pair[1]] : undefined);
    }
    table.append(tr);
  }
  const total = el("tr", {class: "total"});
  total.append(el("th", {scope: "row"}, "sum of parts"));
  for (const job of data.jobs) cell(total, job.total, o[job.total], {id: "total-" + job.regime});
  table.append(total);
  const peak = el("tr", {class: "peak"});
  peak.append(el("th", {scope: "row"}, "peak over phases"));
  for (const job of data.jobs) cell(peak, job.peak, o[job.peak], {id: "peak-" + job.regime});
  table.append(peak);
  const at = el("tr");
  at.append(el("th", {scope: "row"}, "reached at"));
  for (const job of data.jobs) {
    const td = el("td", {class: "num", id: "reached-" + job.regime});
    if (job.reached) {
      const a = el("a", {href: "#", "data-output": job.reached[1]}, job.reached[0]);
      a.addEventListener("click", (e) => { e.preventDefault(); explain(job.reached[1]); });
      td.append(a);
    }
    at.append(td);
  }
  table.append(at);
  const fits = el("tr", {class: "verdict"});
  fits.append(el("th", {scope: "row"}, "fits the GPU?"));
  for (const job of data.jobs) {
    const room = o[job.peak_headroom];
    const td = el("td", {class: "num", id: "fits-" + job.regime});
    if (room === undefined || room === null) td.textContent = "—";
    else {
      td.textContent = room >= 0 ? `yes, ${mem(room)} free` : `NO, ${mem(-room)} over`;
      td.classList.add(room >= 0 ? "yes" : "no");
      td.dataset.bytes = String(room);
    }
    fits.append(td);
  }
  table.append(fits);
}

// --- charts ---------------------------------------------------------------------------------------

function niceTicks(max, count) {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = 0; ticks.length === 0 || ticks[ticks.length - 1] < max; t += step) ticks.push(t);
  return ticks;
}

function chartTitle(root, title, subtitle, width) {
  root.append(svg("text", {x: width / 2, y: 20, "text-anchor": "middle", class: "title"}, title));
  root.append(svg("text", {x: width / 2, y: 38, "text-anchor": "middle", class: "subtitle"}, subtitle));
}

function yAxis(root, ticks, y, left, right, label, unit) {
  for (const t of ticks) {
    root.append(svg("line", {x1: left, x2: right, y1: y(t), y2: y(t), class: "grid"}));
    root.append(svg("text", {x: left - 6, y: y(t) + 4, "text-anchor": "end", class: "tick"},
                    (t / UNIT_BYTES[unit]).toLocaleString("en-US", {maximumFractionDigits: 1})));
  }
  const mid = (y(0) + y(ticks[ticks.length - 1])) / 2;
  root.append(svg("text", {x: 16, y: mid, transform: `rotate(-90 16 ${mid})`, "text-anchor": "middle", class: "label"},
                  label));
}

function gpuLine(root, y, left, right, bytes, label) {
  root.append(svg("line", {x1: left, x2: right, y1: y(bytes), y2: y(bytes), class: "gpu-line"}));
  root.append(svg("text", {x: right - 4, y: y(bytes) - 5, "text-anchor": "end", class: "gpu-label"}, label));
}

function drawBars(data) {
  const r = data.report;
  const o = r.outputs;
  const unit = units();
  const width = 880, height = 420, left = 70, right = width - 230, top = 80, bottom = height - 48;
  const gpuBytes = r.inputs.gpu_memory;
  let max = gpuBytes || 0;
  for (const job of data.jobs) max = Math.max(max, o[job.total] || 0, o[job.peak] || 0);
  const ticks = niceTicks(max * 1.05 / UNIT_BYTES[unit], 6).map((t) => t * UNIT_BYTES[unit]);
  const top_value = ticks[ticks.length - 1];
  const y = (v) => bottom - (v / top_value) * (bottom - top);
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img", id: "bars-svg"});
  chartTitle(root, `${r.name || r.spec}: memory per GPU by job`,
             settingsWords(r) + (r.gpu ? `; ${r.gpu.name}` : ""), width);
  yAxis(root, ticks, y, left, right, `memory per GPU (${unit})`, unit);
  const band = (right - left) / data.jobs.length;
  const rows = rowsShown(data);
  data.jobs.forEach((job, k) => {
    const x = left + k * band + band * 0.2, w = band * 0.6;
    let base = 0;
    for (const [row, out] of job.rows) {
      const v = o[out];
      if (!rows.includes(row) || !(v > 0)) continue;
      const rect = svg("rect", {x, y: y(base + v), width: w, height: Math.max(0.5, y(base) - y(base + v)),
                                fill: color(row, rows), class: "segment", "data-output": out});
      rect.append(svg("title", {}, `${row}: ${mem(v)} (${out})`));
      rect.addEventListener("click", () => explain(out));
      root.append(rect);
      base += v;
    }
    if (o[job.peak] !== undefined) {
      const py = y(o[job.peak]);
      root.append(svg("line", {x1: x - 6, x2: x + w + 6, y1: py, y2: py, class: "peak-mark"}));
      root.append(svg("text", {x: x + w / 2, y: py - 6, "text-anchor": "middle", class: "peak-label"},
                      mem(o[job.peak])));
    }
    root.append(svg("text", {x: x + w / 2, y: bottom + 18, "text-anchor": "middle", class: "tick"}, job.heading));
  });
  root.append(svg("text", {x: (left + right) / 2, y: bottom + 38, "text-anchor": "middle", class: "label"},
                  "job (regime); the black mark and its figure: the peak over phases"));
  if (gpuBytes) gpuLine(root, y, left, right, gpuBytes, `${r.gpu ? r.gpu.id : "gpu_memory"} ${mem(gpuBytes)}`);
  rows.forEach((row, k) => {
    root.append(svg("rect", {x: right + 16, y: top + k * 18, width: 12, height: 12, fill: color(row, rows)}));
    root.append(svg("text", {x: right + 34, y: top + k * 18 + 10, class: "tick"}, row));
  });
  $("#bars").replaceChildren(root);
}

// --- explain, solve, sweep ---------------------------------------------------------------------------

async function explain(name) {
  state.explain = name;
  writeURL();
  const data = await api("/api/explain", Object.assign(settings(), {name}));
  $("#explain-box").hidden = false;
  $("#explain-name").textContent = name;
  if (data.error) { $("#explain-text").textContent = data.error.message; $("#explain-value").textContent = ""; return; }
  const r = state.last && state.last.report;
  const v = r && (r.outputs[name] !== undefined ? r.outputs[name] : r.inputs[name]);
  const unit = data.explanation.unit;
  $("#explain-value").textContent = v === undefined ? "" : "= " + (unit === "bytes" ? `${num(v)} bytes (${mem(v)})` : shown(v));
  $("#explain-text").textContent = data.text;
  $("#explain-box").scrollIntoView({block: "nearest"});
}

async function solve() {
  state.solveAsked = true;
  writeURL();
  const body = Object.assign(settings(), {"for": $("#solve-for").value, total: $("#solve-target").value === "total"});
  const budget = $("#budget").value.trim();
  if (budget) body.budgets = [budget];
  const data = await api("/api/solve", body);
  const out = $("#solve-result");
  out.replaceChildren();
  if (data.error) { out.append(el("pre", {class: "error", id: "solve-error"}, data.error.message)); return; }
  for (const sol of data.solutions) {
    const word = sol.direction === "smallest" ? "smallest" : "largest";
    const p = el("p", {class: "answer"});
    if (sol.value === null) p.append(`no ${sol["for"]} keeps ${sol.target} within ${mem(sol.budget)}: ${sol.reason}`);
    else {
      p.append(`the ${word} ${sol["for"]} that keeps ${sol.target} within ${mem(sol.budget)}: `);
      p.append(el("strong", {id: "solve-value", "data-value": String(sol.value)}, num(sol.value)));
    }
    out.append(p);
    if (sol.closed_form) out.append(el("p", {class: "closed"}, "closed form (M = budget in bytes): " + sol.closed_form));
  }
  out.append(el("p", {class: "cli"}, "CLI: " + cliLine("solve") + " --for " + $("#solve-for").value +
                (budget ? " --budget " + budget : "") + ($("#solve-target").value === "total" ? " --total" : "")));
  out.append(el("pre", {id: "solve-text"}, data.text));
}

async function sweep() {
  state.sweepAsked = true;
  writeURL();
  const targets = $("#sweep-targets").value.split(/[\s,]+/).filter(Boolean);
  const data = await api("/api/sweep", Object.assign(settings(), {range: $("#sweep-range").value.trim(), targets}));
  const box = $("#sweep-chart");
  if (data.error) { box.replaceChildren(el("pre", {class: "error", id: "sweep-error"}, data.error.message)); return; }
  drawSweep(data);
}

function drawSweep(data) {
  const sw = data.sweep, unit = units();
  const width = 760, height = 420, left = 70, right = width - 24, top = 72, bottom = height - 56;
  const xs = sw.values;
  const log = data.geometric && xs[0] > 0;
  const x0 = xs[0], x1 = xs[xs.length - 1];
  const x = (v) => {
    if (x1 === x0) return (left + right) / 2;
    const t = log ? Math.log(v / x0) / Math.log(x1 / x0) : (v - x0) / (x1 - x0);
    return left + t * (right - left);
  };
  const memory = sw.targets.filter((t) => sw.units[t] === "bytes");
  let max = 0;
  for (const t of memory) for (const v of sw.outputs[t]) if (v !== null) max = Math.max(max, v);
  for (const l of data.lines) max = Math.max(max, l.bytes);
  const ticks = niceTicks(max * 1.05 / UNIT_BYTES[unit], 6).map((t) => t * UNIT_BYTES[unit]);
  const y = (v) => bottom - (v / ticks[ticks.length - 1]) * (bottom - top);
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img", id: "sweep-svg"});
  const r = state.last ? state.last.report : {inputs: {}};
  chartTitle(root, `${data.title}: ${memory.join(", ")} against ${sw["for"]}`,
             settingsWords(r, sw["for"]) + (data.lines.length ? "; " + data.lines.map((l) => l.label).join(", ") : ""), width);
  yAxis(root, ticks, y, left, right, `memory per GPU (${unit})`, unit);
  const xticks = xs.length <= 16 ? xs : xs.filter((_, k) => k % Math.ceil(xs.length / 12) === 0);
  for (const t of xticks) {
    root.append(svg("line", {x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4, class: "axis"}));
    root.append(svg("text", {x: x(t), y: bottom + 18, "text-anchor": "middle", class: "tick"}, num(t)));
  }
  root.append(svg("line", {x1: left, x2: right, y1: bottom, y2: bottom, class: "axis"}));
  root.append(svg("text", {x: (left + right) / 2, y: bottom + 40, "text-anchor": "middle", class: "label"},
                  `${sw["for"]}` + (data.doc ? `: ${data.doc.split(" (")[0]}` : "") + (data.unit ? ` (${data.unit})` : "") +
                  (log ? ", log scale" : "")));
  memory.forEach((t, k) => {
    const points = xs.map((v, i) => [v, sw.outputs[t][i]]).filter(([, v]) => v !== null);
    const stroke = LINE_COLORS[k % LINE_COLORS.length];
    root.append(svg("polyline", {points: points.map(([a, b]) => `${x(a)},${y(b)}`).join(" "), stroke,
                                 class: "curve", "data-target": t}));
    for (const [a, b] of points) {
      const c = svg("circle", {cx: x(a), cy: y(b), r: 2.5, fill: stroke});
      c.append(svg("title", {}, `${sw["for"]} = ${num(a)}: ${t} = ${mem(b)}`));
      root.append(c);
    }
    root.append(svg("text", {x: left + 8, y: top + 14 + k * 16, fill: stroke, class: "legend"}, t));
  });
  for (const l of data.lines) gpuLine(root, y, left, right, l.bytes, `${l.label}: ${mem(l.bytes)}`);
  for (const c of data.crossings) {
    const cx = x(c.value), cy = y(c.memory);
    root.append(svg("circle", {cx, cy, r: 6, class: "crossing", "data-value": String(c.value)}));
    root.append(svg("text", {x: cx + 8, y: cy + 16, class: "crossing-label"},
                    `${c.direction} ${sw["for"]} = ${num(c.value)}`));
  }
  const line = el("p", {class: "cli"});
  line.textContent = "CLI: " + cliLine("sweep", $("#sweep-range").value.trim()) +
    ($("#sweep-targets").value.trim() ? " " + $("#sweep-targets").value.trim().split(/[\s,]+/).map((t) => "--target " + t).join(" ") : "") +
    " --plot sweep.svg";
  $("#sweep-chart").replaceChildren(root, line);
}

// --- start ------------------------------------------------------------------------------------------

async function start() {
  const [specs, gpus] = await Promise.all([api("/api/specs"), api("/api/gpus")]);
  if (specs.error || gpus.error) { showError(specs.error || gpus.error); return; }
  state.fields = specs.fields;
  state.gpus = gpus.gpus;
  for (const s of specs.specs) $("#spec").append(el("option", {value: s.name}, `${s.name} — ${s.title}`));
  $("#spec").value = specs.specs.some((s) => s.name === "llama13b") ? "llama13b" : specs.specs[0].name;
  $("#regime").append(el("option", {value: ""}, "(spec)"));
  for (const j of specs.regimes) $("#regime").append(el("option", {value: j.name}, `${j.name} (${j.heading})`));
  $("#gpu").append(el("option", {value: ""}, "(spec / none)"));
  for (const g of gpus.gpus) {
    $("#gpu").append(el("option", {value: g.id}, `${g.id} — ${g.name}, ${mem(g.usable_bytes, "GiB")} usable`));
  }
  for (const u of specs.units) $("#units").append(el("option", {value: u}, u));
  for (const n of specs.solve_for) $("#solve-for").append(el("option", {value: n}, n));
  if (specs.gguf_head) state.ggufHead = specs.gguf_head;
  const fields = $("#fields");
  for (const f of specs.fields) fields.append(fieldElement(f));
  readURL();

  $("#settings").addEventListener("submit", (e) => { e.preventDefault(); evaluate(); });
  $("#settings").addEventListener("change", (e) => {
    if (["upload", "paste", "paste-format", "train-upload", "folder-upload", "gguf-upload"].includes(e.target.id)) return;
    if (e.target.id === "spec") { state.config = null; state.model = null; }
    evaluate();
  });
  $("#upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    state.config = await file.text();
    state.model = null;
    state.configName = file.name;
    state.configFormat = /\.toml$/i.test(file.name) ? "toml" : /\.ya?ml$/i.test(file.name) ? "yaml" : "json";
    evaluate();
  });
  $("#use-paste").addEventListener("click", () => {
    state.model = null;
    state.config = $("#paste").value;
    state.configFormat = $("#paste-format").value;
    state.configName = {json: "config.json", toml: "spec.toml", yaml: "spec.yaml"}[state.configFormat];
    evaluate();
  });
  for (const id of ["folder-upload", "gguf-upload"]) {
    $("#" + id).addEventListener("change", async (e) => {
      const files = Array.from(e.target.files);
      if (!files.length) return;
      state.model = await modelFiles(files);
      state.modelName = id === "gguf-upload" ? files[0].name
        : ((files[0].webkitRelativePath || "").split("/")[0] || "model folder");
      state.config = null;
      evaluate();
    });
  }
  $("#train-upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    state.train = await file.text();
    state.trainName = file.name;
    state.trainFormat = /\.ya?ml$/i.test(file.name) ? "yaml" : "json";
    evaluate();
  });
  $("#no-train").addEventListener("click", () => {
    state.train = null;
    $("#train-upload").value = "";
    evaluate();
  });
  $("#use-spec").addEventListener("click", () => {
    state.config = null;
    state.model = null;
    $("#folder-upload").value = "";
    $("#gguf-upload").value = "";
    $("#upload").value = "";
    evaluate();
  });
  $("#solve-form").addEventListener("submit", (e) => { e.preventDefault(); solve(); });
  $("#sweep-form").addEventListener("submit", (e) => { e.preventDefault(); sweep(); });
  $("#share").addEventListener("click", (e) => {
    e.preventDefault();
    writeURL();
    if (navigator.clipboard) navigator.clipboard.writeText(location.href).catch(() => {});
  });
  await evaluate();
  document.body.dataset.ready = "1";
}

start();
