// Pinpoint's test page: choose or drop an image, click a point, show every model's top labels.
// Plain browser JavaScript; it speaks the same HTTP API as any client (docs/api.md).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, stored: null, models: [], point: null };

// ---- served models ----
async function loadModels() {
  try {
    const response = await fetch("/v1/models");
    const body = await response.json();
    if (!response.ok) throw new Error(`${body.error} (${body.code})`);
    state.models = body.models;
    $("models").replaceChildren(...body.models.map((model) => {
      const item = document.createElement("li");
      item.className = `state-${model.state}`;
      item.textContent = `${model.name} v${model.version} · ${model.labels} labels`;
      item.title = model.error || model.state;
      return item;
    }));
    if (!body.models.length) $("models").innerHTML = '<li class="muted">no models are served</li>';
    const boxes = body.models.map((model) => {
      const label = document.createElement("label");
      const box = Object.assign(document.createElement("input"), { type: "checkbox", value: model.name, checked: true });
      box.addEventListener("change", () => state.point && classifyPoint());
      label.append(box, model.name);
      return label;
    });
    $("model-boxes").replaceChildren(...boxes);
    $("model-choice").hidden = body.models.length < 2;
  } catch (error) {
    $("models").innerHTML = "";
    showError(`Could not list the models: ${error.message}`);
  }
}

function chosenModels() {
  const boxes = [...document.querySelectorAll("#model-boxes input")];
  const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
  return chosen.length === boxes.length ? null : chosen.join(",");  // null: every model
}

// ---- choosing an image ----
function useFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/") && file.type !== "") {
    showError(`${file.name} is not an image`);
    return;
  }
  state.file = file;
  state.stored = storeImage(file);
  state.point = null;
  const image = $("image");
  if (image.src) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(file);
  $("picture").hidden = false;
  $("drop-hint").hidden = true;
  $("marker").hidden = true;
  $("results").replaceChildren();
  $("meta").textContent = "";
  setStatus(`${file.name}: click on the image to classify a point.`);
  state.stored.catch((error) => showError(`${file.name} cannot be classified: ${error.message}`));
}

// The image goes to the server once (POST /v1/images), as a product would send it; each click then
// names it by id, and the server answers from its decoded copy instead of decoding it again.
async function storeImage(file) {
  const form = new FormData();
  form.append("image", file);
  const response = await fetch("/v1/images", { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) throw new Error(`${body.error} [${response.status} ${body.code}]`);
  return body.image_id;
}

$("file").addEventListener("change", (event) => useFile(event.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
  event.preventDefault();
  drop.classList.add("over");
}));
["dragleave", "drop"].forEach((name) => drop.addEventListener(name, (event) => {
  event.preventDefault();
  drop.classList.remove("over");
}));
drop.addEventListener("drop", (event) => useFile(event.dataTransfer.files[0]));
// Pasting an image works too (a screenshot, say).
document.addEventListener("paste", (event) => {
  const item = [...(event.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
  if (item) useFile(item.getAsFile());
});

// ---- clicking a point ----
$("image").addEventListener("click", (event) => {
  const image = event.currentTarget;
  const box = image.getBoundingClientRect();
  // Pixels of the image as displayed by the browser (EXIF orientation applied), as the API expects.
  const x = Math.min(image.naturalWidth - 1, Math.max(0, (event.clientX - box.left) * image.naturalWidth / box.width));
  const y = Math.min(image.naturalHeight - 1, Math.max(0, (event.clientY - box.top) * image.naturalHeight / box.height));
  state.point = { x: Math.round(x), y: Math.round(y) };
  placeMarker();
  classifyPoint();
});

function placeMarker() {
  const image = $("image"), marker = $("marker");
  if (!state.point || !image.naturalWidth) return;
  // Percentages keep the marker on the same pixel when the window (and so the image) resizes.
  marker.style.left = `${100 * state.point.x / image.naturalWidth}%`;
  marker.style.top = `${100 * state.point.y / image.naturalHeight}%`;
  marker.hidden = false;
  $("point").textContent = `Point (${state.point.x}, ${state.point.y}) of ${image.naturalWidth}×${image.naturalHeight}`;
}

async function classifyPoint() {
  if (!state.file || !state.point) return;
  const stored = state.stored;
  let imageId;
  try {
    imageId = await stored;
  } catch (error) {
    showError(`The image cannot be classified: ${error.message}`);
    return;
  }
  const document_ = { image_id: imageId, x: state.point.x, y: state.point.y, top_k: 5 };
  const models = chosenModels();
  if (models) document_.models = models;
  const answer = await classify(jsonRequest(document_));
  if (answer === "not_found" && state.stored === stored) {  // the same image, not one chosen since
    state.stored = storeImage(state.file);  // expired or deleted on the server: store it again, once
    document_.image_id = await state.stored.catch(() => null);
    if (document_.image_id) await classify(jsonRequest(document_));
  }
}

function jsonRequest(document_) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(document_) };
}

