// The native bridge as TypeScript sees it: kiln_bridge.uxpaddon in Photoshop, kiln_bridge.node
// under Node (the tests). Both are built from plugins/photoshop/bridge, whose one export table
// (exports.cpp) these declarations mirror; a test compares the two lists.

/** An opaque handle to a connection (kiln::Client) owned by the addon. */
export interface ClientHandle {
  readonly __kilnClient: unique symbol;
}
/** An opaque handle to a shared-memory image block. */
export interface ImageHandle {
  readonly __kilnImage: unique symbol;
}

/** How kilnd names an image in JSON: a shared-memory block and what it holds. */
export interface ImageRef {
  shm: string;
  width: number;
  height: number;
  channels: number;
  dtype: string;
  stride: number;
  premultiplied?: boolean;
  color_space?: string;
}

export type Layout = "RGBA" | "RGB" | "L";

export interface ClientOptions {
  socket?: string; // default: $KILN_SOCKET, else the per-user socket
  dataDir?: string; // for a kilnd this client starts
  name?: string; // client name kilnd shows (e.g. "photoshop-panel 0.1")
  autostart?: boolean; // start kilnd when none answers (default true)
  daemon?: string; // kilnd program to start (default: $KILN_DAEMON, beside the addon, ../bin, PATH)
  startTimeoutMs?: number;
  remote?: string; // a remote kilnd: a saved remote's name or "kiln+tls://HOST:PORT" (default: $KILN_REMOTE)
  token?: string; // its token when remote is an address (default: $KILN_TOKEN, else the saved remote's)
}

export interface ImageInfo {
  width: number;
  height: number;
  channels: number;
  dtype: string;
  stride: number;
  name: string;
  writable: boolean;
}

/** What the addon throws, and what its promises reject with. */
export interface BridgeError extends Error {
  code: number; // kilnd's error code (shared/protocol/errors.h), -32090 when unreachable, 0 otherwise
  data?: unknown;
}

export interface NativeBridge {
  readonly engine: "node" | "uxp";
  version(): { version: string; protocol: number };
  findDaemon(path?: string): string;
  createClient(options?: ClientOptions): ClientHandle;
  connect(client: ClientHandle): Promise<Record<string, unknown>>;
  close(client: ClientHandle): void;
  isConnected(client: ClientHandle): boolean;
  serverInfo(client: ClientHandle): Record<string, unknown>;
  socketPath(client: ClientHandle): string;
  call(client: ClientHandle, method: string, params?: object): Promise<any>;
  onNotification(client: ClientHandle, handler: ((method: string, params: any) => void) | null): void;
  onDisconnect(client: ClientHandle, handler: ((reason: string) => void) | null): void;
  createImage(client: ClientHandle, width: number, height: number, channels?: 1 | 3 | 4): ImageHandle;
  writeImage(image: ImageHandle, pixels: ArrayBuffer | ArrayBufferView, layout?: Layout, background?: [number, number, number]): void;
  /** The pixels in one copy: a new ArrayBuffer, or into the caller's buffer of the right size (reused: no allocation). */
  readImage(image: ImageHandle, layout?: Layout): ArrayBuffer;
  readImage(image: ImageHandle, layout: Layout, into: ArrayBuffer | ArrayBufferView): void;
  openImage(ref: ImageRef): ImageHandle;
  takeImage(client: ClientHandle, ref: ImageRef): ImageHandle;
  imageInfo(image: ImageHandle): ImageInfo;
  imageRef(image: ImageHandle): ImageRef;
  releaseImage(image: ImageHandle): void;
  readFile(path: string): ArrayBuffer;
  /** A file kilnd named, to localPath (default: a new file in a private temporary folder); resolves with the local path. */
  downloadFile(client: ClientHandle, daemonPath: string, localPath?: string): Promise<string>;
}

/** The export names, in the addon's order: checked against the built addon by the tests. */
export const BRIDGE_EXPORTS = [
  "version", "findDaemon", "createClient", "connect", "close", "isConnected", "serverInfo", "socketPath",
  "call", "onNotification", "onDisconnect", "createImage", "writeImage", "readImage", "openImage",
  "takeImage", "imageInfo", "imageRef", "releaseImage", "readFile", "downloadFile",
] as const;

export function isBridgeError(e: unknown): e is BridgeError {
  return e instanceof Error && typeof (e as BridgeError).code === "number";
}
