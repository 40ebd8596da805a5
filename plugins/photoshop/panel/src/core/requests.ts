// Building kilnd requests from what the panel holds, with plain-language errors. No Photoshop
// API here: the same rules as the Krita plugin's kiln.requests (shared/bindings/python/kiln/
// requests.py), parameter names as in shared/protocol/methods.cpp.

import { ImageRef } from "./bridge";
import { UserError } from "./errors";
import { SD1_SIZE, areaNote } from "./sizes";

// The samplers kilnd's `generate` accepts (A1111 names).
export const SAMPLERS = ["Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DDIM"] as const;
// Presets of datasets and training (WORKFLOW.md; `--preset` of the CLI).
export const PRESETS = ["product", "character", "anime", "style", "custom"] as const;
export const BACKGROUNDS = ["white", "grey"] as const;
export type Mode = "txt2img" | "img2img" | "inpaint" | "shot";
export const MODES: Mode[] = ["txt2img", "img2img", "inpaint", "shot"];
export const MODE_LABELS: Record<Mode, string> = {
  txt2img: "txt2img",
  img2img: "img2img",
  inpaint: "inpaint",
  shot: "product shot",
};

export const DEFAULT_LORA_WEIGHT = 0.8;
export const SIZE_MULTIPLE = 8; // SD's VAE works on 8x8 blocks: kilnd refuses other sizes
export const INPAINT_CONTEXT = 32; // pixels around a selection that inpainting sees

// ---------------------------------------------------------------------------------------------
// Sizes

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Nearest multiple, halves rounded up, at least one multiple. */
export function roundToMultiple(n: number, multiple = SIZE_MULTIPLE): number {
  return Math.max(multiple, Math.floor(n / multiple + 0.5) * multiple);
}

/** Where a generation goes on the canvas after rounding, and what was asked for. */
export interface Region extends Rect {
  requested: Rect;
  note: string; // plain-language note when rounding changed the size
}

/**
 * The area to generate for a selection or canvas rectangle: grown by `context` pixels on every
 * side (inpainting sees around the mask), clamped to the canvas, then each side rounded to the
 * nearest multiple of 8 and kept inside the canvas where it fits (shifted, not cut). `native`:
 * the model's own size (sizes.ts: 512 SD 1.x, 1024 SDXL), for the note about the area.
 */
export function planRegion(rect: Rect, canvasWidth: number, canvasHeight: number, context = 0,
                           native = SD1_SIZE): Region {
  let { x, y, width, height } = rect;
  if (width <= 0 || height <= 0)
    throw new UserError("The selection is empty: select an area, or deselect to use the whole canvas.");
  const requested = { x, y, width, height };
  if (context) {
    const x0 = Math.max(0, x - context), y0 = Math.max(0, y - context);
    const x1 = Math.min(canvasWidth, x + width + context), y1 = Math.min(canvasHeight, y + height + context);
    x = x0;
    y = y0;
    width = x1 - x0;
    height = y1 - y0;
  }
  const w = roundToMultiple(width), h = roundToMultiple(height);
  // Centre the rounding, then shift back inside [0, limit] when the new size fits.
  const place = (start: number, size: number, newSize: number, limit: number) => {
    let s = start - Math.floor((newSize - size) / 2);
    if (newSize <= limit) s = Math.min(Math.max(s, 0), limit - newSize);
    return s;
  };
  const nx = place(x, width, w, canvasWidth), ny = place(y, height, h, canvasHeight);
  let note = "";
  if (w !== width || h !== height)
    note = `${width}x${height} rounded to ${w}x${h} (sizes must be multiples of ${SIZE_MULTIPLE}).`;
  const area = areaNote(w, h, native);
  if (area) note += (note ? " " : "") + area;
  return { x: nx, y: ny, width: w, height: h, requested, note };
}

