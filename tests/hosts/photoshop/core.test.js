// The panel's host-free core (compiled from plugins/photoshop/panel/src/core): request building,
// sizes, LoRA tags, job following, pixel helpers, datasets' findings. No daemon, no Photoshop.
"use strict";

const assert = require("node:assert/strict");
const { test } = require("node:test");

const { panel } = require("./helpers");

const requests = panel("core/requests.js");
const jobs = panel("core/jobs.js");
const pixels = panel("core/pixels.js");
const errors = panel("core/errors.js");
const datasets = panel("core/datasets.js");
const { Emitter } = panel("core/emitter.js");
const state = panel("core/state.js");

const settings = (over = {}) => ({ ...requests.defaultGenerateSettings(), model: "tiny", prompt: "a bottle", ...over });

test("sizes round to multiples of 8 around the selection and stay on the canvas", () => {
  const r = requests.planRegion({ x: 10, y: 20, width: 93, height: 61 }, 200, 100);
  assert.deepEqual([r.x, r.y, r.width, r.height], [9, 19, 96, 64]); // the rounding is centred
  assert.match(r.note, /93x61 rounded to 96x64/);
  assert.equal(requests.describeRegion(r, "selection"), "96x64 from the selection (93x61, rounded to multiples of 8)");
  // At the canvas edge the area shifts inside rather than being cut.
  const edge = requests.planRegion({ x: 190, y: 90, width: 13, height: 10 }, 200, 100);
  assert.deepEqual([edge.x, edge.y, edge.width, edge.height], [184, 91, 16, 8]);
  // Inpainting context grows the area, clamped to the canvas.
  const ctx = requests.planRegion({ x: 40, y: 40, width: 20, height: 20 }, 100, 100, 32);
  assert.deepEqual([ctx.x, ctx.y, ctx.width, ctx.height], [6, 6, 88, 88]); // 84 + 4 pixels of rounding
  assert.throws(() => requests.planRegion({ x: 0, y: 0, width: 0, height: 5 }, 10, 10), errors.UserError);
  assert.equal(requests.roundToMultiple(4), 8);
  assert.match(requests.planRegion({ x: 0, y: 0, width: 2048, height: 2048 }, 2048, 2048).note, /Large area/);
});

test("the size notes follow the model's family: 512 for SD 1.x, 1024 for SDXL", () => {
  const sizes = panel("core/sizes.js");
  assert.equal(sizes.nativeSize({ name: "xl", family: "SDXL", default_size: 1024 }), 1024);
  assert.equal(sizes.nativeSize({ name: "old", family: "SDXL" }), 1024); // a daemon without default_size
  assert.equal(sizes.nativeSize({ name: "v15", family: "SD1.x" }), 512);
  assert.equal(sizes.nativeSize(undefined), 512);
  assert.deepEqual([...sizes.modelSizes([{ name: "a", default_size: 1024 }, { name: "b" }])], [["a", 1024], ["b", 512]]);
  // SD 1.x: as before, only areas above 1024x1024 get a note.
  assert.equal(requests.planRegion({ x: 0, y: 0, width: 1024, height: 1024 }, 1024, 1024).note, "");
  const big = requests.planRegion({ x: 0, y: 0, width: 2048, height: 2048 }, 2048, 2048, 0, 1024);
  assert.equal(big.note, "");  // 2048² is four times SDXL's area: not yet large
  assert.match(requests.planRegion({ x: 0, y: 0, width: 2056, height: 2048 }, 2056, 2048, 0, 1024).note,
    /Large area: SDXL works best near 1024x1024/);
  assert.match(requests.planRegion({ x: 0, y: 0, width: 256, height: 256 }, 256, 256, 0, 1024).note,
    /Small area: SDXL works best near 1024x1024/);
  assert.equal(requests.planRegion({ x: 0, y: 0, width: 256, height: 256 }, 256, 256).note, "");
});

