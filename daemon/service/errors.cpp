#include "service/errors.h"

#include <new>

#include "engine/error.h"
#include "ipc/shm_image.h"
#include "studio/error.h"

namespace kiln::service {

using protocol::ErrorCode;

namespace {
ErrorCode code_for(engine::ErrorKind kind) {
  switch (kind) {
    case engine::ErrorKind::InvalidArgument: return ErrorCode::InvalidParams;
    case engine::ErrorKind::NotFound: return ErrorCode::NotFound;
    case engine::ErrorKind::BadFormat: return ErrorCode::ModelError;
    case engine::ErrorKind::Unsupported: return ErrorCode::Unsupported;
    case engine::ErrorKind::Cancelled: return ErrorCode::Cancelled;
    case engine::ErrorKind::OutOfMemory: return ErrorCode::OutOfMemory;
    case engine::ErrorKind::Internal: return ErrorCode::InternalError;
  }
  return ErrorCode::InternalError;
}
ErrorCode code_for(studio::ErrorKind kind) {
  switch (kind) {
    case studio::ErrorKind::InvalidArgument: return ErrorCode::InvalidParams;
    case studio::ErrorKind::NotFound: return ErrorCode::NotFound;
    case studio::ErrorKind::BadFormat: return ErrorCode::InvalidParams;
    case studio::ErrorKind::Unsupported: return ErrorCode::Unsupported;
    case studio::ErrorKind::InvalidName: return ErrorCode::InvalidName;
    case studio::ErrorKind::AlreadyExists: return ErrorCode::AlreadyExists;
    case studio::ErrorKind::Cancelled: return ErrorCode::Cancelled;
  }
  return ErrorCode::InternalError;
}
}  // namespace

MappedError map_current_exception() {
  try {
    throw;
  } catch (const ServiceError& e) {
    return {e.code(), e.what(), e.data()};
  } catch (const engine::Error& e) {
    return {code_for(e.kind()), e.what(), nullptr};
  } catch (const studio::Error& e) {
    return {code_for(e.kind()), e.what(), nullptr};
  } catch (const ipc::ImageError& e) {
    return {ErrorCode::ImageError, e.what(), nullptr};
  } catch (const std::bad_alloc&) {
    return {ErrorCode::OutOfMemory, "out of memory: try a smaller image, batch or model, or close other programs", nullptr};
  } catch (const std::exception& e) {
    std::string what = e.what();
    // LibTorch reports allocation failures as c10::Error with this text.
    if (what.find("out of memory") != std::string::npos || what.find("DefaultCPUAllocator: can't allocate") != std::string::npos)
      return {ErrorCode::OutOfMemory, "out of memory: try a smaller image, batch or model (" + what.substr(0, 200) + ")", nullptr};
    return {ErrorCode::InternalError, "internal error: " + what, nullptr};
  } catch (...) {
    return {ErrorCode::InternalError, "internal error of unknown kind", nullptr};
  }
}

}  // namespace kiln::service
