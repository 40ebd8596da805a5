// The panel's flows (core/controller.ts) with its Photoshop code (host/photoshop_canvas.ts)
// running against the stand-in `photoshop` module (standin/photoshop.js: in-memory documents and
// the Imaging API's buffers, shaped as @types/photoshop declares them), the Node-API bridge and a
// real kilnd with the tiny model. This is not a test of Photoshop, which cannot run here: it
// tests everything the panel does up to Photoshop's API.
"use strict";

const assert = require("node:assert/strict");
const { test, before, after } = require("node:test");

const { Daemon, bridge, panel, installStandins, tinyModel, waitFor } = require("./helpers");

const ps = installStandins(); // before host/ code is loaded: its require("photoshop") gets the stand-in
const { PhotoshopCanvas } = panel("host/photoshop_canvas.js");
const { Controller } = panel("core/controller.js");
const { Session } = panel("core/session.js");
const { UnsupportedDocument } = panel("core/errors.js");
const requests = panel("core/requests.js");

const TINY_TRAINING = ["resolution=64", "min_bucket_reso=64", "max_bucket_reso=128", "max_train_epochs=1",
  "train_batch_size=1", "num_repeats=4", "seed=42", "learning_rate=2e-3", "text_encoder_lr=1e-3",
  "sample_every_n_epochs=1", "sample_prompts=sks_disc, a product --w 64 --h 64 --d 7 --s 3"];

let daemon, controller, session;
const events = {};

function record(name) {
  events[name] = [];
  controller.events.on(name, (...args) => events[name].push(args.length === 1 ? args[0] : args));
}

/** The next `name` event after now that satisfies `pred`. */
function next(name, ms = 90000, pred = () => true) {
  const start = events[name].length;
  return waitFor(() => events[name].slice(start).some(pred), ms, `the '${name}' event`).then(
    () => events[name].slice(start).find(pred));
}

function settings(over = {}) {
  return { ...requests.defaultGenerateSettings(), model: "tiny", prompt: "a red bottle", seed: 1234, steps: 3, sampler: "Euler",
    previewEvery: 1, ...over };
}

before(async () => {
  daemon = await new Daemon("panel").start();
  session = new Session(bridge(), { socket: daemon.socket, autostart: false, name: "ps-panel-test" });
  controller = new Controller(session, new PhotoshopCanvas());
  for (const name of ["status", "error", "connection", "preview", "progress", "generationFinished", "trainingFinished",
    "gridOpened", "datasetShown", "busy", "loras"]) record(name);
  await controller.connect();
  await session.call("models.add", { path: tinyModel(), name: "tiny" });
  assert.deepEqual(await controller.refreshModels(), ["tiny"]);
});

after(async () => {
  if (session) session.close();
  if (daemon) await daemon.remove();
});

function paintDocument(title = "doc", w = 160, h = 120) {
  const doc = ps.standin.newDocument(title, w, h);
  const bg = doc.addLayer("Background");
  doc.fill(bg, 0, 0, w, h, [240, 240, 235, 255]);
  const paint = doc.addLayer("paint");
  doc.fill(paint, 30, 20, 60, 40, [20, 90, 200, 255]);
  return doc;
}

async function generate(s, source) {
  const done = next("generationFinished");
  const id = await controller.generate(s, source);
  const [layers, rec] = await done;
  assert.equal(rec.id, id);
  return { layers, rec };
}

