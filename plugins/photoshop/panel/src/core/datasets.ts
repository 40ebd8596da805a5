// A dataset as the panel lists it: every image with kilnd's quality findings in plain words
// (kilnd writes each finding's message and, when it has one, what to do about it).

export interface DatasetRow {
  id: string;
  source: string; // the layer or file it came from
  text: string; // "ok", or the findings joined
  flagged: boolean;
}

function findingText(f: any): string {
  if (!f || typeof f !== "object") return "";
  const message = String(f.message ?? f.code ?? "");
  return f.action ? `${message} (${f.action})` : message;
}

export function datasetRows(dataset: any): DatasetRow[] {
  const images = Array.isArray(dataset?.images) ? dataset.images : [];
  return images.map((im: any) => {
    const findings = (Array.isArray(im.findings) ? im.findings : []).map(findingText).filter(Boolean);
    return {
      id: String(im.id ?? ""),
      source: String(im.source_name ?? im.source ?? ""),
      text: findings.length ? findings.join("; ") : "ok",
      flagged: findings.length > 0,
    };
  });
}

/** The dataset's own findings (few images, step count), one line each. */
export function datasetNotes(dataset: any): string[] {
  const findings = Array.isArray(dataset?.findings) ? dataset.findings : [];
  return findings.map(findingText).filter(Boolean);
}
