// Pinpoint's test page: choose, drop or paste an image (or name one on the server), click a point or
// move the keyboard cursor to it, and read every model's top labels, with the window each model saw.
// Plain browser JavaScript; it speaks the same HTTP API as any client (docs/api.md). "Run on: this
// browser" runs the same models here instead (static/inbrowser/run.js, loaded when first chosen): the
// image is then neither uploaded nor stored; "both" runs each point on both and compares the answers.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "pinpoint.apiKey";
const RUN_ON_STORAGE = "pinpoint.runOn";      // "server", "browser" or "both" (localStorage)
const FLOAT16_STORAGE = "pinpoint.float16";   // "1": the browser runs the float16 copies
const RETRIES = 4;  // a 503 with Retry-After (models loading, queue full) is tried again this many times
const COLORS = ["#e8590c", "#12b76a", "#7a5af8", "#0ba5ec", "#ee46bc", "#eaaa08"];

const state = {
  config: null,        // GET /v1/config: image root?, auth?, limits, each model's crop window
  models: [],          // GET /v1/models
  source: null,        // {kind: "file", name, file, imageId, url} or {kind: "path", path, url}
  width: 0,            // the source image's size as the server sees it (EXIF orientation applied)
  height: 0,
  pendingFile: null,   // a file being sent, or waiting for an API key
  cursor: null,        // {x, y}: the keyboard cursor, in image pixels
  point: null,         // {x, y}: the point last asked about in this image
  history: [],         // [{point, where, answer, elapsedMs, server?, browser?, disagree?}]: every answer
                       // for this image; answer is the one shown first (the server's in "both"), and in
                       // "both" server and browser hold each side's {answer, ms} or {error, ms}
  shown: -1,           // the history entry on screen, -1 for none
  asked: 0,            // requests sent; only the latest one's answer is put on screen
  runOn: "server",     // where a point is classified: "server", "browser" or "both"
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- talking to the API ----
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  toString() {
    return `${this.message} [${this.status} ${this.code}]`;
  }
}

function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

// Every API call goes through here: it sends the key (X-API-Key), asks for one on a 401, and waits
// out a 503 that says when to come back (Retry-After: models still loading, queue full) a few times.
async function api(path, options = {}, retries = RETRIES) {
  for (let attempt = 1; ; attempt++) {
    const headers = new Headers(options.headers || {});
    const key = apiKey();
    if (key) headers.set("X-API-Key", key);
    let response, body;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (error) {
      throw new ApiError(0, "unreachable", `the server could not be reached (${error.message})`);
    }
    try {
      body = await response.json();
    } catch {
      body = { error: `the server answered ${response.status} without a JSON body`, code: "bad_response" };
    }
    if (response.ok) return body;
    const retryAfter = Number(response.headers.get("Retry-After"));
    if (response.status === 503 && retryAfter > 0 && attempt <= retries) {
      setStatus(`${body.error}: trying again in ${retryAfter} s (${attempt} of ${retries})…`);
      if (body.code === "model_unavailable") watchModels();
      await sleep(Math.min(retryAfter, 10) * 1000);
      continue;
    }
    if (response.status === 401) askForKey(key ? "The server refused this key." : "This server needs an API key.");
    throw new ApiError(response.status, body.code, body.error);
  }
}

// ---- the API key ----
function askForKey(why) {
  $("key-form").hidden = false;
  $("key-change").hidden = true;
  $("key-why").textContent = `${why} It is kept in this tab only (sessionStorage) and sent as X-API-Key.`;
  $("key-form").classList.add("wanted");
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("api-key").value = "";
  $("key-form").classList.remove("wanted");
  $("key-why").textContent = "A key is set for this tab.";
  setStatus("Trying the key…");
  if (await start()) {
    setStatus("The key works.");
    showKeyForm(false);  // out of the way; "API key…" in the options brings it back
    if (state.pendingFile) useFile(state.pendingFile);  // the upload it stopped
  }
});

// The key card while a key is wanted or being changed; otherwise only the options' "API key…" button.
function showKeyForm(shown) {
  $("key-form").hidden = !shown;
  $("key-change").hidden = shown || !state.config?.auth;
}
$("key-change").addEventListener("click", () => {
  showKeyForm(true);
  $("api-key").focus();
});

$("key-forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  askForKey("The key is forgotten.");
});

// ---- what the server offers ----
// Returns true once settings and models are known.
async function start() {
  try {
    state.config = await api("/v1/config", {}, 0);
  } catch (error) {
    $("models").innerHTML = '<li class="muted">models: not listed without an API key</li>';
    if (error.status !== 401) $("models").innerHTML = "";
    if (error.status === 401) {
      showError(`This server needs an API key: enter it below. (The API answered: ${error})`);
    } else {
      showError(`Could not read the server's settings: ${error}`);
    }
    return false;
  }
  const config = state.config;
  $("path-form").hidden = !config.image_root;  // path requests are refused without an image root
  $("top-k").max = String(config.max_top_k);
  if (config.auth) {  // a key works: the card only when asked for ("API key…"), to change or forget it
    if (!$("key-form").classList.contains("wanted")) $("key-why").textContent = "A key is set for this tab.";
    showKeyForm($("key-form").classList.contains("wanted"));
  }
  return (await watchModels()) !== false;
}

