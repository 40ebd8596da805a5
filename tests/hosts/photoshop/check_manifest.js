// Reads a UXP plugin folder's manifest.json the way Photoshop does before loading the plugin, and
// fails naming every problem: manifest v5 keys, the PS host and version (hybrid addons need 24.2,
// the Imaging API 24.4), the panel entry point that main.js sets up, icon files per scale, the
// addon entry and enableAddon permission, the files the manifest and index.html point at.
//   node check_manifest.js PLUGIN_DIR [--packaged]
// --packaged also checks a built plugin (an unpacked .ccx): compiled JS present, and every
// .uxpaddon in the platform folder Photoshop looks in (mac/x64, mac/arm64, win/x64).
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const dir = path.resolve(process.argv[2] || ".");
const packaged = process.argv.includes("--packaged");
const problems = [];
const notes = [];
const fail = (m) => problems.push(m);
const exists = (p) => fs.existsSync(path.join(dir, p));

function versionAtLeast(v, min) {
  const a = v.split(".").map(Number), b = min.split(".").map(Number);
  for (let i = 0; i < 3; i++) if ((a[i] || 0) !== (b[i] || 0)) return (a[i] || 0) > (b[i] || 0);
  return true;
}

let m;
try {
  m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
} catch (e) {
  console.error(`check_manifest: ${dir}/manifest.json cannot be read: ${e.message}`);
  process.exit(1);
}

const known = ["manifestVersion", "id", "name", "version", "main", "host", "entrypoints", "icons", "addon",
  "requiredPermissions", "featureFlags", "strings"];
for (const k of Object.keys(m)) if (!known.includes(k)) fail(`unknown top-level key '${k}'`);
if (m.manifestVersion !== 5) fail(`manifestVersion must be 5, not ${m.manifestVersion}`);
if (typeof m.id !== "string" || !m.id) fail("id is missing");
if (typeof m.name !== "string" || !m.name) fail("name is missing");
if (!/^\d+\.\d+\.\d+$/.test(m.version || "")) fail(`version '${m.version}' is not major.minor.patch`);
if (typeof m.main !== "string" || !exists(m.main)) fail(`main '${m.main}' does not exist`);

const hosts = Array.isArray(m.host) ? m.host : [m.host];
const ps = hosts.find((h) => h && h.app === "PS");
if (!ps) fail("host has no entry with app 'PS'");
else {
  if (!/^\d+\.\d+\.\d+$/.test(ps.minVersion || "")) fail(`host minVersion '${ps.minVersion}' is not a version`);
  else {
    if (!versionAtLeast(ps.minVersion, "24.2.0")) fail(`host minVersion ${ps.minVersion}: hybrid addons need Photoshop 24.2.0 or later`);
    if (!versionAtLeast(ps.minVersion, "24.4.0")) fail(`host minVersion ${ps.minVersion}: the Imaging API the panel uses needs 24.4.0`);
  }
  if (!ps.data || ps.data.apiVersion !== 2) fail("host.data.apiVersion must be 2 (executeAsModal)");
}

const mainJs = exists("main.js") ? fs.readFileSync(path.join(dir, "main.js"), "utf8") : "";
if (!Array.isArray(m.entrypoints) || !m.entrypoints.length) fail("entrypoints is missing");
const ids = new Set();
for (const e of m.entrypoints || []) {
  if (!["panel", "command"].includes(e.type)) fail(`entrypoint type '${e.type}'`);
  if (!e.id || ids.has(e.id)) fail(`entrypoint id '${e.id}' missing or repeated`);
  ids.add(e.id);
  if (!e.label || typeof e.label.default !== "string") fail(`entrypoint '${e.id}' has no label.default`);
  if (e.type === "panel" && !new RegExp(`\\b${e.id}\\s*:`).test(mainJs)) fail(`main.js does not set up the panel '${e.id}'`);
  for (const size of ["minimumSize", "maximumSize", "preferredDockedSize", "preferredFloatingSize"])
    if (e[size] && !(e[size].width > 0 && e[size].height > 0)) fail(`entrypoint '${e.id}' ${size}`);
}

function checkIcons(icons, where) {
  for (const icon of icons || []) {
    if (!(icon.width > 0 && icon.height > 0)) fail(`${where}: icon without a size`);
    const scales = icon.scale || [1];
    for (const s of scales) {
      const file = icon.path.replace(/(\.[a-z]+)$/i, `@${s}x$1`);
      if (!exists(file) && !(scales.length === 1 && exists(icon.path))) fail(`${where}: icon file ${file} is missing`);
    }
  }
}
checkIcons(m.icons, "icons");
for (const e of m.entrypoints || []) checkIcons(e.icons, `entrypoint '${e.id}'`);

const addonName = m.addon && m.addon.name;
if (!addonName || !/\.uxpaddon$/.test(addonName)) fail("addon.name must name the .uxpaddon file");
const perms = m.requiredPermissions || {};
if (addonName && perms.enableAddon !== true) fail("requiredPermissions.enableAddon must be true to load the addon");
if (perms.localFileSystem !== undefined && !["plugin", "request", "fullAccess"].includes(perms.localFileSystem))
  fail(`requiredPermissions.localFileSystem '${perms.localFileSystem}'`);

const html = exists("index.html") ? fs.readFileSync(path.join(dir, "index.html"), "utf8") : "";
for (const [, src] of html.matchAll(/<(?:script|link)[^>]+(?:src|href)="([^"]+)"/g)) if (!exists(src)) fail(`index.html refers to missing ${src}`);
for (const [, req] of mainJs.matchAll(/require\("(\.[^"]+)"\)/g)) if (packaged && !exists(req)) fail(`main.js requires missing ${req}`);

if (packaged) {
  const platforms = ["mac/x64", "mac/arm64", "win/x64"];
  const found = [];
  const walk = (rel) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith(".uxpaddon")) found.push(p);
    }
  };
  walk("");
  for (const p of found) {
    const folder = path.posix.dirname(p);
    if (!platforms.includes(folder)) fail(`${p}: a .uxpaddon must be in ${platforms.join(", ")}`);
    else if (path.posix.basename(p) !== addonName) fail(`${p}: the manifest's addon is ${addonName}`);
  }
  if (!found.length) notes.push("holds no .uxpaddon (built only with Adobe's UXP Hybrid Plugin SDK on Windows or macOS)");
  else notes.push(`addons for ${found.map((p) => path.posix.dirname(p)).join(", ")}`);
  if (exists("node_modules") || exists("src") || exists("package-lock.json")) fail("the package holds build-only files");
}

if (problems.length) {
  console.error(`check_manifest: ${dir}:\n  ` + problems.join("\n  "));
  process.exit(1);
}
console.log(`check_manifest: ${dir}: Photoshop ${ps.minVersion}+, panel '${[...ids].join(", ")}', addon ${addonName}` +
  (notes.length ? `; ${notes.join("; ")}` : ""));
