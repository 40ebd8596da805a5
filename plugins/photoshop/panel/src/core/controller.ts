// What the panel's buttons do, without the widgets or Photoshop (the twin of the Krita plugin's
// controller.py): gather pixels through a Canvas (host/ implements it with Photoshop), build
// requests (requests.ts), follow jobs through the Session, and put results back as layers. The
// panel's UI (ui/) calls these methods; the tests drive the same methods with a stand-in canvas.

import { ImageHandle, ImageRef } from "./bridge";
import { Canvas, DocumentInfo, LayerInfo, NewLayer } from "./canvas";
import { Emitter } from "./emitter";
import { ErrorCode, UnsupportedDocument, UserError, toUserError } from "./errors";
import { JobRecord, Progress, describe } from "./jobs";
import { Pixels, anySet, contentBounds, crop, hasTransparency, multiplyAlpha, placeInto } from "./pixels";
import {
  DatasetSettings, GenerateSettings, INPAINT_CONTEXT, Params, Rect, Region, TrainSettings, datasetCreateParams,
  datasetImageEntry, describeRegion, generateParams, layerName, planRegion, shotParams, trainParams,
} from "./requests";
import { Session } from "./session";
import { ModelEntry, SD1_SIZE, modelSizes } from "./sizes";

/** A preview for the panel: pixels of a running job, or a training sample's PNG; `of` says whose. */
export type Preview = ({ kind: "pixels"; pixels: Pixels } | { kind: "png"; bytes: Uint8Array; path: string }) & {
  of: "generate" | "train";
};

export interface LoraInfo {
  name: string;
  triggerWords: string[];
  preview: string | null; // a PNG to show for it (its validation grid), when there is one
  epochs: number;
}

export interface ControllerEvents {
  status: [text: string];
  error: [text: string];
  connection: [connected: boolean, line: string];
  preview: [preview: Preview];
  progress: [step: number, total: number];
  models: [names: string[]];
  loras: [loras: LoraInfo[]];
  datasets: [names: string[]];
  datasetShown: [dataset: any, imported: DatasetImport | null];
  generationFinished: [layers: LayerInfo[], record: JobRecord];
  trainingFinished: [record: JobRecord];
  gridOpened: [doc: DocumentInfo, path: string];
  busy: [what: "generate" | "train" | "dataset", busy: boolean];
}

interface GenerationJob {
  id: string;
  docId: number;
  relativeTo: number | null; // the layer it was made from (the product, for a shot)
  region: Region;
  settings: GenerateSettings;
  mask: Pixels | null;
  inputs: Array<ImageHandle | null>; // sent images, released when the job ends
}

interface TrainingJob {
  id: string;
  name: string;
  gridPrompt: string;
  lastSample: string;
}

export interface DatasetImport {
  name: string;
  sources: string[]; // layer names sent, in order
  skipped: Array<[string, string]>; // (layer name, why)
  jobId: string | null;
  inputs: ImageHandle[];
}

const CANVAS_PAPER: [number, number, number] = [255, 255, 255];

function isJobRecord(v: any): v is JobRecord {
  return v && typeof v === "object" && "id" in v && "state" in v && "type" in v;
}

export class Controller {
  readonly events = new Emitter<ControllerEvents>();
  generation: GenerationJob | null = null;
  training: TrainingJob | null = null;
  datasetImport: DatasetImport | null = null;
  lastGridPath: string | null = null;
  /** Extra lora.grid params (steps, strengths, width, height, seed...) for every grid. */
  gridOptions: Params = {};
  /** Each model's own size (512 SD 1.x, 1024 SDXL), from the last models.list. */
  private modelSizes = new Map<string, number>();

  constructor(readonly session: Session, readonly canvas: Canvas) {
    session.addDisconnectListener((reason) => this.onDisconnect(reason));
  }

  // -- connection ------------------------------------------------------------------------

  /** Connects (starting kilnd when needed) and says so on the status line. */
  async connect(): Promise<string> {
    const wasConnected = this.session.connected;
    await this.session.ensureConnected();
    const line = this.session.describeServer();
    if (!wasConnected) {
      this.events.emit("connection", true, line);
      // A training survives a daemon restart (kilnd resumes it): follow it again.
      if (this.training) this.followTraining(this.training);
    }
    return line;
  }

