// Pixel helpers between Photoshop's Imaging API buffers and kilnd's images, without any host
// API. Pixels here are 8-bit, chunky (RGBARGBA...), top row first: what imaging.getPixels'
// imageData.getData() returns for an 8-bit RGB document, and what createImageDataFromBuffer
// takes back. The bridge does the one copy to and from shared memory (and RGBA -> RGB
// flattening); these are the few operations on the panel's side of that copy.

import { Rect } from "./requests";

export interface Pixels {
  width: number;
  height: number;
  components: 1 | 3 | 4; // L (a selection mask), RGB, RGBA
  data: Uint8Array; // width * height * components bytes
}

export function makePixels(width: number, height: number, components: 1 | 3 | 4, data?: Uint8Array): Pixels {
  const size = width * height * components;
  if (data && data.length !== size)
    throw new Error(`${data.length} bytes for a ${width}x${height} image of ${components} components (expected ${size})`);
  return { width, height, components, data: data ?? new Uint8Array(size) };
}

/** RGBA copy of RGB (alpha 255) or L (grey) pixels; RGBA pixels are returned as they are. */
export function toRgba(p: Pixels): Pixels {
  if (p.components === 4) return p;
  const out = makePixels(p.width, p.height, 4);
  const n = p.width * p.height, s = p.data, d = out.data, c = p.components;
  for (let i = 0; i < n; i++) {
    const o = i * 4, k = i * c;
    d[o] = s[k];
    d[o + 1] = s[k + (c === 3 ? 1 : 0)];
    d[o + 2] = s[k + (c === 3 ? 2 : 0)];
    d[o + 3] = 255;
  }
  return out;
}

/**
 * `src`, which covers `srcRect` of the document, placed on a `dst`-sized transparent (or
 * unselected) image. Photoshop trims what getPixels / getSelection return to where pixels exist,
 * so a layer read over a region comes back smaller than the region.
 */
export function placeInto(src: Pixels, srcRect: Rect, dst: Rect): Pixels {
  if (src.width === dst.width && src.height === dst.height && srcRect.x === dst.x && srcRect.y === dst.y) return src;
  const out = makePixels(dst.width, dst.height, src.components);
  const c = src.components;
  const x0 = Math.max(srcRect.x, dst.x), y0 = Math.max(srcRect.y, dst.y);
  const x1 = Math.min(srcRect.x + src.width, dst.x + dst.width), y1 = Math.min(srcRect.y + src.height, dst.y + dst.height);
  if (x1 <= x0 || y1 <= y0) return out;
  const rowBytes = (x1 - x0) * c;
  for (let y = y0; y < y1; y++) {
    const s = ((y - srcRect.y) * src.width + (x0 - srcRect.x)) * c;
    const d = ((y - dst.y) * dst.width + (x0 - dst.x)) * c;
    out.data.set(src.data.subarray(s, s + rowBytes), d);
  }
  return out;
}

/** The box (x, y, w, h) of the pixels with non-zero alpha (RGBA) or value (L), or null. */
export function contentBounds(p: Pixels): Rect | null {
  if (p.components === 3) return { x: 0, y: 0, width: p.width, height: p.height };
  const c = p.components, a = c - 1;
  let x0 = p.width, y0 = p.height, x1 = -1, y1 = -1;
  for (let y = 0; y < p.height; y++) {
    const row = y * p.width * c;
    let first = -1, last = -1;
    for (let x = 0; x < p.width; x++) {
      if (p.data[row + x * c + a]) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    if (y0 > y) y0 = y;
    y1 = y;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
  }
  return y1 < 0 ? null : { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
}

export function crop(p: Pixels, box: Rect): Pixels {
  if (box.x === 0 && box.y === 0 && box.width === p.width && box.height === p.height) return p;
  const out = makePixels(box.width, box.height, p.components);
  const c = p.components;
  for (let y = 0; y < box.height; y++) {
    const s = ((box.y + y) * p.width + box.x) * c;
    out.data.set(p.data.subarray(s, s + box.width * c), y * box.width * c);
  }
  return out;
}

/** RGBA pixels whose alpha is scaled by a mask (0..255): what is outside a selection turns transparent. */
export function multiplyAlpha(rgba: Pixels, mask: Pixels): Pixels {
  if (rgba.components !== 4 || mask.components !== 1 || rgba.width !== mask.width || rgba.height !== mask.height)
    throw new Error("multiplyAlpha takes RGBA pixels and an L mask of the same size");
  const out = makePixels(rgba.width, rgba.height, 4, new Uint8Array(rgba.data));
  const n = rgba.width * rgba.height;
  for (let i = 0; i < n; i++) out.data[i * 4 + 3] = Math.floor((out.data[i * 4 + 3] * mask.data[i] + 127) / 255);
  return out;
}

export function anySet(mask: Pixels): boolean {
  for (let i = 0; i < mask.data.length; i++) if (mask.data[i]) return true;
  return false;
}

/** Whether `p` has transparency at all (a product cut-out needs some). */
export function hasTransparency(p: Pixels): boolean {
  if (p.components !== 4) return false;
  for (let i = 3; i < p.data.length; i += 4) if (p.data[i] !== 255) return true;
  return false;
}