// Polls readiness until every model has loaded (or failed for good), refreshing the model chips.
let watching = null;
function watchModels() {
  watching ??= pollModels().finally(() => { watching = null; });
  return watching;
}

async function pollModels() {
  for (;;) {
    let ready = false, retryAfter = 1;
    try {
      const readiness = await fetch("/readyz");
      ready = readiness.ok;
      retryAfter = Number(readiness.headers.get("Retry-After")) || 1;
    } catch {
      // the server is unreachable for now: the listing below says so
    }
    try {
      await loadModels();
    } catch (error) {
      $("models").innerHTML = "";
      showError(`Could not list the models: ${error}`);
      return false;
    }
    const loading = state.models.some((model) => model.state === "LOADING" || model.state === "START");
    if (ready || (state.models.length && !loading)) {
      if ($("status").dataset.about === "loading") setStatus("");
      return true;
    }
    if (!$("status").textContent) setStatus("The models are loading; the page will use them once they are ready.", "loading");
    await sleep(Math.min(retryAfter, 10) * 1000);
  }
}

async function loadModels() {
  const body = await api("/v1/models", {}, 0);
  state.models = body.models;
  $("models").replaceChildren(...body.models.map((model) => {
    const item = document.createElement("li");
    item.className = `state-${model.state}`;
    const what = model.state !== "AVAILABLE" ? model.state.toLowerCase()
      : takesTensors(model) ? "named tensors: :predict or /v2 infer, not a point" : `${model.labels} labels`;
    item.textContent = `${model.name} v${model.version} · ${what}`;
    item.title = model.error || model.state;
    return item;
  }));
  if (!body.models.length) $("models").innerHTML = '<li class="muted">no models are served</li>';
  const ticked = new Map([...document.querySelectorAll("#model-boxes input")].map((box) => [box.value, box.checked]));
  const classifiable = body.models.filter((model) => !takesTensors(model));
  $("model-boxes").replaceChildren(...classifiable.map((model) => {
    const label = document.createElement("label");
    const box = Object.assign(document.createElement("input"), {
      type: "checkbox", value: model.name, checked: ticked.get(model.name) ?? true });
    box.addEventListener("change", classifyAgain);
    label.append(box, model.name);
    return label;
  }));
  $("model-choice").hidden = classifiable.length < 2;
}

// A SavedModel served as named tensors (several inputs or outputs) takes no crop: /v1/classify refuses it.
function takesTensors(model) {
  return model.input?.kind === "tensors";
}

// The fields every classify request carries, or null (and the reason on screen) when they are wrong.
function requestOptions() {
  const boxes = [...document.querySelectorAll("#model-boxes input")];
  const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
  if (boxes.length && !chosen.length) {
    showError("Choose at least one model: with none ticked there is nothing to run.");
    return null;
  }
  const topK = Number($("top-k").value);
  const most = state.config?.max_top_k ?? 20;
  if (!Number.isInteger(topK) || topK < 1 || topK > most) {
    showError(`Labels per model (top_k) must be a whole number from 1 to ${most}.`);
    return null;
  }
  const options = { top_k: topK };
  if (chosen.length < boxes.length) options.models = chosen;  // none named: every model
  return options;
}

// Ticking a model, changing top_k or where the models run asks again for the point on screen (the one
// shown, which may be an earlier point picked from the history, not the last one clicked).
function classifyAgain() {
  const point = state.history[state.shown]?.point ?? state.point;
  if (point) classifyAt(point);
}
$("top-k").addEventListener("change", classifyAgain);
$("show-windows").addEventListener("change", () => state.shown >= 0 && drawWindows(state.history[state.shown]));

// ---- where the models run: the server, this browser, or both ----
const RUN_ON_NOTES = {
  server: "Each point is classified on the server (the image is stored there once).",
  browser: "The models run in this browser: the image is neither uploaded nor stored; each model version is " +
    "downloaded once. Images on the server (the form below) are still classified there.",
  both: "Each point is classified on the server and in this browser; the answers are shown side by side and " +
    "compared. Images on the server are classified there only.",
};

function remembered(key, fallback) {
  try {
    return localStorage.getItem(key) ?? fallback;
  } catch {
    return fallback;
  }
}

function keep(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage refused (a private window): the choice holds for this visit only
  }
}

function setRunOn(where) {
  state.runOn = RUN_ON_NOTES[where] ? where : "server";
  for (const radio of document.querySelectorAll("input[name=run-on]")) radio.checked = radio.value === state.runOn;
  $("run-on-note").textContent = RUN_ON_NOTES[state.runOn];
  $("float16-choice").hidden = state.runOn === "server";
  if (state.runOn !== "server") {
    inBrowser().catch((error) => showError(`The models cannot run in this browser: ${error.message}`));
  }
}