  private onDisconnect(reason: string): void {
    this.events.emit("connection", false, `Disconnected from kilnd: ${reason}`);
    if (reason.includes("client closed")) return; // we closed it ourselves
    const gen = this.generation;
    if (gen) {
      this.endGeneration(gen);
      this.events.emit(
        "error",
        `kilnd stopped while generating (${reason}); no layer was added. Click Reconnect (or generate again): ` +
          "Kiln starts the daemon again.",
      );
    }
    if (this.datasetImport) {
      const imp = this.datasetImport;
      this.datasetImport = null;
      this.session.release(...imp.inputs);
      this.events.emit("busy", "dataset", false);
      this.events.emit("error", `kilnd stopped while adding layers to '${imp.name}' (${reason}); add them again after reconnecting.`);
    }
    if (this.training)
      this.events.emit("status", `kilnd stopped during the training of '${this.training.name}'; it resumes when kilnd runs again.`);
  }

  private async call(method: string, params: object = {}): Promise<any> {
    await this.connect();
    return this.session.call(method, params);
  }

  private require(method: string, what: string): void {
    if (!this.session.hasMethod(method))
      throw new UserError(`This kilnd does not offer ${what} yet (no '${method}' method): update Kiln.`);
  }

  // -- library ---------------------------------------------------------------------------

  async refreshModels(): Promise<string[]> {
    const models = ((await this.call("models.list")).models ?? []) as ModelEntry[];
    const names = models.map((m) => m.name ?? "");
    this.modelSizes = modelSizes(models);
    this.events.emit("models", names);
    if (!names.length)
      this.events.emit("status", "kilnd has no models yet: 'Add model...' registers a .safetensors checkpoint (nothing is copied).");
    return names;
  }

  /** Registers a checkpoint file or diffusers folder (never copied). Returns its name. */
  async addModel(path: string): Promise<string> {
    if (!path) throw new UserError("Choose a .safetensors checkpoint or a diffusers folder.");
    const entry = await this.call("models.add", { path });
    await this.refreshModels();
    this.events.emit("status", `Added model '${entry.name ?? path}'.`);
    return entry.name ?? "";
  }

  async refreshLoras(): Promise<LoraInfo[]> {
    await this.connect();
    if (!this.session.hasMethod("loras.list")) {
      this.events.emit("loras", []);
      return [];
    }
    const loras = ((await this.call("loras.list")).loras ?? []) as any[];
    const list: LoraInfo[] = loras.map((l) => ({
      name: String(l.name ?? ""),
      triggerWords: Array.isArray(l.info?.trigger_words) ? l.info.trigger_words.map(String) : [],
      preview: typeof l.grid === "string" ? l.grid : null,
      epochs: Array.isArray(l.epochs) ? l.epochs.length : 0,
    }));
    this.events.emit("loras", list);
    return list;
  }

  async refreshDatasets(): Promise<string[]> {
    await this.connect();
    if (!this.session.hasMethod("datasets.list")) {
      this.events.emit("datasets", []);
      return [];
    }
    const sets = ((await this.call("datasets.list")).datasets ?? []) as Array<{ name?: string }>;
    const names = sets.map((d) => d.name ?? "");
    this.events.emit("datasets", names);
    return names;
  }

  // -- documents -------------------------------------------------------------------------

  /** The active document, checked: 8-bit RGB in sRGB (or untagged). Throws UnsupportedDocument. */
  checkedDocument(): DocumentInfo {
    const doc = this.canvas.activeDocument();
    if (!doc) throw new UserError("Open or create a document first.");
    if (doc.mode !== "RGB" || doc.bitsPerChannel !== 8)
      throw new UnsupportedDocument(
        `Kiln works on 8-bit RGB documents; '${doc.title}' is ${doc.mode} at ${doc.bitsPerChannel} bits per channel. ` +
          "Convert it (Image > Mode > RGB Color and 8 Bits/Channel), or let Kiln convert it.",
      );
    if (doc.profile && !/srgb/i.test(doc.profile))
      throw new UnsupportedDocument(
        `Kiln expects sRGB colours; '${doc.title}' uses the profile '${doc.profile}'. Convert it to sRGB ` +
          "(Edit > Convert to Profile), or let Kiln convert it.",
      );
    return doc;
  }

