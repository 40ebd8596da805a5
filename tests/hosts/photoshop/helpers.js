// Shared by the Photoshop panel's Node tests: a real kilnd in private folders (the Node twin of
// tests/integration/daemon_process.h), the Node-API build of the bridge, the compiled panel, and
// the stand-in `photoshop` / `uxp` modules for host/ code.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const Module = require("node:module");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name} (ctest does; see tests/hosts/photoshop/CMakeLists.txt)`);
  return value;
}

const fixtures = () => env("KILN_TEST_FIXTURES");
const tinyModel = () => path.join(fixtures(), "sd15-tiny", "model.safetensors");
const bridge = () => require(env("KILN_PS_ADDON"));
const panel = (module) => require(path.join(env("KILN_PS_PANEL_DIST"), module));

/** `require("photoshop")` and `require("uxp")` in host/ code get the stand-ins. */
function installStandins() {
  const standins = { photoshop: path.join(__dirname, "standin", "photoshop.js"), uxp: path.join(__dirname, "standin", "uxp.js") };
  if (Module._resolveFilename.kilnStandins) return require(standins.photoshop);
  const original = Module._resolveFilename;
  const resolve = function (request, ...rest) {
    if (Object.prototype.hasOwnProperty.call(standins, request)) return standins[request];
    return original.call(this, request, ...rest);
  };
  resolve.kilnStandins = true;
  Module._resolveFilename = resolve;
  const ps = require(standins.photoshop);
  ps.standin.setFileReader((p) => new Uint8Array(fs.readFileSync(p)));
  return ps;
}

function canConnect(socket) {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A kilnd in its own socket and data folders; `root` reuses an earlier one's (restarts). */
class Daemon {
  constructor(name = "ps", root = null, extraArgs = []) {
    this.extraArgs = extraArgs; // e.g. ["--listen", "127.0.0.1:0"] for a remote daemon
    // Short: a socket path must fit in ~107 bytes.
    this.root = root ?? fs.mkdtempSync(path.join("/tmp", `kps-${name}-`));
    this.socket = path.join(this.root, "run", "kilnd.sock");
    this.dataDir = path.join(this.root, "data");
    this.proc = null;
    this.stderr = "";
  }

  async start(timeoutMs = 30000) {
    this.stderr = "";
    this.proc = spawn(env("KILN_TEST_KILND"), ["--socket", this.socket, "--data-dir", this.dataDir, "--quiet", ...this.extraArgs], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE" },
    });
    this.proc.stderr.on("data", (d) => (this.stderr += d));
    let exited = null;
    this.proc.once("exit", (code, signal) => (exited = { code, signal }));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`kilnd exited during start-up (${JSON.stringify(exited)}): ${this.stderr}`);
      if (await canConnect(this.socket)) return this;
      await sleep(20);
    }
    throw new Error(`kilnd did not answer on ${this.socket} within ${timeoutMs} ms`);
  }

  get running() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get pid() {
    return this.proc ? this.proc.pid : null;
  }

  /** SIGKILL, as a crash: no goodbye on the socket's other end. */
  async kill9() {
    if (!this.running) return;
    const gone = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGKILL");
    await gone;
  }

  async stop() {
    if (this.running) {
      const gone = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 20000);
      await gone;
      clearTimeout(timer);
    }
  }

  async remove() {
    await this.stop();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** Resolves when `pred()` is true; rejects with `what` after `ms`. */
async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(10);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Names of this user's Kiln shared-memory blocks created by process `pid`. */
function shmBlocksOf(pid) {
  const uid = os.userInfo().uid;
  return fs.readdirSync("/dev/shm").filter((n) => n.startsWith(`kiln.${uid}.${pid}.`));
}

module.exports = { env, fixtures, tinyModel, bridge, panel, installStandins, Daemon, waitFor, sleep, shmBlocksOf };
