// The test page's in-browser inference (issue 15): the same models as the server, run by onnxruntime-web
// on pixels decoded here, so the image never leaves the machine. A classic script, loaded by app.js only
// when "this browser" or "both" is first chosen; it loads the preprocessing port
// (static/inbrowser/preprocess.js, global PinpointPreprocess) and onnxruntime-web (global ort) itself.
//
// PinpointBrowser.classify answers in the shape of the server's POST /v1/classify answer (image,
// predictions[0].results, models, errors, timings_ms), with request_id null, so the page shows it the
// same way; it also carries every label's score (scores) for comparing with the server's answer.
"use strict";

const PinpointBrowser = (() => {
  const VENDOR = "/static/vendor/onnxruntime-web/";
  const PREPROCESS = "/static/inbrowser/preprocess.js";

  let loading = null;          // the runtime and the preprocessing port, loaded once
  const described = new Map(); // model.json URL -> promise of its description
  const sessions = new Map();  // "model@version:variant" -> promise of {session, spec, download}
  const downloads = [];        // one record per version and variant: what its weights cost to fetch
  const listeners = [];

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = Object.assign(document.createElement("script"), { src, async: true });
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => {
        script.remove();
        reject(new Error(`${src} could not be loaded`));
      });
      document.head.append(script);
    });
  }

  // The preprocessing port (index.html loads it; loaded here if it did not), once.
  let porting = null;
  function preprocessing() {
    porting ??= (globalThis.PinpointPreprocess ? Promise.resolve() : loadScript(PREPROCESS)).catch((error) => {
      porting = null;
      throw new Error(`the in-browser preprocessing could not be loaded (${error.message})`);
    });
    return porting;
  }

  // Loads onnxruntime-web and the preprocessing port (once; again after a failure).
  function ready() {
    loading ??= Promise.all([
      preprocessing(),
      globalThis.ort ? null : loadScript(`${VENDOR}ort.wasm.min.js`),
    ]).then(() => {
      ort.env.wasm.wasmPaths = VENDOR;
      // Threads need a cross-origin isolated page (the server sends COOP/COEP); without it, one thread.
      ort.env.wasm.numThreads = globalThis.crossOriginIsolated
        ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
    }).catch((error) => {
      loading = null;
      throw new Error(`the in-browser runtime could not be loaded (${error.message})`);
    });
    return loading;
  }

  // GET .../web/model.json through the page's api() (it sends the API key and waits out 503s).
  function describe(url, api) {
    if (!described.has(url)) {
      const promise = api(url, {}, 0).catch((error) => {
        described.delete(url);
        throw error;
      });
      described.set(url, promise);
    }
    return described.get(url);
  }

  async function sha256(buffer) {
    if (!globalThis.crypto?.subtle) return null;  // not a secure context: not checked
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
    return [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  // One InferenceSession per model version and variant, created once and kept.
  function session(spec, variant, headers) {
    const key = `${spec.model}@${spec.version}:${variant}`;
    if (!sessions.has(key)) {
      const promise = createSession(spec, variant, headers).catch((error) => {
        sessions.delete(key);  // tried again on the next click
        throw error;
      });
      sessions.set(key, promise);
    }
    return sessions.get(key);
  }

  // Model files are content-addressed (their name changes with their bytes), so a copy kept by URL
  // never goes stale. The Cache Storage API keeps them across visits whatever their size; the HTTP
  // cache alone dropped the topic model's 9.6 MB file between visits. Without it (a page served
  // over plain HTTP from another host is not a secure context) every visit downloads again.
  const MODEL_CACHE = "pinpoint-web-models";

  async function modelFile(url, headers) {
    const store = globalThis.caches ? await caches.open(MODEL_CACHE).catch(() => null) : null;
    const kept = store ? await store.match(url).catch(() => undefined) : undefined;
    if (kept) return kept;
    const response = await fetch(url, { headers });
    if (response.ok && store) await store.put(url, response.clone()).catch(() => {});
    return response;
  }

  async function createSession(spec, variant, headers) {
    const file = spec.files?.[variant];
    if (!file) throw new Error(`the server offers no ${variant} copy of ${spec.model} v${spec.version}`);
    const started = performance.now();
    let response;
    try {
      response = await modelFile(file.url, headers);
    } catch (error) {
      throw new Error(`${spec.model} v${spec.version} could not be downloaded (${error.message})`);
    }
    if (!response.ok) throw new Error(`${spec.model} v${spec.version} could not be downloaded (HTTP ${response.status})`);
    const bytes = await response.arrayBuffer();
    const downloadMs = performance.now() - started;
    const digest = await sha256(bytes);
    if (digest && file.sha256 && digest !== file.sha256) {
      throw new Error(`the download of ${spec.model} v${spec.version} (${variant}) does not match its sha256`);
    }
    const created = performance.now();
    let inference;
    try {
      inference = await ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
    } catch (error) {
      throw new Error(`onnxruntime-web cannot run ${spec.model} v${spec.version}: ${error.message ?? error}`);
    }
    const download = { model: spec.model, version: spec.version, variant, bytes: bytes.byteLength,
                       ms: downloadMs, createMs: performance.now() - created };
    downloads.push(download);
    for (const listener of listeners) listener(download);
    return { session: inference, spec, download };
  }

  // An output tensor's row 0 as plain numbers (float16 data may come as raw Uint16 halves).
  function firstRow(tensor, count) {
    let data = tensor.data;
    if (tensor.type === "float16" && data instanceof Uint16Array) data = Float32Array.from(data, halfToFloat);
    return Array.from(data.subarray(0, count), Number);
  }

  function halfToFloat(half) {
    const sign = half & 0x8000 ? -1 : 1, exponent = (half >> 10) & 0x1f, fraction = half & 0x3ff;
    if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
  }

  // Runs each model on the window around point; one model's failure is that model's error, as on the server.
  // runs: [{name, version, web, why}] (web: the model.json URL, absent when the version has no browser
  // copy; why: the reason then, if there is a better one than that).
  async function classify({ pixels, format, point, runs, topK, variant, api, headers }) {
    await ready();
    const answer = {
      image: { width: pixels.width, height: pixels.height, format },
      predictions: [{ point: { x: point.x, y: point.y }, results: {} }],
      models: {}, errors: {}, timings_ms: {}, scores: {}, request_id: null, variant,
    };
    const started = performance.now();
    for (const { name, version, web, why } of runs) {
      answer.models[name] = { version };
      try {
        if (!web) throw new Error(why || `${name} v${version} has no browser copy on this server: run it on the server`);
        const spec = await describe(web, api);
        const { session: inference } = await session(spec, variant, headers);
        const cutting = performance.now();
        const cropped = PinpointPreprocess.crop(pixels.rgb, pixels.width, pixels.height, spec.crop, point.x, point.y);
        const fed = PinpointPreprocess.feed(spec.input, cropped);
        const running = performance.now();
        const outputs = await inference.run({ [spec.input.name]: new ort.Tensor(fed.type, fed.data, fed.dims) });
        const done = performance.now();
        const scores = PinpointPreprocess.scores(firstRow(outputs[spec.output], spec.labels.length), spec.softmax);
        answer.predictions[0].results[name] = PinpointPreprocess.topK(spec.labels, scores, topK);
        answer.scores[name] = Object.fromEntries(spec.labels.map((label, index) => [label, scores[index]]));
        answer.timings_ms[`${name} crop`] = round3(running - cutting);
        answer.timings_ms[`${name} inference`] = round3(done - running);
      } catch (error) {
        answer.errors[name] = String(error?.message ?? error);
      }
    }
    answer.timings_ms.total = round3(performance.now() - started);
    return answer;
  }

  const round3 = (ms) => Math.round(ms * 1000) / 1000;

  // Where the browser's answer differs from the server's, model by model: the top label, or a score of
  // the server's top-k by more than tolerance. {model: [reasons]}; models answered by one side only are
  // not compared.
  function disagreements(server, browser, tolerance) {
    const found = {};
    const served = server.predictions[0].results;
    for (const [model, labels] of Object.entries(browser.predictions[0].results)) {
      const theirs = served[model];
      if (!theirs) continue;
      const reasons = [];
      if (theirs[0]?.label !== labels[0]?.label) {
        reasons.push(`top-1 differs: server ${theirs[0]?.label}, browser ${labels[0]?.label}`);
      }
      for (const { label, score } of theirs) {
        const mine = browser.scores[model]?.[label];
        if (mine === undefined || Math.abs(mine - score) > tolerance) {
          reasons.push(`${label}: server ${score.toFixed(3)}, browser ${mine === undefined ? "none" : mine.toFixed(3)}`);
        }
      }
      if (reasons.length) found[model] = reasons;
    }
    return found;
  }

  return {
    ready, classify, disagreements, downloads,
    onDownload: (listener) => listeners.push(listener),
    // Decoding needs no runtime: an image can be chosen while it loads. With limits (GET /v1/config),
    // a file the server would refuse is refused here first, before a pixel is decoded.
    pixelsOf: async (blob, limits = null) => {
      await preprocessing();
      return PinpointPreprocess.pixelsOf(blob, limits);
    },
    tolerance: (variant) => (variant === "float16" ? 0.05 : 0.02),
  };
})();
