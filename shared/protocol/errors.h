#pragma once
// Every error code Kiln's protocol uses. JSON-RPC 2.0 reserves -32768..-32000; the standard
// codes come first, Kiln's own live in the implementation-defined range -32099..-32000.
#include <string>

namespace kiln::protocol {

enum class ErrorCode : int {
  // JSON-RPC 2.0
  ParseError = -32700,      // not valid UTF-8 JSON
  InvalidRequest = -32600,  // valid JSON, but not a JSON-RPC 2.0 request
  MethodNotFound = -32601,
  InvalidParams = -32602,
  InternalError = -32603,
  // Kiln
  HelloRequired = -32001,       // a call before the hello handshake
  ProtocolMismatch = -32002,    // no protocol version both sides speak
  FrameTooLarge = -32003,       // a frame over kMaxFrameBytes; the connection is closed
  ShuttingDown = -32004,        // the daemon is stopping and takes no new work
  Unauthorized = -32005,        // remote: no token, a wrong or revoked one, or too many failed attempts
  Forbidden = -32006,           // remote: a read-only token, or a method only the daemon's machine may call
  ImageError = -32010,          // a shared-memory image that is missing, malformed or lies
  AttachmentError = -32011,     // remote: binary frames that are damaged, misplaced or over their announcement
  NotFound = -32020,            // an unknown job, model, LoRA or dataset
  InvalidState = -32021,        // e.g. cancelling a job that already finished
  InvalidName = -32022,         // a name that could become a path outside the data dir
  AlreadyExists = -32023,
  ModelError = -32030,          // a model file that is corrupt, truncated or incomplete
  Unsupported = -32031,         // valid input Kiln does not handle (SDXL file, pickled .ckpt, ...)
  OutOfMemory = -32032,
  Cancelled = -32040,
  JobFailed = -32041,
  // Raised by kiln::Client itself, never sent by the daemon.
  ConnectionLost = -32090,
  Timeout = -32091,
};

// Short stable identifier, e.g. "invalid_params", used in logs and the CLI's JSON output.
const char* error_name(ErrorCode code);

}  // namespace kiln::protocol
