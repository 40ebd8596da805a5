// The panel's widgets (index.html) wired to the controller: reads the fields, calls what the
// buttons mean, and shows status, progress, previews and errors. No flow logic lives here (see
// core/controller.ts) and no Photoshop call (see host/).

import { NativeBridge } from "../core/bridge";
import { Controller, LoraInfo, Preview } from "../core/controller";
import { datasetNotes, datasetRows } from "../core/datasets";
import { UnsupportedDocument, toUserError } from "../core/errors";
import { GenerateSettings, Mode, defaultGenerateSettings, insertLoraTag } from "../core/requests";
import { Session } from "../core/session";
import { PanelState, loadState, saveState } from "../core/state";
import { PhotoshopCanvas } from "../host/photoshop_canvas";
import { previewUrl } from "../host/preview";
import { chooseFile } from "./files";

declare function require(name: string): unknown;

const CLIENT_NAME = "photoshop-panel 0.1";

// Spectrum widgets as the panel uses them: a value, a selected index, a disabled flag.
interface Widget extends HTMLElement {
  value: string;
  selectedIndex: number;
  disabled: boolean;
  checked: boolean;
}

export function start(doc: Document): void {
  if (started) return;
  started = true;
  new Panel(doc);
}
let started = false;

class Panel {
  private controller!: Controller;
  private state: PanelState = loadState();
  private models: string[] = [];
  private loras: LoraInfo[] = [];
  private loraPreviewOf = ""; // the grid the LoRA preview is being read for
  private datasets: string[] = [];

  constructor(private doc: Document) {
    this.bindStatic();
    this.openSession();
  }

  private $(id: string): Widget {
    const el = this.doc.getElementById(id);
    if (!el) throw new Error(`panel: no element #${id}`);
    return el as unknown as Widget;
  }

  private show(id: string, visible: boolean): void {
    const el = this.$(id);
    const classes = el.className.split(/\s+/).filter((c) => c && c !== "hidden");
    el.className = (visible ? classes : [...classes, "hidden"]).join(" ");
  }

  private mark(id: string, attribute: string, on: boolean): void {
    if (on) this.$(id).setAttribute(attribute, "");
    else this.$(id).removeAttribute(attribute);
  }

  // -- session ---------------------------------------------------------------------------

  private openSession(): void {
    let bridge: NativeBridge;
    try {
      bridge = require("kiln_bridge.uxpaddon") as NativeBridge;
    } catch (e) {
      this.showError(
        "Kiln's native addon (kiln_bridge.uxpaddon) could not be loaded: " + toUserError(e).message +
          ". Reinstall the plugin from a .ccx that holds the addon for this computer (Windows x64 or macOS).",
      );
      return;
    }
    const session = new Session(bridge, {
      name: CLIENT_NAME, socket: this.state.socket || undefined, daemon: this.state.daemon || undefined,
    });
    this.controller = new Controller(session, new PhotoshopCanvas());
    this.bindEvents();
    this.refreshAll();
  }

  private async refreshAll(): Promise<void> {
    await this.guard(async () => {
      await this.controller.connect();
      await this.controller.refreshModels();
      await this.controller.refreshLoras();
      await this.controller.refreshDatasets();
    });
  }

  // -- events from the controller --------------------------------------------------------

  private bindEvents(): void {
    const ev = this.controller.events;
    ev.on("status", (text) => (this.$("status-line").textContent = text));
    ev.on("error", (text) => this.showError(text));
    ev.on("connection", (_connected, line) => (this.$("daemon-line").textContent = line));
    ev.on("preview", (p) => this.showPreview(p));
    ev.on("progress", (step, total) => this.showProgress(step, total));
    ev.on("models", (names) => {
      this.models = names;
      this.fillPicker("model", names, this.state.model);
      this.fillPicker("base-model", names, this.state.model);
    });
    ev.on("loras", (loras) => {
      this.loras = loras;
      this.fillPicker("lora", loras.map((l) => l.name), "");
      this.showLora();
    });
    ev.on("datasets", (names) => {
      this.datasets = names;
      this.fillPicker("dataset-pick", names, "");
      this.fillPicker("train-dataset", names, this.state.dataset);
    });
    ev.on("datasetShown", (dataset) => this.showDataset(dataset));
    ev.on("busy", (what, busy) => {
      if (what === "generate") {
        this.$("generate").disabled = busy;
        this.$("cancel-generate").disabled = !busy;
        this.show("generate-progress", busy);
      } else if (what === "train") {
        this.$("train").disabled = busy;
        this.$("cancel-train").disabled = !busy;
        this.show("train-progress", busy);
      } else {
        this.$("add-layers").disabled = busy;
        this.show("dataset-progress", busy);
      }
    });
  }

