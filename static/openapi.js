// Pinpoint's API reference page: reads /openapi.json (the server generates it from its code's own
// declarations) and shows each operation as a person reads a reference: its parameters, its request body's
// fields as a nested table, its answers and its error codes; a table of contents, a link per operation
// (#operationId) and a filter. Plain DOM: no framework, nothing loaded from elsewhere.
"use strict";

const ERROR_REF = "#/components/schemas/Error";
const phrases = new Map();  // an error status -> its reason phrase, as the document's responses give it
const MAX_DEPTH = 8;  // deeper than any body the API reads; a guard against a schema that names itself

let doc = null;
const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
const code = (text) => el("code", {}, text);
// A path that may wrap after a "/" (a long TF Serving path in the narrow table of contents), never inside a name.
const pathCode = (path, attributes = {}) => el("code", attributes, path.split("/").map((part, i) => (i ? ["/", el("wbr"), part] : part)));

// ---- schemas: $ref resolved, allOf merged, the few shapes the API's schemas take named in words ----

function resolve(schema) {
  let found = schema || {};
  const seen = new Set();
  while (found.$ref && !seen.has(found.$ref)) {
    seen.add(found.$ref);
    found = found.$ref.replace(/^#\//, "").split("/")
      .reduce((node, part) => (node ? node[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined), doc) || {};
  }
  return found;
}

// A oneOf alternative that only says which fields must be there ("x and y, or points").
const isRule = (alternative) => Object.keys(alternative).every((key) => key === "required" || key === "not");

// allOf as one schema: the parts' properties (a later part narrows an earlier one's: an error's `code`
// to its status's codes), their required fields, and their rules (oneOf of required fields).
function merged(schema) {
  const found = resolve(schema);
  const rules = found.oneOf && found.oneOf.every(isRule) ? [found.oneOf] : [];
  if (!found.allOf) return rules.length ? { ...found, rules } : found;
  const out = { ...found, properties: { ...(found.properties || {}) }, required: [...(found.required || [])], rules };
  delete out.allOf;
  for (const part of found.allOf.map(merged)) {
    for (const [name, property] of Object.entries(part.properties || {})) {
      out.properties[name] = name in out.properties ? { ...resolve(out.properties[name]), ...resolve(property) } : property;
    }
    out.required.push(...(part.required || []));
    out.rules.push(...(part.rules || []));
    for (const [key, value] of Object.entries(part)) {
      if (!(key in out) && !["properties", "required", "rules", "oneOf"].includes(key)) out[key] = value;
    }
  }
  return out;
}

const isError = (schema) => Boolean(schema && schema.allOf && schema.allOf.some((part) => part.$ref === ERROR_REF));
const choices = (schema) => (schema.oneOf || schema.anyOf || []).filter((alternative) => !isRule(alternative));
const hasFields = (schema) => Boolean(schema.properties && Object.keys(schema.properties).length);
const mapValues = (schema) => (schema.additionalProperties && typeof schema.additionalProperties === "object"
  ? schema.additionalProperties : null);

function typeOf(schema) {
  const found = merged(schema);
  const alternatives = choices(found);
  let label;
  if (alternatives.length && !found.type) {
    label = alternatives.map(typeOf).join(" or ");
    if (alternatives.length > 1) label = `(${label})`;
  } else if (found.type === "array") {
    label = `array of ${found.items ? typeOf(found.items) : "anything"}`;
  } else if (found.type === "object" && mapValues(found) && !hasFields(found)) {
    label = `map of name → ${typeOf(mapValues(found))}`;
  } else if (found.format === "binary") {
    label = "binary";
  } else {
    label = found.type || "any JSON";
  }
  return found.nullable ? `${label} or null` : label;
}

// "1 to 20", "at least 1 character", "exactly 2 items"; `unit` is singular.
function between(low, high, unit) {
  const of = (n) => (unit ? ` ${unit}${n === 1 ? "" : "s"}` : "");
  if (low !== undefined && high !== undefined) return low === high ? `exactly ${low}${of(low)}` : `${low} to ${high}${of(high)}`;
  if (low !== undefined) return `at least ${low}${of(low)}`;
  return `at most ${high}${of(high)}`;
}

// Enums, bounds, patterns and defaults: what a value must be beyond its type.
function limits(schema) {
  const found = merged(schema);
  const out = [];
  if (found.enum) out.push(el("span", {}, "one of ", found.enum.map((value, i) => [i ? ", " : "", code(JSON.stringify(value))])));
  if (found.minimum !== undefined || found.maximum !== undefined) out.push(between(found.minimum, found.maximum, ""));
  if (found.minLength !== undefined || found.maxLength !== undefined) {
    out.push(between(found.minLength, found.maxLength, "character"));
  }
  if (found.minItems !== undefined || found.maxItems !== undefined) out.push(between(found.minItems, found.maxItems, "item"));
  if (found.pattern) out.push(el("span", {}, "matches ", code(found.pattern)));
  if (found.format && found.format !== "binary") out.push(`format ${found.format}`);
  if (found.default !== undefined) out.push(el("span", {}, "default ", code(JSON.stringify(found.default))));
  if (found.additionalProperties === false) out.push("no other fields");
  return out;
}

const joined = (items, separator = "; ") => items.map((item, i) => [i ? separator : "", item]);

// ---- a schema as a table of fields, nested: name, type, limits, description ----

function rows(schema, depth, out) {
  const found = merged(schema);
  if (depth > MAX_DEPTH) return out;
  const required = new Set(found.required || []);
  for (const [name, property] of Object.entries(found.properties || {})) {
    row(name, property, required.has(name), depth, out);
  }
  const values = mapValues(found);
  if (values && hasFields(found)) row("any other name", values, false, depth, out, true);
  return out;
}

function row(name, schema, required, depth, out, placeholder = false) {
  const found = merged(schema);
  out.push({ name, schema: found, required, depth, placeholder });
  inner(found, depth + 1, out);
}

// What is inside a field: an object's fields, an array's items' or a map's values' fields, the options of a oneOf.
function inner(found, depth, out) {
  if (depth > MAX_DEPTH) return;
  if (hasFields(found)) {
    rows(found, depth, out);
    return;
  }
  const items = found.type === "array" && found.items ? merged(found.items) : null;
  if (items) {
    if (hasFields(items) || choices(items).some((c) => hasFields(merged(c)))) inner(items, depth, out);
    return;
  }
  const values = mapValues(found);
  if (values && hasFields(merged(values))) {
    row("{name}", values, false, depth, out, true);
    return;
  }
  const alternatives = choices(found);
  if (alternatives.some((alternative) => hasFields(merged(alternative)))) {
    alternatives.forEach((alternative, i) => row(`option ${i + 1}`, alternative, false, depth, out, true));
  }
}

function ruleText(rule) {
  return el("p", { class: "rule" }, "Give exactly one of: ",
            joined(rule.map((alternative) => joined((alternative.required || []).map(code), " and ")), " · "));
}

// An array's meaning when only its items say it ("examples": each a map of features).
function itemsDescription(found) {
  const items = found.type === "array" && found.items ? merged(found.items) : null;
  return items && items.description ? `each: ${items.description}` : "";
}

function fieldTable(schema) {
  const found = merged(schema);
  const body = el("tbody");
  for (const entry of rows(found, 0, [])) {
    const name = el("td", { class: "name" },
                    entry.placeholder ? el("span", { class: "muted" }, entry.name) : code(entry.name));
    if (entry.required) name.append(" ", el("span", { class: "required", title: "required" }, "required"));
    body.append(el("tr", { "data-field": entry.placeholder ? null : entry.name, "data-depth": entry.depth,
                           style: `--depth: ${entry.depth}` },
                   name, el("td", { class: "type" }, typeOf(entry.schema)),
                   el("td", { class: "limits" }, joined(limits(entry.schema))),
                   el("td", {}, entry.schema.description || itemsDescription(entry.schema))));
  }
  return el("div", { class: "scroll" }, el("table", { class: "fields of-body" },
    el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "values"),
                       el("th", {}, "what it is"))), body));
}