for (const radio of document.querySelectorAll("input[name=run-on]")) {
  radio.addEventListener("change", () => {
    keep(RUN_ON_STORAGE, radio.value);
    setRunOn(radio.value);
    classifyAgain();
  });
}
$("float16").checked = remembered(FLOAT16_STORAGE, "") === "1";
$("float16").addEventListener("change", () => {
  keep(FLOAT16_STORAGE, $("float16").checked ? "1" : "");
  if (state.runOn !== "server") classifyAgain();
});

// static/inbrowser/run.js (global PinpointBrowser; it loads onnxruntime-web and the preprocessing port),
// fetched only once "this browser" or "both" is chosen: a server-only visit downloads none of it.
let browserScript = null;
function browserCode() {
  browserScript ??= new Promise((resolve, reject) => {
    if (globalThis.PinpointBrowser) return resolve();
    const script = Object.assign(document.createElement("script"), { src: "/static/inbrowser/run.js" });
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => {
      script.remove();
      reject(new Error("/static/inbrowser/run.js could not be loaded"));
    });
    document.head.append(script);
  }).then(() => {
    PinpointBrowser.onDownload(showDownload);
    return PinpointBrowser;
  }).catch((error) => {
    browserScript = null;  // tried again on the next click
    throw error;
  });
  return browserScript;
}

// PinpointBrowser once onnxruntime-web is loaded too.
function inBrowser() {
  return browserCode().then((browser) => browser.ready().then(() => browser));
}

// What each model version cost to bring into this browser, once per version and variant.
function showDownload({ model, version, variant, bytes, ms, createMs }) {
  const line = $("downloads");
  if (!line.childElementCount) line.append("Downloaded to this browser: ");
  const item = Object.assign(document.createElement("span"), { className: "download",
    textContent: `${model} v${version}: ${(bytes / 1e6).toFixed(2)} MB in ${ms.toFixed(0)} ms (${variant})` });
  Object.assign(item.dataset, { model, version, variant, bytes, ms: ms.toFixed(1), createMs: createMs.toFixed(1) });
  line.append(item);
  line.hidden = false;
}

// The pixels this browser decoded from a file (EXIF orientation applied, as the server does), once.
// What the server would refuse (GET /v1/config: max_body_bytes, formats, max_pixels, max_side) is
// refused here too, with the server's code and message, before any pixel is decoded.
function decodeHere(file) {
  const config = state.config;
  const limits = config && { max_body_bytes: config.max_body_bytes, max_pixels: config.max_pixels,
                             max_side: config.max_side, formats: config.formats };
  return browserCode().then((browser) => browser.pixelsOf(file, limits));
}

function pixelsOf(source) {
  source.pixels ??= decodeHere(source.file).catch((error) => {
    source.pixels = null;
    throw error;
  });
  return source.pixels;
}

const FORMATS = { "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF", "image/bmp": "BMP" };

// ---- choosing an image ----
// On the server, the image goes up once (POST /v1/images), as a product would send it; each click then
// names it by id. In this browser only, it is decoded here and sent nowhere. It is shown only once it
// has been taken, so a refused file leaves the previous image (if any) in place, and the file chooser
// is always there.
async function useFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/") && file.type !== "") {
    showError(`${file.name} is not an image (${file.type}): choose a JPEG, PNG, WebP, GIF or BMP file.`);
    return;
  }
  state.pendingFile = file;
  const here = state.runOn === "browser";
  setStatus(here ? `Reading ${file.name} (it stays in this browser)…` : `Sending ${file.name}…`);
  let stored, pixels;
  try {
    if (here) {
      pixels = await decodeHere(file);
    } else {
      stored = await storeImage(file);
    }
  } catch (error) {
    if (state.pendingFile !== file) return;
    if (error.status !== 401) state.pendingFile = null;  // kept until a key is given
    // A refusal by the server's rules (error.code, in either place) reads the same; a decoder's failure says where.
    showError(here && typeof error.code !== "string" ? `${file.name} cannot be read in this browser: ${error.message}`
      : `${file.name} cannot be classified: ${error}`);
    return;
  }
  if (state.pendingFile !== file) return;  // another file was chosen meanwhile
  state.pendingFile = null;
  setSource({ kind: "file", name: file.name, file, imageId: stored?.image_id ?? null, url: URL.createObjectURL(file),
              pixels: pixels ? Promise.resolve(pixels) : null },
            stored?.width ?? pixels.width, stored?.height ?? pixels.height);
  setStatus(`${file.name}: click on the image (or focus it, move with the arrow keys and press Enter) to classify a point.`);
}

async function storeImage(file) {
  const form = new FormData();
  form.append("image", file);
  return api("/v1/images", { method: "POST", body: form });
}

function setSource(source, width, height) {
  if (state.source?.url?.startsWith("blob:")) URL.revokeObjectURL(state.source.url);
  Object.assign(state, { source, width, height, cursor: null, point: null, history: [], shown: -1 });
  const image = $("image");
  image.src = source.url;
  if (source.kind === "file") {
    image.alt = `${source.name}, ${width}×${height}: click on it to classify a point`;
    $("source").textContent = `${source.name} · ${width}×${height}`;
  } else {
    image.alt = `A stand-in for the server image ${source.path}, ${width}×${height}: click on it to classify a point of that image`;
    $("source").textContent = `Server image ${source.path} · ${width}×${height}. The page cannot show it (the API ` +
      "serves no files from the image root): the point and windows are drawn to scale on a stand-in.";
  }
  $("picture").hidden = false;
  $("drop-hint").hidden = true;
  $("drop").classList.add("filled");
  clearResult();
  $("point").textContent = "Click the image, or focus it and use the arrow keys and Enter, to classify the region around a point.";
  renderHistory();
}