test("LoRA tags are inserted at the cursor, replaced in place, and refused when malformed", () => {
  assert.deepEqual(requests.insertLoraTag("a bottle", "acme"), { prompt: "a bottle, <lora:acme:0.8>", cursor: 25 });
  assert.equal(requests.insertLoraTag("a bottle, <lora:acme:0.8>, marble", "acme", 0.35).prompt, "a bottle, <lora:acme:0.35>, marble");
  assert.equal(requests.insertLoraTag("a bottle marble", "x", 1, 8).prompt, "a bottle, <lora:x:1>, marble");
  assert.equal(requests.insertLoraTag("", "x", 0.5).prompt, "<lora:x:0.5>");
  assert.deepEqual(requests.loraTags("<lora:a:0.5> x <lora:b> <lora:c:oops>"), [["a", 0.5], ["b", 1], ["c", 1]]);
  assert.throws(() => requests.insertLoraTag("p", "bad:name"), /cannot be used/);
  assert.equal(requests.formatWeight(1), "1");
  assert.equal(requests.formatWeight(0.8), "0.8");
  assert.equal(requests.formatWeight(-0.001), "0");
});

test("generate params per mode, with plain-language refusals", () => {
  const ref = { shm: "kiln.1.2.x", width: 64, height: 64, channels: 3, dtype: "u8", stride: 192 };
  const p = requests.generateParams(settings({ seed: 5, negative: "blurry", clipSkip: 2 }), 64, 48);
  assert.deepEqual(p, { model: "tiny", prompt: "a bottle", sampler: "Euler a", steps: 20, cfg: 7, seed: 5, width: 64, height: 48,
    preview_every: 5, save: true, negative: "blurry", clip_skip: 2 });
  const i2i = requests.generateParams(settings({ mode: "img2img", strength: 0.4 }), 64, 64, ref);
  assert.equal(i2i.init_image, ref);
  assert.equal(i2i.strength, 0.4);
  const inp = requests.generateParams(settings({ mode: "inpaint" }), 64, 64, ref, { ...ref, channels: 1 });
  assert.equal(inp.mask_blur, 4);
  assert.throws(() => requests.generateParams(settings({ model: "" }), 64, 64), /Pick a base model/);
  assert.throws(() => requests.generateParams(settings({ prompt: " " }), 64, 64), /Write a prompt/);
  assert.throws(() => requests.generateParams(settings(), 60, 64), /multiple of 8/);
  assert.throws(() => requests.generateParams(settings({ sampler: "Heun" }), 64, 64), /Unknown sampler 'Heun'/);
  assert.throws(() => requests.generateParams(settings({ mode: "img2img" }), 64, 64), /needs a source image/);
  assert.throws(() => requests.generateParams(settings({ mode: "inpaint" }), 64, 64, ref), /select an area/);
  assert.throws(() => requests.generateParams(settings({ steps: 0 }), 64, 64), /Steps/);
  assert.throws(() => requests.generateParams(settings({ mode: "shot" }), 64, 64), /shotParams/);
});

test("shot params place the product layer where it is, at scale 1", () => {
  const ref = { shm: "kiln.1.2.x", width: 20, height: 10, channels: 4, dtype: "u8", stride: 80 };
  const p = requests.shotParams(settings({ mode: "shot", count: 3, edge: 6, harmonize: 0.2 }), 128, 96, ref, 30, 40);
  assert.deepEqual([p.product, p.x, p.y, p.scale, p.count, p.edge, p.harmonize], [ref, 30, 40, 1, 3, 6, 0.2]);
  assert.equal("harmonize" in requests.shotParams(settings({ mode: "shot" }), 64, 64, ref, 0, 0), false);
  assert.throws(() => requests.shotParams(settings({ mode: "shot" }), 64, 64, null, 0, 0), /select its layer/);
  assert.throws(() => requests.shotParams(settings({ mode: "shot", count: 17 }), 64, 64, ref, 0, 0), /Variations/);
  assert.throws(() => requests.shotParams(settings({ mode: "shot", harmonize: 0.9 }), 64, 64, ref, 0, 0), /Harmonize/);
  assert.equal(requests.layerName(settings({ mode: "shot", prompt: "  a   bottle\non marble " }), 9), "Kiln product shot: a bottle on marble (seed 9)");
  assert.equal(requests.layerName(settings({ prompt: "x".repeat(60) }), 1).length, "Kiln txt2img:  (seed 1)".length + 40);
});

