// @ts-check
// An in-memory stand-in for the parts of Photoshop's `photoshop` module the panel's host/ code
// calls: documents and layers (app), executeAsModal with history suspension (core), batchPlay's
// "get selection" (action) and the Imaging API (imaging), with the shapes @types/photoshop
// declares (tests/hosts/photoshop/standin/tsconfig.json type-checks this file against them).
//
// It is NOT Photoshop and tests that use it are not tests of Photoshop: they run the panel's
// core/ and host/ code against documents whose pixels the tests can inspect. Like Photoshop, it
// refuses edits and Imaging API calls outside executeAsModal, trims getPixels to where a layer has
// pixels, and records each suspended history step.
"use strict";

/** @typedef {import("photoshop/dom/ImagingModule").imaging.PhotoshopImageData} PhotoshopImageData */
/** @typedef {import("photoshop/dom/ImagingModule").imaging.Bounds} Bounds */

const constants = {
  DocumentMode: { RGB: "RGBColorMode", CMYK: "CMYKColorMode", GRAYSCALE: "grayscaleMode", LAB: "labColorMode",
    BITMAP: "bitmapMode", INDEXEDCOLOR: "indexedColorMode", DUOTONE: "duotoneMode", MULTICHANNEL: "multichannelMode" },
  ChangeMode: { RGB: "RGBColorMode", CMYK: "CMYKColorMode", GRAYSCALE: "grayscaleMode" },
  BitsPerChannelType: { ONE: "bitDepth1", EIGHT: "bitDepth8", SIXTEEN: "bitDepth16", THIRTYTWO: "bitDepth32" },
  LayerKind: { NORMAL: "pixel", GROUP: "group", TEXT: "text", SMARTOBJECT: "smartObject" },
  ElementPlacement: { PLACEBEFORE: "placeBefore", PLACEAFTER: "placeAfter", PLACEATBEGINNING: "placeAtBeginning",
    PLACEATEND: "placeAtEnd", PLACEINSIDE: "placeInside" },
  Intent: { RELATIVECOLORIMETRIC: "colorimetric", PERCEPTUAL: "image" },
};

let modalDepth = 0;
let nextId = 1;

function requireModal(what) {
  if (modalDepth === 0) throw new Error(`${what}: this API must be called from within executeAsModal (as in Photoshop)`);
}

/** @implements {PhotoshopImageData} */
class ImageData {
  /**
   * @param {number} width @param {number} height @param {number} components
   * @param {Uint8Array} data @param {"RGB"|"Grayscale"} colorSpace @param {string} colorProfile
   */
  constructor(width, height, components, data, colorSpace, colorProfile) {
    this.width = width;
    this.height = height;
    this.components = components;
    /** @type {8} */
    this.componentSize = 8;
    this.colorSpace = colorSpace;
    this.colorProfile = colorProfile;
    this.hasAlpha = components === 4 || components === 2;
    /** @type {import("photoshop/dom/ImagingModule").imaging.PixelFormat} */
    this.pixelFormat = components === 4 ? "RGBA" : components === 3 ? "RGB" : "Grayscale";
    this.chunky = true;
    /** @type {"image/uncompressed"} */
    this.type = "image/uncompressed";
    this.disposed = false;
    this._data = data;
    stats.imageDataLive++;
  }
  /** @param {import("photoshop/dom/ImagingModule").imaging.GetDataOptions} options */
  async getData(options) {
    if (this.disposed) throw new Error("getData on disposed image data");
    if (options && options.chunky === false) throw new Error("the stand-in returns chunky data only");
    return new Uint8Array(this._data);
  }
  async dispose() {
    if (!this.disposed) stats.imageDataLive--;
    this.disposed = true;
  }
}

/** Counters the tests check: modal scopes entered, image data not disposed. */
const stats = { modalCalls: 0, imageDataLive: 0 };