// A server file is not served to the page: an SVG of its size stands in for it.
function standIn(path, width, height) {
  const escape = (text) => text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const size = Math.max(4, Math.min(height / 8, (0.9 * width) / Math.max(8, 0.6 * path.length)));
  const stripe = Math.max(4, Math.round(Math.min(width, height) / 20));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<defs><pattern id="s" width="${stripe}" height="${stripe}" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
    `<rect width="${stripe / 2}" height="${stripe}" fill="#e4e7ec"/></pattern></defs>` +
    `<rect width="100%" height="100%" fill="#f2f4f7"/><rect width="100%" height="100%" fill="url(#s)"/>` +
    `<text x="50%" y="50%" text-anchor="middle" dominant-baseline="middle" font-family="system-ui, sans-serif" ` +
    `font-size="${size.toFixed(1)}" fill="#344054">${escape(path)}</text></svg>`;
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

$("file").addEventListener("change", (event) => {
  useFile(event.target.files[0]);
  event.target.value = "";  // so choosing the same file again is noticed
});
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
drop.addEventListener("click", () => state.source || $("file").click());  // the empty drop zone chooses too
// Pasting an image works too (a screenshot, say).
document.addEventListener("paste", (event) => {
  const item = [...(event.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
  if (item) useFile(item.getAsFile());
});

// ---- choosing a point: the mouse, or the keyboard cursor ----
const clamp = (value, low, high) => Math.min(high, Math.max(low, value));
const round2 = (value) => Math.round(value * 100) / 100;  // as the API's answers show points
const px = (value) => Math.round(value);  // what a person reads: whole pixels (a `path` point in % is fractional)

$("image").addEventListener("click", (event) => {
  const box = event.currentTarget.getBoundingClientRect();
  // Pixels of the image as displayed (EXIF orientation applied), as the API expects.
  const x = clamp(Math.round((event.clientX - box.left) * state.width / box.width), 0, state.width - 1);
  const y = clamp(Math.round((event.clientY - box.top) * state.height / box.height), 0, state.height - 1);
  state.cursor = { x, y };
  classifyAt({ x, y });
});

const picture = $("picture");
const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
picture.addEventListener("keydown", (event) => {
  if (!state.source || event.altKey || event.ctrlKey || event.metaKey) return;
  const cursor = state.cursor ?? { x: Math.floor(state.width / 2), y: Math.floor(state.height / 2) };
  if (MOVES[event.key]) {
    event.preventDefault();
    // A step is 1% of the longer side (at least a pixel); with Shift, 10%.
    const step = Math.max(1, Math.round(Math.max(state.width, state.height) / 100)) * (event.shiftKey ? 10 : 1);
    const [dx, dy] = MOVES[event.key];
    state.cursor = { x: clamp(Math.round(cursor.x) + dx * step, 0, state.width - 1),
                     y: clamp(Math.round(cursor.y) + dy * step, 0, state.height - 1) };
    picture.classList.add("keyboard");
    placeCursor();
    $("point").textContent = `Cursor at (${state.cursor.x}, ${state.cursor.y}) of ${state.width}×${state.height}: Enter classifies it.`;
  } else if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    state.cursor = cursor;
    picture.classList.add("keyboard");
    classifyAt(cursor);
  }
});
picture.addEventListener("focus", () => {
  if (!state.source) return;
  state.cursor ??= state.history[state.shown]?.point ?? { x: Math.floor(state.width / 2), y: Math.floor(state.height / 2) };
  placeCursor();
});
picture.addEventListener("pointerdown", () => picture.classList.remove("keyboard"));

function placeCursor() {
  const cursor = $("cursor");
  if (!state.cursor) return;
  cursor.style.left = `${100 * state.cursor.x / state.width}%`;
  cursor.style.top = `${100 * state.cursor.y / state.height}%`;
  cursor.hidden = false;
}

function placeMarker(point) {
  const marker = $("marker");
  // Percentages keep the marker on the same pixel when the window (and so the image) resizes.
  marker.style.left = `${100 * point.x / state.width}%`;
  marker.style.top = `${100 * point.y / state.height}%`;
  marker.hidden = false;
}

// ---- asking ----
async function classifyAt(point) {
  const source = state.source;
  if (!source) return;
  state.point = { x: point.x, y: point.y };  // asked again when the options are put right
  const options = requestOptions();
  if (!options) return;
  $("point").textContent = `Point (${point.x}, ${point.y}) of ${state.width}×${state.height}`;
  placeCursor();
  const where = source.kind === "path" ? "server" : state.runOn;  // a server image is classified where it is
  const asked = ++state.asked;
  const server = where === "browser" ? null : await timed(() => onServer(source, point, options));
  // In "both", this browser runs the versions that answered on the server.
  const browser = where === "server" ? null : await timed(() => inThisBrowser(source, point, options, server?.answer));
  const runs = [server, browser].filter(Boolean);
  if (runs.every((run) => run.error)) return failed(runs[0].error, asked);
  if (state.source !== source) return;
  const shown = runs.find((run) => run.answer);
  const entry = { point: { x: point.x, y: point.y }, where, answer: shown.answer, elapsedMs: shown.ms };
  if (where === "both") {
    Object.assign(entry, { server, browser });
    if (server.answer && browser.answer) {
      entry.disagree = PinpointBrowser.disagreements(server.answer, browser.answer,
                                                     PinpointBrowser.tolerance(browser.answer.variant));
    }
  }
  remember(entry, asked);
}

// {answer, ms} or {error, ms}: ms is the round trip on the server, crop + inference in this browser.
async function timed(run) {
  const started = performance.now();
  try {
    const answer = await run();
    return { answer, ms: performance.now() - started };
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
}

async function onServer(source, point, options) {
  if (source.kind === "file" && !source.imageId) {  // chosen while "this browser" was on: stored now
    setStatus(`Sending ${source.name}…`);
    source.imageId = (await storeImage(source.file)).image_id;
  }
  const document_ = source.kind === "file" ? { image_id: source.imageId } : { path: source.path };
  Object.assign(document_, { x: point.x, y: point.y }, options);
  try {
    return await classify(document_);
  } catch (error) {
    if (error.code !== "not_found" || source.kind !== "file" || state.source !== source) throw error;
    // The stored copy expired or was deleted on the server: store the same image again, once.
    source.imageId = (await storeImage(source.file)).image_id;
    document_.image_id = source.imageId;
    return classify(document_);
  }
}

async function inThisBrowser(source, point, options, served) {
  const browser = await inBrowser();
  const pixels = await pixelsOf(source);
  const runs = await browserRuns(options.models, served);
  setStatus("Classifying in this browser…");
  const headers = apiKey() ? { "X-API-Key": apiKey() } : {};
  const answer = await browser.classify({
    pixels, format: FORMATS[source.file.type] ?? "image", point, runs, topK: options.top_k,
    variant: $("float16").checked ? "float16" : "float32", api, headers });
  return answer;
}

// The versions to run here: those the server answered with, else each model's serving version; each
// with its model.json when the server offers a browser copy (GET /v1/models: versions[].web).
async function browserRuns(chosen, served) {
  const names = chosen ?? state.models.map((model) => model.name);
  const find = (name, version) => state.models.find((model) => model.name === name)?.versions
    ?.find((entry) => entry.version === version);
  const runs = [];
  for (const name of names) {
    const version = served?.models?.[name]?.version ?? state.models.find((model) => model.name === name)?.version;
    let listed = find(name, version);
    if (!listed) {  // loaded since the listing was read
      await loadModels().catch(() => {});
      listed = find(name, version);
    }
    const why = listed && listed.state !== "AVAILABLE"
      ? `${name} v${version} is ${listed.state.toLowerCase()} on the server` : null;
    runs.push({ name, version, web: why ? undefined : listed?.web, why });
  }
  return runs;
}

$("path-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const options = requestOptions();
  if (!options) return;
  const path = $("path").value.trim();
  const document_ = { path, x: Number($("path-x").value), y: Number($("path-y").value), units: $("path-units").value, ...options };
  const asked = ++state.asked, started = performance.now();
  let answer;
  try {
    answer = await classify(document_);
  } catch (error) {
    return failed(error, asked);
  }
  const { width, height } = answer.image;
  const same = state.source?.kind === "path" && state.source.path === path && state.width === width && state.height === height;
  if (!same) setSource({ kind: "path", path, url: standIn(path, width, height) }, width, height);
  // The answer rounds the point to 2 decimals; the window is drawn at the point the server cut around.
  const point = document_.units === "pct"
    ? { x: Math.min(document_.x / 100 * width, width - 0.5), y: Math.min(document_.y / 100 * height, height - 0.5) }
    : { x: document_.x, y: document_.y };
  state.cursor = { ...point };
  state.point = { ...point };
  remember({ point, where: "server", answer, elapsedMs: performance.now() - started }, asked);
});

async function classify(document_) {
  setStatus("Classifying…");
  return api("/v1/classify", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(document_) });
}

function failed(error, asked) {
  if (asked !== state.asked) return;  // a later request is on its way; its answer counts
  if (!(error instanceof ApiError)) return showError(`In this browser: ${typeof error?.code === "string" ? error : error?.message ?? error}`);
  const hint = error.code === "path_forbidden"
    ? " (the path must be inside the image root the server was started with, --image-root)" : "";
  showError(`${error.message}${hint} [${error.status} ${error.code}]`);
}

// ---- the answers of this image ----
// One entry per point and place: asking again for a point (another top_k, other models) replaces its
// entry where it stands in the list instead of adding a copy.
function remember(entry, asked) {
  const same = state.history.findIndex((old) => old.where === entry.where
    && old.point.x === entry.point.x && old.point.y === entry.point.y);
  const index = same >= 0 ? same : state.history.push(entry) - 1;
  state.history[index] = entry;
  if (asked === state.asked) {
    show(index);
  } else {
    renderHistory();
  }
}

// Puts a remembered answer on screen again: no request is sent.
function show(index) {
  const entry = state.history[index];
  state.shown = index;
  setStatus("");
  $("point").textContent = `Point (${px(entry.point.x)}, ${px(entry.point.y)}) of ${state.width}×${state.height}`;
  placeMarker(entry.point);
  drawWindows(entry);
  learnVersions(entry);
  render(entry);
  renderHistory();
}

function renderHistory() {
  $("history-card").hidden = !state.history.length;
  $("history").replaceChildren(...state.history.map((entry, index) => {
    const item = document.createElement("li");
    const button = Object.assign(document.createElement("button"), { type: "button" });
    const tops = Object.entries(entry.answer.predictions[0].results).sort(([a], [b]) => byModel(a, b))
      .map(([model, labels]) => `${model} ${labels[0]?.label}`);
    const failures = Object.keys(entry.answer.errors || {}).map((model) => `${model} failed`);
    const where = { server: "", browser: " · in this browser",
      both: entry.disagree && Object.keys(entry.disagree).length ? " · both: they disagree" : " · both" }[entry.where];
    button.textContent = `(${px(entry.point.x)}, ${px(entry.point.y)}) · ${[...tops, ...failures].join(", ")}${where}`;
    if (index === state.shown) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => show(index));
    item.append(button);
    return item;
  }));
}

