#include "protocol/errors.h"

namespace kiln::protocol {

const char* error_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::ParseError: return "parse_error";
    case ErrorCode::InvalidRequest: return "invalid_request";
    case ErrorCode::MethodNotFound: return "method_not_found";
    case ErrorCode::InvalidParams: return "invalid_params";
    case ErrorCode::InternalError: return "internal_error";
    case ErrorCode::HelloRequired: return "hello_required";
    case ErrorCode::ProtocolMismatch: return "protocol_mismatch";
    case ErrorCode::FrameTooLarge: return "frame_too_large";
    case ErrorCode::ShuttingDown: return "shutting_down";
    case ErrorCode::Unauthorized: return "unauthorized";
    case ErrorCode::Forbidden: return "forbidden";
    case ErrorCode::AttachmentError: return "attachment_error";
    case ErrorCode::ImageError: return "image_error";
    case ErrorCode::NotFound: return "not_found";
    case ErrorCode::InvalidState: return "invalid_state";
    case ErrorCode::InvalidName: return "invalid_name";
    case ErrorCode::AlreadyExists: return "already_exists";
    case ErrorCode::ModelError: return "model_error";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::OutOfMemory: return "out_of_memory";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::JobFailed: return "job_failed";
    case ErrorCode::ConnectionLost: return "connection_lost";
    case ErrorCode::Timeout: return "timeout";
  }
  return "error";
}

}  // namespace kiln::protocol