  /** What "let Kiln convert it" does: 8-bit RGB, sRGB, one undoable step. */
  async convertDocument(): Promise<void> {
    const doc = this.canvas.activeDocument();
    if (!doc) throw new UserError("Open or create a document first.");
    await this.canvas.convertToRgb8(doc.id);
    this.events.emit("status", `Converted '${doc.title}' to 8-bit sRGB.`);
  }

  /** The side `model` works at (512 SD 1.x, 1024 SDXL), from the last models.list. */
  nativeSize(model?: string): number {
    return this.modelSizes.get(model ?? "") ?? SD1_SIZE;
  }

  /** The area a generation with `model` would use now, and the Size line that says so. */
  async plannedRegion(mode: GenerateSettings["mode"], model?: string): Promise<{ region: Region; line: string }> {
    const doc = this.checkedDocument();
    const native = this.nativeSize(model);
    if (mode === "shot") {
      const region = planRegion({ x: 0, y: 0, width: doc.width, height: doc.height }, doc.width, doc.height, 0, native);
      return { region, line: describeRegion(region, "canvas") };
    }
    const sel = await this.canvas.selectionBounds(doc.id);
    if (mode === "inpaint" && !sel) throw new UserError("Inpainting repaints the selected area: select it first.");
    const rect = sel ?? { x: 0, y: 0, width: doc.width, height: doc.height };
    const region = planRegion(rect, doc.width, doc.height, mode === "inpaint" ? INPAINT_CONTEXT : 0, native);
    return { region, line: describeRegion(region, sel ? "selection" : "canvas") };
  }

  // -- generate --------------------------------------------------------------------------

  /**
   * Starts a generation into the active document (txt2img, img2img, inpaint or a product shot, per
   * settings.mode) from the active layer or, with source "visible", the visible image. Returns
   * the job id; the new layers arrive with generationFinished. Throws UserError.
   */
  async generate(settings: GenerateSettings, source: "layer" | "visible" = "layer"): Promise<string> {
    if (this.generation) throw new UserError("A generation is already running; cancel it or wait for it.");
    await this.connect();
    const doc = this.checkedDocument();
    const layer = this.canvas.activeLayer(doc.id);
    if (settings.mode === "shot") return this.startShot(doc, settings, layer);
    const { region } = await this.plannedRegion(settings.mode, settings.model);
    let init: ImageHandle | null = null, mask: ImageHandle | null = null, maskPixels: Pixels | null = null;
    try {
      if (settings.mode === "img2img" || settings.mode === "inpaint") {
        if (source === "layer" && !layer) throw new UserError("Select the layer to start from.");
        const px =
          source === "visible" || !layer
            ? await this.canvas.readVisible(doc.id, region)
            : await this.canvas.readLayer(doc.id, layer.id, region);
        // kilnd reads RGB: transparency is flattened onto white, as the paper shows it.
        init = this.session.sendPixels(px, 3, CANVAS_PAPER);
      }
      if (settings.mode === "inpaint") {
        maskPixels = await this.canvas.readSelection(doc.id, region);
        if (!anySet(maskPixels)) throw new UserError("The selection is empty: select the area to repaint.");
        mask = this.session.sendPixels(maskPixels, 1);
      }
      const params = generateParams(
        settings, region.width, region.height, init && this.session.ref(init), mask && this.session.ref(mask));
      const record = (await this.call("generate", params)) as JobRecord;
      const job: GenerationJob = {
        id: record.id, docId: doc.id, relativeTo: layer ? layer.id : null, region, settings, mask: maskPixels, inputs: [init, mask],
      };
      return this.startFollowing(job, (region.note ? region.note + " " : "") + `Generating ${region.width}x${region.height}...`);
    } catch (e) {
      this.session.release(init, mask);
      throw toUserError(e);
    }
  }

