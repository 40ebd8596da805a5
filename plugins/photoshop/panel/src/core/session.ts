// One connection to kilnd through the native bridge, as the panel uses it (the twin of the
// Krita plugin's kiln.session + Connection). The bridge calls our handlers on the JavaScript
// thread, so job updates, replies and disconnects all arrive where touching the panel (and
// Photoshop, inside executeAsModal) is allowed.

import { ClientHandle, ClientOptions, ImageHandle, ImageRef, Layout, NativeBridge } from "./bridge";
import { ErrorCode, UserError, toUserError } from "./errors";
import { JobRecord, JobTracker, Progress } from "./jobs";
import { Pixels, makePixels } from "./pixels";

export type ProgressListener = (p: Progress) => void;

export class Session {
  readonly tracker = new JobTracker();
  private client: ClientHandle;
  private connecting: Promise<Record<string, unknown>> | null = null;
  private subscribed = false;
  private watchers = new Map<string, ProgressListener[]>();
  private listeners: ProgressListener[] = [];
  private disconnectListeners: Array<(reason: string) => void> = [];
  private downloads = new Map<string, string>(); // a remote kilnd's path -> its copy here (readDaemonFile)
  lastDisconnect: string | null = null;
  /** A listener threw: reported here, and the other listeners still run. */
  onCallbackError: (e: unknown) => void = (e) => console.error("kiln panel:", e);

  constructor(readonly bridge: NativeBridge, readonly options: ClientOptions = {}) {
    this.client = bridge.createClient(options);
    bridge.onNotification(this.client, (method, params) => this.onNotification(method, params));
    bridge.onDisconnect(this.client, (reason) => this.onDisconnect(reason));
  }

  // -- connection ------------------------------------------------------------------------

  get connected(): boolean {
    return this.bridge.isConnected(this.client);
  }

  /**
   * Connects (starting kilnd when allowed) and subscribes to every job's notifications. After a
   * lost connection the next call connects again, so a restarted daemon is picked up.
   */
  async ensureConnected(): Promise<Record<string, unknown>> {
    if (!this.connected) {
      if (!this.connecting) {
        this.subscribed = false;
        this.connecting = this.bridge.connect(this.client).finally(() => (this.connecting = null));
      }
      try {
        await this.connecting;
      } catch (e) {
        throw toUserError(e);
      }
    }
    if (!this.subscribed) {
      await this.rawCall("jobs.subscribe", {});
      this.subscribed = true;
    }
    return this.bridge.serverInfo(this.client);
  }

  /** "kilnd 0.1.0 on cpu": the panel's status line. */
  describeServer(): string {
    const info = this.bridge.serverInfo(this.client) as { version?: string; device?: string };
    const device = String(info.device ?? "?").split(" (")[0];
    return `kilnd ${info.version ?? "?"} on ${device}`;
  }

  hasMethod(name: string): boolean {
    const methods = (this.bridge.serverInfo(this.client) as { methods?: unknown }).methods;
    return Array.isArray(methods) && methods.includes(name);
  }

  close(): void {
    this.bridge.close(this.client);
    this.subscribed = false;
  }

  // -- requests --------------------------------------------------------------------------

  private async rawCall(method: string, params: object): Promise<any> {
    try {
      return await this.bridge.call(this.client, method, params);
    } catch (e) {
      throw toUserError(e);
    }
  }

  /** Sends a request and waits for its result; throws UserError with kilnd's message and code. */
  async call(method: string, params: object = {}): Promise<any> {
    await this.ensureConnected();
    return this.rawCall(method, params);
  }

  // -- images ----------------------------------------------------------------------------

  /**
   * A shared-memory image of `channels` filled from `pixels` in one copy. RGBA pixels sent as an
   * RGB image are composited onto `background` (kilnd reads RGB init images: transparent areas
   * become the paper colour instead of black).
   */
  sendPixels(pixels: Pixels, channels: 1 | 3 | 4 = pixels.components, background?: [number, number, number]): ImageHandle {
    const image = this.bridge.createImage(this.client, pixels.width, pixels.height, channels);
    const layout: Layout = pixels.components === 4 ? "RGBA" : pixels.components === 3 ? "RGB" : "L";
    this.bridge.writeImage(image, pixels.data, layout, background);
    return image;
  }

  ref(image: ImageHandle): ImageRef {
    return this.bridge.imageRef(image);
  }

