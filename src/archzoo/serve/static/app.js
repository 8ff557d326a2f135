// archzoo playground: one small script over the server's JSON API (src/archzoo/serve/app.py).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const state = { runs: [], hints: {}, details: {}, textControllers: [] };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// -- talking to the server -------------------------------------------------------------------------
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new Error("the server cannot be reached; is `archzoo serve` still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok || body === null) {
    throw new Error(body && body.error ? body.error : `the server answered ${response.status}`);
  }
  return body;
}

const postJSON = (path, data) => api(path, {
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });

function showError(tab, message) {
  const box = $(`#tab-${tab} .error`);
  box.textContent = message || "";
  box.hidden = !message;
}

async function busy(button, work) {
  const tab = button.closest(".tab").id.replace("tab-", "");
  showError(tab, "");
  button.disabled = true;
  button.classList.add("working");
  try { await work(); } catch (e) { showError(tab, e.message); } finally {
    button.disabled = false;
    button.classList.remove("working");
  }
}

function runLabel(run) { return `${run.model} · ${run.dataset}`; }
function runsOf(tab) { return state.runs.filter(r => r.tab === tab); }
function chosenRuns(tab) { return $$(`fieldset.runs[data-tab="${tab}"] input:checked`).map(i => i.value); }
function runById(id) { return state.runs.find(r => r.id === id); }

async function details(id) {
  if (!state.details[id]) state.details[id] = await api(`/api/runs/${encodeURIComponent(id)}`);
  return state.details[id];
}

function number(input, fallback = null) {
  if (input.value.trim() === "") return fallback;
  const value = Number(input.value);
  if (!Number.isFinite(value)) throw new Error(`${input.closest("label").firstChild.textContent.trim()} must be a number`);
  return value;
}

// -- runs and tabs ---------------------------------------------------------------------------------
async function loadRuns() {
  const body = await api("/api/runs");
  state.runs = body.runs;
  state.hints = body.hints;
  state.details = {};
  const count = state.runs.length;
  $("#root-line").textContent = count
    ? `${count} run${count > 1 ? "s" : ""} under ${body.root}`
    : `no runs under ${body.root} yet: train one with archzoo train mnist-fast (about a minute), then reload`;
  for (const button of $$("#tabs button")) {
    const n = runsOf(button.dataset.tab).length;
    button.dataset.count = ["models", "lab"].includes(button.dataset.tab) ? "" : n;
  }
  for (const tab of Object.keys(state.hints)) fillTab(tab);
}

function fillTab(tab) {
  const section = $(`#tab-${tab}`);
  if (!section) return;
  const runs = runsOf(tab);
  const empty = $(".empty", section);
  empty.hidden = runs.length > 0;
  empty.replaceChildren(el("p", { text: `No ${tab} runs under the runs folder yet. Train one: ` }),
                        el("code", { text: state.hints[tab] }), el("p", { text: "then press Reload runs." }));
  $$(".controls", section).forEach(c => c.classList.toggle("disabled", runs.length === 0));
  const fieldset = $("fieldset.runs", section);
  if (fieldset) {
    fieldset.replaceChildren(el("legend", { text: "Runs" }), ...runs.map((run, i) => el("label", { title: run.id },
      el("input", { type: "checkbox", value: run.id, checked: i < 6 }), ` ${runLabel(run)} `,
      el("small", { class: "muted", text: run.test !== "-" ? run.test : run.status }))));
  }
  for (const select of $$("select.run-select", section)) {
    select.replaceChildren(...runs.map(run => el("option", { value: run.id, text: `${runLabel(run)} (${run.id})` })));
    select.dispatchEvent(new Event("change"));
  }
  if (tab === "digits") {
    $("#digit-maps-run").replaceChildren(el("option", { value: "", text: "none" }),
      ...runs.map(run => el("option", { value: run.id, text: runLabel(run) })));
    const cnn = runs.find(r => r.dataset.startsWith("mnist") && !/^mlp/.test(r.model))  // digits: an MNIST CNN
      || runs.find(r => !/^mlp/.test(r.model));
    $("#digit-maps-run").value = cnn ? cnn.id : "";
  }
  if (tab === "hopfield") hopfieldRunsChanged();
}

