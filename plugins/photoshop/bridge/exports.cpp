// The bridge's exports: the one list both glues bind (Node-API for the tests, UXP for
// Photoshop). Each takes its arguments from Args and answers through Result, so an argument is
// checked, and an error worded, once for both engines. The panel's core/bridge.ts declares the
// same functions for TypeScript; tests/hosts/photoshop checks that the two lists agree.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <unordered_set>

#include "bridge_client.h"
#include "client/daemon_launcher.h"
#include "js.h"
#include "pixels.h"
#include "protocol/image_ref.h"
#include "protocol/version.h"

namespace kiln::ps {

// ---------------------------------------------------------------------------------------------
// Boxes: a registry of the pointers handed to engines, so a foreign external is refused.
namespace {
std::mutex box_mutex;
std::unordered_set<void*>& boxes() {
  static auto* set = new std::unordered_set<void*>();  // never destroyed: finalizers may run at exit
  return *set;
}
}  // namespace

void* box_object(std::shared_ptr<Object> object) {
  auto* box = new std::shared_ptr<Object>(std::move(object));
  std::lock_guard lock(box_mutex);
  boxes().insert(box);
  return box;
}

std::shared_ptr<Object> unbox_object(void* box) {
  std::lock_guard lock(box_mutex);
  if (!boxes().count(box)) return nullptr;
  return *static_cast<std::shared_ptr<Object>*>(box);
}

void release_box(void* box) {
  {
    std::lock_guard lock(box_mutex);
    if (!boxes().erase(box)) return;
  }
  delete static_cast<std::shared_ptr<Object>*>(box);  // may close a client: outside the lock
}

namespace {

// ---------------------------------------------------------------------------------------------
// Argument helpers.

uint32_t dimension(const Args& a, std::size_t i, const char* name) {
  const double v = a.number(i, name);
  if (!(v >= 1 && v <= ipc::kMaxImageSide) || std::floor(v) != v)
    throw JsError::type(std::string("argument '") + name + "' must be a whole number of pixels from 1 to " +
                        std::to_string(ipc::kMaxImageSide));
  return static_cast<uint32_t>(v);
}

std::string optional_string(const Json& o, const char* key) {
  if (!o.contains(key) || o[key].is_null()) return "";
  if (!o[key].is_string()) throw JsError::type(std::string("option '") + key + "' must be a string");
  return o[key].get<std::string>();
}

ClientOptions client_options(const Args& a) {
  ClientOptions o;
  o.client_name = "photoshop-bridge";
  if (!a.present(0)) return o;
  const Json j = a.json(0, "options");
  if (!j.is_object()) throw JsError::type("argument 'options' must be an object");
  static const char* known[] = {"socket", "dataDir", "name", "autostart", "daemon", "startTimeoutMs", "remote", "token"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return it.key() == k; }) == std::end(known))
      throw JsError::type("unknown client option '" + it.key() +
                          "' (known: socket, dataDir, name, autostart, daemon, startTimeoutMs, remote, token)");
  o.remote = optional_string(j, "remote");  // default: $KILN_REMOTE, else the local daemon
  o.token = optional_string(j, "token");
  o.socket_path = optional_string(j, "socket");
  o.data_dir = optional_string(j, "dataDir");
  o.daemon_executable = optional_string(j, "daemon");
  if (std::string name = optional_string(j, "name"); !name.empty()) o.client_name = name;
  if (j.contains("autostart")) {
    if (!j["autostart"].is_boolean()) throw JsError::type("option 'autostart' must be true or false");
    o.autostart = j["autostart"].get<bool>();
  }
  if (j.contains("startTimeoutMs")) {
    if (!j["startTimeoutMs"].is_number() || j["startTimeoutMs"].get<double>() < 0)
      throw JsError::type("option 'startTimeoutMs' must be a number of milliseconds");
    o.start_timeout = std::chrono::milliseconds(static_cast<int64_t>(j["startTimeoutMs"].get<double>()));
  }
  return o;
}

Json image_info(BridgeImage& im) {
  const auto& d = im.image().desc();
  return {{"width", d.width},
          {"height", d.height},
          {"channels", d.channels},
          {"dtype", protocol::to_string(d.dtype)},
          {"stride", d.stride},
          {"name", im.image().name()},
          {"writable", im.writable()}};
}

protocol::ImageRef parse_ref(const Json& j) {
  if (auto problem = protocol::check_image_ref(j)) throw JsError::type("not a Kiln image reference: " + *problem);
  return protocol::image_ref_from_json(j);
}

// Runs `body`, turning library exceptions into the JsError JavaScript will see.
template <class Fn>
void guarded(Fn&& body) {
  try {
    body();
  } catch (const JsError&) {
    throw;
  } catch (const std::exception& e) {
    throw to_js_error(e);
  }
}

