// Pinpoint's report page: reads GET /v1/report (and its plot) as any client does, with the API key of
// this tab when the server wants one, and shows hit rates, the plot, per-label tables and confusions.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "pinpoint.apiKey";  // the test page's: a key given there works here

function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

async function get(path) {
  const headers = apiKey() ? { "X-API-Key": apiKey() } : {};
  let response;
  try {
    response = await fetch(path, { headers });
  } catch (error) {
    throw Object.assign(new Error(`the server could not be reached (${error.message})`), { status: 0 });
  }
  if (response.ok) return response;
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = { error: `the server answered ${response.status}` };
  }
  throw Object.assign(new Error(body.error), { status: response.status, code: body.code });
}

function query(extra = {}) {
  const params = new URLSearchParams();
  if ($("model").value) params.set("model", $("model").value);
  if ($("since").value) params.set("since", $("since").value);
  for (const [name, value] of Object.entries(extra)) params.set(name, value);
  const text = params.toString();
  return text ? `?${text}` : "";
}

const pct = (value) => (value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}%`);
const element = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

let asked = 0;
async function load() {
  const mine = ++asked;
  setStatus("Loading the report…");
  let report;
  try {
    report = await (await get(`/v1/report${query()}`)).json();
  } catch (error) {
    if (mine !== asked) return;
    if (error.status === 401) $("key-form").hidden = false;
    clear();
    setStatus(`The report could not be read: ${error.message}${error.code ? ` [${error.status} ${error.code}]` : ""}`, true);
    return;
  }
  if (mine !== asked) return;
  $("key-form").hidden = true;
  offerModels(report);
  $("generated").textContent = `as of ${report.generated_at.replace("T", " ").replace("Z", " UTC")}`;
  renderSummary(report);
  renderDetails(report);
  const answered = report.totals.feedback > 0;
  if (!report.versions.length) {
    setStatus("");
    $("status").append("Nothing is logged yet: classify a point on ", element("a", { href: "/", textContent: "the test page" }),
                       ", then mark the right label under each model's answer.");
  } else {
    setStatus(`${report.totals.logged.toLocaleString()} answers logged, ${report.totals.feedback.toLocaleString()} with feedback.` +
              (answered ? "" : " No one has said which label was right yet: mark labels on the test page."));
  }
  await loadPlot(mine, answered);
}

function clear() {
  $("summary").replaceChildren();
  $("details").replaceChildren();
  $("plot-card").hidden = true;
}

// The model list keeps every model seen unfiltered, so choosing one never hides the others.
const knownModels = new Set();
function offerModels(report) {
  for (const entry of report.versions) knownModels.add(entry.model);
  const chosen = $("model").value;
  $("model").replaceChildren(element("option", { value: "", textContent: "every model" }),
    ...[...knownModels].sort().map((name) => element("option", { value: name, textContent: name })));
  $("model").value = chosen;
}

function interval(result) {
  // A bar for the rate, with the 95% interval drawn over it.
  const bar = element("span", { className: "rate-bar" });
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "1");
  bar.setAttribute("aria-valuenow", String(result.rate ?? 0));
  if (result.rate !== null) {
    bar.append(element("span", { className: "fill" }), element("span", { className: "whisker" }));
    bar.style.setProperty("--rate", result.rate);
    bar.style.setProperty("--low", result.low);
    bar.style.setProperty("--high", result.high);
  }
  return bar;
}

function renderSummary(report) {
  $("summary").replaceChildren(...report.versions.map((entry) => {
    const card = element("article", { className: "card version" });
    card.dataset.model = entry.model;
    card.dataset.version = entry.version;
    card.append(element("h2", {}, `${entry.model} `, element("small", { textContent: `v${entry.version}` })));
    for (const [name, result] of [["top-1", entry.top1], ["top-5", entry.top5]]) {
      const row = element("div", { className: "rate" });
      row.dataset.rate = name;
      row.append(element("span", { className: "name", textContent: name }),
                 element("b", { className: "value", textContent: pct(result.rate) }),
                 interval(result),
                 element("span", { className: "muted range", textContent: result.rate === null ? "" : `${pct(result.low)}–${pct(result.high)}` }));
      card.append(row);
    }
    const share = entry.feedback_share === null ? "" : ` (${pct(entry.feedback_share)})`;
    card.append(element("p", { className: "muted counts",
      textContent: `${entry.feedback.toLocaleString()} feedback of ${entry.logged.toLocaleString()} answers${share} · ` +
                   `none of these: ${entry.none.count.toLocaleString()}${entry.none.share === null ? "" : ` (${pct(entry.none.share)})`}` }));
    return card;
  }));
}

async function loadPlot(mine, answered) {
  if (!answered) {
    $("plot-card").hidden = true;
    return;
  }
  const width = Math.max(320, Math.min(2000, Math.round($("plot-card").parentElement.clientWidth - 30)));
  try {
    const blob = await (await get(`/v1/report/plot.png${query({ width })}`)).blob();
    if (mine !== asked) return;
    const image = $("plot");
    if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    image.src = URL.createObjectURL(blob);
    image.alt = "Top-1 and top-5 hit rate over time, one line per model version";
    $("plot-card").hidden = false;
  } catch (error) {
    $("plot-card").hidden = true;
    setStatus(`The plot could not be drawn: ${error.message}`, true);
  }
}

function renderDetails(report) {
  $("details").replaceChildren(...report.versions.filter((entry) => entry.feedback > 0).map((entry) => {
    const section = element("section", { className: "card details" });
    section.dataset.model = entry.model;
    section.dataset.version = entry.version;
    section.append(element("h2", { textContent: `${entry.model} v${entry.version}: per label` }));
    section.append(labelTable(entry.labels));
    section.append(element("h3", { textContent: "Most confused (shown first → the user's choice)" }));
    section.append(confusions(entry.confusions));
    return section;
  }));
}

function labelTable(labels) {
  const head = element("tr", {}, ...["label", "chosen", "shown first", "precision", "recall", "top-5"]
    .map((name, index) => element("th", { scope: "col", textContent: name, className: index ? "num" : "" })));
  const rows = labels.map((row) => {
    const cells = [element("th", { scope: "row", textContent: row.label }),
                   element("td", { className: "num", textContent: row.chosen.toLocaleString() }),
                   element("td", { className: "num", textContent: row.predicted.toLocaleString() })];
    for (const value of [row.precision, row.recall, row.top5]) {
      const bar = element("span", { className: "mini" }, element("span"));
      bar.firstChild.style.width = `${100 * (value ?? 0)}%`;
      cells.push(element("td", { className: "num" }, bar, element("span", { textContent: pct(value) })));
    }
    return element("tr", {}, ...cells);
  });
  return element("div", { className: "scroll" },
    element("table", { className: "labels" }, element("thead", {}, head), element("tbody", {}, ...rows)));
}

function confusions(pairs) {
  if (!pairs.length) return element("p", { className: "muted", textContent: "None: users never chose another of its labels over the one shown first." });
  const most = Math.max(...pairs.map((pair) => pair.count));
  return element("ol", { className: "confusions" }, ...pairs.map((pair) => {
    const bar = element("span", { className: "mini wide" }, element("span"));
    bar.firstChild.style.width = `${(100 * pair.count) / most}%`;
    return element("li", {}, element("span", { className: "pair", textContent: `${pair.predicted} → ${pair.chosen}` }),
                   bar, element("span", { className: "num", textContent: String(pair.count) }));
  }));
}

function setStatus(text, bad = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", bad);
}

$("model").addEventListener("change", load);
$("since").addEventListener("change", load);
$("refresh").addEventListener("click", load);
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("api-key").value = "";
  load();
});
let resized = null;
window.addEventListener("resize", () => {
  clearTimeout(resized);
  resized = setTimeout(() => { if (!$("plot-card").hidden) loadPlot(asked, true); }, 400);
});

load();
