// Photoshop documents and layers <-> pixels: the only module that reads or writes Photoshop's
// pixels (with preview.ts, which only encodes previews for the panel).
//
// Pixel format: the Imaging API with componentSize 8 and colorSpace "RGB": imageData.getData()
// gives chunky Uint8Array rows, RGBA for layers with transparency and RGB otherwise; the
// selection is one byte per pixel (0 = unselected, 255 = selected). Results go back through
// createImageDataFromBuffer (RGBA, sRGB) and putPixels. Every edit runs inside
// core.executeAsModal with the document's history suspended, so one result is one undo step.

import { action, app, constants, core, imaging } from "photoshop";
import type { ExecutionContext } from "photoshop/dom/CoreModules";
import type { Document } from "photoshop/dom/Document";
import type { imaging as Imaging } from "photoshop/dom/ImagingModule";
import type { Layer } from "photoshop/dom/Layer";
import { storage } from "uxp";

import { Canvas, DocumentInfo, LayerInfo, NewLayer } from "../core/canvas";
import { UserError } from "../core/errors";
import { Pixels, makePixels, placeInto } from "../core/pixels";
import { Rect } from "../core/requests";

export const SRGB_PROFILE = "sRGB IEC61966-2.1";

type ImageData = Imaging.PhotoshopImageData;

const MODE_NAMES: Record<string, string> = {
  [constants.DocumentMode.RGB]: "RGB",
  [constants.DocumentMode.CMYK]: "CMYK",
  [constants.DocumentMode.GRAYSCALE]: "Grayscale",
  [constants.DocumentMode.LAB]: "Lab",
  [constants.DocumentMode.BITMAP]: "Bitmap",
  [constants.DocumentMode.INDEXEDCOLOR]: "Indexed Color",
  [constants.DocumentMode.DUOTONE]: "Duotone",
  [constants.DocumentMode.MULTICHANNEL]: "Multichannel",
};

const BITS: Record<string, number> = {
  [constants.BitsPerChannelType.ONE]: 1,
  [constants.BitsPerChannelType.EIGHT]: 8,
  [constants.BitsPerChannelType.SIXTEEN]: 16,
  [constants.BitsPerChannelType.THIRTYTWO]: 32,
};

function toBounds(r: Rect): Imaging.Bounds {
  return { left: r.x, top: r.y, right: r.x + r.width, bottom: r.y + r.height };
}

function toRect(b: { left: number; top: number; right: number; bottom: number } | null | undefined): Rect | null {
  if (!b || b.right <= b.left || b.bottom <= b.top) return null;
  return { x: b.left, y: b.top, width: b.right - b.left, height: b.bottom - b.top };
}

function documentInfo(d: Document): DocumentInfo {
  return {
    id: d.id,
    title: d.title,
    width: d.width,
    height: d.height,
    mode: MODE_NAMES[d.mode] ?? String(d.mode),
    bitsPerChannel: BITS[d.bitsPerChannel] ?? 0,
    profile: d.colorProfileName ?? "",
  };
}

function layerInfo(l: Layer): LayerInfo {
  const kind = l.kind === constants.LayerKind.GROUP ? "group" : l.kind === constants.LayerKind.NORMAL ? "pixel" : "other";
  return { id: l.id, name: l.name, kind, visible: l.visible, bounds: toRect(l.boundsNoEffects) };
}

function findDocument(id: number): Document {
  const doc = Array.from(app.documents).find((d) => d.id === id);
  if (!doc) throw new UserError("The document is no longer open.");
  return doc;
}

function findLayer(layers: ArrayLike<Layer> | null, id: number): Layer | null {
  for (const l of Array.from(layers ?? [])) {
    if (l.id === id) return l;
    const inner = findLayer(l.layers, id);
    if (inner) return inner;
  }
  return null;
}