/** "96x64 from the selection (93x61, rounded to multiples of 8)": the panel's Size line. */
export function describeRegion(region: Region, source: "selection" | "canvas"): string {
  const r = region.requested;
  const base = `${region.width}x${region.height} from the ${source}`;
  if (r.width === region.width && r.height === region.height) return base;
  return `${base} (${r.width}x${r.height}, rounded to multiples of ${SIZE_MULTIPLE})`;
}

// ---------------------------------------------------------------------------------------------
// Prompts

const LORA_TAG = /<lora:([^:>]+)(?::([^:>]*))?(?::[^>]*)?>/g;

/** [name, weight] of the <lora:name:weight> tags in a prompt (weight 1 when absent). */
export function loraTags(prompt: string): Array<[string, number]> {
  const tags: Array<[string, number]> = [];
  for (const m of prompt.matchAll(LORA_TAG)) {
    const w = m[2] === undefined || m[2] === "" ? 1 : Number(m[2]);
    tags.push([m[1], Number.isFinite(w) ? w : 1]);
  }
  return tags;
}

export function formatWeight(weight: number): string {
  const text = weight.toFixed(2).replace(/0+$/, "").replace(/\.$/, "");
  return text === "" || text === "-0" ? "0" : text;
}

/**
 * Inserts <lora:name:weight>. A tag for the same LoRA is replaced where it stands; otherwise the
 * tag goes at the cursor (default: the end), separated by ", ". Returns the prompt and cursor.
 */
export function insertLoraTag(
  prompt: string,
  name: string,
  weight = DEFAULT_LORA_WEIGHT,
  cursor?: number,
): { prompt: string; cursor: number } {
  if (!name || /[<>:]/.test(name)) throw new UserError(`'${name}' cannot be used in a <lora:...> tag.`);
  const tag = `<lora:${name}:${formatWeight(weight)}>`;
  for (const m of prompt.matchAll(LORA_TAG)) {
    if (m[1] === name && m.index !== undefined) {
      return { prompt: prompt.slice(0, m.index) + tag + prompt.slice(m.index + m[0].length), cursor: m.index + tag.length };
    }
  }
  const pos = cursor === undefined ? prompt.length : Math.max(0, Math.min(Math.trunc(cursor), prompt.length));
  const before = prompt.slice(0, pos);
  let after = prompt.slice(pos);
  const sepBefore =
    before.trim() && !before.trimEnd().endsWith(",") ? ", " : before && !before.endsWith(" ") ? " " : "";
  const sepAfter = after.trim() && !after.trimStart().startsWith(",") ? ", " : "";
  if (sepAfter) after = after.trimStart();
  return { prompt: before + sepBefore + tag + sepAfter + after, cursor: before.length + sepBefore.length + tag.length };
}

// ---------------------------------------------------------------------------------------------
// Generation and product shots

export interface GenerateSettings {
  model: string;
  prompt: string;
  negative: string;
  seed: number; // -1: kilnd picks one
  steps: number;
  sampler: string;
  cfg: number;
  mode: Mode;
  strength: number; // img2img / inpaint denoising strength
  clipSkip: number;
  maskBlur: number;
  previewEvery: number;
  save: boolean;
  // Product shots only:
  count: number; // variations, seed + k
  edge: number; // pixels of the product's edge repainted for shadow and transition
  harmonize: number; // 0..0.5: a light pass so light and colour fit; the interior is kept
}

export function defaultGenerateSettings(): GenerateSettings {
  return {
    model: "",
    prompt: "",
    negative: "",
    seed: -1,
    steps: 20,
    sampler: "Euler a",
    cfg: 7,
    mode: "txt2img",
    strength: 0.75,
    clipSkip: 1,
    maskBlur: 4,
    previewEvery: 5,
    save: true,
    count: 1,
    edge: 4,
    harmonize: 0,
  };
}

export type Params = Record<string, unknown>;