// Each model keeps its colour and place (the server's listing order) from answer to answer.
function modelIndex(name) {
  const names = Object.keys(state.config?.models || {});
  return names.includes(name) ? names.indexOf(name) : names.length;
}
const byModel = (a, b) => modelIndex(a) - modelIndex(b) || a.localeCompare(b);
const modelColor = (name) => COLORS[modelIndex(name) % COLORS.length];

// The region each model was given, computed as the server cuts it (service/classify/imaging.py crop_box),
// by the same code the in-browser preprocessing uses (static/inbrowser/preprocess.js).
function cropBox(crop, width, height, x, y) { return PinpointPreprocess.cropBox(crop, width, height, x, y); }

// The crop spec of the version that answered (versions of a model may cut differently).
function cropOf(model, version) {
  const known = state.config?.models?.[model];
  return known?.versions?.[String(version)] ?? (known?.version === version ? known.crop : null);
}

// A version the page has not seen (loaded since it opened): read the config again, then draw.
async function learnVersions(entry) {
  const unknown = Object.entries(entry.answer.models).some(([model, { version }]) => !cropOf(model, version));
  if (!unknown) return;
  try {
    state.config = await api("/v1/config", {}, 0);
  } catch {
    return;  // no windows for it; the answer itself is on screen
  }
  if (state.history[state.shown] === entry) drawWindows(entry);
}