// A schema at the top of a body or an answer.
function schemaBlock(schema) {
  const found = merged(schema);
  const block = el("div", { class: "schema" });
  const about = [typeOf(found), ...limits(found)];
  const shapes = hasFields(found) ? [] : choices(found).filter((alternative) => hasFields(merged(alternative)));
  if (shapes.length) {
    block.append(el("p", {}, found.description || "", found.description ? " " : "", `One of ${choices(found).length} shapes:`));
  } else if (!hasFields(found)) {
    block.append(el("p", {}, el("span", { class: "type" }, joined(about)), found.description ? ` — ${found.description}` : ""));
  } else if (found.description) {
    block.append(el("p", {}, found.description));
  }
  for (const rule of found.rules || []) block.append(ruleText(rule));
  if (hasFields(found) || (mapValues(found) && hasFields(merged(mapValues(found))))) {
    block.append(fieldTable(hasFields(found) ? found : { properties: { "{name}": mapValues(found) } }));
  } else if (shapes.length) {
    choices(found).forEach((alternative, i) => {
      block.append(el("p", { class: "option" }, `shape ${i + 1}`), schemaBlock(alternative));
    });
  }
  return block;
}

// Media types that share a schema, together (an image body as image/* or application/octet-stream).
function byMedia(content) {
  const groups = new Map();
  for (const [media, entry] of Object.entries(content || {})) {
    const key = JSON.stringify(entry.schema || {});
    if (!groups.has(key)) groups.set(key, { media: [], schema: entry.schema || {} });
    groups.get(key).media.push(media);
  }
  return [...groups.values()];
}