test("txt2img into a selection: a new layer above the active one, rounded to 8, one history step", async () => {
  const doc = paintDocument("txt2img");
  doc.select({ left: 10, top: 20, right: 103, bottom: 81 }); // 93 x 61
  const { line } = await controller.plannedRegion("txt2img");
  assert.equal(line, "96x64 from the selection (93x61, rounded to multiples of 8)");
  const previews = events.preview.length;
  const { layers, rec } = await generate(settings());
  assert.equal(rec.state, "done");
  assert.equal(layers.length, 1);
  const layer = doc.layerByName("Kiln txt2img: a red bottle (seed 1234)");
  assert.ok(layer, "the layer is named after mode, prompt and seed");
  assert.equal(doc.layers[0], layer, "above 'paint', the active layer it was made from");
  assert.deepEqual(layer.boundsNoEffects, { left: 9, top: 19, right: 105, bottom: 83, width: 96, height: 64 });
  // Its pixels are kilnd's result, pixel for pixel.
  const result = session.readPixels(rec.result.images[0].image, "RGBA");
  for (let y = 0; y < 64; y++)
    for (let x = 0; x < 96; x += 7) {
      const o = ((19 + y) * doc.width + 9 + x) * 4;
      assert.deepEqual([...layer.pixels.subarray(o, o + 4)], [...result.data.subarray((y * 96 + x) * 4, (y * 96 + x) * 4 + 4)]);
    }
  assert.deepEqual(doc.history, [{ name: "Kiln txt2img: a red bottle (seed 1234)", committed: true }], "one undo removes it");
  assert.ok(events.preview.slice(previews).some((p) => p.of === "generate" && p.pixels.width === 96), "previews were shown");
  assert.ok(events.progress.some(([step, total]) => total === 3 && step > 0), "progress was reported");
  assert.equal(ps.standin.stats.imageDataLive, 0, "every Imaging API buffer was disposed");
  assert.equal(controller.generation, null);
});

test("img2img from the active layer and from the visible image", async () => {
  const doc = paintDocument("img2img", 64, 64);
  const source = doc.layerByName("paint");
  const { rec } = await generate(settings({ mode: "img2img", strength: 0.5 }), "layer");
  assert.equal(rec.state, "done", JSON.stringify(rec.error));
  const layer = doc.layerByName("Kiln img2img: a red bottle (seed 1234)");
  assert.deepEqual(doc.layers.slice(0, 2), [layer, source]);
  assert.deepEqual([layer.boundsNoEffects.width, layer.boundsNoEffects.height], [64, 64]);
  const again = await generate(settings({ mode: "img2img", strength: 0.5, seed: 9 }), "visible");
  assert.equal(again.rec.state, "done");
  // A different source (the visible image has the background) gives a different image.
  const a = session.readPixels(rec.result.images[0].image, "RGB").data;
  const b = session.readPixels(again.rec.result.images[0].image, "RGB").data;
  assert.notDeepEqual(a, b);
  assert.equal(doc.history.length, 2);
});

test("inpaint repaints inside the selection only: the layer is transparent outside it", async () => {
  const doc = paintDocument("inpaint", 128, 96);
  doc.select({ left: 40, top: 30, right: 80, bottom: 60 });
  const { rec } = await generate(settings({ mode: "inpaint", strength: 1 }));
  assert.equal(rec.state, "done", JSON.stringify(rec.error));
  const layer = doc.layerByName("Kiln inpaint: a red bottle (seed 1234)");
  // The area grew by 32 px of context; only the selected pixels are opaque.
  assert.deepEqual(layer.boundsNoEffects, { left: 40, top: 30, right: 80, bottom: 60, width: 40, height: 30 });
  const alpha = (x, y) => layer.pixels[(y * doc.width + x) * 4 + 3];
  assert.equal(alpha(50, 40), 255);
  assert.equal(alpha(20, 20), 0);
  assert.equal(alpha(39, 45), 0);
});

test("inpaint without a selection, and documents Kiln cannot read, are refused in plain words", async () => {
  const doc = paintDocument("refusals", 64, 64);
  await assert.rejects(controller.generate(settings({ mode: "inpaint" })), /select it first/);
  doc._bits = ps.constants.BitsPerChannelType.SIXTEEN;
  doc.mode = ps.constants.DocumentMode.CMYK;
  await assert.rejects(controller.generate(settings()), (e) => e instanceof UnsupportedDocument && e.convertible &&
    /8-bit RGB documents; 'refusals' is CMYK at 16 bits per channel/.test(e.message));
  await controller.convertDocument();
  assert.deepEqual([doc.mode, doc.bitsPerChannel], ["RGBColorMode", "bitDepth8"]);
  assert.deepEqual(doc.history.at(-1), { name: "Convert for Kiln", committed: true });
  doc.colorProfileName = "Adobe RGB (1998)";
  assert.throws(() => controller.checkedDocument(), /sRGB/);
  await controller.convertDocument();
  assert.equal(controller.checkedDocument().profile, "sRGB IEC61966-2.1");
  assert.equal(controller.generation, null, "nothing was queued");
});