  /**
   * A product shot over the whole canvas: the active layer is the product (a layer with
   * transparency); it stays where it is (explicit placement at scale 1) and is never modified;
   * the scenes come back as layers below it.
   */
  private async startShot(doc: DocumentInfo, settings: GenerateSettings, layer: LayerInfo | null): Promise<string> {
    this.require("shot", "product shots");
    if (!layer || layer.kind === "group")
      throw new UserError("Select the product's layer (a layer with the product cut out on transparency).");
    if (!layer.bounds) throw new UserError(`The layer '${layer.name}' is empty: paste the product cut-out into it.`);
    const full = await this.canvas.readLayer(doc.id, layer.id, layer.bounds);
    const box = contentBounds(full);
    if (!box) throw new UserError(`The layer '${layer.name}' is empty: paste the product cut-out into it.`);
    if (full.components !== 4 || !hasTransparency(full))
      throw new UserError(
        `The layer '${layer.name}' has no transparency. A product shot keeps the product's opaque pixels and paints ` +
          "the rest: cut the product out first (Select Subject, then a layer mask or Delete).",
      );
    const product = crop(full, box);
    const at = { x: layer.bounds.x + box.x, y: layer.bounds.y + box.y };
    const region = planRegion({ x: 0, y: 0, width: doc.width, height: doc.height }, doc.width, doc.height, 0,
                              this.nativeSize(settings.model));
    const image = this.session.sendPixels(product, 4);
    try {
      const params = shotParams(settings, region.width, region.height, this.session.ref(image), at.x - region.x, at.y - region.y);
      const record = (await this.call("shot", params)) as JobRecord;
      const job: GenerationJob = {
        id: record.id, docId: doc.id, relativeTo: layer.id, region, settings, mask: null, inputs: [image],
      };
      return this.startFollowing(job,
        (region.note ? region.note + " " : "") + `Painting a ${region.width}x${region.height} scene around '${layer.name}'...`);
    } catch (e) {
      this.session.release(image);
      throw toUserError(e);
    }
  }

  private async startFollowing(job: GenerationJob, line: string): Promise<string> {
    this.generation = job;
    this.events.emit("busy", "generate", true);
    this.events.emit("status", line);
    await this.session.watch(job.id, (p) => {
      this.onGeneration(p).catch((e) => this.events.emit("error", toUserError(e).message));
    });
    return job.id;
  }

  async cancelGeneration(): Promise<void> {
    if (this.generation) await this.session.cancel(this.generation.id);
  }

  private endGeneration(job: GenerationJob): void {
    if (this.generation !== job) return;
    this.generation = null;
    this.session.unwatch(job.id);
    this.session.release(...job.inputs);
    this.events.emit("busy", "generate", false);
  }

  private async onGeneration(p: Progress): Promise<void> {
    const job = this.generation;
    if (!job || p.jobId !== job.id) return;
    if (p.preview && !p.finished) this.showPreview(p.preview, "generate");
    this.events.emit("progress", p.step, p.total);
    if (!p.finished) {
      this.events.emit("status", describe(p));
      return;
    }
    this.endGeneration(job);
    const record = this.session.tracker.get(job.id) ?? ({ id: job.id, type: "", state: p.state } as JobRecord);
    let layers: LayerInfo[] = [];
    if (p.state === "done") {
      try {
        layers = job.settings.mode === "shot" ? await this.insertShot(job, record.result ?? {}) : await this.insertResult(job, record.result ?? {});
      } catch (e) {
        this.events.emit("error", toUserError(e).message);
      }
    } else if (p.state === "failed") {
      this.events.emit("error", `Generation failed: ${p.error ?? "see kilnd's log"}`);
    } else {
      this.events.emit("status", "Generation cancelled.");
    }
    this.events.emit("generationFinished", layers, record);
  }

  private showPreview(ref: ImageRef, of: Preview["of"]): void {
    try {
      this.events.emit("preview", { kind: "pixels", pixels: this.session.readPixels(ref, "RGB"), of });
    } catch {
      // previews expire; the next one will do
    }
  }

  private checkStillOpen(job: GenerationJob, png: unknown): void {
    if (!this.canvas.isOpen(job.docId))
      throw new UserError(`The document was closed before the image was ready; it is saved as ${png ?? "a PNG in Kiln's outputs"}.`);
  }

