// tagtune's page: tag a text with POST predict and show its entities. Plain JavaScript, no framework,
// no download from anywhere but this service. User text reaches the page only through text nodes and
// textContent, never innerHTML. Long results are added in chunks, one per animation frame, so that a
// 20,000-word document does not freeze the page; the table shows TABLE_PAGE rows at a time (a browser
// lays a whole table out again whenever rows are added). The markup mirrors tagtune/render.py (the HTML of
// `tagtune predict --format html`): <mark class="ent cN" data-label data-start data-end title>.
"use strict";

(function () {
  const PALETTE_SIZE = 10; // classes c0..c9 in style.css
  const CHUNK = 400; // marks added per animation frame
  const TABLE_PAGE = 500; // table rows shown at first, and added by "Show more"

  const byId = (id) => document.getElementById(id);
  const form = byId("tag-form");
  const textBox = byId("text");
  const keyBox = byId("key-box");
  const keyInput = byId("api-key");
  const charCount = byId("char-count");
  const hint = byId("text-help");
  const download = byId("download");
  const statusLine = byId("status");
  const errorBox = byId("error");
  const modelInfo = byId("model-info");
  const legend = byId("legend");
  const result = byId("result");
  const tableBody = byId("entities").tBodies[0];
  const moreRows = byId("more-rows");

  let types = []; // entity types in the order of the model's labels: their colour is their index
  let maxChars = null;
  let inFlight = null; // AbortController of the running request
  let renderToken = 0; // a new result stops the rendering of the previous one
  let downloadUrl = null;
  let tableEntities = []; // the entities of the result shown; the table lists the first tableShown
  let tableShown = 0;

  // ---------------------------------------------------------------- labels and colours

  /** The entity type of a label, as tagtune.labels.split_tag reads it ("B-PER" -> "PER", "O" -> ""). */
  function entityType(label) {
    if (label === "O") return "";
    if (label.length >= 2 && label[1] === "-" && "BIES".includes(label[0])) return label.slice(2);
    return label;
  }

  function typesOf(labels) {
    const seen = [];
    for (const label of labels) {
      const type = entityType(label);
      if (type && !seen.includes(type)) seen.push(type);
    }
    return seen;
  }

  function colourClass(type) {
    let index = types.indexOf(type);
    if (index < 0) { // a label the metadata did not list: it gets the next colour
      types.push(type);
      index = types.length - 1;
      renderLegend();
    }
    return "c" + (index % PALETTE_SIZE);
  }

  function renderLegend() {
    legend.textContent = "";
    for (const type of types) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch " + colourClass(type);
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, document.createTextNode(type));
      legend.appendChild(item);
    }
  }

  // ---------------------------------------------------------------- offsets

  /** Maps the service's offsets (Python string indices: code points) to JavaScript string indices
   * (UTF-16 code units); the identity unless the text has characters outside the BMP. */
  function unitIndexer(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) return (offset) => offset;
    const units = [];
    for (let unit = 0; unit < text.length; ) {
      units.push(unit);
      const code = text.charCodeAt(unit);
      const next = text.charCodeAt(unit + 1);
      unit += code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? 2 : 1;
    }
    units.push(text.length);
    return (offset) => (offset < units.length ? units[offset] : text.length);
  }

  function codePoints(text) {
    let count = 0;
    for (let i = 0; i < text.length; i++, count++) {
      const code = text.charCodeAt(i);
      const next = text.charCodeAt(i + 1);
      if (code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) i++;
    }
    return count;
  }

  // ---------------------------------------------------------------- requests and errors

  function request(path, options) {
    const headers = Object.assign({}, options.headers || {});
    if (keyInput.value) headers["X-API-Key"] = keyInput.value;
    return fetch(path, Object.assign({}, options, { headers: headers }));
  }

  /** [title, detail] for a failed response: the service's own message, under a plain title. */
  async function describeError(response) {
    const raw = await response.text().catch(() => "");
    let detail = "";
    try {
      const body = JSON.parse(raw);
      detail = (body && body.error && body.error.message) || "";
    } catch (notJson) {
      detail = raw.trim().slice(0, 300); // e.g. uvicorn's plain "Service Unavailable"
    }
    const status = response.status;
    if (status === 413) return ["Too long", detail || "the text is over the service's limits"];
    if (status === 400 || status === 422) return ["Bad request", detail];
    if (status === 401) return ["API key needed", detail + " (enter it under \u201cAPI key\u201d)"];
    if (status === 429 || status === 503) {
      const why = detail ? detail + ". " : "";
      return ["Server busy", why + "The service is handling too many requests or shutting down; try again in a moment."];
    }
    return ["Error " + status, detail || response.statusText];
  }

  function showError(title, detail) {
    errorBox.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = title;
    errorBox.append(strong, document.createTextNode(detail ? ": " + detail : ""));
    errorBox.hidden = false;
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.textContent = "";
  }

  function setStatus(message) {
    statusLine.textContent = message;
  }

  // ---------------------------------------------------------------- metadata

  async function loadMetadata() {
    let response;
    try {
      response = await request("metadata", { method: "GET" });
    } catch (error) {
      modelInfo.textContent = "Cannot reach the service (" + error.message + ").";
      return;
    }
    if (!response.ok) {
      const [title, detail] = await describeError(response);
      modelInfo.textContent = title + ": " + detail;
      if (response.status === 401) keyBox.open = true;
      return;
    }
    const meta = await response.json();
    types = typesOf(meta.labels || []);
    maxChars = meta.limits ? meta.limits.max_chars : null;
    const parts = [
      "Model " + meta.model + (meta.model_type ? " (" + meta.model_type + ")" : ""),
      "backend " + meta.backend + (meta.precision ? " (" + meta.precision + ")" : ""),
      (meta.labels || []).length + " labels" + (meta.scheme ? " (" + meta.scheme + ")" : ""),
    ];
    if (maxChars) parts.push("up to " + maxChars.toLocaleString("en") + " characters per text");
    modelInfo.textContent = parts.join(" \u00b7 ");
    modelInfo.dataset.backend = meta.backend;
    renderLegend();
    updateCount();
  }

  function updateCount() {
    const count = codePoints(textBox.value);
    const limit = maxChars ? " / " + maxChars.toLocaleString("en") : "";
    charCount.textContent = count.toLocaleString("en") + limit + " characters";
    hint.classList.toggle("over", maxChars !== null && count > maxChars);
  }

  // ---------------------------------------------------------------- tagging

  async function tag() {
    const text = textBox.value;
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    clearError();
    setStatus("Tagging\u2026");
    form.setAttribute("aria-busy", "true");
    let response;
    let body;
    try {
      response = await request("predict", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: text }), signal: controller.signal,
      });
      if (response.ok) body = await response.json();
    } catch (error) {
      if (controller.signal.aborted) return; // a newer request took over
      finish(controller);
      clearResult();
      showError("Cannot reach the service", error.message);
      setStatus("Not tagged.");
      return;
    }
    if (controller.signal.aborted) return;
    if (!response.ok) {
      const [title, detail] = await describeError(response);
      if (controller.signal.aborted) return;
      finish(controller);
      clearResult();
      showError(title, detail);
      setStatus("Not tagged.");
      if (response.status === 401) keyBox.open = true;
      return;
    }
    finish(controller);
    render(text, body.entities || []);
  }

  function finish(controller) {
    if (inFlight === controller) inFlight = null;
    form.removeAttribute("aria-busy");
  }

  function clearResult() {
    renderToken++;
    result.textContent = "";
    tableBody.textContent = "";
    tableEntities = [];
    tableShown = 0;
    moreRows.hidden = true;
    result.dataset.state = "empty";
    result.removeAttribute("aria-busy");
    download.hidden = true;
  }

  function markFor(entity, surface) {
    const mark = document.createElement("mark");
    mark.className = "ent " + colourClass(entity.label);
    mark.dataset.label = entity.label;
    mark.dataset.start = String(entity.start);
    mark.dataset.end = String(entity.end);
    mark.title = entity.label + " \u00b7 score " + Number(entity.score).toFixed(3);
    if (entity.review) {  // below the service's --min_score, kept for review
      mark.className += " review";
      mark.title += " \u00b7 for review";
    }
    mark.textContent = surface;
    return mark;
  }

  function rowFor(entity) {
    const row = document.createElement("tr");
    const cells = [entity.text, entity.label, Number(entity.score).toFixed(3), entity.start, entity.end];
    cells.forEach((value, i) => {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      if (i >= 2) cell.className = "num";
      row.appendChild(cell);
    });
    return row;
  }

  function showMoreRows() {
    const stop = Math.min(tableShown + TABLE_PAGE, tableEntities.length);
    const rows = document.createDocumentFragment();
    for (let i = tableShown; i < stop; i++) rows.appendChild(rowFor(tableEntities[i]));
    tableBody.appendChild(rows);
    tableShown = stop;
    const left = tableEntities.length - tableShown;
    moreRows.hidden = left === 0;
    moreRows.textContent = "Show " + Math.min(left, TABLE_PAGE).toLocaleString("en") + " more (" +
      tableShown.toLocaleString("en") + " of " + tableEntities.length.toLocaleString("en") + " shown)";
  }

  /** Text nodes and marks for the whole text, added CHUNK entities per animation frame. */
  function render(text, entities) {
    clearResult();
    const token = renderToken;
    tableEntities = entities;
    showMoreRows();
    const toUnits = unitIndexer(text);
    result.dataset.state = "rendering";
    result.setAttribute("aria-busy", "true");
    let index = 0;
    let cursor = 0;

    function step() {
      if (token !== renderToken) return;
      const marks = document.createDocumentFragment();
      const stop = Math.min(index + CHUNK, entities.length);
      for (; index < stop; index++) {
        const entity = entities[index];
        const start = toUnits(entity.start);
        const end = toUnits(entity.end);
        if (start < cursor || end <= start) continue; // overlapping or empty: in the table only
        if (start > cursor) marks.appendChild(document.createTextNode(text.slice(cursor, start)));
        marks.appendChild(markFor(entity, text.slice(start, end)));
        cursor = end;
      }
      if (index >= entities.length && cursor < text.length) marks.appendChild(document.createTextNode(text.slice(cursor)));
      result.appendChild(marks);
      if (index < entities.length) {
        setStatus("Showing " + index.toLocaleString("en") + " of " + entities.length.toLocaleString("en") + " entities\u2026");
        requestAnimationFrame(step);
        return;
      }
      result.dataset.state = "done";
      result.removeAttribute("aria-busy");
      const count = entities.length;
      setStatus(count.toLocaleString("en") + (count === 1 ? " entity" : " entities") + " found.");
      offerDownload(text, entities);
    }
    step();
  }

  function offerDownload(text, entities) {
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    const json = JSON.stringify({ text: text, entities: entities }, null, 2);
    downloadUrl = URL.createObjectURL(new Blob([json + "\n"], { type: "application/json" }));
    download.href = downloadUrl;
    download.hidden = false;
  }

  // ---------------------------------------------------------------- wiring

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    tag();
  });
  moreRows.addEventListener("click", showMoreRows);
  textBox.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  let countPending = false;
  textBox.addEventListener("input", () => {
    if (countPending) return;
    countPending = true;
    requestAnimationFrame(() => {
      countPending = false;
      updateCount();
    });
  });
  keyInput.addEventListener("change", () => {
    if (!types.length) loadMetadata();
  });
  loadMetadata();
})();