function drawWindows(entry) {
  const layer = $("windows"), legend = $("legend");
  layer.replaceChildren();
  legend.replaceChildren();
  legend.hidden = true;
  if (!entry || !$("show-windows").checked) return;
  const { width, height } = entry.answer.image;
  const boxes = new Map();  // models given the same window share one outline
  for (const model of Object.keys(entry.answer.models).sort(byModel)) {
    const crop = cropOf(model, entry.answer.models[model].version);
    if (!crop) continue;
    const box = cropBox(crop, width, height, entry.point.x, entry.point.y);
    const key = box.join(",");
    if (!boxes.has(key)) boxes.set(key, { box, models: [] });
    boxes.get(key).models.push(model);
  }
  for (const { box: [left, top, right, bottom], models } of boxes.values()) {
    const outline = document.createElement("div");
    outline.className = "window";
    outline.dataset.models = models.join(",");
    Object.assign(outline.dataset, { left, top, right, bottom });
    outline.style.setProperty("--color", modelColor(models[0]));
    outline.style.left = `${100 * left / width}%`;
    outline.style.top = `${100 * top / height}%`;
    outline.style.width = `${100 * (right - left) / width}%`;
    outline.style.height = `${100 * (bottom - top) / height}%`;
    layer.append(outline);
    // The legend names them: labels on the image would hide the small windows they name.
    const item = Object.assign(document.createElement("span"), { className: "window-key" });
    item.style.setProperty("--color", modelColor(models[0]));
    item.textContent = `${models.join(", ")} ${px(right - left)}×${px(bottom - top)} px`;
    legend.append(item);
  }
  if (legend.childElementCount) {
    legend.prepend("The window each model sees: ");
    legend.hidden = false;
  }
}

// ---- showing ----
// One card per model; in "both", the server's and this browser's cards of a model side by side, with
// whether they agree (the same top label, and every score of the server's top-k within the tolerance).
function render(entry) {
  const results = $("results");
  results.dataset.where = entry.where;
  if (entry.where !== "both") {
    results.replaceChildren(...answerCards(entry.answer, entry.where, entry.elapsedMs));
  } else {
    results.replaceChildren(...pairs(entry));
  }
  $("meta").textContent = metaLine(entry);
}