  private async insertResult(job: GenerationJob, result: any): Promise<LayerInfo[]> {
    const first = (result.images ?? [])[0];
    if (!first?.image) throw new UserError("kilnd finished without an image.");
    this.checkStillOpen(job, first.png);
    // A job's result is shared with other clients: read it, never take it.
    let pixels = this.session.readPixels(first.image as ImageRef, "RGBA");
    const { width: w, height: h } = job.region;
    if (pixels.width !== w || pixels.height !== h)
      throw new UserError(`kilnd returned a ${pixels.width}x${pixels.height} image for a ${w}x${h} area.`);
    this.events.emit("preview", { kind: "pixels", pixels, of: "generate" });
    if (job.mask) pixels = multiplyAlpha(pixels, job.mask); // only the selection changes
    const name = layerName(job.settings, first.seed ?? result.seed);
    const layers = await this.canvas.addLayers(job.docId, name, [{ name, pixels, rect: job.region }], {
      relativeTo: job.relativeTo, where: "above",
    });
    this.events.emit("status", `Added layer '${name}'.`);
    return layers;
  }

  /**
   * One layer per variation just below the product layer (the first shown, the others hidden),
   * holding the scene alone: with the product layer above it, the canvas shows the product shot
   * while the product's own pixels stay in their own, untouched layer.
   */
  private async insertShot(job: GenerationJob, result: any): Promise<LayerInfo[]> {
    const images = (result.images ?? []) as any[];
    if (!images.length || !images[0].scene) throw new UserError("kilnd finished the product shot without an image.");
    this.checkStillOpen(job, images[0].png);
    const { width: w, height: h } = job.region;
    const layers: NewLayer[] = images.map((entry, k) => {
      const pixels = this.session.readPixels(entry.scene as ImageRef, "RGBA");
      if (pixels.width !== w || pixels.height !== h)
        throw new UserError(`kilnd returned a ${pixels.width}x${pixels.height} scene for a ${w}x${h} canvas.`);
      return { name: layerName(job.settings, entry.seed), pixels, rect: job.region, hidden: k > 0 };
    });
    this.events.emit("preview", { kind: "pixels", pixels: this.session.readPixels(images[0].image as ImageRef, "RGB"), of: "generate" });
    const step = `Kiln product shot (${images.length} variation${images.length === 1 ? "" : "s"})`;
    const added = await this.canvas.addLayers(job.docId, step, layers, { relativeTo: job.relativeTo, where: "below" });
    if (job.relativeTo !== null) await this.canvas.setActiveLayer(job.docId, job.relativeTo); // ready for the next shot
    const at = result.placement ?? {};
    this.events.emit("status", `Added ${added.length} scene layer${added.length === 1 ? "" : "s"} below the product (placed at ${at.x}, ${at.y}).`);
    return added;
  }

  // -- datasets --------------------------------------------------------------------------

  /** The layers to send: the selected ones or, when one group is selected, its visible layers. */
  datasetLayers(docId: number): LayerInfo[] {
    const selected = this.canvas.selectedLayers(docId);
    if (selected.length === 1 && selected[0].kind === "group")
      return this.canvas.childLayers(docId, selected[0].id).filter((l) => l.visible && l.kind !== "group");
    return selected.filter((l) => l.kind !== "group");
  }