function layerById(doc: Document, id: number): Layer {
  const layer = findLayer(doc.layers, id);
  if (!layer) throw new UserError(`The layer (id ${id}) is no longer in '${doc.title}'.`);
  return layer;
}

/** Photoshop edits (and Imaging API calls) happen only in a modal scope. */
function modal<T>(commandName: string, fn: (ctx: ExecutionContext) => Promise<T>): Promise<T> {
  return core.executeAsModal((ctx) => fn(ctx), { commandName });
}

async function pixelsOf(imageData: ImageData): Promise<Pixels> {
  try {
    if (imageData.componentSize !== 8) throw new UserError("Photoshop returned pixels that are not 8-bit.");
    const data = await imageData.getData({ chunky: true });
    const components = imageData.components;
    if (components !== 1 && components !== 3 && components !== 4)
      throw new UserError(`Photoshop returned ${components} channels per pixel; Kiln reads RGB, RGBA and masks.`);
    return makePixels(imageData.width, imageData.height, components, data as Uint8Array);
  } finally {
    await imageData.dispose();
  }
}

/** Reads through the Imaging API; what Photoshop trims away comes back transparent (or unselected). */
async function readPlaced(result: { imageData: ImageData; sourceBounds: Imaging.Bounds }, rect: Rect | undefined): Promise<Pixels> {
  const px = await pixelsOf(result.imageData);
  const got = toRect(result.sourceBounds) ?? { x: 0, y: 0, width: px.width, height: px.height };
  return rect ? placeInto(px, got, rect) : px;
}

export class PhotoshopCanvas implements Canvas {
  activeDocument(): DocumentInfo | null {
    const docs = Array.from(app.documents);
    if (!docs.length) return null;
    return documentInfo(app.activeDocument);
  }

  isOpen(documentId: number): boolean {
    return Array.from(app.documents).some((d) => d.id === documentId);
  }

  convertToRgb8(documentId: number): Promise<void> {
    return modal("Kiln: convert to 8-bit sRGB", async (ctx) => {
      const doc = findDocument(documentId);
      const history = await ctx.hostControl.suspendHistory({ documentID: documentId, name: "Convert for Kiln" });
      let ok = false;
      try {
        if (doc.mode !== constants.DocumentMode.RGB) await doc.changeMode(constants.ChangeMode.RGB);
        if (doc.bitsPerChannel !== constants.BitsPerChannelType.EIGHT) doc.bitsPerChannel = constants.BitsPerChannelType.EIGHT;
        if (!/srgb/i.test(doc.colorProfileName ?? ""))
          await doc.convertProfile(SRGB_PROFILE, constants.Intent.RELATIVECOLORIMETRIC, true);
        ok = true;
      } finally {
        await ctx.hostControl.resumeHistory(history, ok);
      }
    });
  }

  async selectionBounds(documentId: number): Promise<Rect | null> {
    // Document.selection.bounds needs Photoshop 25; batchPlay's "get selection" works from 23.
    const [reply] = await action.batchPlay(
      [{ _obj: "get", _target: [{ _property: "selection" }, { _ref: "document", _id: documentId }] }],
      {},
    );
    const sel = reply?.selection;
    if (!sel) return null;
    const v = (u: unknown) => (typeof u === "number" ? u : Number((u as { _value?: number })?._value ?? NaN));
    const doc = findDocument(documentId);
    const left = Math.max(0, v(sel.left)), top = Math.max(0, v(sel.top));
    const right = Math.min(doc.width, v(sel.right)), bottom = Math.min(doc.height, v(sel.bottom));
    return [left, top, right, bottom].every(Number.isFinite) ? toRect({ left, top, right, bottom }) : null;
  }

  activeLayer(documentId: number): LayerInfo | null {
    const layers = Array.from(findDocument(documentId).activeLayers);
    return layers.length ? layerInfo(layers[0]) : null;
  }

