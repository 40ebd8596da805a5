// The Node-API build of the Photoshop bridge (kiln_bridge.node) against a real kilnd: the same
// exports, argument checks and errors the UXP build gives Photoshop (both bind exports.cpp).
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { test, before, after } = require("node:test");

const { Daemon, bridge, panel, tinyModel, waitFor } = require("./helpers");

const kiln = bridge();
let daemon;

before(async () => {
  daemon = await new Daemon("bridge").start();
  const c = kiln.createClient({ socket: daemon.socket, autostart: false, name: "ps-bridge-test" });
  await kiln.connect(c);
  await kiln.call(c, "models.add", { path: tinyModel(), name: "tiny" });
  kiln.close(c);
});

after(async () => {
  if (daemon) await daemon.remove();
});

async function client(name = "ps-bridge-test") {
  const c = kiln.createClient({ socket: daemon.socket, autostart: false, name });
  const info = await kiln.connect(c);
  assert.equal(info.protocol, 1);
  return c;
}

function pattern(n, seed) {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (i * 31 + seed * 7 + (i >> 8)) & 255;
  return a;
}

test("the addon's exports are the ones core/bridge.ts declares, in the same order", () => {
  const { BRIDGE_EXPORTS } = panel("core/bridge.js");
  assert.deepEqual(Object.keys(kiln).filter((k) => typeof kiln[k] === "function"), [...BRIDGE_EXPORTS]);
  assert.equal(kiln.engine, process.env.KILN_PS_ENGINE || "node"); // "uxp": the UXP glue run by uxp_on_node
  assert.equal(kiln.version().protocol, 1);
});

test("pixels cross ArrayBuffer -> shm -> kilnd -> shm -> ArrayBuffer unchanged (odd widths, RGBA and RGB)", async () => {
  const c = await client();
  for (const [w, h, channels] of [[33, 17, 4], [33, 17, 3], [1, 1, 4], [257, 3, 3]]) {
    const src = pattern(w * h * channels, w + channels);
    const image = kiln.createImage(c, w, h, channels);
    kiln.writeImage(image, src.buffer, channels === 4 ? "RGBA" : "RGB");
    const echoed = await kiln.call(c, "image.echo", { image: kiln.imageRef(image) });
    const back = kiln.takeImage(c, echoed.image);
    const info = kiln.imageInfo(back);
    assert.deepEqual([info.width, info.height, info.channels, info.writable], [w, h, channels, false]);
    assert.ok(info.stride >= w * channels);
    const out = new Uint8Array(kiln.readImage(back, channels === 4 ? "RGBA" : "RGB"));
    assert.deepEqual(out, src, `${w}x${h}x${channels} came back different`);
    kiln.releaseImage(back);
    kiln.releaseImage(image);
  }
  kiln.close(c);
});

test("channel conversion in the one copy: RGB -> RGBA, RGBA -> RGB on a background, a typed-array view", async () => {
  const c = await client();
  const image = kiln.createImage(c, 3, 2, 3);
  // Opaque red, half-transparent green, transparent blue; composited on white.
  const rgba = new Uint8Array([255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0, 9, 9, 9, 255, 0, 0, 0, 0, 200, 100, 50, 255]);
  kiln.writeImage(image, rgba, "RGBA", [255, 255, 255]);
  const rgb = new Uint8Array(kiln.readImage(image, "RGB"));
  assert.deepEqual([...rgb.subarray(0, 9)], [255, 0, 0, 127, 255, 127, 255, 255, 255]);
  assert.deepEqual([...new Uint8Array(kiln.readImage(image, "RGBA")).subarray(0, 4)], [255, 0, 0, 255]);
  // A view into a larger buffer: only its bytes are read.
  const big = new Uint8Array(100).fill(7);
  const view = new Uint8Array(big.buffer, 10, 18);
  kiln.writeImage(image, view, "RGB");
  assert.deepEqual(new Uint8Array(kiln.readImage(image)), new Uint8Array(18).fill(7));
  const mask = kiln.createImage(c, 3, 2, 1);
  kiln.writeImage(mask, new Uint8Array([0, 255, 0, 255, 0, 255]), "L");
  assert.deepEqual([...new Uint8Array(kiln.readImage(mask, "RGBA")).subarray(4, 8)], [255, 255, 255, 255]);
  kiln.close(c);
});