function answerCards(answer, where, elapsedMs) {
  const results = Object.entries(answer.predictions[0].results).sort(([a], [b]) => byModel(a, b));
  const cards = results.map(([model, labels]) => {
    const card = modelCard(model, answer, where, elapsedMs);
    card.append(...labels.map(scoreRow));
    offerFeedback(card, model, labels, answer);  // server answers only: feedback names a request_id
    return card;
  });
  for (const [model, message] of Object.entries(answer.errors || {})) {
    const card = modelCard(model, answer, where, elapsedMs);
    card.dataset.failed = "true";
    card.append(Object.assign(document.createElement("p"), { className: "failed", textContent: message }));
    cards.push(card);
  }
  return cards;
}

const SIDES = { server: "server", browser: "this browser" };

function pairs(entry) {
  const rows = [];
  const cards = {};
  for (const where of ["server", "browser"]) {
    const run = entry[where];
    if (run.error) {
      const message = run.error instanceof ApiError ? String(run.error) : run.error?.message ?? String(run.error);
      const failure = Object.assign(document.createElement("p"), { className: "side-failed",
        textContent: `On ${SIDES[where]}: ${message}` });
      failure.dataset.where = where;
      rows.push(failure);
    }
    cards[where] = new Map(run.answer ? answerCards(run.answer, where, run.ms).map((card) => [card.dataset.model, card]) : []);
  }
  const models = [...new Set([...cards.server.keys(), ...cards.browser.keys()])].sort(byModel);
  for (const model of models) {
    const pair = Object.assign(document.createElement("div"), { className: "pair" });
    pair.dataset.model = model;
    for (const where of ["server", "browser"]) {
      pair.append(cards[where].get(model) ?? Object.assign(document.createElement("div"), { className: "card model missing" }));
    }
    const compared = ["server", "browser"].every((where) => entry[where].answer?.predictions[0].results[model]);
    if (compared) {
      const reasons = entry.disagree?.[model];
      const tolerance = PinpointBrowser.tolerance(entry.browser.answer.variant);
      const verdict = Object.assign(document.createElement("p"), { className: reasons ? "verdict differs" : "verdict same" });
      verdict.textContent = reasons
        ? `⚠ ${model}: the server and this browser disagree: ${reasons.join("; ")}`
        : `✓ ${model}: the same answer (scores within ${tolerance})`;
      pair.dataset.agree = String(!reasons);
      pair.append(verdict);
    }
    rows.push(pair);
  }
  return rows;
}

function metaLine(entry) {
  const answer = entry.answer;
  const point = answer.predictions[0].point;
  const where = `${answer.image.width}×${answer.image.height} ${answer.image.format} at (${point.x}, ${point.y})`;
  const server = (run) => {
    const timings = Object.entries(run.answer.timings_ms).map(([stage, ms]) => `${stage} ${ms} ms`).join(" · ");
    return `${timings} · round trip ${run.ms.toFixed(0)} ms · request ${run.answer.request_id}`;
  };
  const browser = (run) => `in this browser (${run.answer.variant}): ` +
    `${run.ms.toFixed(0)} ms in all, ${browserMs(run.answer).toFixed(1)} ms cropping and running the models`;
  if (entry.where === "server") return `${where} · ${server({ answer, ms: entry.elapsedMs })}`;
  if (entry.where === "browser") return `${where} · ${browser({ answer, ms: entry.elapsedMs })} · nothing was sent to the server`;
  return [where, entry.server.answer ? `server: ${server(entry.server)}` : "server: failed",
          entry.browser.answer ? browser(entry.browser) : "this browser: failed"].join(" · ");
}

// Crop + inference time of one model in a browser answer, or of all of them.
function browserMs(answer, model = null) {
  return Object.entries(answer.timings_ms)
    .filter(([stage]) => model ? stage === `${model} crop` || stage === `${model} inference` : stage !== "total")
    .reduce((sum, [, ms]) => sum + ms, 0);
}

function modelCard(model, answer, where = "server", elapsedMs = 0) {
  const card = document.createElement("article");
  card.className = "card model";
  card.style.setProperty("--color", modelColor(model));
  const version = answer.models[model]?.version;
  Object.assign(card.dataset, { model, where, version: version ?? "" });
  const title = document.createElement("h3");
  title.append(model, " ", Object.assign(document.createElement("small"), { textContent: `v${version ?? "?"}` }));
  // data-ms: this browser's crop + inference of the model, or the server's round trip of the request.
  const ms = where === "browser" ? browserMs(answer, model) : elapsedMs;
  card.dataset.ms = ms.toFixed(2);
  if (where === "browser" || state.runOn !== "server") {
    title.append(" ", Object.assign(document.createElement("small"), { className: "where",
      textContent: where === "browser" ? `· this browser · ${ms.toFixed(1)} ms (${answer.variant})`
                                       : `· server · ${ms.toFixed(0)} ms round trip` }));
  }
  card.append(title);
  return card;
}

