// What the controller needs from a host application's document, and nothing else. host/
// implements it with Photoshop's DOM and Imaging API; the controller (and so the panel's flows)
// never touches Photoshop directly. Coordinates are document pixels; layer ids are Photoshop's.

import { Pixels } from "./pixels";
import { Rect } from "./requests";

export interface DocumentInfo {
  id: number;
  title: string;
  width: number;
  height: number;
  mode: string; // "RGB", "CMYK", "Grayscale", ...
  bitsPerChannel: number; // 8, 16, 32
  profile: string; // colour profile name, e.g. "sRGB IEC61966-2.1"
}

export interface LayerInfo {
  id: number;
  name: string;
  kind: "pixel" | "group" | "other";
  visible: boolean;
  bounds: Rect | null; // without effects; null when empty
}

export interface NewLayer {
  name: string;
  pixels: Pixels; // RGBA, the size of `rect`
  rect: Rect; // where it goes, in document pixels
  hidden?: boolean;
}

export interface Canvas {
  /** The active document, or null when none is open. */
  activeDocument(): DocumentInfo | null;
  isOpen(documentId: number): boolean;
  /** Converts the document to 8-bit RGB in sRGB (one undoable step). */
  convertToRgb8(documentId: number): Promise<void>;
  /** The selection's bounds, clipped to the canvas, or null without a selection. */
  selectionBounds(documentId: number): Promise<Rect | null>;
  activeLayer(documentId: number): LayerInfo | null;
  selectedLayers(documentId: number): LayerInfo[];
  /** A group's child layers, top first. */
  childLayers(documentId: number, groupId: number): LayerInfo[];
  /** A layer's pixels over `rect` (default: its bounds), RGBA or RGB; transparent where it has none. */
  readLayer(documentId: number, layerId: number, rect?: Rect): Promise<Pixels>;
  /** The visible (merged) image over `rect`, RGBA or RGB. */
  readVisible(documentId: number, rect: Rect): Promise<Pixels>;
  /** The selection over `rect`, one byte per pixel (255 = selected). */
  readSelection(documentId: number, rect: Rect): Promise<Pixels>;
  /**
   * Adds layers as one history step named `stepName` (one undo removes them all): each new layer
   * goes just above `relativeTo` ("above"), or just below it, each under the one before ("below").
   */
  addLayers(
    documentId: number,
    stepName: string,
    layers: NewLayer[],
    placement: { relativeTo: number | null; where: "above" | "below" },
  ): Promise<LayerInfo[]>;
  setActiveLayer(documentId: number, layerId: number): Promise<void>;
  /** Opens an image file (a validation grid) as a new document. */
  openImageDocument(path: string): Promise<DocumentInfo>;
}