class Layer {
  /** @param {Document} doc @param {string} name @param {"pixel"|"group"} kind */
  constructor(doc, name, kind = "pixel") {
    this.id = nextId++;
    this.name = name;
    this.kind = kind;
    this.visible = true;
    this.isBackgroundLayer = false;
    this.opacity = 100;
    this._doc = doc;
    /** @type {Layer | null} */
    this.parent = null;
    /** @type {Layer[] | null} */
    this.layers = kind === "group" ? [] : null;
    /** Full-canvas RGBA: simple, and enough for a test document. */
    this.pixels = kind === "group" ? null : new Uint8Array(doc.width * doc.height * 4);
  }
  get typename() {
    return "Layer";
  }
  get selected() {
    return this._doc.activeLayers.includes(this);
  }
  set selected(value) {
    requireModal("Layer.selected");
    if (value) this._doc.activeLayers = [this];
  }
  /** Bounds of the pixels with alpha (Photoshop's boundsNoEffects); all zero when empty. */
  get boundsNoEffects() {
    return this._doc._contentBounds(this);
  }
  get bounds() {
    return this.boundsNoEffects;
  }
  /** @param {Layer} relative @param {string} placement */
  move(relative, placement) {
    requireModal("Layer.move");
    const from = this._doc._siblings(this);
    from.splice(from.indexOf(this), 1);
    const to = this._doc._siblings(relative);
    const at = to.indexOf(relative);
    if (placement === constants.ElementPlacement.PLACEBEFORE) to.splice(at, 0, this); // above: earlier in top-first order
    else if (placement === constants.ElementPlacement.PLACEAFTER) to.splice(at + 1, 0, this);
    else throw new Error("the stand-in moves layers before or after another only");
    this.parent = relative.parent;
  }
}

class Document {
  /** @param {string} title @param {number} width @param {number} height */
  constructor(title, width, height) {
    this.id = nextId++;
    this.title = title;
    this.name = title;
    this.width = width;
    this.height = height;
    this.mode = constants.DocumentMode.RGB;
    this._bits = constants.BitsPerChannelType.EIGHT;
    this.colorProfileName = "sRGB IEC61966-2.1";
    /** @type {Layer[]} top first, as Photoshop lists them */
    this.layers = [];
    /** @type {Layer[]} */
    this.activeLayers = [];
    /** @type {Uint8Array | null} one byte per pixel, 255 = selected */
    this.selectionMask = null;
    /** @type {Array<{name: string, committed: boolean}>} */
    this.history = [];
    this.path = "";
  }
  get typename() {
    return "Document";
  }
  get bitsPerChannel() {
    return this._bits;
  }
  set bitsPerChannel(bits) {
    requireModal("Document.bitsPerChannel");
    this._bits = bits;
  }
  /** @param {string} mode */
  async changeMode(mode) {
    requireModal("Document.changeMode");
    this.mode = mode;
  }
  /** @param {string} profile */
  async convertProfile(profile) {
    requireModal("Document.convertProfile");
    this.colorProfileName = profile;
  }
  /** @param {{name?: string}} [options] */
  async createPixelLayer(options = {}) {
    requireModal("Document.createPixelLayer");
    const layer = new Layer(this, options.name ?? `Layer ${this.layers.length + 1}`);
    // Photoshop adds the new layer above the active one and makes it active.
    const active = this.activeLayers[0];
    const siblings = active ? this._siblings(active) : this.layers;
    siblings.splice(active ? siblings.indexOf(active) : 0, 0, layer);
    layer.parent = active ? active.parent : null;
    this.activeLayers = [layer];
    return layer;
  }

  // -- what tests use to build documents and look at them ---------------------------------