test("4096x4096 RGBA: one copy each way, timed", async () => {
  const c = await client();
  const w = 4096, h = 4096, src = pattern(w * h * 4, 3);
  const image = kiln.createImage(c, w, h, 4);
  const into = kiln.createImage(c, w, h, 4);
  const times = { write: [], echo: [], read: [], readInto: [] };
  const reused = new Uint8Array(w * h * 4);
  for (let i = 0; i < 3; i++) {
    let t = process.hrtime.bigint();
    kiln.writeImage(image, src, "RGBA");
    times.write.push(Number(process.hrtime.bigint() - t) / 1e6);
    t = process.hrtime.bigint();
    await kiln.call(c, "image.echo", { image: kiln.imageRef(image), into: kiln.imageRef(into) });
    times.echo.push(Number(process.hrtime.bigint() - t) / 1e6);
    t = process.hrtime.bigint();
    const out = kiln.readImage(into, "RGBA");
    times.read.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (i === 0) assert.deepEqual(new Uint8Array(out), src);
    t = process.hrtime.bigint();
    assert.equal(kiln.readImage(into, "RGBA", reused), undefined);
    times.readInto.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (i === 0) assert.deepEqual(reused, src);
  }
  assert.throws(() => kiln.readImage(into, "RGB", reused), /needs 50331648/);
  const best = (a) => Math.min(...a).toFixed(1);
  console.log(`# 4096x4096 RGBA: ArrayBuffer->shm ${best(times.write)} ms, image.echo ${best(times.echo)} ms, ` +
              `shm->new ArrayBuffer ${best(times.read)} ms, shm->reused buffer ${best(times.readInto)} ms (best of 3)`);
  kiln.close(c);
});

test("errors reach JavaScript as Errors with kilnd's message and code", async () => {
  const c = await client();
  await assert.rejects(kiln.call(c, "no.such.method", {}), (e) => e instanceof Error && e.code === -32601 && /no.such.method/.test(e.message));
  await assert.rejects(kiln.call(c, "generate", { model: "tiny", prompt: "x", steps: "many" }),
    (e) => e.code === -32602 && /steps/.test(e.message));
  await assert.rejects(kiln.call(c, "generate", { model: "no-such-model", prompt: "x" }),
    (e) => e.code !== 0 && /no-such-model/.test(e.message));
  // Wrong arguments are TypeErrors thrown at once, naming the argument.
  assert.throws(() => kiln.call({}, "status"), (e) => e instanceof TypeError && /client/.test(e.message));
  assert.throws(() => kiln.createImage(c, 0, 5), (e) => e instanceof TypeError && /width/.test(e.message));
  const image = kiln.createImage(c, 4, 4, 4);
  assert.throws(() => kiln.writeImage(image, new Uint8Array(10)), (e) => /10 bytes/.test(e.message) && /64/.test(e.message));
  assert.throws(() => kiln.writeImage(image, "pixels"), TypeError);
  assert.throws(() => kiln.call(image, "status"), (e) => e instanceof TypeError && /client, not a Kiln image/.test(e.message));
  kiln.releaseImage(image);
  assert.throws(() => kiln.readImage(image), /released/);
  assert.throws(() => kiln.openImage({ shm: "kiln.nope", width: 1, height: 1, channels: 4, dtype: "u8", stride: 4 }),
    (e) => e.code === -32010);
  assert.throws(() => kiln.readFile("/nonexistent/kiln.png"), /cannot read/);
  kiln.close(c);
});

test("a generate job through the bridge: notifications on the JavaScript thread, previews, the result image", async () => {
  const c = await client();
  const events = [];
  kiln.onNotification(c, (method, params) => events.push({ method, params }));
  await kiln.call(c, "jobs.subscribe", {});
  const job = await kiln.call(c, "generate", { model: "tiny", prompt: "a red bottle", steps: 4, seed: 7, width: 64, height: 64,
    sampler: "Euler", preview_every: 1, save: false });
  await waitFor(() => events.some((e) => e.method === "job.state" && e.params.job.id === job.id && e.params.job.state === "done"),
    60000, "the generate job");
  const mine = events.filter((e) => e.params.job && e.params.job.id === job.id);
  const steps = mine.filter((e) => e.method === "job.progress").map((e) => e.params.job.progress.step);
  assert.ok(steps.length >= 1, "progress notifications arrived");
  assert.deepEqual(steps, [...steps].sort((a, b) => a - b), "in order");
  const preview = mine.find((e) => e.params.preview);
  assert.ok(preview, "a preview image came with the progress");
  const done = mine.find((e) => e.params.job.state === "done").params.job;
  const result = kiln.openImage(done.result.images[0].image);
  const info = kiln.imageInfo(result);
  assert.deepEqual([info.width, info.height], [64, 64]);
  const px = new Uint8Array(kiln.readImage(result, "RGBA"));
  assert.equal(px.length, 64 * 64 * 4);
  assert.ok(px.some((v, i) => i % 4 !== 3 && v !== px[0]), "the image is not one flat colour");
  kiln.releaseImage(result);
  kiln.onNotification(c, null);
  kiln.close(c);
});