  /** A job's image (a result or preview, shared with other clients): mapped, copied out once, unmapped. */
  readPixels(ref: ImageRef, layout: Layout = "RGBA"): Pixels {
    const image = this.bridge.openImage(ref);
    try {
      const info = this.bridge.imageInfo(image);
      const data = new Uint8Array(this.bridge.readImage(image, layout));
      return makePixels(info.width, info.height, layout === "RGBA" ? 4 : layout === "RGB" ? 3 : 1, data);
    } finally {
      this.bridge.releaseImage(image);
    }
  }

  release(...images: Array<ImageHandle | null | undefined>): void {
    for (const im of images) if (im) this.bridge.releaseImage(im);
  }

  readFile(path: string): Uint8Array {
    try {
      return new Uint8Array(this.bridge.readFile(path));
    } catch (e) {
      throw toUserError(e);
    }
  }

  /** True when kilnd runs on another machine (kiln+tls://): its paths are not this machine's. */
  get isRemote(): boolean {
    return this.bridge.socketPath(this.client).startsWith("kiln+tls://");
  }

  /**
   * A file kilnd named (a LoRA's grid, a training sample): read where it is from a local kilnd;
   * from a remote one downloaded once and kept for the session (fresh: again, for a file kilnd
   * rewrites in place, as a LoRA's grid.png).
   */
  async readDaemonFile(path: string, fresh = false): Promise<Uint8Array> {
    if (!this.isRemote) return this.readFile(path);
    let local = fresh ? undefined : this.downloads.get(path);
    if (local === undefined) {
      try {
        local = await this.bridge.downloadFile(this.client, path);
      } catch (e) {
        throw toUserError(e);
      }
      this.downloads.set(path, local);
    }
    return this.readFile(local);
  }

  // -- jobs ------------------------------------------------------------------------------

  addListener(fn: ProgressListener): void {
    this.listeners.push(fn);
  }
  removeListener(fn: ProgressListener): void {
    this.listeners = this.listeners.filter((l) => l !== fn);
  }
  addDisconnectListener(fn: (reason: string) => void): void {
    this.disconnectListeners.push(fn);
  }

  /**
   * fn(progress) on every update of one job, the last one when it finishes. The job's record is
   * fetched now too: it may have finished before the watch began.
   */
  async watch(jobId: string, fn: ProgressListener): Promise<void> {
    this.watchers.set(jobId, [...(this.watchers.get(jobId) ?? []), fn]);
    const record = (await this.call("jobs.get", { id: jobId })) as JobRecord;
    this.deliver(this.tracker.update(record));
  }

  unwatch(jobId: string): void {
    this.watchers.delete(jobId);
  }

  cancel(jobId: string): Promise<any> {
    return this.call("jobs.cancel", { id: jobId });
  }

  /** Resolves with a job's final record (for scripts and tests; the panel watches instead). */
  wait(jobId: string, timeoutMs = 0): Promise<JobRecord> {
    return new Promise((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => reject(new UserError(`job ${jobId} did not finish in time`)), timeoutMs) : null;
      const onDrop = () => reject(new UserError(`the connection to kilnd was lost while waiting for job ${jobId}`, ErrorCode.CONNECTION_LOST));
      this.disconnectListeners.push(onDrop);
      const done = (p: Progress) => {
        if (!p.finished) return;
        if (timer) clearTimeout(timer);
        this.disconnectListeners = this.disconnectListeners.filter((l) => l !== onDrop);
        resolve(this.tracker.get(jobId) as JobRecord);
      };
      this.watch(jobId, done).catch(reject);
    });
  }

  private run(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.onCallbackError(e);
    }
  }

  private deliver(p: Progress): void {
    for (const fn of [...this.listeners]) this.run(() => fn(p));
    const fns = this.watchers.get(p.jobId);
    if (!fns) return;
    if (p.finished) this.watchers.delete(p.jobId); // each watcher hears the end once
    for (const fn of [...fns]) this.run(() => fn(p));
  }

  private onNotification(method: string, params: any): void {
    const p = this.tracker.feed(method, params);
    if (p) this.deliver(p);
  }

  private onDisconnect(reason: string): void {
    this.subscribed = false;
    this.lastDisconnect = reason;
    for (const fn of [...this.disconnectListeners]) this.run(() => fn(reason));
  }
}
