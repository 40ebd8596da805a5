// Errors a user can act on, and kilnd's error codes (shared/protocol/errors.h).

import { isBridgeError } from "./bridge";

export const ErrorCode = {
  INVALID_PARAMS: -32602,
  METHOD_NOT_FOUND: -32601,
  SHUTTING_DOWN: -32004,
  IMAGE_ERROR: -32010,
  NOT_FOUND: -32020,
  INVALID_STATE: -32021,
  INVALID_NAME: -32022,
  ALREADY_EXISTS: -32023,
  MODEL_ERROR: -32030,
  UNSUPPORTED: -32031,
  OUT_OF_MEMORY: -32032,
  CANCELLED: -32040,
  JOB_FAILED: -32041,
  CONNECTION_LOST: -32090,
  TIMEOUT: -32091,
} as const;

/** Something the user can fix; the message says how. */
export class UserError extends Error {
  constructor(message: string, readonly code = 0) {
    super(message);
    this.name = "UserError";
  }
}

/** A document the panel cannot read as it is; `convertible`: Kiln can convert it. */
export class UnsupportedDocument extends UserError {
  constructor(message: string, readonly convertible = true) {
    super(message);
    this.name = "UnsupportedDocument";
  }
}

/** Plain words, with the fix, for a failure to reach or start kilnd. */
export function explainConnectionError(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  if (/not found|looked (at|in)/i.test(text))
    return (
      "Kiln's daemon (kilnd) is not running and its program was not found. Install Kiln so that kilnd is on " +
      "PATH, set KILN_DAEMON, or choose the kilnd program with 'Daemon...'.\n\n" + text
    );
  if (/did not answer/i.test(text)) return "kilnd was started but did not answer in time; its log says why.\n\n" + text;
  return "Cannot reach Kiln's daemon (kilnd): " + text;
}

/** A UserError for anything the bridge or kilnd threw: the daemon's own message is kept. */
export function toUserError(e: unknown): UserError {
  if (e instanceof UserError) return e;
  if (isBridgeError(e)) {
    if (e.code === ErrorCode.CONNECTION_LOST) return new UserError(explainConnectionError(e), e.code);
    return new UserError(e.message, e.code);
  }
  return new UserError(e instanceof Error ? e.message : String(e));
}