function showTab(tab) {
  for (const button of $$("#tabs button")) button.setAttribute("aria-selected", button.dataset.tab === tab);
  for (const section of $$("section.tab")) section.hidden = section.id !== `tab-${tab}`;
  history.replaceState(null, "", `#${tab}`);
  if (tab === "models" && !$("#models-list").children.length) loadModels().catch(e => showError("models", e.message));
  if (tab === "lab" && !state.labLoaded) { state.labLoaded = true; loadLab().catch(e => showError("lab", e.message)); }
}

// -- digits ----------------------------------------------------------------------------------------
const canvas = () => $("#digit-canvas");
let drawing = false, drawn = false, uploaded = null;

function clearCanvas() {
  const ctx = canvas().getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas().width, canvas().height);
  drawn = false;
  uploaded = null;
}

function setupCanvas() {
  const c = canvas(), ctx = c.getContext("2d");
  clearCanvas();
  const at = e => { const r = c.getBoundingClientRect(); return [(e.clientX - r.left) * c.width / r.width, (e.clientY - r.top) * c.height / r.height]; };
  c.addEventListener("pointerdown", e => {
    drawing = true; uploaded = null; c.setPointerCapture(e.pointerId);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 20; ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(...at(e)); ctx.lineTo(...at(e)); ctx.stroke();
  });
  c.addEventListener("pointermove", e => { if (drawing) { ctx.lineTo(...at(e)); ctx.stroke(); drawn = true; } });
  const end = () => { if (drawing) { drawing = false; drawn = true; if ($("#digit-live").checked) classifyDigit(); } };
  c.addEventListener("pointerup", end);
  c.addEventListener("pointerleave", end);
  $("#digit-clear").addEventListener("click", () => { clearCanvas(); $("#digit-results").replaceChildren(); $("#digit-maps").replaceChildren(); });
  $("#digit-file").addEventListener("change", () => {
    const file = $("#digit-file").files[0];
    if (!file) return;
    uploaded = file;
    const img = new Image();
    img.onload = () => {
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
      const s = Math.min(c.width / img.width, c.height / img.height);
      ctx.drawImage(img, (c.width - img.width * s) / 2, (c.height - img.height * s) / 2, img.width * s, img.height * s);
      URL.revokeObjectURL(img.src);
    };
    img.onerror = () => URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(file);
    classifyDigit();
  });
  $("#digit-go").addEventListener("click", () => classifyDigit());
}

function probabilityBars(probs, label) {
  return el("ol", { class: "bars" }, ...probs.map(p => el("li", { class: p.class === label ? "top" : "" },
    el("span", { class: "name", text: p.class }),
    el("span", { class: "bar" }, el("span", { style: `width:${(100 * p.p).toFixed(1)}%` })),
    el("span", { class: "value", text: `${(100 * p.p).toFixed(1)}%` }))));
}

let digitRequest = 0;
async function classifyDigit() {
  const button = $("#digit-go");
  const runs = chosenRuns("digits");
  if (!runs.length) { showError("digits", "choose at least one run"); return; }
  const blob = uploaded || await new Promise(resolve => canvas().toBlob(resolve, "image/png"));
  const form = new FormData();
  form.append("image", blob, uploaded ? uploaded.name : "drawing.png");
  form.append("runs", runs.join(","));
  form.append("maps", $("#digit-maps-run").value);
  const mine = ++digitRequest;
  await busy(button, async () => {
    const body = await api("/api/digits", { method: "POST", body: form });
    if (mine !== digitRequest) return;  // a newer stroke's answer is on its way
    $("#digit-results").replaceChildren(...body.results.map(r => {
      const run = runById(r.run);
      const card = el("article", { class: "card", "data-run": r.run },
        el("h3", { text: run ? runLabel(run) : r.run }));
      if (r.error) { card.append(el("p", { class: "error-line", text: r.error })); return card; }
      card.append(el("div", { class: "verdict" },
        el("img", { class: "pixelated seen", src: r.input, alt: "what the model saw", title: "what the model saw" }),
        el("span", { class: "label", "data-testid": "label", text: r.label }),
        el("span", { class: "muted", text: `${(100 * Math.max(...r.probs.map(p => p.p))).toFixed(1)}% · ${r.ms} ms` })),
        probabilityBars(r.probs, r.label));
      return card;
    }));
    const withMaps = body.results.find(r => r.maps || r.maps_note);
    $("#digit-maps").replaceChildren(...(withMaps ? [
      el("h2", { text: `Feature maps · ${runLabel(runById(withMaps.run) || { model: withMaps.run, dataset: "" })}` }),
      ...(withMaps.maps_note ? [el("p", { class: "muted", text: withMaps.maps_note })] : []),
      ...(withMaps.maps || []).map(m => el("figure", {},
        el("img", { src: m.png, alt: `feature maps of ${m.layer}` }),
        el("figcaption", { text: `${m.layer}: ${m.channels} channels of ${m.size.join("×")}`
          + `${m.channels > 16 ? " (the first 16 shown)" : ""}; each from its minimum (black) to its maximum (white)` })))] : []));
  });
}