  /**
   * Sends the selected layers (or one group's visible layers) as training images of the dataset
   * settings.name, creating it with the preset and trigger when new. Each layer is trimmed to its
   * pixels and keeps its alpha. The dataset arrives with datasetShown.
   */
  async addLayersToDataset(settings: DatasetSettings): Promise<DatasetImport> {
    if (this.datasetImport) throw new UserError("Layers are still being added to a dataset; wait for it.");
    await this.connect();
    const doc = this.checkedDocument();
    this.require("datasets.add_images", "datasets");
    const create = datasetCreateParams(settings);
    const layers = this.datasetLayers(doc.id);
    if (!layers.length)
      throw new UserError("Select the layers to use as training images (or one group whose visible layers are the images).");
    const imp: DatasetImport = { name: String(create.name), sources: [], skipped: [], jobId: null, inputs: [] };
    const entries: Params[] = [];
    try {
      for (const layer of layers) {
        const px = layer.bounds ? await this.canvas.readLayer(doc.id, layer.id, layer.bounds) : null;
        const box = px && contentBounds(px);
        if (!px || !box) {
          imp.skipped.push([layer.name, "the layer is empty or fully transparent"]);
          continue;
        }
        const image = this.session.sendPixels(crop(px, box), px.components === 4 ? 4 : 3);
        imp.inputs.push(image);
        imp.sources.push(layer.name);
        entries.push(datasetImageEntry(this.session.ref(image), layer.name));
      }
      if (!entries.length) throw new UserError("Every chosen layer is empty: " + imp.skipped.map(([n]) => n).join(", "));
      await this.ensureDataset(create);
      const result = await this.call("datasets.add_images", { name: imp.name, images: entries });
      this.datasetImport = imp;
      this.events.emit("busy", "dataset", true);
      if (isJobRecord(result)) {
        imp.jobId = result.id;
        this.events.emit("status", `Adding ${entries.length} layer${entries.length === 1 ? "" : "s"} to '${imp.name}'...`);
        await this.session.watch(imp.jobId, (p) => {
          this.onDatasetJob(p).catch((e) => this.events.emit("error", toUserError(e).message));
        });
      } else {
        await this.finishImport(result);
      }
      return imp;
    } catch (e) {
      if (this.datasetImport !== imp) this.session.release(...imp.inputs);
      throw toUserError(e);
    }
  }

  private async ensureDataset(create: Params): Promise<void> {
    try {
      await this.session.call("datasets.get", { name: create.name });
    } catch (e) {
      if (toUserError(e).code !== ErrorCode.NOT_FOUND) throw e;
      await this.call("datasets.create", create);
    }
  }

  private async onDatasetJob(p: Progress): Promise<void> {
    const imp = this.datasetImport;
    if (!imp || p.jobId !== imp.jobId) return;
    this.events.emit("progress", p.step, p.total);
    if (!p.finished) {
      this.events.emit("status", describe(p));
      return;
    }
    if (p.state !== "done") {
      this.datasetImport = null;
      this.session.release(...imp.inputs);
      this.events.emit("busy", "dataset", false);
      this.events.emit("error", `Adding layers to '${imp.name}' ${p.state}: ${p.error ?? ""}`);
      return;
    }
    await this.finishImport(this.session.tracker.get(p.jobId)?.result ?? {});
  }

  private async finishImport(result: any): Promise<any> {
    const imp = this.datasetImport as DatasetImport;
    this.datasetImport = null;
    this.session.release(...imp.inputs);
    imp.inputs = [];
    this.events.emit("busy", "dataset", false);
    const dataset = await this.showDataset(imp.name, imp);
    let added = result.added ?? 0;
    if (Array.isArray(added)) added = added.length;
    let msg = `Added ${added} image${added === 1 ? "" : "s"} to '${imp.name}'.`;
    const problems = ((result.errors ?? []) as any[]).filter((e) => e && typeof e === "object")
      .map((e) => `${e.source ?? "?"}: ${e.message ?? ""}`);
    problems.push(...imp.skipped.map(([n, why]) => `${n}: ${why}`));
    if (problems.length) msg += " Not added: " + problems.join("; ");
    this.events.emit("status", msg);
    await this.refreshDatasets();
    return dataset;
  }

  async showDataset(name: string, imported: DatasetImport | null = null): Promise<any> {
    const dataset = await this.call("datasets.get", { name });
    this.events.emit("datasetShown", dataset, imported);
    return dataset;
  }

  // -- training --------------------------------------------------------------------------

  /**
   * Starts a training; progress, samples and the end arrive as events, and the validation grid
   * opens as a new document when it is done. Returns the job id.
   */
  async train(settings: TrainSettings, gridPrompt = ""): Promise<string> {
    if (this.training) throw new UserError("A training is already running; cancel it or wait for it.");
    await this.connect();
    this.require("train", "training");
    const params = trainParams(settings);
    const record = (await this.call("train", params)) as JobRecord;
    const job: TrainingJob = { id: record.id, name: String(params.name), gridPrompt, lastSample: "" };
    this.training = job;
    this.events.emit("busy", "train", true);
    this.events.emit("status", `Training '${params.name}' on ${params.base}...`);
    await this.followTraining(job);
    return job.id;
  }