function scoreRow({ label, score }) {
  const row = document.createElement("div");
  row.className = "score";
  Object.assign(row.dataset, { label, score: String(score) });
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

function clearResult() {
  $("results").replaceChildren();
  $("meta").textContent = "";
  $("marker").hidden = true;
  $("windows").replaceChildren();
  state.shown = -1;
  renderHistory();
}

function setStatus(text, about = "") {
  $("status").className = "status";
  $("status").textContent = text;
  $("status").dataset.about = about;
}

// An error replaces the result on screen: no marker, meta line or labels of an earlier answer stay.
function showError(text) {
  $("status").className = "status error";
  $("status").textContent = text;
  $("status").dataset.about = "error";
  clearResult();
}

// ---- feedback: the tester says which label was right (POST /v1/feedback) ----
// Under each model's answer, one row: its labels as buttons, "none of these", and "another…" (a label of
// the model outside the answer, typed or chosen). Choosing again replaces the choice; the choice stays
// with the answer in the history.
function offerFeedback(card, model, labels, answer) {
  if (!state.config?.feedback?.enabled) return;
  if (!answer.request_id) {  // an answer of this browser: the server has no record of it to attach a choice to
    card.append(Object.assign(document.createElement("p"), { className: "feedback-elsewhere muted",
      textContent: "Saying which label is right works on the server's answers: choose “server” or “both” above." }));
    return;
  }
  answer.feedback ??= {};
  const version = answer.models[model]?.version;
  const box = Object.assign(document.createElement("div"), { className: "feedback" });
  box.dataset.model = model;
  const prompt = Object.assign(document.createElement("p"), { className: "feedback-prompt", textContent: "Which is right? " });
  prompt.append(feedbackNote());
  const choices = Object.assign(document.createElement("div"), { className: "feedback-choices" });
  choices.setAttribute("role", "group");
  choices.setAttribute("aria-label", `The right label for ${model}`);
  for (const { label } of labels) choices.append(feedbackButton(label, label, card, model, answer));
  choices.append(feedbackButton("none of these", "none", card, model, answer));
  const form = otherLabelForm(model, version, card, answer);
  const toggle = Object.assign(document.createElement("button"), { type: "button", className: "other-toggle", textContent: "another…" });
  toggle.setAttribute("aria-expanded", "false");
  toggle.addEventListener("click", () => {
    form.hidden = !form.hidden;
    toggle.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) form.querySelector("input").focus();
  });
  choices.append(toggle);
  box.append(prompt, choices, form);
  card.append(box);
  markChoice(card, answer.feedback[model]);
}

function feedbackButton(text, label, card, model, answer) {
  const button = Object.assign(document.createElement("button"), { type: "button", className: "choice", textContent: text });
  button.dataset.label = label;
  button.setAttribute("aria-pressed", "false");
  button.addEventListener("click", () => sendFeedback(card, model, answer, label));
  return button;
}

function otherLabelForm(model, version, card, answer) {
  const form = Object.assign(document.createElement("form"), { className: "feedback-other", hidden: true });
  const known = state.config?.models?.[model]?.labels?.[String(version)] || [];
  const list = Object.assign(document.createElement("datalist"), { id: `labels-${model}-${version}-${Math.random().toString(36).slice(2)}` });
  list.append(...known.map((label) => Object.assign(document.createElement("option"), { value: label })));
  const input = Object.assign(document.createElement("input"), { type: "text", placeholder: `a label of ${model}…`, autocomplete: "off" });
  input.setAttribute("list", list.id);
  input.setAttribute("aria-label", `Another label of ${model}`);
  const submit = Object.assign(document.createElement("button"), { type: "submit", className: "secondary", textContent: "Save" });
  form.append(input, list, submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const label = input.value.trim();
    if (!label) return;
    if (known.length && !known.includes(label)) {
      showFeedbackNote(card, `${model} has no label “${label}”: choose one of its ${known.length} labels.`, "error");
      return;
    }
    sendFeedback(card, model, answer, label);
  });
  return form;
}

function feedbackNote() {
  const note = Object.assign(document.createElement("span"), { className: "feedback-note" });
  note.setAttribute("aria-live", "polite");
  return note;
}

function showFeedbackNote(card, text, kind = "") {  // kind: "", "saved" or "error"
  const note = card.querySelector(".feedback-note");
  note.textContent = text;
  note.className = `feedback-note ${kind}`.trim();
}

function markChoice(card, label) {
  for (const button of card.querySelectorAll(".feedback .choice")) {
    button.setAttribute("aria-pressed", String(button.dataset.label === label));
  }
  if (label) showFeedbackNote(card, `Saved: ${label === "none" ? "none of these" : label}.`, "saved");
}

async function sendFeedback(card, model, answer, label) {
  showFeedbackNote(card, "Saving…");
  try {
    await api("/v1/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ request_id: answer.request_id, point: 0, model, label }) });
  } catch (error) {
    const why = error.code === "not_found" ? " (this answer was not kept for feedback: the server logs a sample)" : "";
    showFeedbackNote(card, `Not saved: ${error.message}${why}`, "error");
    return;
  }
  answer.feedback[model] = label;
  markChoice(card, label);
  const form = card.querySelector(".feedback-other");
  form.querySelector("input").value = "";
  form.hidden = true;
  card.querySelector(".feedback .other-toggle").setAttribute("aria-expanded", "false");
}

setRunOn(remembered(RUN_ON_STORAGE, "server"));
start();