  /** @param {string} name @param {{group?: Layer, kind?: "pixel"|"group"}} [options] */
  addLayer(name, options = {}) {
    const layer = new Layer(this, name, options.kind ?? "pixel");
    const list = options.group ? /** @type {Layer[]} */ (options.group.layers) : this.layers;
    list.unshift(layer);
    layer.parent = options.group ?? null;
    this.activeLayers = [layer];
    return layer;
  }
  /** Fills a rectangle of a layer with an RGBA colour. */
  fill(layer, x, y, w, h, rgba) {
    for (let yy = y; yy < y + h; yy++)
      for (let xx = x; xx < x + w; xx++) layer.pixels.set(rgba, (yy * this.width + xx) * 4);
  }
  /** @param {{left: number, top: number, right: number, bottom: number} | null} rect */
  select(rect) {
    if (!rect) {
      this.selectionMask = null;
      return;
    }
    this.selectionMask = new Uint8Array(this.width * this.height);
    for (let y = rect.top; y < rect.bottom; y++) this.selectionMask.fill(255, y * this.width + rect.left, y * this.width + rect.right);
  }
  /** Every layer, depth first, top first. */
  allLayers() {
    /** @type {Layer[]} */
    const out = [];
    const walk = (/** @type {Layer[]} */ list) => list.forEach((l) => (out.push(l), l.layers && walk(l.layers)));
    walk(this.layers);
    return out;
  }
  layerByName(name) {
    return this.allLayers().find((l) => l.name === name);
  }
  /** @param {Layer} layer */
  _siblings(layer) {
    return layer.parent ? /** @type {Layer[]} */ (layer.parent.layers) : this.layers;
  }
  /** @param {Layer} layer */
  _contentBounds(layer) {
    let left = this.width, top = this.height, right = 0, bottom = 0;
    const px = layer.pixels;
    if (px)
      for (let y = 0; y < this.height; y++)
        for (let x = 0; x < this.width; x++)
          if (px[(y * this.width + x) * 4 + 3]) {
            left = Math.min(left, x); right = Math.max(right, x + 1);
            top = Math.min(top, y); bottom = Math.max(bottom, y + 1);
          }
    if (right <= left) return { left: 0, top: 0, right: 0, bottom: 0, width: 0, height: 0 };
    return { left, top, right, bottom, width: right - left, height: bottom - top };
  }
  /** The visible layers composited (normal blending, 8-bit), RGBA, full canvas. */
  _composite() {
    const out = new Uint8Array(this.width * this.height * 4);
    const paint = (/** @type {Layer[]} */ list) => {
      for (const l of [...list].reverse()) {
        if (!l.visible) continue;
        if (l.layers) {
          paint(l.layers);
          continue;
        }
        const s = /** @type {Uint8Array} */ (l.pixels);
        for (let i = 0; i < out.length; i += 4) {
          const a = s[i + 3] / 255, b = out[i + 3] / 255, oa = a + b * (1 - a);
          for (let c = 0; c < 3; c++) out[i + c] = oa ? Math.round((s[i + c] * a + out[i + c] * b * (1 - a)) / oa) : 0;
          out[i + 3] = Math.round(oa * 255);
        }
      }
    };
    paint(this.layers);
    return out;
  }
}

/** @type {Document[]} */
const documents = [];

/** @param {Bounds | undefined} b @param {Document} doc */
function clip(b, doc) {
  const r = b ?? { left: 0, top: 0, right: doc.width, bottom: doc.height };
  return {
    left: Math.max(0, r.left), top: Math.max(0, r.top),
    right: Math.min(doc.width, r.right), bottom: Math.min(doc.height, r.bottom),
  };
}

/** @param {Uint8Array} rgba full canvas @param {Document} doc @param {Bounds} b @param {number} components */
function cut(rgba, doc, b, components) {
  const w = b.right - b.left, h = b.bottom - b.top, out = new Uint8Array(w * h * components);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const s = ((b.top + y) * doc.width + b.left + x) * 4, d = (y * w + x) * components;
      for (let c = 0; c < components; c++) out[d + c] = rgba[s + c];
    }
  return out;
}

/** @param {number | undefined} id */
function docById(id) {
  const doc = id === undefined || id < 0 ? app.activeDocument : documents.find((d) => d.id === id);
  if (!doc) throw new Error(`no document with id ${id}`);
  return doc;
}

/** @param {number[]} bytes */
function base64(bytes) {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += abc[(n >> 18) & 63] + abc[(n >> 12) & 63] + (i + 1 < bytes.length ? abc[(n >> 6) & 63] : "=") + (i + 2 < bytes.length ? abc[n & 63] : "=");
  }
  return out;
}