test("a product shot through the bridge: scene and composite, the product's opaque pixels exact", async (t) => {
  const c = await client();
  if (!(kiln.serverInfo(c).methods || []).includes("shot")) {
    t.skip("this kilnd has no 'shot' method");
    return;
  }
  const pw = 24, ph = 20, product = new Uint8Array(pw * ph * 4);
  for (let y = 0; y < ph; y++)
    for (let x = 0; x < pw; x++) {
      const inside = x >= 4 && x < 20 && y >= 2 && y < 18;
      product.set(inside ? [200, 30 + x, 40 + y, 255] : [0, 0, 0, 0], (y * pw + x) * 4);
    }
  const image = kiln.createImage(c, pw, ph, 4);
  kiln.writeImage(image, product, "RGBA");
  await kiln.call(c, "jobs.subscribe", {});
  const job = await kiln.call(c, "shot", { model: "tiny", prompt: "on a table", product: kiln.imageRef(image), width: 64, height: 64,
    x: 20, y: 30, scale: 1, steps: 3, seed: 5, count: 2, sampler: "Euler", save: false });
  let record;
  await waitFor(async () => {
    record = await kiln.call(c, "jobs.get", { id: job.id });
    return ["done", "failed", "cancelled"].includes(record.state);
  }, 90000, "the shot job");
  assert.equal(record.state, "done", JSON.stringify(record.error));
  assert.equal(record.result.images.length, 2);
  assert.deepEqual([record.result.placement.x, record.result.placement.y], [20, 30]);
  const composite = new Uint8Array(kiln.readImage(kiln.openImage(record.result.images[0].image), "RGB"));
  for (let y = 2; y < 18; y++)
    for (let x = 4; x < 20; x++) {
      const o = ((30 + y) * 64 + 20 + x) * 3, s = (y * pw + x) * 4;
      assert.deepEqual([...composite.subarray(o, o + 3)], [...product.subarray(s, s + 3)], `product pixel ${x},${y}`);
    }
  kiln.releaseImage(image);
  kiln.close(c);
});