function checkCommon(s: GenerateSettings, width: number, height: number): void {
  if (!s.model) throw new UserError("Pick a base model first (or add one with 'Add model...').");
  if (!s.prompt.trim()) throw new UserError("Write a prompt first.");
  if (!(SAMPLERS as readonly string[]).includes(s.sampler))
    throw new UserError(`Unknown sampler '${s.sampler}'; use one of: ${SAMPLERS.join(", ")}.`);
  if (width % SIZE_MULTIPLE || height % SIZE_MULTIPLE)
    throw new UserError(`The size must be a multiple of 8 (got ${width}x${height}).`);
  if (!Number.isInteger(s.steps) || s.steps < 1 || s.steps > 500) throw new UserError("Steps must be between 1 and 500.");
  if (!(s.cfg >= 0 && s.cfg <= 100)) throw new UserError("CFG scale must be between 0 and 100.");
  if (!Number.isInteger(s.seed) || s.seed < -1) throw new UserError("The seed must be a whole number (-1 picks one).");
}

function commonParams(s: GenerateSettings, width: number, height: number): Params {
  const params: Params = {
    model: s.model,
    prompt: s.prompt,
    sampler: s.sampler,
    steps: Math.trunc(s.steps),
    cfg: s.cfg,
    seed: Math.trunc(s.seed),
    width,
    height,
    preview_every: Math.trunc(s.previewEvery),
    save: s.save,
  };
  if (s.negative.trim()) params.negative = s.negative;
  if (s.clipSkip !== 1) params.clip_skip = Math.trunc(s.clipSkip);
  return params;
}

/** The `generate` params at width x height; init and mask are image references. */
export function generateParams(
  s: GenerateSettings,
  width: number,
  height: number,
  init?: ImageRef | null,
  mask?: ImageRef | null,
): Params {
  if (s.mode === "shot") throw new UserError("A product shot is sent with shotParams, not generateParams.");
  if (!MODES.includes(s.mode)) throw new UserError(`Unknown mode '${s.mode}'.`);
  checkCommon(s, width, height);
  const params = commonParams(s, width, height);
  if (s.mode === "img2img" || s.mode === "inpaint") {
    if (!init) throw new UserError(`${s.mode} needs a source image.`);
    if (!(s.strength >= 0 && s.strength <= 1)) throw new UserError("Denoising strength must be between 0 and 1.");
    params.init_image = init;
    params.strength = s.strength;
  }
  if (s.mode === "inpaint") {
    if (!mask) throw new UserError("Inpainting repaints the selection: select an area first.");
    params.mask = mask;
    params.mask_blur = s.maskBlur;
  }
  return params;
}

/**
 * The `shot` params: a width x height scene around `product` (an RGBA image reference), whose
 * top-left corner goes at (x, y) of the output at `scale` (1 keeps its pixels 1:1, so the
 * product layer stays where it is).
 */
export function shotParams(
  s: GenerateSettings,
  width: number,
  height: number,
  product: ImageRef | null,
  x: number,
  y: number,
  scale = 1,
): Params {
  checkCommon(s, width, height);
  if (!product) throw new UserError("A product shot needs the product: select its layer (with transparency).");
  if (!Number.isInteger(s.count) || s.count < 1 || s.count > 16) throw new UserError("Variations must be between 1 and 16.");
  if (!Number.isInteger(s.edge) || s.edge < 0 || s.edge > 64) throw new UserError("The edge must be between 0 and 64 pixels.");
  if (!(s.harmonize >= 0 && s.harmonize <= 0.5)) throw new UserError("Harmonize must be between 0 and 0.5.");
  if (!(scale > 0)) throw new UserError("The product's scale must be above 0.");
  const params = commonParams(s, width, height);
  Object.assign(params, { product, x: Math.trunc(x), y: Math.trunc(y), scale, count: s.count, edge: s.edge });
  if (s.harmonize > 0) params.harmonize = s.harmonize;
  return params;
}