// -- text ------------------------------------------------------------------------------------------
async function streamInto(card, runId, request, signal) {
  const out = $("pre", card), stats = $(".stats", card);
  out.textContent = "";
  stats.textContent = "waiting…";
  card.classList.add("streaming");
  let response;
  try {
    response = await fetch("/api/text", { method: "POST", headers: { "Content-Type": "application/json" },
                                          body: JSON.stringify({ ...request, run: runId }), signal });
  } catch (e) {
    stats.textContent = signal.aborted ? "stopped" : "the server cannot be reached";
    card.classList.remove("streaming");
    return;
  }
  if (!response.ok) {
    let message = `the server answered ${response.status}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    card.classList.remove("streaming");
    stats.textContent = "";
    out.replaceChildren(el("span", { class: "error-line", text: message }));
    return;
  }
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buffer = "", count = 0;
  const started = performance.now();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, cut); buffer = buffer.slice(cut + 1);
        if (!line) continue;
        const item = JSON.parse(line);
        if (item.queued) stats.textContent = `waiting for a worker (${item.queued} ahead)…`;
        if (item.text !== undefined) {
          out.textContent += item.text;
          count += 1;
          stats.textContent = `${count} pieces · ${((count * 1000) / (performance.now() - started)).toFixed(0)}/s so far`;
        }
        if (item.error) out.append(el("span", { class: "error-line", text: "\n" + item.error }));
        if (item.done) {
          stats.textContent = `${item.tokens} tokens in ${item.seconds.toFixed(2)} s · ${item.tokens_per_s ?? "–"} tokens/s`
            + (item.notes.length ? ` · ${item.notes.join("; ")}` : "");
          card.dataset.done = "true";
        }
      }
    }
  } catch (e) {
    if (!signal.aborted) out.append(el("span", { class: "error-line", text: "\nthe stream broke off" }));
    else stats.textContent = "stopped";
  } finally {
    card.classList.remove("streaming");
  }
}

async function generateText() {
  const runs = chosenRuns("text");
  const request = {
    prompt: $("#text-prompt").value, tokens: number($("#text-tokens"), 300),
    temperature: number($("#text-temperature"), 1), top_k: number($("#text-top-k")),
    top_p: number($("#text-top-p")), seed: number($("#text-seed"), 0) };
  if (!runs.length) throw new Error("choose at least one run");
  stopText();
  const controller = new AbortController();
  state.textControllers.push(controller);
  const cards = runs.map(id => el("article", { class: "card", "data-run": id },
    el("h3", { text: runById(id) ? runLabel(runById(id)) : id }), el("pre", { class: "generated" }),
    el("p", { class: "stats muted" })));
  $("#text-results").replaceChildren(...cards);
  $("#text-stop").disabled = false;
  await Promise.all(cards.map((card, i) => streamInto(card, runs[i], request, controller.signal)));
  $("#text-stop").disabled = true;
}

function stopText() {
  for (const c of state.textControllers.splice(0)) c.abort();
  $("#text-stop").disabled = true;
}

// -- translate -------------------------------------------------------------------------------------
async function translateOne(card, runId, sentence, beam) {
  const layer = $("select.layer", card), head = $("select.head", card);
  const body = await postJSON("/api/translate", { run: runId, sentence, beam,
    layer: layer ? Number(layer.value) : -1, head: head ? Number(head.value) : -1 });
  $(".translation", card).textContent = body.text || "(an empty translation: the model ended at once)";
  $(".stats", card).textContent = `${beam === 1 ? "greedy" : `beam ${beam}`} · ${body.ms} ms`
    + (body.notes.length ? ` · ${body.notes.join("; ")}` : "");
  const figure = $("figure", card);
  if (!body.heatmap) { figure.replaceChildren(el("p", { class: "muted", text: body.note })); return; }
  const img = el("img", { src: body.heatmap, alt: "attention heatmap", class: "heatmap" });
  const controls = [];
  if (body.layers) {
    const layerSelect = el("select", { class: "layer" }, ...[...Array(body.layers).keys()].map(k =>
      el("option", { value: k, text: `layer ${k}`, selected: layer ? Number(layer.value) === k : k === body.layers - 1 })));
    const headSelect = el("select", { class: "head" }, el("option", { value: -1, text: "mean of heads" }),
      ...[...Array(body.heads).keys()].map(k => el("option", { value: k, text: `head ${k}`, selected: head && Number(head.value) === k })));
    const redraw = () => busy($("#translate-go"), () => translateOne(card, runId, sentence, beam));
    layerSelect.addEventListener("change", redraw);
    headSelect.addEventListener("change", redraw);
    controls.push(el("div", { class: "row" }, layerSelect, headSelect));
  }
  figure.replaceChildren(...controls, img);
}

async function translateAll() {
  const runs = chosenRuns("translate");
  if (!runs.length) throw new Error("choose at least one run");
  const sentence = $("#translate-sentence").value, beam = number($("#translate-beam"), 1);
  const cards = runs.map(id => el("article", { class: "card", "data-run": id },
    el("h3", { text: runById(id) ? runLabel(runById(id)) : id }), el("p", { class: "translation", "data-testid": "translation" }),
    el("p", { class: "stats muted" }), el("figure")));
  $("#translate-results").replaceChildren(...cards);
  const failures = [];
  await Promise.all(cards.map((card, i) => translateOne(card, runs[i], sentence, beam).catch(e => {
    failures.push(e.message);
    $(".translation", card).replaceChildren(el("span", { class: "error-line", text: e.message }));
  })));
  if (failures.length === runs.length) throw new Error(failures[0]);
}

// -- images ----------------------------------------------------------------------------------------
async function imageRunChanged() {
  const id = $("#images-run").value;
  if (!id) return;
  try {
    const d = await details(id);
    $("#images-class-label").hidden = !d.conditional;
    $("#images-class").replaceChildren(el("option", { value: "", text: "every class" }),
      ...(d.conditional ? d.classes.map((c, i) => el("option", { value: i, text: c })) : []));
  } catch (e) { showError("images", e.message); }
}

let frames = [];
async function sampleImages() {
  const cls = $("#images-class").value;
  const body = await postJSON("/api/images", { run: $("#images-run").value, seed: number($("#images-seed"), 0),
    n: number($("#images-n"), 32), frames: 16, class_index: cls === "" ? null : Number(cls) });
  $("#images-grid").src = body.grid;
  $("#images-caption").textContent = body.caption;
  frames = body.frames;
  $("#images-slider").max = frames.length - 1;
  showFrame();
  $("#images-results").hidden = false;
}

function showFrame() {
  const k = Number($("#images-slider").value);
  if (frames[k]) $("#images-frame").src = frames[k];
  $("#images-t").textContent = `t = ${(k / Math.max(1, frames.length - 1)).toFixed(2)}`;
}

// -- sentiment -------------------------------------------------------------------------------------
async function classifySentence() {
  const runs = chosenRuns("sentiment");
  if (!runs.length) throw new Error("choose at least one run");
  const body = await postJSON("/api/sentiment", { runs, sentence: $("#sentiment-sentence").value });
  $("#sentiment-results").replaceChildren(...body.results.map(r => {
    const run = runById(r.run);
    const card = el("article", { class: "card", "data-run": r.run }, el("h3", { text: run ? runLabel(run) : r.run }));
    if (r.error) card.append(el("p", { class: "error-line", text: r.error }));
    else card.append(el("div", { class: "verdict" }, el("span", { class: "label", "data-testid": "label", text: r.label })),
                     probabilityBars(r.probs, r.label));
    return card;
  }));
}

// -- forecast --------------------------------------------------------------------------------------
async function forecastRunChanged() {
  const id = $("#forecast-run").value;
  if (!id) return;
  try {
    const d = await details(id);
    $("#forecast-channel").replaceChildren(...d.columns.map(c => el("option", { value: c, text: c })));
    $("#forecast-channel").value = d.columns[d.columns.length - 1];
    $("#forecast-horizon").placeholder = `${d.horizon} (model's)`;
    $("#forecast-window").title = `windows: ${Object.entries(d.windows).map(([s, n]) => `${s} ${n}`).join(", ")}`;
  } catch (e) { showError("forecast", e.message); }
}

async function forecast() {
  const form = new FormData();
  form.append("run", $("#forecast-run").value);
  form.append("split", $("#forecast-split").value);
  form.append("window", String(number($("#forecast-window"), -1)));
  const horizon = number($("#forecast-horizon"));
  if (horizon !== null) form.append("horizon", String(horizon));
  form.append("channel", $("#forecast-channel").value);
  if ($('input[name="forecast-source"]:checked').value === "csv") {
    const file = $("#forecast-file").files[0];
    if (!file) throw new Error("choose a CSV file, or forecast a window of the run's data");
    form.append("series", file, file.name);
  }
  const body = await api("/api/forecast", { method: "POST", body: form });
  $("#forecast-plot").src = body.plot;
  $("#forecast-table").textContent = body.table.join("\n");
  $("#forecast-results").hidden = false;
}

// -- speech ----------------------------------------------------------------------------------------
let speechFile = null;

function speechChosen() {
  const file = $("#speech-file").files[0];
  if (!file) return;
  speechFile = file;
  $("#speech-name").textContent = `${file.name} · ${(file.size / 1024).toFixed(0)} KiB`;
  const player = $("#speech-player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(file);
  player.hidden = false;
  busy($("#speech-go"), transcribe);
}

async function transcribe() {
  const runs = chosenRuns("speech");
  if (!runs.length) throw new Error("choose at least one run");
  if (!speechFile) throw new Error("choose a WAV file first");
  const form = new FormData();
  form.append("audio", speechFile, speechFile.name);
  form.append("runs", runs.join(","));
  form.append("beam", $("#speech-decoding").value);
  const body = await api("/api/speech", { method: "POST", body: form });
  $("#speech-results").replaceChildren(...body.results.map(r => {
    const run = runById(r.run);
    const card = el("article", { class: `card ${r.kind || ""}`, "data-run": r.run }, el("h3", { text: run ? runLabel(run) : r.run }));
    if (r.error) { card.append(el("p", { class: "error-line", text: r.error })); return card; }
    if (r.kind === "isolated") {
      card.append(el("div", { class: "verdict" },
        el("span", { class: "label", "data-testid": "transcript", text: r.text }),
        el("span", { class: "muted", text: `${(100 * r.readings[0].p).toFixed(1)}% · ${r.ms} ms` })),
        probabilityBars(r.probs, r.text));
    } else {
      card.append(el("div", { class: "verdict" },
        el("span", { class: "digits", "data-testid": "transcript", text: r.text || "(nothing)" }),
        el("span", { class: "muted", text: `${r.decoding} · ${r.ms} ms` })),
        el("ol", { class: "readings", title: "the best readings and their probabilities" },
          ...r.readings.map(x => el("li", { text: `${x.text || "(nothing)"}  ·  p = ${x.p >= 0.001 ? x.p.toFixed(3) : x.p.toExponential(1)}` }))),
        el("figure", {}, el("img", { src: r.plot, alt: "features and per-frame posteriors", class: "posteriors" })));
    }
    if (r.notes.length) card.append(el("p", { class: "stats muted", text: r.notes.join("; ") }));
    return card;
  }));
  $("#speech-features").hidden = !body.features;
  if (body.features) $("#speech-features img").src = body.features;
}

// -- hopfield --------------------------------------------------------------------------------------
async function hopfieldRunsChanged() {
  const ids = chosenRuns("hopfield");
  if (!ids.length) return;
  try {
    // the stored images of the chosen run that holds the fewest: every chosen run stores those (the same seed)
    const all = await Promise.all(ids.map(details));
    const fewest = all.reduce((a, b) => (b.stored < a.stored ? b : a));
    $("#hopfield-pattern").max = fewest.stored - 1;
    $("#hopfield-patterns").replaceChildren(...fewest.patterns.map((url, i) => el("button", {
      type: "button", title: `stored image ${i}`, "data-pattern": i,
      onclick: () => { $("#hopfield-pattern").value = i; markPattern(); busy($("#hopfield-go"), recall); } },
      el("img", { src: url, alt: `stored image ${i}` }))));
    markPattern();
  } catch (e) { showError("hopfield", e.message); }
}

function markPattern() {
  for (const b of $$("#hopfield-patterns button")) b.setAttribute("aria-pressed", b.dataset.pattern === $("#hopfield-pattern").value);
}

function formatEnergy(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3); }

function energyChart(energies, width = 260, height = 70) {
  // the energy after each step (0: the cue), as a line: it never rises
  const ns = "http://www.w3.org/2000/svg", pad = 6;
  const low = Math.min(...energies), high = Math.max(...energies), span = high - low || 1;
  const x = i => pad + (width - 2 * pad) * (energies.length > 1 ? i / (energies.length - 1) : 0.5);
  const y = v => pad + (height - 2 * pad) * (high - v) / span;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "energy");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `energy per step: ${energies.map(formatEnergy).join(", ")}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", energies.map((v, i) => `${x(i)},${y(v)}`).join(" "));
  line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2f5bd3"); line.setAttribute("stroke-width", "2");
  svg.append(line);
  for (const [i, v] of energies.entries()) {
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", x(i)); dot.setAttribute("cy", y(v)); dot.setAttribute("r", 3); dot.setAttribute("fill", "#2f5bd3");
    svg.append(dot);
  }
  return el("figure", {}, svg, el("figcaption", { text: `energy: ${energies.map(formatEnergy).join(" → ")}` }));
}

async function recall() {
  const runs = chosenRuns("hopfield");
  if (!runs.length) throw new Error("choose at least one run");
  const occlude = $('input[name="hopfield-corruption"]:checked').value === "occlude";
  const body = await postJSON("/api/hopfield", { runs, pattern: number($("#hopfield-pattern"), 0),
    corrupt: Number($("#hopfield-corrupt").value), occlude, seed: number($("#hopfield-seed"), 0) });
  $("#hopfield-results").replaceChildren(...body.results.map(r => {
    const run = runById(r.run);
    const box = el("article", { class: "recall", "data-run": r.run },
      el("h3", { text: run ? runLabel(run) : r.run }));
    if (r.error) { box.append(el("p", { class: "error-line", text: r.error })); return box; }
    const frame = (src, caption, cls = "") => el("figure", { class: cls }, el("img", { src, alt: caption }),
      el("figcaption", { text: caption }));
    const cue = occlude ? "lower half erased" : `${r.cue_bits} bits flipped`;
    box.append(el("div", { class: "film" }, frame(r.stored, "stored"),
      frame(r.cue, `${cue} · E=${formatEnergy(r.energies[0])}`),
      ...r.steps.map((src, i) => frame(src, `step ${i + 1} · E=${formatEnergy(r.energies[i + 1])}`)),
      frame(r.recalled, "recalled", "final")),
      energyChart(r.energies),
      el("p", { class: `outcome${r.recovered ? "" : " bad"}`, "data-testid": "outcome", text: r.recovered
        ? `recalled stored image ${body.pattern} exactly, in ${r.steps.length} step(s) · ${r.ms} ms`
        : `${r.bits_wrong} of ${r.bits} bits differ from stored image ${body.pattern}; the nearest stored image is ${r.nearest}` }));
    return box;
  }));
}

// -- lab -------------------------------------------------------------------------------------------
async function loadLab() {
  const body = await api("/api/lab");
  if (!body.pages.length) {
    $("#lab-list").replaceChildren();
    $("#lab-page").replaceChildren(el("p", { class: "muted", text: body.hint }));
    return;
  }
  $("#lab-list").replaceChildren(...body.pages.map(p => el("li", {}, el("button", { type: "button", "data-page": p.id,
    title: p.title, text: p.id === "index" ? "Index: every claim and its verdict" : p.id, onclick: () => showLabPage(p.id) }))));
  const wanted = body.pages.some(p => p.id === state.labPage) ? state.labPage : body.pages[0].id;
  await showLabPage(wanted);
}

async function showLabPage(id) {
  showError("lab", "");
  try {
    const body = await api(`/api/lab/${encodeURIComponent(id)}`);
    const page = $("#lab-page");
    page.innerHTML = body.html;  // rendered by the server from the lab's own markdown, raw HTML escaped
    page.dataset.page = id;
    for (const a of $$("a[data-lab-page]", page)) {
      a.addEventListener("click", e => { e.preventDefault(); showLabPage(a.dataset.labPage); });
    }
    for (const s of $$("strong", page)) {
      const m = s.textContent.trim().match(/^(?:Verdict: )?(supported|refuted|depends|not measured)\.?$/);
      if (m) { s.classList.add(`verdict-${m[1].replace(" ", "-")}`); s.dataset.testid = "verdict"; }
    }
    if (body.missing.length) page.append(el("p", { class: "muted", text: `figures not in the lab folder: ${body.missing.join(", ")}` }));
    for (const b of $$("#lab-list button")) b.setAttribute("aria-current", b.dataset.page === id ? "page" : "false");
    history.replaceState(null, "", `#lab/${id}`);
  } catch (e) { showError("lab", e.message); }
}