test("dataset and training params", () => {
  assert.deepEqual(requests.datasetCreateParams({ name: " acme ", trigger: "sks_acme", preset: "product", background: "grey", resolution: 256, repeats: 4 }),
    { name: "acme", preset: "product", trigger: "sks_acme", background: "grey", resolution: 256, repeats: 4 });
  assert.throws(() => requests.datasetCreateParams({ name: "a/b", trigger: "", preset: "product", background: "white" }), /cannot be used/);
  assert.throws(() => requests.datasetCreateParams({ name: "a", trigger: "two words", preset: "product", background: "white" }), /single word/);
  assert.throws(() => requests.datasetCreateParams({ name: "a", trigger: "", preset: "nope", background: "white" }), /Unknown preset/);
  assert.throws(() => requests.datasetCreateParams({ name: "a", trigger: "", preset: "style", background: "white", resolution: 300 }), /multiple of 64/);
  assert.deepEqual(requests.trainParams({ baseModel: "tiny", dataset: "acme", name: "", preset: "product", overrides: { network_dim: 8 }, set: ["seed=1"] }),
    { base: "tiny", dataset: "acme", name: "acme", preset: "product", config: { network_dim: 8 }, set: ["seed=1"] });
  assert.throws(() => requests.trainParams({ baseModel: "", dataset: "a", name: "", preset: "product", overrides: {}, set: [] }), /base model/);
  assert.throws(() => requests.trainParams({ baseModel: "m", dataset: "a", name: "", preset: "product", overrides: {}, set: ["x"] }), /key=value/);
  assert.deepEqual(requests.datasetImageEntry({ shm: "s" }, "layer 1"), { image: { shm: "s" }, name: "layer 1" });
});

test("job following: progress lines, finished states never undone by late notifications", () => {
  const tracker = new jobs.JobTracker();
  const running = { id: "j1", type: "train", state: "running",
    progress: { step: 12, total: 40, eta_s: 16, message: "epoch 2/10", extra: { epoch: 2, epochs: 10, loss: 0.12345 } } };
  const p = tracker.feed("job.progress", { job: running, preview: { shm: "p" } });
  assert.equal(jobs.describe(p), "running · step 12/40 · epoch 2/10 · loss 0.1235 · ETA 0:16 · epoch 2/10");
  assert.deepEqual(p.preview, { shm: "p" });
  tracker.feed("job.state", { job: { id: "j1", type: "train", state: "done", result: { steps: 40 } } });
  const late = tracker.feed("job.progress", { job: running });
  assert.equal(late.state, "done");
  assert.equal(late.finished, true);
  assert.equal(tracker.feed("something.else", {}), null);
  assert.equal(tracker.feed("job.state", { nojob: 1 }), null);
  const failed = jobs.progressFromRecord({ id: "j2", type: "generate", state: "failed", error: { message: "out of memory" } });
  assert.equal(jobs.describe(failed), "failed · out of memory");
  assert.equal(jobs.formatEta(3725), "1:02:05");
  assert.equal(jobs.formatEta(-1), "");
});

