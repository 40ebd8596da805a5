#include "studio/error.h"

namespace kiln::studio {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "invalid argument";
    case ErrorKind::NotFound: return "not found";
    case ErrorKind::BadFormat: return "bad format";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::InvalidName: return "invalid name";
    case ErrorKind::AlreadyExists: return "already exists";
    case ErrorKind::Cancelled: return "cancelled";
  }
  return "unknown";
}

}  // namespace kiln::studio
