// Following kilnd's jobs from their notifications, without any host API (the twin of the Krita
// plugin's kiln.jobs). kilnd sends `job.state` (every state change, with the whole record) and
// `job.progress` (at most ~20 a second: step, total, ETA, message, job-specific `extra` values
// such as loss and epoch, and sometimes a `preview` image reference) to subscribed sessions.

import { ImageRef } from "./bridge";

export const FINISHED = ["done", "failed", "cancelled"] as const;
export type JobState = "queued" | "running" | "paused" | "done" | "failed" | "cancelled";

export interface JobRecord {
  id: string;
  type: string;
  state: JobState;
  progress?: {
    step?: number;
    total?: number;
    fraction?: number;
    eta_s?: number;
    steps_per_s?: number;
    message?: string;
    extra?: Record<string, unknown>;
  };
  result?: any;
  error?: { code?: number; message?: string } | null;
  [key: string]: unknown;
}

export function isFinished(state: string | undefined): boolean {
  return (FINISHED as readonly string[]).includes(state ?? "");
}

export interface Progress {
  jobId: string;
  type: string;
  state: JobState;
  step: number;
  total: number;
  fraction: number;
  etaS: number; // -1 when unknown
  stepsPerS: number;
  message: string;
  extra: Record<string, unknown>;
  preview: ImageRef | null; // shared by every subscriber: read it, never take it
  error: string | null;
  finished: boolean;
  loss: number | null;
  epoch: number | null;
  epochs: number | null;
}

function num(extra: Record<string, unknown>, ...keys: string[]): number | null {
  for (const k of keys) {
    const v = extra[k];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return null;
}

export function progressFromRecord(record: JobRecord, preview: ImageRef | null = null): Progress {
  const p = record.progress ?? {};
  const extra = (p.extra ?? {}) as Record<string, unknown>;
  return {
    jobId: record.id ?? "",
    type: record.type ?? "",
    state: record.state,
    step: p.step ?? 0,
    total: p.total ?? 0,
    fraction: p.fraction ?? 0,
    etaS: typeof p.eta_s === "number" ? p.eta_s : -1,
    stepsPerS: p.steps_per_s ?? 0,
    message: p.message ?? "",
    extra,
    preview,
    error: record.error && typeof record.error === "object" ? record.error.message ?? null : null,
    finished: isFinished(record.state),
    loss: num(extra, "loss", "loss_avg", "average_loss"),
    epoch: num(extra, "epoch"),
    epochs: num(extra, "epochs", "max_train_epochs", "total_epochs"),
  };
}

export function formatEta(seconds: number): string {
  if (!(seconds >= 0)) return "";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`;
}

/** One line for the status label: "running · step 12/40 · epoch 2/10 · loss 0.1234 · ETA 0:16". */
export function describe(p: Progress): string {
  const parts: string[] = [p.state];
  if (p.total) parts.push(`step ${p.step}/${p.total}`);
  if (p.epoch !== null) parts.push(p.epochs ? `epoch ${p.epoch}/${p.epochs}` : `epoch ${p.epoch}`);
  if (p.loss !== null) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.state === "running" && p.etaS >= 0) parts.push("ETA " + formatEta(p.etaS));
  if (p.state === "failed" && p.error) parts.push(p.error);
  else if (p.message && ["running", "paused", "queued"].includes(p.state) && p.message !== `step ${p.step}/${p.total}`)
    parts.push(p.message);
  return parts.join(" · ");
}

/** The latest record of every job seen, from notifications and jobs.get answers. */
export class JobTracker {
  private records = new Map<string, JobRecord>();

  /** Stores a record (newer replaces older) and returns its Progress. */
  update(record: JobRecord, preview: ImageRef | null = null): Progress {
    const old = this.records.get(record.id);
    // Replies and notifications reach JavaScript by different routes: a late progress
    // notification must not undo a finished state.
    if (!old || !isFinished(old.state) || isFinished(record.state)) this.records.set(record.id, record);
    else record = old;
    return progressFromRecord(record, preview);
  }

  /** Takes a notification; returns the job's Progress, or null when it was not about a job. */
  feed(method: string, params: any): Progress | null {
    if ((method !== "job.state" && method !== "job.progress") || !params || typeof params !== "object") return null;
    const record = params.job;
    if (!record || typeof record !== "object" || typeof record.id !== "string") return null;
    return this.update(record as JobRecord, (params.preview as ImageRef) ?? null);
  }

  get(id: string): JobRecord | undefined {
    return this.records.get(id);
  }
}