const imaging = {
  /** @type {typeof import("photoshop").imaging.getPixels} */
  async getPixels(options) {
    requireModal("imaging.getPixels");
    if (options.componentSize !== undefined && options.componentSize !== 8) throw new Error("the stand-in holds 8-bit documents");
    const doc = docById(options.documentID);
    let full, bounds = clip(options.sourceBounds, doc);
    if (options.layerID !== undefined) {
      const layer = doc.allLayers().find((l) => l.id === options.layerID);
      if (!layer || !layer.pixels) throw new Error(`no pixel layer with id ${options.layerID}`);
      full = layer.pixels;
      // Photoshop trims the region to where the layer has pixels.
      const c = doc._contentBounds(layer);
      bounds = { left: Math.max(bounds.left, c.left), top: Math.max(bounds.top, c.top),
        right: Math.min(bounds.right, c.right), bottom: Math.min(bounds.bottom, c.bottom) };
      if (bounds.right <= bounds.left || bounds.bottom <= bounds.top) throw new Error("the layer has no pixels in that region");
    } else {
      full = doc._composite();
    }
    const data = cut(full, doc, bounds, 4);
    return { imageData: new ImageData(bounds.right - bounds.left, bounds.bottom - bounds.top, 4, data, "RGB", doc.colorProfileName),
      sourceBounds: bounds, level: 0 };
  },

  /** @type {typeof import("photoshop").imaging.getSelection} */
  async getSelection(options) {
    requireModal("imaging.getSelection");
    const doc = docById(options.documentID);
    if (!doc.selectionMask) throw new Error("there is no selection");
    const b = clip(options.sourceBounds, doc), w = b.right - b.left, h = b.bottom - b.top;
    const data = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) data.set(doc.selectionMask.subarray((b.top + y) * doc.width + b.left, (b.top + y) * doc.width + b.right), y * w);
    return { imageData: new ImageData(w, h, 1, data, "Grayscale", "Gray Gamma 2.2"), sourceBounds: b };
  },

  /** @type {typeof import("photoshop").imaging.createImageDataFromBuffer} */
  async createImageDataFromBuffer(buffer, options) {
    if (!(buffer instanceof Uint8Array)) throw new Error("the stand-in takes 8-bit (Uint8Array) buffers");
    if (buffer.length !== options.width * options.height * options.components)
      throw new Error(`createImageDataFromBuffer: ${buffer.length} elements for ${options.width}x${options.height}x${options.components}`);
    if (options.chunky === false) throw new Error("the stand-in takes chunky buffers");
    const space = options.colorSpace === "Grayscale" ? "Grayscale" : "RGB";
    return new ImageData(options.width, options.height, options.components, new Uint8Array(buffer), space, options.colorProfile ?? "");
  },

  /** @type {typeof import("photoshop").imaging.putPixels} */
  async putPixels(options) {
    requireModal("imaging.putPixels");
    const doc = docById(options.documentID);
    const layer = doc.allLayers().find((l) => l.id === options.layerID);
    if (!layer || !layer.pixels) throw new Error(`no pixel layer with id ${options.layerID}`);
    const im = /** @type {ImageData} */ (/** @type {unknown} */ (options.imageData));
    if (im.disposed) throw new Error("putPixels with disposed image data");
    if (im.components !== 4 && im.components !== 3) throw new Error("putPixels takes RGB or RGBA image data");
    const tb = /** @type {{left: number, top: number}} */ (options.targetBounds ?? { left: 0, top: 0 });
    if (options.replace !== false) layer.pixels.fill(0);
    for (let y = 0; y < im.height; y++)
      for (let x = 0; x < im.width; x++) {
        const dx = tb.left + x, dy = tb.top + y;
        if (dx < 0 || dy < 0 || dx >= doc.width || dy >= doc.height) continue;
        const s = (y * im.width + x) * im.components, d = (dy * doc.width + dx) * 4;
        for (let c = 0; c < 3; c++) layer.pixels[d + c] = im._data[s + c];
        layer.pixels[d + 3] = im.components === 4 ? im._data[s + 3] : 255;
      }
  },

  /** @type {typeof import("photoshop").imaging.encodeImageData} */
  async encodeImageData(options) {
    const im = /** @type {ImageData} */ (/** @type {unknown} */ (options.imageData));
    // Not a JPEG: a marker the tests can recognise (the panel only puts it in an <img>).
    const bytes = Array.from(`stand-in image ${im.width}x${im.height}x${im.components}`, (ch) => ch.charCodeAt(0));
    return options.base64 ? base64(bytes) : bytes;
  },
};