  private showProgress(step: number, total: number): void {
    const value = total > 0 ? Math.round((100 * step) / total) : 0;
    for (const id of ["generate-progress", "train-progress", "dataset-progress"]) this.$(id).setAttribute("value", String(value));
  }

  private async showPreview(p: Preview): Promise<void> {
    try {
      const url = await previewUrl(p);
      const id = p.of === "train" ? "train-preview" : "generate-preview";
      this.$(id).setAttribute("src", url);
      this.show(id, true);
    } catch {
      // a preview that cannot be shown is not worth an error
    }
  }

  private showDataset(dataset: any): void {
    const list = this.$("dataset-list");
    list.innerHTML = "";
    for (const row of datasetRows(dataset)) {
      const item = this.doc.createElement("div");
      item.className = "item" + (row.flagged ? " flagged" : "");
      item.textContent = `${row.id}  ${row.source}: ${row.text}`;
      list.appendChild(item);
    }
    this.$("dataset-notes").textContent = datasetNotes(dataset).join("\n");
  }

  private showError(text: string, convertible = false): void {
    this.$("message-text").textContent = text;
    this.show("convert-document", convertible);
    this.show("message", true);
  }

  /** Runs a button's action; a UserError becomes the message box, with Convert when it helps. */
  private async guard(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.showError(toUserError(e).message, e instanceof UnsupportedDocument && e.convertible);
    }
  }

  // -- widgets ---------------------------------------------------------------------------

  private fillPicker(id: string, names: string[], selected: string): void {
    const menu = this.$(id).querySelector("sp-menu");
    if (!menu) return;
    menu.innerHTML = "";
    names.forEach((name, i) => {
      const item = this.doc.createElement("sp-menu-item");
      item.textContent = name;
      if (name === selected || (!selected && i === 0)) item.setAttribute("selected", "");
      menu.appendChild(item);
    });
  }

  private picked(id: string, names?: string[]): string {
    const w = this.$(id);
    if (names) return w.selectedIndex >= 0 ? names[w.selectedIndex] ?? "" : "";
    const items = w.querySelectorAll("sp-menu-item");
    const item = w.selectedIndex >= 0 && w.selectedIndex < items.length ? (items.item(w.selectedIndex) as HTMLElement) : undefined;
    return item ? item.getAttribute("value") ?? item.textContent ?? "" : "";
  }

  private number(id: string, fallback: number): number {
    const v = Number(this.$(id).value);
    return Number.isFinite(v) && this.$(id).value !== "" ? v : fallback;
  }

  private mode(): Mode {
    return (this.picked("mode") || "txt2img") as Mode;
  }

  private settings(): GenerateSettings {
    return {
      ...defaultGenerateSettings(),
      model: this.picked("model", this.models),
      prompt: this.$("prompt").value,
      negative: this.$("negative").value,
      seed: Math.trunc(this.number("seed", -1)),
      steps: Math.trunc(this.number("steps", 20)),
      sampler: this.picked("sampler"),
      cfg: this.number("cfg", 7),
      mode: this.mode(),
      strength: this.number("strength", 75) / 100,
      count: Math.trunc(this.number("count", 1)),
      edge: Math.trunc(this.number("edge", 4)),
      harmonize: this.number("harmonize", 0) / 100,
    };
  }

  private showLora(): void {
    const lora = this.loras.find((l) => l.name === this.picked("lora", this.loras.map((x) => x.name)));
    this.$("lora-triggers").textContent = lora
      ? lora.triggerWords.length ? "Trigger words: " + lora.triggerWords.join(", ") : "No trigger words recorded."
      : "";
    if (lora?.preview) {
      this.controller.events.emit("status", `LoRA '${lora.name}': ${lora.epochs} epoch files.`);
      const path = lora.preview;
      this.loraPreviewOf = path;
      // From a remote kilnd, downloaded (again: grid.png is redrawn in place).
      this.controller.session.readDaemonFile(path, true)
        .then((bytes) => previewUrl({ kind: "png", bytes, path, of: "train" }))
        .then((url) => {
          if (this.loraPreviewOf !== path) return; // another LoRA was picked meanwhile
          this.$("lora-preview").setAttribute("src", url);
          this.show("lora-preview", true);
        })
        .catch(() => this.loraPreviewOf === path && this.show("lora-preview", false));
    } else {
      this.loraPreviewOf = "";
      this.show("lora-preview", false);
    }
  }

  private async updateSizeLine(): Promise<void> {
    const mode = this.mode();
    this.show("img2img-options", mode === "img2img" || mode === "inpaint");
    this.show("shot-options", mode === "shot");
    try {
      const model = this.picked("model", this.models);
      this.$("size-line").textContent = "Size: " + (await this.controller.plannedRegion(mode, model)).line;
    } catch (e) {
      this.$("size-line").textContent = toUserError(e).message;
    }
  }

  private bindStatic(): void {
    const click = (id: string, fn: () => Promise<unknown> | void) =>
      this.$(id).addEventListener("click", () => void this.guard(async () => fn()));
    for (const tab of ["generate", "dataset", "train"]) {
      click("tab-" + tab, () => {
        for (const t of ["generate", "dataset", "train"]) {
          this.show("page-" + t, t === tab);
          this.mark("tab-" + t, "selected", t === tab);
        }
        return tab === "generate" ? this.updateSizeLine() : undefined;
      });
    }
    click("dismiss-message", () => this.show("message", false));
    click("convert-document", async () => {
      this.show("message", false);
      await this.controller.convertDocument();
    });
    click("reconnect", () => this.refreshAll());
    click("choose-daemon", async () => {
      const path = await chooseFile("Choose the kilnd program");
      if (!path) return;
      this.state.daemon = path;
      saveState(this.state);
      this.controller.session.close();
      this.openSession();
    });
    click("add-model", async () => {
      const path = await chooseFile("Choose a .safetensors checkpoint", ["safetensors"]);
      if (path) await this.controller.addModel(path);
    });
    this.$("mode").addEventListener("change", () => void this.updateSizeLine());
    this.$("lora").addEventListener("change", () => this.showLora());
    click("insert-lora", () => {
      const name = this.picked("lora", this.loras.map((l) => l.name));
      const prompt = this.$("prompt");
      prompt.value = insertLoraTag(prompt.value, name, this.number("lora-weight", 0.8)).prompt;
    });
    click("new-seed", () => {
      this.$("seed").value = String(Math.floor(Math.random() * 2 ** 31));
    });
    click("generate", async () => {
      const s = this.settings();
      this.state.model = s.model;
      saveState(this.state);
      await this.updateSizeLine();
      await this.controller.generate(s, this.picked("source") === "visible" ? "visible" : "layer");
    });
    click("cancel-generate", () => this.controller.cancelGeneration());
    this.$("dataset-pick").addEventListener("change", () => {
      const name = this.picked("dataset-pick", this.datasets);
      this.$("dataset-name").value = name;
      void this.guard(() => this.controller.showDataset(name));
    });
    click("add-layers", () =>
      this.controller.addLayersToDataset({
        name: this.$("dataset-name").value,
        trigger: this.$("trigger").value,
        preset: this.picked("dataset-preset"),
        background: this.picked("background"),
      }),
    );
    click("train", () => {
      const dataset = this.picked("train-dataset", this.datasets);
      this.state.dataset = dataset;
      saveState(this.state);
      const epochs = this.number("epochs", 0);
      return this.controller.train({
        baseModel: this.picked("base-model", this.models),
        dataset,
        name: this.$("lora-name").value,
        preset: this.picked("train-preset"),
        overrides: epochs > 0 ? { max_train_epochs: Math.trunc(epochs) } : {},
        set: [],
      });
    });
    click("cancel-train", () => this.controller.cancelTraining());
  }
}