// ---- an operation ----

function errorCodes(schema) {
  if (isError(schema)) return merged(schema).properties.code.enum || [];
  return (schema && schema.oneOf ? schema.oneOf.flatMap(errorCodes) : []);
}
// The answers that are not errors at a status (a 400 "not ready" beside the 400 errors): one schema, or none.
function notErrors(schema) {
  if (isError(schema)) return [];
  if (!schema.oneOf || !schema.oneOf.some(isError)) return [schema];
  const others = schema.oneOf.filter((part) => !isError(part));
  return others.length > 1 ? [{ oneOf: others }] : others;
}

function statusBadge(status) {
  return el("span", { class: `status-code s${String(status)[0]}xx` }, status);
}

function parametersTable(parameters) {
  const body = el("tbody");
  for (const parameter of parameters) {
    const name = el("td", { class: "name" }, code(parameter.name));
    if (parameter.required) name.append(" ", el("span", { class: "required" }, "required"));
    body.append(el("tr", { "data-field": parameter.name, "data-depth": 0 }, name, el("td", { class: "in" }, parameter.in),
                   el("td", { class: "type" }, typeOf(parameter.schema)),
                   el("td", { class: "limits" }, joined(limits(parameter.schema))),
                   el("td", {}, parameter.description || merged(parameter.schema).description || "")));
  }
  return el("div", { class: "scroll" }, el("table", { class: "fields of-parameters" }, el("thead", {}, el("tr", {},
    el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "values"), el("th", {}, "what it is"))), body));
}

function authLine(operation) {
  if (!operation.security) return null;
  const schemes = (doc.components && doc.components.securitySchemes) || {};
  const ways = operation.security.filter((choice) => Object.keys(choice).length)
    .map((choice) => Object.keys(choice)[0]).map((name) => (schemes[name] && schemes[name].description) || name);
  const optional = operation.security.some((choice) => !Object.keys(choice).length);
  return el("p", { class: "auth muted" }, "API key: ", joined(ways, ", or "),
            optional ? " (none while the server has no keys). Rate-limited when a limit is set." : ".");
}