test("pixels: placing trimmed reads, content bounds, crop, masks, RGB to RGBA", () => {
  const src = pixels.makePixels(2, 2, 4, new Uint8Array([1, 1, 1, 255, 2, 2, 2, 255, 3, 3, 3, 255, 4, 4, 4, 255]));
  const placed = pixels.placeInto(src, { x: 5, y: 5, width: 2, height: 2 }, { x: 4, y: 4, width: 4, height: 3 });
  assert.deepEqual([placed.width, placed.height], [4, 3]);
  assert.deepEqual([...placed.data.subarray((1 * 4 + 1) * 4, (1 * 4 + 1) * 4 + 4)], [1, 1, 1, 255]);
  assert.deepEqual([...placed.data.subarray(0, 4)], [0, 0, 0, 0]);
  assert.deepEqual(pixels.contentBounds(placed), { x: 1, y: 1, width: 2, height: 2 });
  assert.deepEqual(pixels.crop(placed, { x: 1, y: 1, width: 2, height: 2 }).data, src.data);
  assert.equal(pixels.contentBounds(pixels.makePixels(3, 3, 4)), null);
  const mask = pixels.makePixels(2, 2, 1, new Uint8Array([255, 0, 128, 255]));
  assert.deepEqual([...pixels.multiplyAlpha(src, mask).data].filter((_, i) => i % 4 === 3), [255, 0, 128, 255]);
  assert.equal(pixels.anySet(pixels.makePixels(2, 2, 1)), false);
  assert.deepEqual([...pixels.toRgba(pixels.makePixels(1, 1, 3, new Uint8Array([7, 8, 9]))).data], [7, 8, 9, 255]);
  assert.equal(pixels.hasTransparency(src), false);
  assert.equal(pixels.hasTransparency(placed), true);
  assert.throws(() => pixels.makePixels(2, 2, 4, new Uint8Array(3)), /expected 16/);
});

test("datasets: findings in plain words; errors: the fix for a missing daemon", () => {
  const ds = { images: [
    { id: "0001", source_name: "product 1", findings: [] },
    { id: "0002", source_name: "product 2", findings: [{ code: "too_small", message: "0002 is 40x40 px, under 512", action: "use a larger image" }] },
  ], findings: [{ code: "few_images", message: "2 images; 20-40 suit a product" }] };
  assert.deepEqual(datasets.datasetRows(ds), [
    { id: "0001", source: "product 1", text: "ok", flagged: false },
    { id: "0002", source: "product 2", text: "0002 is 40x40 px, under 512 (use a larger image)", flagged: true },
  ]);
  assert.deepEqual(datasets.datasetNotes(ds), ["2 images; 20-40 suit a product"]);
  const missing = Object.assign(new Error("kilnd not found: looked at /x/kilnd, $KILN_DAEMON, PATH"), { code: -32090 });
  assert.match(errors.toUserError(missing).message, /Install Kiln so that kilnd is on PATH, set KILN_DAEMON, or choose/);
  const refused = Object.assign(new Error("generate: missing parameter 'prompt'"), { code: -32602 });
  assert.equal(errors.toUserError(refused).message, "generate: missing parameter 'prompt'");
  assert.equal(errors.toUserError(refused).code, -32602);
});

test("emitter and state: a throwing listener does not stop the others; state survives bad storage", () => {
  const em = new Emitter();
  const seen = [];
  const caught = [];
  em.onError = (e) => caught.push(e.message);
  em.on("status", () => {
    throw new Error("boom");
  });
  const off = em.on("status", (t) => seen.push(t));
  em.emit("status", "a");
  off();
  em.emit("status", "b");
  assert.deepEqual(seen, ["a"]);
  assert.deepEqual(caught, ["boom", "boom"]);
  const store = new Map();
  globalThis.localStorage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  try {
    state.saveState({ ...state.defaultState(), daemon: "/opt/kiln/kilnd" });
    assert.equal(state.loadState().daemon, "/opt/kiln/kilnd");
    store.set("kiln.panel.state", "{not json");
    assert.deepEqual(state.loadState(), state.defaultState());
  } finally {
    delete globalThis.localStorage;
  }
});