test("a product shot: scene layers below the untouched product layer, placed where kilnd put it", async (t) => {
  if (!session.hasMethod("shot")) return t.skip("this kilnd has no 'shot' method");
  const doc = paintDocument("shot", 128, 96);
  const product = doc.addLayer("bottle");
  doc.fill(product, 50, 30, 20, 40, [180, 20, 30, 255]); // opaque cut-out on transparency
  doc.fill(product, 48, 68, 24, 4, [0, 0, 0, 100]); // a soft shadow
  const before = new Uint8Array(product.pixels);
  const { layers, rec } = await generate(settings({ mode: "shot", prompt: "on a marble counter", count: 2, steps: 2 }));
  assert.equal(rec.state, "done", JSON.stringify(rec.error));
  assert.equal(layers.length, 2);
  assert.deepEqual(product.pixels, before, "the product layer is untouched");
  const index = doc.layers.indexOf(product);
  const [first, second] = [doc.layers[index + 1], doc.layers[index + 2]];
  assert.deepEqual([first.name, second.name], ["Kiln product shot: on a marble counter (seed 1234)",
    "Kiln product shot: on a marble counter (seed 1235)"]);
  assert.deepEqual([first.visible, second.visible], [true, false], "the first shown, the others hidden");
  assert.deepEqual(doc.activeLayers, [product], "the product stays active for the next shot");
  assert.deepEqual([rec.result.placement.x, rec.result.placement.y], [48, 30], "at the product's own place");
  // Each scene layer is kilnd's scene; over it the product layer gives kilnd's composite.
  const scene = session.readPixels(rec.result.images[0].scene, "RGBA").data;
  assert.deepEqual(first.pixels, scene);
  const composite = session.readPixels(rec.result.images[0].image, "RGB").data;
  for (const [x, y] of [[55, 40], [69, 67], [50, 30]]) {
    const o = (y * 128 + x);
    assert.deepEqual([...composite.subarray(o * 3, o * 3 + 3)], [...before.subarray(o * 4, o * 4 + 3)], `opaque product pixel ${x},${y}`);
  }
  assert.deepEqual(doc.history, [{ name: "Kiln product shot (2 variations)", committed: true }]);
});

test("a product shot needs a cut-out: a layer without transparency is refused", async (t) => {
  if (!session.hasMethod("shot")) return t.skip("this kilnd has no 'shot' method");
  const doc = paintDocument("opaque", 64, 64);
  doc.activeLayers = [doc.layerByName("Background")];
  await assert.rejects(controller.generate(settings({ mode: "shot" })), /has no transparency.*cut the product out/s);
});

test("Cancel ends a generation with no layer", async () => {
  const doc = paintDocument("cancel", 64, 64);
  const layersBefore = doc.allLayers().length;
  const done = next("generationFinished");
  const progress = next("progress", 60000, ([step]) => step >= 1);
  await controller.generate(settings({ steps: 200 }));
  await progress;
  await controller.cancelGeneration();
  const [layers, rec] = await done;
  assert.equal(rec.state, "cancelled");
  assert.deepEqual(layers, []);
  assert.equal(doc.allLayers().length, layersBefore);
  assert.deepEqual(doc.history, []);
  assert.ok(events.status.includes("Generation cancelled."));
});

test("a second client and the panel share the queue: both jobs finish, nothing lost", async () => {
  const doc = paintDocument("shared", 64, 64);
  const kiln = bridge();
  const other = kiln.createClient({ socket: daemon.socket, autostart: false, name: "other-client" });
  await kiln.connect(other);
  const theirs = await kiln.call(other, "generate", { model: "tiny", prompt: "a blue cube", steps: 3, seed: 5, width: 64, height: 64,
    sampler: "Euler", save: false });
  const { rec } = await generate(settings({ seed: 11 }));
  assert.equal(rec.state, "done");
  assert.ok(doc.layerByName("Kiln txt2img: a red bottle (seed 11)"));
  await waitFor(async () => (await kiln.call(other, "jobs.get", { id: theirs.id })).state === "done", 60000, "the other client's job");
  kiln.close(other);
});