function operationSection(path, method, operation) {
  const id = operation.operationId || `${method}_${path}`;
  const summary = operation.summary.startsWith(`${method.toUpperCase()} ${path}: `)
    ? operation.summary.slice(method.length + path.length + 3) : operation.summary;
  const section = el("section", { class: "operation card", id, "aria-labelledby": `${id}-title` },
    el("h2", { id: `${id}-title` }, el("span", { class: `method ${method}` }, method.toUpperCase()), " ",
       pathCode(path, { class: "path" }), " ", el("a", { class: "anchor", href: `#${id}`, title: "a link to this operation" }, "#")),
    el("p", { class: "summary" }, summary));
  if (operation.description) section.append(el("p", {}, operation.description));
  const auth = authLine(operation);
  if (auth) section.append(auth);

  if (operation.parameters && operation.parameters.length) {
    section.append(el("h3", {}, "Parameters"), parametersTable(operation.parameters));
  }
  if (operation.requestBody) {
    const request = operation.requestBody;
    section.append(el("h3", {}, "Request body ", request.required ? el("small", {}, "required") : null));
    const groups = byMedia(request.content);
    if (groups.length > 1) section.append(el("p", { class: "muted" }, `${groups.length} forms; the Content-Type says which.`));
    for (const group of groups) {
      section.append(el("h4", { class: "media" }, el("small", {}, "Content-Type "), joined(group.media.map(code), " or ")),
                     schemaBlock(group.schema));
    }
  }

  const answers = el("div"), errors = el("tbody");
  for (const [status, response] of Object.entries(operation.responses || {})) {
    const phrase = response.description || "";
    for (const group of byMedia(response.content)) {
      const codes = errorCodes(group.schema);
      if (codes.length) {
        errors.append(el("tr", {}, el("td", {}, statusBadge(status), " ", phrase),
                         el("td", { class: "codes" }, joined(codes.map((name) => el("a", { href: `#error-${name}`, class: "code" }, name)), " "))));
        if (!phrases.has(status)) phrases.set(status, phrase);
      }
      for (const answer of notErrors(group.schema)) {
        answers.append(el("h4", {}, statusBadge(status), " ", phrase, " ", el("small", {}, "· ", joined(group.media.map(code), " or "))),
                       schemaBlock(answer));
      }
    }
    if (!response.content) answers.append(el("h4", {}, statusBadge(status), " ", phrase));
  }
  if (answers.childNodes.length) section.append(el("h3", {}, "Answers"), answers);
  if (errors.childNodes.length) {
    section.append(el("h3", {}, "Errors"), el("table", { class: "fields errors-of" },
      el("thead", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "code"))), errors));
  }
  // What the filter looks in: the method, path, summary, the fields' and parameters' names, the error codes.
  section.dataset.search = [method, path, operation.summary, id, ...section.querySelectorAll("[data-field]"),
    ...section.querySelectorAll(".codes a.code")]
    .map((part) => (typeof part === "string" ? part : part.dataset.field || part.textContent)).join(" ").toLowerCase();
  return section;
}

// ---- the page ----

function group(path) {
  if (path.startsWith("/v2")) return "Open Inference Protocol (KServe v2)";
  if (/^\/v1\/models\/\{/.test(path)) return "TensorFlow Serving";
  if (path.startsWith("/v1")) return "Pinpoint API";
  return "Pages, health and metrics";
}

const GROUPS = ["Pinpoint API", "TensorFlow Serving", "Open Inference Protocol (KServe v2)", "Pages, health and metrics"];

function render() {
  const operations = $("operations"), toc = $("toc");
  const sections = new Map(GROUPS.map((name) => [name, []]));
  const answeredBy = new Map();  // error code -> status -> how many operations
  let total = 0;
  for (const [path, byMethod] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(byMethod)) {
      sections.get(group(path)).push([path, method, operation]);
      total += 1;
      for (const [status, response] of Object.entries(operation.responses || {})) {
        for (const entry of Object.values(response.content || {})) {
          for (const name of errorCodes(entry.schema)) {
            if (!answeredBy.has(name)) answeredBy.set(name, new Map());
            const counts = answeredBy.get(name);
            counts.set(status, (counts.get(status) || 0) + 1);
          }
        }
      }
    }
  }
  for (const [name, entries] of sections) {
    if (!entries.length) continue;
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
    const list = el("ul");
    operations.append(el("h2", { class: "group", id: slug }, name));
    for (const [path, method, operation] of entries) {
      const section = operationSection(path, method, operation);
      operations.append(section);
      list.append(el("li", { "data-for": section.id }, el("a", { href: `#${section.id}` },
        el("span", { class: `method ${method}` }, method.toUpperCase()), " ", pathCode(path))));
    }
    toc.append(el("h2", {}, el("a", { href: `#${slug}` }, name)), list);
  }
  toc.append(el("h2", {}, el("a", { href: "#errors" }, "Errors")));

  const all = (doc.components.schemas.Error.properties.code.enum || []);
  const codes = $("error-codes");
  const rowsByStatus = all.flatMap((name) => [...(answeredBy.get(name) || new Map([["?", 0]])).entries()]
    .map(([status, count]) => ({ name, status, count })));
  rowsByStatus.sort((a, b) => String(a.status).localeCompare(String(b.status)) || a.name.localeCompare(b.name));
  for (const entry of rowsByStatus) {
    codes.append(el("tr", { id: `error-${entry.name}` }, el("td", {}, statusBadge(entry.status), " ", phrases.get(entry.status) || ""),
                    el("td", {}, code(entry.name)),
                    el("td", { class: "muted" }, entry.count === total ? "every operation"
                      : el("a", { href: "#", "data-code": entry.name, title: `list the operations that can answer ${entry.name}` },
                           `${entry.count} operation${entry.count === 1 ? "" : "s"}`))));
  }
  $("errors").hidden = false;
  const about = doc.info.description ? doc.info.description.split(" Errors: ")[0] : "";
  $("info").textContent = `${doc.info.title} ${doc.info.version} · OpenAPI ${doc.openapi} · ${total} operations. ${about}`;
  $("status").textContent = "";
  filter();
  show(true);
}

