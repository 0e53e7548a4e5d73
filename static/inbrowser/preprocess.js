// Pinpoint's preprocessing in the browser: cut, resize and normalise the region around a point
// EXACTLY as the server does (service/classify/imaging.py crop, service/classify/preprocess.py prepare), so a model run
// in the page (onnxruntime-web) sees the same tensor, byte for byte, as the same model on the server.
//
// The server's pixels come from Pillow, so the resize below is a port of Pillow's C code (the Pillow
// the server runs, 13.0: src/libImaging/Resample.c, Geometry.c, Convert.c, AlphaComposite.c and
// src/_imaging.c's _resize), not a "close enough" canvas drawImage. Every place where the arithmetic
// looks odd (float32 rounding of the box, integer truncation, fixed point, a table lookup for clipping)
// it is because Pillow does exactly that; tests/test_browser_preprocess.py compares the two in Chromium.
//
// A classic script (the page loads it with <script src>): it defines one global, PinpointPreprocess.
"use strict";

(function (global) {
  // ---- the window: service/classify/imaging.py window_size + crop_box ----

  // (left, top, right, bottom) of the window around (x, y), shifted inside the image, not padded.
  // Plain double arithmetic in the same order as the Python, so the floats are the same floats.
  function cropBox(crop, width, height, x, y) {
    let windowWidth, windowHeight;
    if (crop.box) {
      [windowWidth, windowHeight] = crop.box;
    } else {
      const fraction = crop.fraction || 0;
      windowWidth = Math.max(fraction * width, crop.min_px);
      windowHeight = Math.max(fraction * height, crop.min_px);
    }
    windowWidth = Math.min(windowWidth, width);
    windowHeight = Math.min(windowHeight, height);
    if (crop.keep_aspect) {
      const aspect = crop.width / crop.height;
      if (windowWidth / windowHeight > aspect) {
        windowWidth = windowHeight * aspect;
      } else {
        windowHeight = windowWidth / aspect;
      }
    }
    // Centred on the point, then shifted (not padded) to stay inside the image.
    const left = Math.min(Math.max(x - windowWidth / 2, 0), width - windowWidth);
    const top = Math.min(Math.max(y - windowHeight / 2, 0), height - windowHeight);
    return [left, top, left + windowWidth, top + windowHeight];
  }

  // ---- Pillow's resampling filters (Resample.c), evaluated in double as the C does ----
  const f32 = Math.fround;
  // hamming_filter writes `0.54f + 0.46f * cos(x)`: float literals promoted to double.
  const HAMMING_A = f32(0.54);
  const HAMMING_B = f32(0.46);

  function sinc(x) {
    if (x === 0.0) return 1.0;
    x = x * Math.PI;
    return Math.sin(x) / x;
  }

  const FILTERS = {
    box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) },
    bilinear: {
      support: 1.0,
      f: (x) => {
        if (x < 0.0) x = -x;
        return x < 1.0 ? 1.0 - x : 0.0;
      },
    },
    hamming: {
      support: 1.0,
      f: (x) => {
        if (x < 0.0) x = -x;
        if (x === 0.0) return 1.0;
        if (x >= 1.0) return 0.0;
        x = x * Math.PI;
        return Math.sin(x) / x * (HAMMING_A + HAMMING_B * Math.cos(x));
      },
    },
    bicubic: {
      support: 2.0,
      f: (x) => {
        const a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
      },
    },
    lanczos: {
      support: 3.0,
      f: (x) => (-3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0),
    },
  };

  // Resample.c PRECISION_BITS: 8 bits of result, 2 for overflow and sign, in a 32-bit int.
  const PRECISION_BITS = 32 - 8 - 2;
  const ONE = 1 << PRECISION_BITS;
  const HALF = 1 << (PRECISION_BITS - 1);

  // Resample.c clip8(): `_clip8_lookups[640 + (ss >> PRECISION_BITS)]`, a table that is 0 below 0 and
  // 255 above 255. `>>` is an arithmetic shift of a 32-bit int in both languages (floor, not trunc).
  function clip8(ss) {
    const v = ss >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  // Resample.c precompute_coeffs() followed by normalize_coeffs_8bpc(). in0/in1 are C floats (the box
  // is parsed with "(ffff)"), so they arrive here already float32-rounded; `in1 - in0` is a float
  // subtraction (f32) before it is widened to double. `(int)` casts truncate toward zero.
  function coefficients(inSize, in0, in1, outSize, filter) {
    const scale = f32(in1 - in0) / outSize;
    const filterscale = scale < 1.0 ? 1.0 : scale;
    const support = filter.support * filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    const kk = new Int32Array(outSize * ksize);
    const bounds = new Int32Array(outSize * 2);
    const k = new Float64Array(ksize);
    for (let xx = 0; xx < outSize; xx++) {
      const center = in0 + (xx + 0.5) * scale;
      const ss = 1.0 / filterscale;
      let ww = 0.0;
      let xmin = Math.trunc(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      let xmax = Math.trunc(center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      for (let x = 0; x < xmax; x++) {
        const w = filter.f((x + xmin - center + 0.5) * ss);
        k[x] = w;
        ww += w;
      }
      for (let x = 0; x < xmax; x++) {
        const v = ww !== 0.0 ? k[x] / ww : k[x];
        // normalize_coeffs_8bpc: round half away from zero to 22-bit fixed point.
        kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    return { ksize, kk, bounds };
  }

  // ImagingResampleHorizontal_8bpc for 3 bands: rows offset..offset+outHeight of src into an 8-bit image.
  function horizontal(src, srcWidth, offset, outWidth, outHeight, c) {
    const out = new Uint8Array(outWidth * outHeight * 3);
    const { ksize, kk, bounds } = c;
    for (let yy = 0; yy < outHeight; yy++) {
      const row = (yy + offset) * srcWidth * 3;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        const kb = xx * ksize;
        let ss0 = HALF, ss1 = HALF, ss2 = HALF;
        for (let x = 0; x < xmax; x++) {
          const p = row + (x + xmin) * 3;
          const w = kk[kb + x];
          ss0 += src[p] * w;
          ss1 += src[p + 1] * w;
          ss2 += src[p + 2] * w;
        }
        const o = (yy * outWidth + xx) * 3;
        out[o] = clip8(ss0);
        out[o + 1] = clip8(ss1);
        out[o + 2] = clip8(ss2);
      }
    }
    return out;
  }

  // ImagingResampleVertical_8bpc for 3 bands: columns offset..offset+outWidth of src (srcWidth wide).
  function vertical(src, srcWidth, offset, outWidth, outHeight, c) {
    const out = new Uint8Array(outWidth * outHeight * 3);
    const { ksize, kk, bounds } = c;
    for (let yy = 0; yy < outHeight; yy++) {
      const ymin = bounds[yy * 2];
      const ymax = bounds[yy * 2 + 1];
      const kb = yy * ksize;
      for (let xx = 0; xx < outWidth; xx++) {
        let ss0 = HALF, ss1 = HALF, ss2 = HALF;
        for (let y = 0; y < ymax; y++) {
          const p = ((y + ymin) * srcWidth + xx + offset) * 3;
          const w = kk[kb + y];
          ss0 += src[p] * w;
          ss1 += src[p + 1] * w;
          ss2 += src[p + 2] * w;
        }
        const o = (yy * outWidth + xx) * 3;
        out[o] = clip8(ss0);
        out[o + 1] = clip8(ss1);
        out[o + 2] = clip8(ss2);
      }
    }
    return out;
  }

  // ImagingResampleInner (Pillow 13): which passes run is Pillow's test (note it compares box[2]
  // with the OUTPUT width); which runs first is Pillow 13's: vertical first when the height shrinks by
  // more than twice as many pixels as the width does (integer arithmetic), else horizontal first. The
  // order matters for exactness, because the first pass is rounded to 8 bits before the second.
  // Horizontal first works only on the source rows the vertical coefficients use (ybox_first ..
  // ybox_last), with the vertical bounds shifted to match; vertical first runs over every column.
  function resampleInner(rgb, srcWidth, srcHeight, box, outWidth, outHeight, filter) {
    const needHorizontal = outWidth !== srcWidth || box[0] !== 0 || box[2] !== outWidth;
    const needVertical = outHeight !== srcHeight || box[1] !== 0 || box[3] !== outHeight;
    const horizontalFirst = !((srcHeight - outHeight) > 0 &&
                              (srcHeight - outHeight) > (srcWidth - outWidth) * 2);
    let vert = null, horiz = null, yboxFirst = 0, yboxLast = 0;
    if ((needHorizontal && horizontalFirst) || needVertical) {
      vert = coefficients(srcHeight, box[1], box[3], outHeight, filter);
    }
    if (needHorizontal) {
      if (horizontalFirst) {
        yboxFirst = vert.bounds[0];
        yboxLast = vert.bounds[outHeight * 2 - 2] + vert.bounds[outHeight * 2 - 1];
        for (let i = 0; i < outHeight; i++) vert.bounds[i * 2] -= yboxFirst;
      }
      horiz = coefficients(srcWidth, box[0], box[2], outWidth, filter);
    }
    let image = rgb, width = srcWidth, passes = 0;
    if (horizontalFirst) {
      if (needHorizontal) {
        image = horizontal(image, width, yboxFirst, outWidth, yboxLast - yboxFirst, horiz);
        width = outWidth;
        passes++;
      }
      if (needVertical) {
        image = vertical(image, width, 0, width, outHeight, vert);
        passes++;
      }
    } else {
      if (needVertical) {
        image = vertical(image, width, 0, width, outHeight, vert);
        passes++;
      }
      if (needHorizontal) {
        image = horizontal(image, width, 0, outWidth, outHeight, horiz);
        passes++;
      }
    }
    return passes ? image : Uint8Array.from(image);  // neither pass: ImagingCopy
  }

  // _imaging.c _resize with NEAREST: ImagingTransform(AFFINE) with a scale-only matrix, i.e.
  // Geometry.c ImagingScaleAffine: source positions accumulated by repeated double addition from the
  // pixel centre, COORD() truncation; pixels that map outside the source stay 0 (fill).
  function nearest(rgb, srcWidth, srcHeight, box, outWidth, outHeight) {
    const a0 = f32(box[2] - box[0]) / outWidth;
    const a4 = f32(box[3] - box[1]) / outHeight;
    const coord = (v) => (v < 0.0 ? -1 : Math.trunc(v));
    const out = new Uint8Array(outWidth * outHeight * 3);
    const xin = new Int32Array(outWidth);
    let xmin = outWidth, xmax = 0;
    let xo = box[0] + a0 * 0.5;
    for (let x = 0; x < outWidth; x++) {
      const xi = coord(xo);
      if (xi >= 0 && xi < srcWidth) {
        xmax = x + 1;
        if (x < xmin) xmin = x;
        xin[x] = xi;
      }
      xo += a0;
    }
    let yo = box[1] + a4 * 0.5;
    for (let y = 0; y < outHeight; y++) {
      const yi = coord(yo);
      if (yi >= 0 && yi < srcHeight) {
        for (let x = xmin; x < xmax; x++) {
          const p = (yi * srcWidth + xin[x]) * 3;
          const o = (y * outWidth + x) * 3;
          out[o] = rgb[p];
          out[o + 1] = rgb[p + 1];
          out[o + 2] = rgb[p + 2];
        }
      }
      yo += a4;
    }
    return out;
  }

  // ImagingCrop of an integer box (what _resize does when the box is whole pixels of the output size).
  function cropPixels(rgb, srcWidth, left, top, width, height) {
    const out = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      const start = ((top + y) * srcWidth + left) * 3;
      out.set(rgb.subarray(start, start + width * 3), y * width * 3);
    }
    return out;
  }

  // Image.resize((outWidth, outHeight), filter, box=box) of an RGB image: Image.py's shortcut for an
  // unchanged image, then _imaging.c _resize (box parsed as C floats, checked, then an integer crop,
  // the NEAREST transform, or ImagingResample).
  function resize(rgb, srcWidth, srcHeight, box, outWidth, outHeight, filter) {
    filter = filter || "bilinear";
    if (rgb.length !== srcWidth * srcHeight * 3) throw new Error("rgb must hold srcWidth*srcHeight*3 bytes");
    if (!(outWidth >= 1 && outHeight >= 1)) throw new Error("height and width must be > 0");
    box = box || [0, 0, srcWidth, srcHeight];
    // Image.py: the same size and the whole image (compared as Python floats) is a copy.
    if (outWidth === srcWidth && outHeight === srcHeight && box[0] === 0 && box[1] === 0 &&
        box[2] === srcWidth && box[3] === srcHeight) {
      return Uint8Array.from(rgb);
    }
    const b = box.map(f32);  // PyArg_ParseTuple "(ffff)": double -> float
    if (b[0] < 0 || b[1] < 0) throw new Error("box offset can't be negative");
    if (b[2] > srcWidth || b[3] > srcHeight) throw new Error("box can't exceed original image size");
    if (b[2] - b[0] < 0 || b[3] - b[1] < 0) throw new Error("box can't be empty");
    if (f32(b[0] - Math.trunc(b[0])) === 0 && f32(b[2] - b[0]) === outWidth &&
        f32(b[1] - Math.trunc(b[1])) === 0 && f32(b[3] - b[1]) === outHeight) {
      return cropPixels(rgb, srcWidth, Math.trunc(b[0]), Math.trunc(b[1]), outWidth, outHeight);
    }
    if (filter === "nearest") {
      return nearest(rgb, srcWidth, srcHeight, b, outWidth, outHeight);
    }
    const filterp = FILTERS[filter];
    if (!filterp) throw new Error(`unsupported resampling filter ${filter}`);
    return resampleInner(rgb, srcWidth, srcHeight, b, outWidth, outHeight, filterp);
  }

  // Convert.c rgb2l: ITU-R 601-2 luma in 16.16 fixed point, `L24(rgb) >> 16`.
  function toGrey(rgb, n) {
    const out = new Uint8Array(n);
    for (let i = 0, p = 0; i < n; i++, p += 3) {
      out[i] = (rgb[p] * 19595 + rgb[p + 1] * 38470 + rgb[p + 2] * 7471 + 0x8000) >>> 16;
    }
    return out;
  }

  // imaging._to_rgb for an image with alpha: Image.alpha_composite(opaque white, rgba).convert("RGB"),
  // i.e. AlphaComposite.c's integer arithmetic (7 extra bits, SHIFTFORDIV255 rounding) with dst white.
  // rgba: non-premultiplied RGBA bytes (ImageData.data); returns RGB bytes.
  function flattenOnWhite(rgba) {
    const n = rgba.length >> 2;
    const out = new Uint8Array(n * 3);
    const div255 = (a) => ((a >>> 8) + a) >>> 8;  // SHIFTFORDIV255
    for (let i = 0; i < n; i++) {
      const r = rgba[i * 4], g = rgba[i * 4 + 1], b = rgba[i * 4 + 2], a = rgba[i * 4 + 3];
      const o = i * 3;
      if (a === 0) {
        out[o] = out[o + 1] = out[o + 2] = 255;  // "*out = *dst": the white underneath
        continue;
      }
      const blend = 255 * (255 - a);  // dst->a * (255 - src->a), dst->a = 255
      const outa255 = a * 255 + blend;
      const coef1 = Math.floor((a * 255 * 255 * 128) / outa255);  // UINT32 division truncates
      const coef2 = 255 * 128 - coef1;
      const white = 255 * coef2;
      out[o] = div255(r * coef1 + white + (0x80 << 7)) >>> 7;
      out[o + 1] = div255(g * coef1 + white + (0x80 << 7)) >>> 7;
      out[o + 2] = div255(b * coef1 + white + (0x80 << 7)) >>> 7;
    }
    return out;
  }

  // imaging.crop for an image decoded at full scale (DecodedImage.scale == (1, 1)): the window, the
  // resize of that float box to the spec's size, then Pillow's "L" conversion for one channel.
  // Returns H*W*C bytes (channels last), as np.asarray(region) is.
  function crop(rgb, width, height, cropSpec, x, y) {
    const box = cropBox(cropSpec, width, height, x, y);
    const region = resize(rgb, width, height, box, cropSpec.width, cropSpec.height, cropSpec.resize || "bilinear");
    if ((cropSpec.channels || 3) === 1) return toGrey(region, cropSpec.width * cropSpec.height);
    return region;
  }

  // service/classify/preprocess.py prepare() for one crop: uint8 as is, or float32 with (v - mean) / std or
  // v * scale + offset, each operation rounded to float32 as numpy's float32 ufuncs do (a double
  // result of two float32 operands, rounded once, is the correctly rounded float32 result); then
  // the layout: [1,H,W,C], [1,C,H,W] (nchw) or [1,H*W*C] (flat, channels-last order).
  function feed(inputSpec, cropped) {
    const H = inputSpec.height, W = inputSpec.width, C = inputSpec.channels;
    if (inputSpec.kind === "encoded") throw new Error("the encoded input kind (JPEG bytes) is not supported in the browser");
    if (cropped.length !== H * W * C) throw new Error(`the crop has ${cropped.length} values, the input takes ${H}x${W}x${C}`);
    let values, type;
    if (inputSpec.dtype === "uint8") {
      values = Uint8Array.from(cropped);
      type = "uint8";
    } else {
      values = new Float32Array(cropped.length);
      const scale = inputSpec.scale ?? 1.0, offset = inputSpec.offset ?? 0.0;
      if (inputSpec.mean != null) {
        const mean = Float32Array.from(inputSpec.mean), std = Float32Array.from(inputSpec.std);
        for (let i = 0; i < values.length; i++) {
          const c = i % C;
          const m = mean.length === 1 ? mean[0] : mean[c], s = std.length === 1 ? std[0] : std[c];
          values[i] = f32(f32(cropped[i] - m) / s);
        }
      } else if (scale !== 1.0 || offset !== 0.0) {
        const sc = f32(scale), of = f32(offset);
        for (let i = 0; i < values.length; i++) values[i] = f32(f32(cropped[i] * sc) + of);
      } else {
        values.set(cropped);
      }
      type = "float32";
    }
    if (inputSpec.kind === "flat") return { data: values, dims: [1, H * W * C], type };
    if (inputSpec.layout === "nchw") {
      const planar = new values.constructor(values.length);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          for (let c = 0; c < C; c++) planar[(c * H + y) * W + x] = values[(y * W + x) * C + c];
        }
      }
      return { data: planar, dims: [1, C, H, W], type };
    }
    return { data: values, dims: [1, H, W, C], type };
  }

  // numpy's pairwise summation of float64 (loops_utils.h pairwise_sum, 8 accumulators, blocks of
  // 128): the order of additions numpy's sum uses, so a softmax's denominator is the same double.
  function pairwiseSum(a, start, n) {
    if (n < 8) {
      let res = 0.0;
      for (let i = 0; i < n; i++) res += a[start + i];
      return res;
    }
    if (n <= 128) {
      const r = [];
      for (let j = 0; j < 8; j++) r.push(a[start + j]);
      let i = 8;
      for (; i < n - (n % 8); i += 8) {
        for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
      }
      let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
      for (; i < n; i++) res += a[start + i];
      return res;
    }
    let n2 = Math.floor(n / 2);
    n2 -= n2 % 8;
    return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
  }

  // service/serving/model_run.py probabilities for one output row: float64, an optional softmax (minus the
  // max, exp, divided by numpy's sum), clipped to [0, 1], NaN -> 0.
  function scores(outputRow, softmax) {
    let values = Float64Array.from(outputRow);
    if (softmax) {
      let max = -Infinity;
      for (const v of values) max = v > max || Number.isNaN(v) ? v : max;  // np.max propagates NaN
      values = values.map((v) => Math.exp(v - max));
      const sum = pairwiseSum(values, 0, values.length);
      values = values.map((v) => v / sum);
    }
    return values.map((v) => (Number.isNaN(v) ? 0.0 : Math.min(Math.max(v, 0.0), 1.0)));
  }

  // Python's round(x, 6) (half to even on the double's exact decimal value); toFixed rounds exact
  // ties up, so a tie (the exact expansion ends in a 5 at the 7th decimal) is settled here.
  function round6(x) {
    const exact = Math.abs(x).toFixed(100);
    const [whole, decimals] = exact.split(".");
    if (decimals[6] === "5" && /^0*$/.test(decimals.slice(7))) {
      const down = Number(`${whole}.${decimals.slice(0, 6)}`);
      const lastDigit = Number(decimals[5]);
      const even = lastDigit % 2 === 0 ? down : Number((down + 1e-6).toFixed(6));
      return x < 0 ? -even : even;
    }
    return Number(x.toFixed(6));
  }

  // pipeline._top_k: np.argsort(-scores, kind="stable")[:k], i.e. the highest first and equal scores
  // in label order; each score rounded to 6 decimals as the JSON answer has it.
  function topK(labels, scoreList, k) {
    const order = Array.from(scoreList, (_, i) => i);
    order.sort((i, j) => (scoreList[j] - scoreList[i]) || (i - j));
    return order.slice(0, k).map((i) => ({ label: labels[i], score: round6(scoreList[i]) }));
  }

  // ---- the server's limits, before decoding: service/classify/imaging.py probe, service/errors.py messages ----

  // A file the server would refuse, refused here with the server's code and message (nothing is sent).
  class Refused extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
    toString() {
      return `${this.message} [${this.code}, in this browser]`;
    }
  }

  const number = (value, digits) => value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

  // errors.size and errors.round_size: bytes in MB and KB of 2**20 and 2**10 bytes.
  function size(n) {
    for (const [unit, scale] of [["MB", 2 ** 20], ["KB", 2 ** 10]]) {
      if (n >= scale) return `${number(n / scale, 1)} ${unit}`;
    }
    return `${number(n, 0)} bytes`;
  }
  const roundSize = (n) => size(n).replace(".0 ", " ");

  // errors._megapixels
  function megapixels(pixels) {
    const mp = pixels / 1e6;
    if (mp < 1) return mp.toFixed(2);
    return mp >= 100 ? number(mp, 0) : mp.toFixed(1).replace(/\.0$/, "");
  }

  // errors.image_too_large: pixels first (what a decompression bomb inflates), then the longer side.
  function checkSize(width, height, limits) {
    if (width * height > limits.max_pixels) {
      throw new Refused("image_too_large", `the image is ${width}×${height} (${megapixels(width * height)} MP); ` +
        `the limit is ${megapixels(limits.max_pixels)} MP`);
    }
    if (width > limits.max_side || height > limits.max_side) {
      throw new Refused("image_too_large", `the image is ${width}×${height}; the limit is ${number(limits.max_side, 0)} px a side`);
    }
  }

  // The format and stored size an image file's header states, read from a few bytes of it, as Pillow's
  // openers read them: {format, width, height} (width and height null where the header was not found),
  // or null for bytes no known format starts with. JPEG (MPO, a JPEG with more pictures, counts as JPEG:
  // its first picture is the one decoded), PNG, GIF, BMP, WebP; TIFF, ICO and AVIF are named, not sized.
  async function header(blob) {
    const read = async (offset, length) => new DataView(await blob.slice(offset, offset + length).arrayBuffer());
    const head = await read(0, 32);
    const ascii = (view, at, length) => String.fromCharCode(...Array.from({ length }, (_, i) =>
      at + i < view.byteLength ? view.getUint8(at + i) : 0));
    const has = (at, length) => at + length <= head.byteLength;
    if (has(0, 24) && head.getUint32(0) === 0x89504e47 && head.getUint32(4) === 0x0d0a1a0a && ascii(head, 12, 4) === "IHDR") {
      return { format: "PNG", width: head.getUint32(16), height: head.getUint32(20) };
    }
    if (has(0, 10) && /^GIF8[79]a$/.test(ascii(head, 0, 6))) {
      return { format: "GIF", width: head.getUint16(6, true), height: head.getUint16(8, true) };
    }
    if (has(0, 26) && ascii(head, 0, 2) === "BM") {
      if (head.getUint32(14, true) === 12) return { format: "BMP", width: head.getUint16(18, true), height: head.getUint16(20, true) };
      return { format: "BMP", width: Math.abs(head.getInt32(18, true)), height: Math.abs(head.getInt32(22, true)) };
    }
    if (has(0, 30) && ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 4) === "WEBP") {
      const chunk = ascii(head, 12, 4);
      if (chunk === "VP8X") {
        const int24 = (at) => head.getUint8(at) | (head.getUint8(at + 1) << 8) | (head.getUint8(at + 2) << 16);
        return { format: "WEBP", width: int24(24) + 1, height: int24(27) + 1 };
      }
      if (chunk === "VP8L" && head.getUint8(20) === 0x2f) {
        const bits = head.getUint32(21, true);
        return { format: "WEBP", width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
      }
      if (chunk === "VP8 " && head.getUint8(23) === 0x9d && head.getUint8(24) === 0x01 && head.getUint8(25) === 0x2a) {
        return { format: "WEBP", width: head.getUint16(26, true) & 0x3fff, height: head.getUint16(28, true) & 0x3fff };
      }
      return { format: "WEBP", width: null, height: null };
    }
    if (has(0, 3) && head.getUint16(0) === 0xffd8 && head.getUint8(2) === 0xff) {
      // Segment by segment to the first SOF marker (after EXIF, ICC and other APPn segments).
      let at = 2;
      for (let segments = 0; segments < 1000 && at + 9 <= blob.size; segments++) {
        const view = await read(at, 9);
        if (view.getUint8(0) !== 0xff) break;
        const marker = view.getUint8(1);
        if (marker === 0xff) { at += 1; continue; }  // fill byte
        if ((marker >= 0xd0 && marker <= 0xd9) || marker === 0x01) { at += 2; continue; }  // no length
        if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
          return { format: "JPEG", width: view.getUint16(7), height: view.getUint16(5) };
        }
        at += 2 + view.getUint16(2);
      }
      return { format: "JPEG", width: null, height: null };
    }
    if (has(0, 4) && (ascii(head, 0, 4) === "II*\0" || ascii(head, 0, 4) === "MM\0*")) return { format: "TIFF", width: null, height: null };
    if (has(0, 4) && head.getUint32(0) === 0x00000100) return { format: "ICO", width: null, height: null };
    if (has(0, 12) && ascii(head, 4, 4) === "ftyp" && /^avi[fs]$/.test(ascii(head, 8, 4))) return { format: "AVIF", width: null, height: null };
    return null;
  }

  // imaging.probe's refusals, in its order, from the file's size and header alone: too large a body,
  // bytes that are not an image, a format the server does not take, too many pixels or too long a
  // side. limits: GET /v1/config's max_body_bytes, max_pixels, max_side and formats. -> the header.
  async function probe(blob, limits) {
    if (!blob.size) throw new Refused("invalid_image", "the image is empty");
    if (limits.max_body_bytes && blob.size > limits.max_body_bytes) {
      throw new Refused("payload_too_large", `the file is ${size(blob.size)}; the limit is ${roundSize(limits.max_body_bytes)}`);
    }
    const found = await header(blob);
    if (!found) throw new Refused("invalid_image", "the bytes are not a decodable image");
    const formats = limits.formats || [];
    if (formats.length && !formats.includes(found.format)) {
      throw new Refused("unsupported_media_type", `image format ${found.format} is not accepted; accepted: ${formats.join(", ")}`);
    }
    if (found.width !== null && found.height !== null) {
      if (found.width < 1 || found.height < 1) throw new Refused("invalid_image", "the image has no pixels");
      checkSize(found.width, found.height, limits);
    }
    return found;
  }

  // An image file as the server decodes it (imaging.decode at full scale): EXIF orientation applied
  // (the displayed size, as imaging.probe), no colour management (Pillow ignores ICC profiles), and
  // transparency flattened onto white with Pillow's arithmetic, from straight (not premultiplied)
  // alpha. -> {width, height, rgb, via}: via says how the pixels were read, "webgl" (exact) or "2d"
  // (exact for opaque pixels only; see readStraightRGBA).
  // With limits (GET /v1/config), what the server would refuse is refused first (probe, before any
  // pixel is decoded), and the decoded size is checked again where the header did not state it.
  async function pixelsOf(blob, limits = null) {
    if (limits) await probe(blob, limits);
    const bitmap = await createImageBitmap(blob, {
      imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none",
    });
    try {
      const { width, height } = bitmap;
      if (limits) checkSize(width, height, limits);
      const { rgba, via } = readStraightRGBA(bitmap, width, height);
      return { width, height, rgb: flattenOnWhite(rgba), via };
    } finally {
      bitmap.close();
    }
  }

  // The bitmap's straight RGBA bytes. A 2D canvas keeps premultiplied pixels, so getImageData loses
  // colour where alpha is low; WebGL with UNPACK_PREMULTIPLY_ALPHA_WEBGL false keeps them as decoded.
  // The canvas is the fallback where WebGL is unavailable (opaque pixels are exact either way).
  function readStraightRGBA(bitmap, width, height) {
    const canvas = typeof OffscreenCanvas !== "undefined"
      ? new OffscreenCanvas(width, height)
      : Object.assign(document.createElement("canvas"), { width, height });
    const gl = canvas.getContext("webgl2", { premultipliedAlpha: false, antialias: false }) ||
      canvas.getContext("webgl", { premultipliedAlpha: false, antialias: false });
    if (gl) {
      try {
        return { rgba: readWithWebGL(gl, bitmap, width, height), via: "webgl" };
      } catch (error) {
        // fall through to a fresh 2D canvas (this one now has a WebGL context)
      }
      const other = typeof OffscreenCanvas !== "undefined"
        ? new OffscreenCanvas(width, height)
        : Object.assign(document.createElement("canvas"), { width, height });
      return { rgba: readWith2D(other, bitmap, width, height), via: "2d" };
    }
    return { rgba: readWith2D(canvas, bitmap, width, height), via: "2d" };
  }

  function readWithWebGL(gl, bitmap, width, height) {
    const texture = gl.createTexture();
    const framebuffer = gl.createFramebuffer();
    try {
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
      gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
      gl.bindFramebuffer(gl.FRAMEBUFFER, framebuffer);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, texture, 0);
      if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) throw new Error("incomplete framebuffer");
      const rgba = new Uint8Array(width * height * 4);
      gl.pixelStorei(gl.PACK_ALIGNMENT, 1);
      gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, rgba);
      if (gl.getError() !== gl.NO_ERROR) throw new Error("WebGL read failed");
      return rgba;  // row 0 is the top row: texImage2D of a bitmap puts its first row at t = 0
    } finally {
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.deleteFramebuffer(framebuffer);
      gl.deleteTexture(texture);
    }
  }

  function readWith2D(canvas, bitmap, width, height) {
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    return context.getImageData(0, 0, width, height).data;
  }

  global.PinpointPreprocess = Object.freeze({
    cropBox, resize, toGrey, flattenOnWhite, crop, feed, scores, topK, pixelsOf, probe, header, Refused,
    // for tests: which path pixelsOf reads pixels with, and the pieces the exactness rests on
    _internal: { coefficients, pairwiseSum, round6, readStraightRGBA },
  });
})(typeof globalThis !== "undefined" ? globalThis : this);