/** "Kiln txt2img: a red bottle on marble (seed 1234)": the name of a result's layer. */
export function layerName(s: GenerateSettings, seed: unknown): string {
  let prompt = s.prompt.split(/\s+/).filter(Boolean).join(" ");
  if (prompt.length > 40) prompt = prompt.slice(0, 39) + "…";
  return `Kiln ${MODE_LABELS[s.mode]}: ${prompt} (seed ${seed ?? "?"})`;
}

// ---------------------------------------------------------------------------------------------
// Datasets and training

/** The daemon validates again; this catches what a user can fix before anything is sent. */
export function checkLibraryName(name: string | undefined, what = "name"): string {
  const n = (name || "").trim();
  if (!n) throw new UserError(`Give the ${what} a name.`);
  if (n.length > 64 || /[/\\\0]/.test(n) || n === "." || n === "..")
    throw new UserError(`The ${what} '${n}' cannot be used: at most 64 characters, no '/' or '\\'.`);
  return n;
}

/** A trigger word is one token (kohya's folder is '<repeats>_<trigger>'). */
export function checkTrigger(trigger: string | undefined): string {
  const t = (trigger || "").trim();
  if (t && !/^[\p{L}\p{N}_-]+$/u.test(t))
    throw new UserError("The trigger word must be a single word (letters, digits, '_' or '-'), e.g. 'sks_speaker'.");
  return t;
}

export interface DatasetSettings {
  name: string;
  trigger: string;
  preset: string;
  background: string; // product preset: what transparent pixels become
  resolution?: number;
  repeats?: number;
}

export function datasetCreateParams(s: DatasetSettings): Params {
  const name = checkLibraryName(s.name, "dataset");
  if (!(PRESETS as readonly string[]).includes(s.preset))
    throw new UserError(`Unknown preset '${s.preset}'; use one of: ${PRESETS.join(", ")}.`);
  const params: Params = { name, preset: s.preset };
  const trigger = checkTrigger(s.trigger);
  if (trigger) params.trigger = trigger;
  if (s.preset === "product" && (BACKGROUNDS as readonly string[]).includes(s.background)) params.background = s.background;
  if (s.resolution) {
    if (s.resolution % 64 || s.resolution < 256 || s.resolution > 2048)
      throw new UserError("The dataset resolution must be a multiple of 64 between 256 and 2048.");
    params.resolution = s.resolution;
  }
  if (s.repeats) params.repeats = Math.trunc(s.repeats);
  return params;
}

/** One entry of datasets.add_images' `images`: kilnd keeps `name` as the image's source name. */
export function datasetImageEntry(image: ImageRef, sourceName?: string, caption?: string): Params {
  const entry: Params = { image };
  if (sourceName) entry.name = sourceName;
  if (caption) entry.caption = caption;
  return entry;
}

export interface TrainSettings {
  baseModel: string;
  dataset: string;
  name: string;
  preset: string;
  overrides: Record<string, unknown>; // kohya names -> values (the request's `config`)
  set: string[]; // "key=value", applied last (kiln train --set)
}

export function trainParams(s: TrainSettings): Params {
  if (!s.baseModel) throw new UserError("Pick a base model to train on.");
  const dataset = checkLibraryName(s.dataset, "dataset");
  const name = checkLibraryName(s.name || s.dataset, "LoRA");
  if (!(PRESETS as readonly string[]).includes(s.preset)) throw new UserError(`Unknown preset '${s.preset}'.`);
  const params: Params = { base: s.baseModel, dataset, name, preset: s.preset };
  if (Object.keys(s.overrides).length) params.config = { ...s.overrides };
  if (s.set.length) {
    const bad = s.set.filter((item) => typeof item !== "string" || !item.includes("="));
    if (bad.length) throw new UserError(`Training overrides are 'key=value' strings, not ${bad.map((b) => JSON.stringify(b)).join(", ")}.`);
    params.set = [...s.set];
  }
  return params;
}