  selectedLayers(documentId: number): LayerInfo[] {
    return Array.from(findDocument(documentId).activeLayers).map(layerInfo);
  }

  childLayers(documentId: number, groupId: number): LayerInfo[] {
    const group = layerById(findDocument(documentId), groupId);
    return Array.from(group.layers ?? []).map(layerInfo); // Photoshop lists the top layer first
  }

  readLayer(documentId: number, layerId: number, rect?: Rect): Promise<Pixels> {
    return modal("Kiln: reading a layer", async () => {
      const result = await imaging.getPixels({
        documentID: documentId, layerID: layerId, sourceBounds: rect && toBounds(rect), componentSize: 8, colorSpace: "RGB",
      });
      return readPlaced(result, rect);
    });
  }

  readVisible(documentId: number, rect: Rect): Promise<Pixels> {
    return modal("Kiln: reading the image", async () => {
      const result = await imaging.getPixels({ documentID: documentId, sourceBounds: toBounds(rect), componentSize: 8, colorSpace: "RGB" });
      return readPlaced(result, rect);
    });
  }

  readSelection(documentId: number, rect: Rect): Promise<Pixels> {
    return modal("Kiln: reading the selection", async () => {
      const result = await imaging.getSelection({ documentID: documentId, sourceBounds: toBounds(rect) });
      return readPlaced(result, rect);
    });
  }

  addLayers(
    documentId: number,
    stepName: string,
    layers: NewLayer[],
    placement: { relativeTo: number | null; where: "above" | "below" },
  ): Promise<LayerInfo[]> {
    return modal(stepName, async (ctx) => {
      const doc = findDocument(documentId);
      const history = await ctx.hostControl.suspendHistory({ documentID: documentId, name: stepName });
      let ok = false;
      try {
        let anchor = placement.relativeTo === null ? null : findLayer(doc.layers, placement.relativeTo);
        const added: LayerInfo[] = [];
        for (const nl of layers) {
          const layer = await doc.createPixelLayer({ name: nl.name });
          if (!layer) throw new UserError(`Photoshop refused to add the layer '${nl.name}'.`);
          if (anchor)
            layer.move(anchor, placement.where === "above" ? constants.ElementPlacement.PLACEBEFORE : constants.ElementPlacement.PLACEAFTER);
          const imageData = await imaging.createImageDataFromBuffer(nl.pixels.data, {
            width: nl.pixels.width, height: nl.pixels.height, components: 4, chunky: true, colorProfile: SRGB_PROFILE, colorSpace: "RGB",
          });
          try {
            await imaging.putPixels({ documentID: documentId, layerID: layer.id, imageData, targetBounds: toBounds(nl.rect), commandName: stepName });
          } finally {
            await imageData.dispose();
          }
          if (nl.hidden) layer.visible = false;
          added.push(layerInfo(layer));
          if (placement.where === "below") anchor = layer; // the next one goes under this one
        }
        ok = true;
        return added;
      } finally {
        // Not committed on failure: the document returns to where it was.
        await ctx.hostControl.resumeHistory(history, ok);
      }
    });
  }

  setActiveLayer(documentId: number, layerId: number): Promise<void> {
    return modal("Kiln: select layer", async () => {
      layerById(findDocument(documentId), layerId).selected = true;
    });
  }

  async openImageDocument(path: string): Promise<DocumentInfo> {
    // A hybrid plugin's manifest asks for localFileSystem "fullAccess": kilnd writes grids in its data dir.
    // @adobe/cc-ext-uxp-types declares the provider's class but not the storage.localFileSystem instance.
    const fs = (storage as unknown as { localFileSystem: storage.FileSystemProvider }).localFileSystem;
    const entry = await fs.getEntryWithUrl("file:" + path);
    // app.open is typed with the DOM's File; it takes a UXP file entry.
    const doc = await modal("Kiln: open the validation grid", () => app.open(entry as unknown as File));
    return documentInfo(doc);
  }
}