// ---- a path on the server ----
$("path-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const document_ = {
    path: $("path").value.trim(),
    x: Number($("path-x").value),
    y: Number($("path-y").value),
    units: $("path-units").value,
    top_k: 5,
  };
  const models = chosenModels();
  if (models) document_.models = models;
  await classify(jsonRequest(document_));
});

// ---- asking and showing ----
// Shows the answer or the error; returns the error code, if any.
async function classify(request) {
  setStatus("Classifying…");
  const started = performance.now();
  let response, body;
  try {
    response = await fetch("/v1/classify", request);
    body = await response.json();
  } catch (error) {
    showError(`The server could not be reached: ${error.message}`);
    return "unreachable";
  }
  if (!response.ok) {
    const hint = body.code === "path_forbidden" ? " (is the server started with --image-root, and is the path inside it?)" : "";
    showError(`${body.error}${hint} [${response.status} ${body.code}]`);
    $("results").replaceChildren();
    return body.code;
  }
  setStatus("");
  render(body, performance.now() - started);
  return null;
}

function render(answer, elapsedMs) {
  const prediction = answer.predictions[0];
  const cards = Object.entries(prediction.results).map(([model, labels]) => {
    const card = document.createElement("article");
    card.className = "card model";
    const title = document.createElement("h3");
    title.append(model, " ");
    const version = document.createElement("small");
    version.textContent = `v${answer.models[model]?.version ?? "?"}`;
    title.append(version);
    card.append(title, ...labels.map(scoreRow));
    return card;
  });
  for (const [model, message] of Object.entries(answer.errors || {})) {
    const card = document.createElement("article");
    card.className = "card model";
    card.innerHTML = "<h3></h3><p class='failed'></p>";
    card.querySelector("h3").textContent = model;
    card.querySelector("p").textContent = message;
    cards.push(card);
  }
  $("results").replaceChildren(...cards);
  const timings = Object.entries(answer.timings_ms).map(([stage, ms]) => `${stage} ${ms} ms`).join(" · ");
  $("meta").textContent = `${answer.image.width}×${answer.image.height} ${answer.image.format} at ` +
    `(${prediction.point.x}, ${prediction.point.y}) · ${timings} · round trip ${elapsedMs.toFixed(0)} ms · ` +
    `request ${answer.request_id}`;
}

function scoreRow({ label, score }) {
  const row = document.createElement("div");
  row.className = "score";
  const name = Object.assign(document.createElement("span"), { className: "label", textContent: label });
  const bar = Object.assign(document.createElement("span"), { className: "bar" });
  const fill = document.createElement("span");
  fill.style.width = `${(100 * score).toFixed(1)}%`;
  bar.append(fill);
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "1");
  bar.setAttribute("aria-valuenow", String(score));
  bar.setAttribute("aria-label", label);
  const pct = Object.assign(document.createElement("span"), { className: "pct", textContent: `${(100 * score).toFixed(1)}%` });
  row.append(name, bar, pct);
  return row;
}

function setStatus(text) {
  $("status").className = "status";
  $("status").textContent = text;
}

function showError(text) {
  $("status").className = "status error";
  $("status").textContent = text;
}

window.addEventListener("resize", placeMarker);
loadModels();