test("layers become a dataset (a group's visible layers, trimmed), a short training, the grid opens", async (t) => {
  if (!session.hasMethod("train")) return t.skip("this kilnd has no 'train' method");
  const doc = ps.standin.newDocument("dataset", 128, 128);
  const group = doc.addLayer("products", { kind: "group" });
  const colours = [[200, 40, 40, 255], [40, 200, 40, 255], [40, 40, 200, 255], [90, 90, 90, 255]];
  ["product 1", "product 2", "product 3", "hidden"].forEach((name, i) => {
    const l = doc.addLayer(name, { group });
    doc.fill(l, 20 + 10 * i, 30, 37, 37, colours[i]);
    if (name === "hidden") l.visible = false;
  });
  doc.activeLayers = [group];
  assert.deepEqual(controller.datasetLayers(doc.id).map((l) => l.name), ["product 3", "product 2", "product 1"]);
  const shown = next("datasetShown", 120000);
  const imp = await controller.addLayersToDataset({ name: "ps-products", trigger: "sks_disc", preset: "product",
    background: "white", resolution: 256, repeats: 4 });
  assert.deepEqual(imp.sources, ["product 3", "product 2", "product 1"]);
  const [dataset] = await shown;
  assert.deepEqual(dataset.images.map((i) => i.source_name).sort(), ["product 1", "product 2", "product 3"]);
  for (const image of dataset.images) assert.ok(Array.isArray(image.findings), "findings per image");
  assert.ok(events.status.some((s) => /Added 3 images to 'ps-products'/.test(s)), events.status.slice(-3).join(" | "));

  controller.gridOptions = { steps: 3, strengths: [0.5, 1.0], sampler: "Euler" };
  const previewsBefore = events.preview.length;
  const trained = next("trainingFinished", 300000);
  const grid = next("gridOpened", 400000);
  await controller.train({ baseModel: "tiny", dataset: "ps-products", name: "ps-lora", preset: "product", overrides: {},
    set: TINY_TRAINING }, "sks_disc");
  const rec = await trained;
  assert.equal(rec.state, "done", JSON.stringify(rec.error));
  assert.equal(rec.result.steps, 12, "3 images x 4 repeats x 1 epoch");
  assert.ok(events.preview.slice(previewsBefore).some((p) => p.of === "train"), "the training sample was shown");
  assert.ok(events.status.some((s) => /epoch/.test(s) && /loss/.test(s)), "progress showed epoch and loss");
  const loras = events.loras.at(-1);
  assert.ok(loras.some((l) => l.name === "ps-lora" && l.triggerWords.includes("sks_disc")), JSON.stringify(loras));
  const [gridDoc, path] = await grid.catch((e) => {
    throw new Error(`${e.message}; last status: ${events.status.slice(-3).join(" | ")}; errors: ${events.error.join(" | ")}`);
  });
  assert.match(path, /grid\.png$/);
  assert.ok(gridDoc.width > 0 && gridDoc.height > 0, "the grid opened as a new document");
  assert.equal(ps.app.activeDocument.path, path);
});

test("kilnd killed mid-generation, restarted: the panel says so, reconnects, and works again", async () => {
  const doc = paintDocument("restart", 64, 64);
  const errorsBefore = events.error.length;
  const dropped = next("connection", 30000, ([connected]) => !connected);
  const started = next("progress", 60000, ([step]) => step >= 1);
  await controller.generate(settings({ steps: 300 }));
  await started;
  await daemon.kill9();
  await dropped;
  await waitFor(() => events.error.length > errorsBefore, 10000, "the error");
  assert.match(events.error.at(-1), /kilnd stopped while generating/);
  assert.equal(controller.generation, null);
  assert.equal(events.busy.at(-1)[1], false, "the Generate button is enabled again");
  await daemon.start();
  const back = next("connection", 30000, ([connected]) => connected);
  await controller.connect();
  await back;
  const { rec } = await generate(settings({ seed: 21 }));
  assert.equal(rec.state, "done");
  assert.ok(doc.layerByName("Kiln txt2img: a red bottle (seed 21)"));
});