// ---------------------------------------------------------------------------------------------
// The exports.

void version(const Args&, Result& r) {
  r.set_json({{"version", protocol::kKilnVersion}, {"protocol", protocol::kProtocolVersion}});
}

void find_daemon(const Args& a, Result& r) {
  const std::string path = a.present(0) ? a.string(0, "path") : "";
  guarded([&] { r.set_json(find_daemon_executable(path).string()); });
}

void create_client(const Args& a, Result& r) { r.set_object(BridgeClient::create(client_options(a))); }

void connect(const Args& a, Result& r) {
  auto client = a.object_as<BridgeClient>(0, "client");
  client->connect(r.set_promise());
}

void close(const Args& a, Result& r) {
  a.object_as<BridgeClient>(0, "client")->close();
  r.set_json(nullptr);
}

void is_connected(const Args& a, Result& r) { r.set_json(a.object_as<BridgeClient>(0, "client")->connected()); }
void server_info(const Args& a, Result& r) { r.set_json(a.object_as<BridgeClient>(0, "client")->server_info()); }
void socket_path(const Args& a, Result& r) { r.set_json(a.object_as<BridgeClient>(0, "client")->socket_path()); }

void call(const Args& a, Result& r) {
  auto client = a.object_as<BridgeClient>(0, "client");
  const std::string method = a.string(1, "method");
  Json params = a.present(2) ? a.json(2, "params") : Json::object();
  if (!params.is_object()) throw JsError::type("argument 'params' must be an object");
  client->call(method, params, r.set_promise());
}

void on_notification(const Args& a, Result& r) {
  auto client = a.object_as<BridgeClient>(0, "client");
  client->set_notification_callback(a.present(1) ? a.function(1, "handler") : nullptr);
  r.set_json(nullptr);
}

void on_disconnect(const Args& a, Result& r) {
  auto client = a.object_as<BridgeClient>(0, "client");
  client->set_disconnect_callback(a.present(1) ? a.function(1, "handler") : nullptr);
  r.set_json(nullptr);
}

void create_image(const Args& a, Result& r) {
  auto client = a.object_as<BridgeClient>(0, "client");
  protocol::ImageDesc desc;
  desc.width = dimension(a, 1, "width");
  desc.height = dimension(a, 2, "height");
  const double channels = a.present(3) ? a.number(3, "channels") : 4;
  if (channels != 1 && channels != 3 && channels != 4) throw JsError::type("argument 'channels' must be 1, 3 or 4");
  desc.channels = static_cast<uint32_t>(channels);
  guarded([&] { r.set_object(std::make_shared<BridgeImage>(client->create_image(desc), true)); });
}

void write_image(const Args& a, Result& r) {
  auto image = a.object_as<BridgeImage>(0, "image");
  if (!image->writable()) throw JsError::type("this image belongs to kilnd and is read-only; create one with createImage");
  const ByteView pixels = a.bytes(1, "pixels");
  const Layout layout = a.present(2) ? parse_layout(a.string(2, "layout")) : layout_of_channels(image->image().desc().channels);
  std::optional<Rgb> background;
  if (a.present(3)) {
    const Json bg = a.json(3, "background");
    if (!bg.is_array() || bg.size() != 3 || !std::all_of(bg.begin(), bg.end(), [](const Json& v) {
          return v.is_number() && v.get<double>() >= 0 && v.get<double>() <= 255;
        }))
      throw JsError::type("argument 'background' must be [r, g, b] with values 0..255");
    background = Rgb{uint8_t(bg[0].get<double>()), uint8_t(bg[1].get<double>()), uint8_t(bg[2].get<double>())};
  }
  guarded([&] { write_pixels(pixels.data, pixels.size, layout, image->image(), background); });
  r.set_json(nullptr);
}

void read_image(const Args& a, Result& r) {
  auto image = a.object_as<BridgeImage>(0, "image");
  const auto& desc = image->image().desc();
  const Layout layout = a.present(1) ? parse_layout(a.string(1, "layout")) : layout_of_channels(desc.channels);
  const std::size_t size = packed_size(desc.width, desc.height, layout);
  guarded([&] {
    if (desc.dtype != protocol::PixelType::U8) throw JsError("only 8-bit images can be read");
    if (a.present(2)) {
      // Into the caller's buffer: a reused one costs no allocation (a fresh 64 MB ArrayBuffer is
      // most of a 4096x4096 read).
      const ByteView into = a.bytes(2, "into");
      if (into.size != size)
        throw JsError("'into' holds " + std::to_string(into.size) + " bytes; this image as " + layout_name(layout) + " needs " +
                      std::to_string(size));
      read_pixels(image->image(), layout, into.data);
      r.set_json(nullptr);
      return;
    }
    read_pixels(image->image(), layout, r.set_buffer(size));
  });
}

