// The image size a model works at, by family (the TypeScript twin of the Python kiln.sizes):
// kilnd's models.list gives each model its family and "default_size", 512 for SD 1.x and 1024 for
// SDXL. Photoshop sizes a generation from the canvas or selection; this only words the note about
// areas far from the model's own size.

export const SD1_SIZE = 512;
export const SDXL_SIZE = 1024;

/** A models.list entry as far as sizes go. */
export interface ModelEntry {
  name?: string;
  family?: string;
  default_size?: number;
}

/** The side a model works best at: its "default_size", else by its family; 512 when unknown. */
export function nativeSize(model?: ModelEntry | string | null): number {
  if (model && typeof model === "object") {
    if (typeof model.default_size === "number" && model.default_size > 0) return model.default_size;
    model = model.family;
  }
  return typeof model === "string" && model.trim().toUpperCase().startsWith("SDXL") ? SDXL_SIZE : SD1_SIZE;
}

/** name → native size of a models.list result. */
export function modelSizes(models: ModelEntry[]): Map<string, number> {
  return new Map(models.map((m) => [m.name ?? "", nativeSize(m)]));
}

/**
 * A note when width x height is far from the model's own size: above four times its area (slow),
 * and for SDXL below a quarter of it (it loses detail there); "" otherwise.
 */
export function areaNote(width: number, height: number, native = SD1_SIZE): string {
  const area = width * height, own = native * native;
  const label = native >= SDXL_SIZE ? "SDXL" : "SD 1.x";
  if (area > 4 * own) return `Large area: ${label} works best near ${native}x${native}; this will be slow.`;
  if (native >= SDXL_SIZE && area < own / 4)
    return `Small area: ${label} works best near ${native}x${native}; below that it loses detail.`;
  return "";
}