test("connect starts kilnd when none runs (as every Kiln client does), in the socket and data dir asked for", async () => {
  const root = fs.mkdtempSync(path.join("/tmp", "kps-auto-"));
  const socket = path.join(root, "run", "kilnd.sock");
  try {
    const c = kiln.createClient({ socket, dataDir: path.join(root, "data"), daemon: process.env.KILN_TEST_KILND, startTimeoutMs: 30000 });
    const info = await kiln.connect(c);
    assert.ok(info.pid > 0, "a daemon answered");
    assert.ok(fs.existsSync(path.join(root, "data")), "with the data dir asked for");
    assert.equal(kiln.socketPath(c), socket);
    await kiln.call(c, "shutdown", {});
    kiln.close(c);
    await waitFor(() => !fs.existsSync(socket), 20000, "the daemon it started to stop");
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("a killed daemon is reported: disconnect handler, pending calls rejected, reconnect after a restart", async () => {
  const own = await new Daemon("kill").start();
  try {
    const c = kiln.createClient({ socket: own.socket, autostart: false });
    await kiln.connect(c);
    const reasons = [];
    kiln.onDisconnect(c, (reason) => reasons.push(reason));
    await kiln.call(c, "models.add", { path: tinyModel(), name: "tiny" });
    await kiln.call(c, "jobs.simulate", { steps: 1000, step_ms: 50 });
    const image = kiln.createImage(c, 8, 8, 4);
    await own.kill9();
    await waitFor(() => reasons.length > 0, 10000, "the disconnect handler");
    assert.equal(kiln.isConnected(c), false);
    await assert.rejects(kiln.call(c, "status", {}), (e) => e instanceof Error && e.code === -32090 && /kilnd/.test(e.message));
    // A block the client made stays usable: it is the client's, not the daemon's.
    kiln.writeImage(image, new Uint8Array(256).fill(1));
    await own.start();
    const info = await kiln.connect(c);
    assert.ok(info.version, "connected again");
    const status = await kiln.call(c, "status", {});
    assert.ok(status, "answers after the restart");
    kiln.releaseImage(image);
    kiln.close(c);
  } finally {
    await own.remove();
  }
});

test("a client that closes mid-job: the job finishes for the others, who read its result", async () => {
  const c = await client("leaver");
  const other = await client("watcher");
  const image = kiln.createImage(c, 64, 64, 3);
  kiln.writeImage(image, pattern(64 * 64 * 3, 1), "RGB");
  const job = await kiln.call(c, "generate", { model: "tiny", prompt: "x", steps: 6, seed: 1, width: 64, height: 64,
    init_image: kiln.imageRef(image), strength: 0.5, sampler: "Euler", save: false });
  kiln.releaseImage(image);
  kiln.close(c);
  let record;
  await waitFor(async () => {
    record = await kiln.call(other, "jobs.get", { id: job.id });
    return record.state === "done" || record.state === "failed";
  }, 60000, "the job of the client that left");
  assert.equal(record.state, "done", JSON.stringify(record.error));
  const result = kiln.openImage(record.result.images[0].image);
  assert.equal(kiln.imageInfo(result).width, 64);
  kiln.releaseImage(result);
  await assert.rejects(kiln.call(c, "status", {}), (e) => e.code === -32090);
  kiln.close(other);
});

// A Photoshop on another machine than kilnd: a LoRA's grid and the training samples are files of
// kilnd's machine, which the panel reads through downloadFile (UXP cannot reach them otherwise).
test("a remote kilnd's files reach the panel: downloadFile, and Session.readDaemonFile downloads once (fresh: again)", async () => {
  const remote = await new Daemon("rem", null, ["--listen", "127.0.0.1:0"]).start();
  const config = fs.mkdtempSync(path.join("/tmp", "kps-cfg-"));
  const saved = process.env.KILN_CONFIG_DIR;
  process.env.KILN_CONFIG_DIR = config; // the pin of this test only
  try {
    const local = kiln.createClient({ socket: remote.socket, autostart: false, name: "ps-remote-setup" });
    await kiln.connect(local);
    const { token } = await kiln.call(local, "remote.tokens.create", { name: "ps-panel" });
    const url = "kiln+tls://" + (await kiln.call(local, "status")).remote.address;
    fs.mkdirSync(path.join(remote.dataDir, "outputs"), { recursive: true });
    const grid = path.join(remote.dataDir, "outputs", "grid.png");
    fs.writeFileSync(grid, "first grid");
    const text = (bytes) => Buffer.from(bytes).toString();

    const { Session } = panel("core/session.js");
    const session = new Session(kiln, { remote: url, token, autostart: false, name: "ps-remote-panel" });
    await session.ensureConnected();
    assert.equal(session.isRemote, true);
    assert.equal(text(await session.readDaemonFile(grid)), "first grid");
    fs.writeFileSync(grid, "second grid, drawn again");
    assert.equal(text(await session.readDaemonFile(grid)), "first grid", "downloaded once for the session");
    assert.equal(text(await session.readDaemonFile(grid, true)), "second grid, drawn again", "fresh: downloaded again");
    await assert.rejects(session.readDaemonFile(path.join(config, "known_daemons.json")), /outputs\//,
      "only results may be downloaded");
    session.close();

    // The export itself, to a path of the caller's; with a local kilnd it copies.
    const copy = path.join(config, "copy.png");
    assert.equal(await kiln.downloadFile(local, grid, copy), copy);
    assert.equal(fs.readFileSync(copy, "utf8"), "second grid, drawn again");
    assert.throws(() => kiln.downloadFile(local), (e) => e instanceof TypeError && /daemonPath/.test(e.message));
    const here = new Session(kiln, { socket: remote.socket, autostart: false, name: "ps-local-panel" });
    await here.ensureConnected();
    assert.equal(here.isRemote, false);
    assert.equal(text(await here.readDaemonFile(grid)), "second grid, drawn again", "read where it is");
    here.close();
    kiln.close(local);
  } finally {
    if (saved === undefined) delete process.env.KILN_CONFIG_DIR;
    else process.env.KILN_CONFIG_DIR = saved;
    fs.rmSync(config, { recursive: true, force: true });
    await remote.remove();
  }
});
