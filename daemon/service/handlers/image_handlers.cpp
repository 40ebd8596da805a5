// image.echo: an image round trip through shared memory, for tests and benchmarks.
#include <cstring>

#include "ipc/shm_image.h"
#include "protocol/methods.h"
#include "service/images/image_leases.h"
#include "service/server/session.h"

namespace kiln::service {

using Json = nlohmann::json;

namespace {

void copy_pixels(const ipc::ShmImage& from, ipc::ShmImage& to) {
  if (from.desc().stride == to.desc().stride) {
    std::memcpy(to.data(), from.data(), from.data_size());
    return;
  }
  const std::size_t row_bytes = from.desc().min_stride();
  for (uint32_t y = 0; y < from.desc().height; ++y) std::memcpy(to.row(y), from.row(y), row_bytes);
}

// The client's blocks through the session's mappings kept between requests (a block the client
// reuses is mapped once), or afresh each time with fresh_mappings (the old path, for the bench).
ipc::ShmImage open_block(Call& call, const Json& ref, ipc::ShmImage::Access access) {
  const protocol::ImageRef r = protocol::image_ref_from_json(ref);
  if (call.params.value("fresh_mappings", false) && !call.session.is_remote()) return ipc::ShmImage::open(r, access);
  return call.session.open_client_image(r, access);
}

Json echo(Call& call) {
  const ipc::ShmImage in = open_block(call, call.params.at("image"), ipc::ShmImage::Access::ReadOnly);
  if (call.params.contains("into")) {
    ipc::ShmImage into = open_block(call, call.params.at("into"), ipc::ShmImage::Access::ReadWrite);
    const auto& a = in.desc();
    const auto& b = into.desc();
    if (a.width != b.width || a.height != b.height || a.channels != b.channels || a.dtype != b.dtype)
      throw ipc::ImageError("image.echo: 'into' is " + std::to_string(b.width) + "x" + std::to_string(b.height) + "x" +
                            std::to_string(b.channels) + " " + protocol::to_string(b.dtype) + " but the image is " +
                            std::to_string(a.width) + "x" + std::to_string(a.height) + "x" + std::to_string(a.channels) +
                            " " + protocol::to_string(a.dtype));
    copy_pixels(in, into);
    return {{"image", protocol::to_json(into.ref())}};
  }
  ipc::ShmImage out = ipc::ShmImage::create(in.desc());
  copy_pixels(in, out);
  return {{"image", protocol::to_json(call.services.leases.hand_to_session(call.session.id(), std::move(out)))}};
}

}  // namespace

void register_image_handlers(Dispatcher& d) { d.add(protocol::method::kImageEcho, echo); }

}  // namespace kiln::service