// The operation (or error code) the address names, marked: :target does not match what the script adds after
// the page loaded, so a link opened from elsewhere would land unmarked, and unscrolled.
function show(scroll) {
  for (const marked of document.querySelectorAll(".target")) marked.classList.remove("target");
  for (const link of document.querySelectorAll("#toc a[aria-current]")) link.removeAttribute("aria-current");
  const target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
  if (!target) return;
  target.classList.add("target");
  const link = document.querySelector(`#toc li[data-for="${target.id}"] a`);
  if (link) link.setAttribute("aria-current", "location");
  if (scroll) target.scrollIntoView();
}
window.addEventListener("hashchange", () => show(false));

// Every word typed must be in an operation's method, path, summary or field names.
function filter() {
  const words = $("filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0, total = 0;
  for (const section of document.querySelectorAll("#operations .operation")) {
    const match = words.every((word) => section.dataset.search.includes(word));
    section.hidden = !match;
    document.querySelector(`#toc li[data-for="${section.id}"]`).hidden = !match;
    shown += match ? 1 : 0;
    total += 1;
  }
  for (const list of document.querySelectorAll("#toc ul")) {
    const empty = !list.querySelector("li:not([hidden])");
    list.hidden = empty;
    list.previousElementSibling.hidden = empty;
  }
  for (const heading of document.querySelectorAll("#operations h2.group")) {
    let any = false;
    for (let next = heading.nextElementSibling; next && next.matches(".operation"); next = next.nextElementSibling) {
      any = any || !next.hidden;
    }
    heading.hidden = !any;
  }
  $("count").textContent = words.length ? `${shown} of ${total} operations` : `${total} operations`;
  $("status").textContent = shown ? "" : `No operation matches “${$("filter").value.trim()}”.`;
}

$("filter").addEventListener("input", filter);
$("error-codes").addEventListener("click", (event) => {  // "3 operations": those three, by the filter
  const link = event.target.closest("a[data-code]");
  if (!link) return;
  event.preventDefault();
  $("filter").value = link.dataset.code;
  filter();
  window.scrollTo(0, 0);
});
document.addEventListener("keydown", (event) => {  // "/" to filter, as on many reference sites
  if (event.key === "/" && document.activeElement !== $("filter")) {
    event.preventDefault();
    $("filter").focus();
  }
});

fetch("/openapi.json").then((response) => {
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  return response.json();
}).then((document_) => {
  doc = document_;
  render();
}).catch((error) => {
  $("status").textContent = `Could not read /openapi.json: ${error.message}`;
  $("status").classList.add("error");
});