// -- models ----------------------------------------------------------------------------------------
async function loadModels() {
  const body = await api("/api/models");
  $("#models-list").replaceChildren(...body.models.map(m => el("li", { "data-name": m.name, "data-family": m.family },
    el("button", { type: "button", text: m.name, onclick: () => showModel(m.name) }),
    el("small", { class: "muted", text: ` ${m.family} · ${m.summary}` }))));
}

async function showModel(name) {
  showError("models", "");
  $("#models-info").replaceChildren(el("p", { class: "muted", text: `building ${name}…` }));
  try {
    const body = await api(`/api/models/${encodeURIComponent(name)}`);
    $("#models-info").replaceChildren(el("h2", { text: name }),
      el("p", { class: "muted", text: body.runs.length ? `trained here: ${body.runs.join(", ")}` : "no run of it here yet" }),
      el("pre", { class: "table", text: body.table }));
  } catch (e) { $("#models-info").replaceChildren(); showError("models", e.message); }
}

// -- wiring ----------------------------------------------------------------------------------------
function wire() {
  for (const button of $$("#tabs button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("#reload").addEventListener("click", () => busy($("#reload"), loadRuns));
  setupCanvas();
  $("#text-temperature").addEventListener("input", () => { $("#text-temperature-value").value = $("#text-temperature").value; });
  $("#text-go").addEventListener("click", () => busy($("#text-go"), generateText));
  $("#text-stop").addEventListener("click", stopText);
  for (const b of $$("#tab-translate .example")) b.addEventListener("click", () => { $("#translate-sentence").value = b.textContent; });
  $("#translate-go").addEventListener("click", () => busy($("#translate-go"), translateAll));
  $("#translate-sentence").addEventListener("keydown", e => { if (e.key === "Enter") $("#translate-go").click(); });
  $("#images-run").addEventListener("change", imageRunChanged);
  $("#images-go").addEventListener("click", () => busy($("#images-go"), sampleImages));
  $("#images-random").addEventListener("click", () => { $("#images-seed").value = Math.floor(Math.random() * 1e6); $("#images-go").click(); });
  $("#images-slider").addEventListener("input", showFrame);
  $("#sentiment-go").addEventListener("click", () => busy($("#sentiment-go"), classifySentence));
  $("#sentiment-sentence").addEventListener("keydown", e => { if (e.key === "Enter") $("#sentiment-go").click(); });
  $("#forecast-run").addEventListener("change", forecastRunChanged);
  $("#forecast-file").addEventListener("change", () => { $('input[name="forecast-source"][value="csv"]').checked = true; });
  $("#forecast-go").addEventListener("click", () => busy($("#forecast-go"), forecast));
  $("#speech-file").addEventListener("change", speechChosen);
  $("#speech-go").addEventListener("click", () => busy($("#speech-go"), transcribe));
  $('fieldset.runs[data-tab="hopfield"]').addEventListener("change", hopfieldRunsChanged);
  $("#hopfield-pattern").addEventListener("change", markPattern);
  $("#hopfield-corrupt").addEventListener("input", () => {
    $("#hopfield-corrupt-value").value = `${Math.round(100 * Number($("#hopfield-corrupt").value))}%`;
    $('input[name="hopfield-corruption"][value="flip"]').checked = true;
  });
  $("#hopfield-go").addEventListener("click", () => busy($("#hopfield-go"), recall));
  $("#hopfield-random").addEventListener("click", () => { $("#hopfield-seed").value = Math.floor(Math.random() * 1e6); $("#hopfield-go").click(); });
  $("#models-filter").addEventListener("input", () => {
    const q = $("#models-filter").value.toLowerCase();
    for (const li of $$("#models-list li")) li.hidden = q && !li.textContent.toLowerCase().includes(q);
  });
  const [first, labPage] = location.hash.slice(1).split("/");
  state.labPage = labPage;
  showTab($(`#tabs button[data-tab="${first}"]`) ? first : "digits");
  loadRuns().then(() => { document.body.dataset.ready = "true"; })
    .catch(e => { $("#root-line").textContent = e.message; document.body.dataset.ready = "true"; });
}

document.addEventListener("DOMContentLoaded", wire);