  private followTraining(job: TrainingJob): Promise<void> {
    this.session.unwatch(job.id);
    return this.session
      .watch(job.id, (p) => {
        this.onTraining(p).catch((e) => this.events.emit("error", toUserError(e).message));
      })
      .catch((e) => this.events.emit("error", toUserError(e).message));
  }

  async cancelTraining(): Promise<void> {
    if (this.training) await this.session.cancel(this.training.id);
  }

  private async onTraining(p: Progress): Promise<void> {
    const job = this.training;
    if (!job || p.jobId !== job.id) return;
    if (p.preview) {
      this.showPreview(p.preview, "train");
    } else {
      // kilnd names the latest sample's PNG in the progress (last_sample): show it once.
      const path = p.extra.last_sample;
      if (typeof path === "string" && path !== job.lastSample) {
        job.lastSample = path;
        // Downloaded from a remote kilnd (not awaited: progress goes on while it comes).
        this.session.readDaemonFile(path).then(
          (bytes) => this.events.emit("preview", { kind: "png", bytes, path, of: "train" }),
          () => {
            // a sample being rewritten: the next progress brings it again
          });
      }
    }
    this.events.emit("progress", p.step, p.total);
    this.events.emit("status", describe(p));
    if (!p.finished) return;
    this.training = null;
    this.events.emit("busy", "train", false);
    const record = this.session.tracker.get(p.jobId) ?? ({ id: p.jobId, type: "train", state: p.state } as JobRecord);
    if (p.state === "done") {
      await this.refreshLoras();
      try {
        await this.requestGrid(job.name, job.gridPrompt);
      } catch (e) {
        this.events.emit("error", `Training finished, but the validation grid could not be made: ${toUserError(e).message}`);
      }
    } else if (p.state === "failed") {
      this.events.emit("error", `Training failed: ${p.error ?? "see kilnd's log"}`);
    }
    this.events.emit("trainingFinished", record);
  }

  /**
   * Asks kilnd for the LoRA's validation grid (epochs x strengths); it opens as a new document
   * (gridOpened) when ready. False when this kilnd cannot draw grids.
   */
  async requestGrid(lora: string, prompt = ""): Promise<boolean> {
    await this.connect();
    if (!this.session.hasMethod("lora.grid")) {
      this.events.emit("status", "This kilnd cannot draw validation grids yet.");
      return false;
    }
    const params: Params = { ...this.gridOptions, lora };
    if (prompt) params.prompt = prompt;
    const result = await this.call("lora.grid", params);
    if (isJobRecord(result)) {
      this.events.emit("status", `Drawing the validation grid of '${lora}'...`);
      await this.session.watch(result.id, (p) => {
        this.onGridJob(p).catch((e) => this.events.emit("error", toUserError(e).message));
      });
    } else {
      await this.openGrid(result);
    }
    return true;
  }

  private async onGridJob(p: Progress): Promise<void> {
    this.events.emit("progress", p.step, p.total);
    if (!p.finished) {
      this.events.emit("status", "Validation grid: " + describe(p));
      return;
    }
    if (p.state !== "done") {
      this.events.emit("error", `The validation grid ${p.state}: ${p.error ?? ""}`);
      return;
    }
    await this.openGrid(this.session.tracker.get(p.jobId)?.result ?? {});
  }

  private async openGrid(result: any): Promise<void> {
    const path = result.png ?? result.path ?? result.grid;
    if (typeof path !== "string" || !path) throw new UserError(`kilnd did not say where the grid is (${JSON.stringify(result)}).`);
    this.lastGridPath = path;
    const doc = await this.canvas.openImageDocument(path);
    this.events.emit("status", `Opened the validation grid ${path}.`);
    this.events.emit("gridOpened", doc, path);
  }
}

export type { Rect };