void open_image(const Args& a, Result& r) {
  const protocol::ImageRef ref = parse_ref(a.json(0, "ref"));
  guarded([&] { r.set_object(std::make_shared<BridgeImage>(ipc::ShmImage::open(ref), false)); });
}

void take_image(const Args& a, Result& r) {
  auto client = a.object_as<BridgeClient>(0, "client");
  const Json ref = a.json(1, "ref");
  parse_ref(ref);
  guarded([&] { r.set_object(std::make_shared<BridgeImage>(client->take_image(ref), false)); });
}

void image_info_export(const Args& a, Result& r) {
  auto image = a.object_as<BridgeImage>(0, "image");
  r.set_json(image_info(*image));
}

void image_ref(const Args& a, Result& r) {
  auto image = a.object_as<BridgeImage>(0, "image");
  r.set_json(protocol::to_json(image->image().ref()));
}

void release_image(const Args& a, Result& r) {
  a.object_as<BridgeImage>(0, "image")->release();
  r.set_json(nullptr);
}

// UXP panels may not read arbitrary files; a hybrid addon may. The panel shows kilnd's training
// samples and opens its grids from the PNGs kilnd names.
void read_file(const Args& a, Result& r) {
  const std::string path = a.string(0, "path");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw JsError("cannot read " + path + " (missing, or no permission)");
  const std::streamsize size = in.tellg();
  constexpr std::streamsize kLimit = 256ll << 20;
  if (size < 0 || size > kLimit) throw JsError(path + " is larger than 256 MB; the bridge reads only images kilnd wrote");
  in.seekg(0);
  uint8_t* out = r.set_buffer(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(out), size)) throw JsError("cannot read " + path);
}

// A file kilnd named, brought to this machine: UXP cannot read another machine's files, and a
// remote kilnd's grids and samples are there. The panel then reads the local copy with readFile.
void download_file(const Args& a, Result& r) {
  auto client = a.object_as<BridgeClient>(0, "client");
  const std::string daemon_path = a.string(1, "daemonPath");
  const std::string local_path = a.present(2) ? a.string(2, "localPath") : std::string();
  client->download_file(daemon_path, local_path, r.set_promise());
}

}  // namespace

const std::vector<Export>& exports() {
  static const std::vector<Export> list = {
      {"version", version, "version(): {version, protocol}"},
      {"findDaemon", find_daemon, "findDaemon(path?: string): string"},
      {"createClient", create_client,
       "createClient(options?: {socket?, dataDir?, name?, autostart?, daemon?, startTimeoutMs?, remote?, token?}): Client"},
      {"connect", connect, "connect(client: Client): Promise<serverInfo>"},
      {"close", close, "close(client: Client): void"},
      {"isConnected", is_connected, "isConnected(client: Client): boolean"},
      {"serverInfo", server_info, "serverInfo(client: Client): object"},
      {"socketPath", socket_path, "socketPath(client: Client): string"},
      {"call", call, "call(client: Client, method: string, params?: object): Promise<result>"},
      {"onNotification", on_notification, "onNotification(client: Client, handler: ((method, params) => void) | null): void"},
      {"onDisconnect", on_disconnect, "onDisconnect(client: Client, handler: ((reason) => void) | null): void"},
      {"createImage", create_image, "createImage(client: Client, width: number, height: number, channels?: 1|3|4): Image"},
      {"writeImage", write_image,
       "writeImage(image: Image, pixels: ArrayBuffer|TypedArray, layout?: \"RGBA\"|\"RGB\"|\"L\", background?: [r,g,b]): void"},
      {"readImage", read_image,
       "readImage(image: Image, layout?: \"RGBA\"|\"RGB\"|\"L\", into?: ArrayBuffer|TypedArray): ArrayBuffer (or undefined with into)"},
      {"openImage", open_image, "openImage(ref: ImageRef): Image"},
      {"takeImage", take_image, "takeImage(client: Client, ref: ImageRef): Image"},
      {"imageInfo", image_info_export, "imageInfo(image: Image): {width, height, channels, dtype, stride, name, writable}"},
      {"imageRef", image_ref, "imageRef(image: Image): ImageRef"},
      {"releaseImage", release_image, "releaseImage(image: Image): void"},
      {"readFile", read_file, "readFile(path: string): ArrayBuffer"},
      {"downloadFile", download_file, "downloadFile(client: Client, daemonPath: string, localPath?: string): Promise<string>"},
  };
  return list;
}

}  // namespace kiln::ps