const core = {
  /** @type {typeof import("photoshop").core.executeAsModal} */
  async executeAsModal(fn, options) {
    if (!options || typeof options.commandName !== "string") throw new Error("executeAsModal needs a commandName");
    stats.modalCalls++;
    modalDepth++;
    /** @type {Map<number, {doc: Document, name: string}>} */
    const suspended = new Map();
    let nextSuspension = 1;
    /** @type {import("photoshop/dom/CoreModules").ExecutionContext} */
    const ctx = {
      isCancelled: false,
      onCancel: undefined,
      reportProgress: () => {},
      hostControl: {
        async suspendHistory(info) {
          const id = nextSuspension++;
          suspended.set(id, { doc: docById(info.documentID), name: info.name });
          return { historySuspensionID: id };
        },
        async resumeHistory(s, commit = true) {
          const entry = suspended.get(s.historySuspensionID);
          if (!entry) throw new Error("resumeHistory of an unknown suspension");
          suspended.delete(s.historySuspensionID);
          entry.doc.history.push({ name: s.finalName ?? entry.name, committed: commit });
        },
        async registerAutoCloseDocument() {},
        async unregisterAutoCloseDocument() {},
      },
    };
    try {
      return await fn(ctx);
    } finally {
      modalDepth--;
      if (suspended.size) throw new Error("executeAsModal ended with history still suspended");
    }
  },
  isModal() {
    return modalDepth > 0;
  },
};

const action = {
  /** "get selection" as batchPlay answers it: bounds in pixel units, or no `selection` key. */
  /** @type {typeof import("photoshop").action.batchPlay} */
  async batchPlay(commands) {
    return commands.map((cmd) => {
      const target = cmd._target ?? [];
      if (cmd._obj !== "get" || target[0]?._property !== "selection") throw new Error("the stand-in answers 'get selection' only");
      const doc = docById(target[1]?._id);
      if (!doc.selectionMask) return { _obj: "get" };
      let left = doc.width, top = doc.height, right = 0, bottom = 0;
      for (let y = 0; y < doc.height; y++)
        for (let x = 0; x < doc.width; x++)
          if (doc.selectionMask[y * doc.width + x]) {
            left = Math.min(left, x); right = Math.max(right, x + 1);
            top = Math.min(top, y); bottom = Math.max(bottom, y + 1);
          }
      if (right <= left) return { _obj: "get" };
      const px = (/** @type {number} */ v) => ({ _unit: "pixelsUnit", _value: v });
      return { _obj: "get", selection: { _obj: "rectangle", left: px(left), top: px(top), right: px(right), bottom: px(bottom) } };
    });
  },
};

/** Reads a PNG's size from its header: the stand-in's app.open makes a document of that size. */
let readFile = /** @type {(path: string) => Uint8Array} */ ((_path) => {
  throw new Error("the stand-in needs setFileReader() to open files");
});

const app = {
  documents,
  /** @type {Document} */
  get activeDocument() {
    const doc = this._active ?? documents[documents.length - 1];
    if (!doc) throw new Error("no document is open");
    return doc;
  },
  set activeDocument(doc) {
    this._active = doc;
  },
  /** @type {Document | null} */
  _active: null,
  /** @param {{nativePath: string}} entry */
  async open(entry) {
    requireModal("app.open");
    const bytes = readFile(entry.nativePath);
    const sig = [137, 80, 78, 71, 13, 10, 26, 10];
    if (!sig.every((b, i) => bytes[i] === b)) throw new Error(`${entry.nativePath} is not a PNG`);
    const be = (/** @type {number} */ o) => ((bytes[o] << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) | bytes[o + 3]) >>> 0;
    const doc = newDocument(entry.nativePath.split("/").pop() ?? "image", be(16), be(20));
    doc.path = entry.nativePath;
    doc.addLayer("Background");
    return doc;
  },
};

/** @param {string} title @param {number} width @param {number} height */
function newDocument(title, width, height) {
  const doc = new Document(title, width, height);
  documents.push(doc);
  app._active = doc;
  return doc;
}

/** @param {Document} doc */
function closeDocument(doc) {
  documents.splice(documents.indexOf(doc), 1);
  if (app._active === doc) app._active = null;
}

module.exports = {
  app, core, imaging, action, constants,
  // For tests only:
  standin: { newDocument, closeDocument, stats, setFileReader: (/** @type {(path: string) => Uint8Array} */ fn) => (readFile = fn) },
};
