// kiln._kiln: the Python face of kiln::Client (pybind11). The pure-Python package around it
// (shared/bindings/python/kiln) re-exports these names and adds host-independent helpers.
//
// Threads and the GIL:
//  - every call that can block (connect, call, close, image allocation) releases the GIL;
//  - the client's background thread runs Python callbacks only after taking the GIL, and never
//    once the interpreter is finalizing;
//  - an EventQueue given instead of a callback is filled without the GIL at all: the JSON stays
//    C++ until the host's UI thread drains it, so a busy UI thread never stalls the socket.
#include <Python.h>
#include <pybind11/eval.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/daemon_launcher.h"
#include "ipc/shm_image.h"
#include "protocol/errors.h"
#include "protocol/image_ref.h"
#include "protocol/version.h"

namespace py = pybind11;
using Json = nlohmann::json;
using kiln::protocol::ErrorCode;

namespace {

bool interpreter_alive() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsInitialized() && !Py_IsFinalizing();
#else
  return Py_IsInitialized() && !_Py_IsFinalizing();
#endif
}

// A Python object held from C++ code that may drop it on any thread: it takes the GIL to let go,
// and leaks it deliberately when the interpreter is already gone.
struct PyRef {
  explicit PyRef(py::object o) : obj(std::move(o)) {}
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  ~PyRef() {
    if (!obj) return;
    if (!interpreter_alive()) {
      obj.release();
      return;
    }
    py::gil_scoped_acquire gil;
    obj = py::object();
  }
  py::object obj;
};
using PyRefPtr = std::shared_ptr<PyRef>;
PyRefPtr hold(py::object o) { return std::make_shared<PyRef>(std::move(o)); }

// ---------------------------------------------------------------------------------------------
// Exceptions. Defined in Python source so they get real __init__/__str__ and can also inherit
// from the builtin ConnectionError / TimeoutError / ValueError that callers already catch.
const char* kExceptionSource = R"PY(
import builtins as _builtins

class Error(Exception):
    """Base class of every error raised by the kiln module."""

class RpcError(Error):
    """An error answer from kilnd: .code (int), .message (str), .data (JSON value or None),
    .name (short stable identifier such as "invalid_params")."""
    def __init__(self, code, message, data=None):
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    @property
    def name(self):
        return _error_name(self.code)

    def __str__(self):
        return self.message

class ConnectionError(RpcError, _builtins.ConnectionError):
    """kilnd cannot be reached or started, or the connection was lost (code -32090)."""

class TimeoutError(RpcError, _builtins.TimeoutError):
    """No answer within the timeout given to call() (code -32091)."""

class ImageError(Error, ValueError):
    """A shared-memory image that is missing, malformed, or of the wrong shape."""
)PY";

PyObject* exc_rpc = nullptr;
PyObject* exc_connection = nullptr;
PyObject* exc_timeout = nullptr;
PyObject* exc_image = nullptr;

py::object to_py(const Json& j);

// An exception instance (not raised) for an error answer; needs the GIL.
py::object make_error(ErrorCode code, const std::string& message, const Json& data) {
  PyObject* cls = code == ErrorCode::ConnectionLost ? exc_connection : code == ErrorCode::Timeout ? exc_timeout : exc_rpc;
  return py::reinterpret_borrow<py::object>(cls)(static_cast<int>(code), message, to_py(data));
}
py::object make_error(const kiln::RpcError& e) { return make_error(e.code(), e.what(), e.data()); }

void set_python_error(const py::object& instance) { PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr()); }

// ---------------------------------------------------------------------------------------------
// JSON <-> Python, directly (no text in between).
py::object to_py(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded: return py::none();
    case Json::value_t::boolean: return py::bool_(j.get<bool>());
    case Json::value_t::number_integer: return py::int_(j.get<int64_t>());
    case Json::value_t::number_unsigned: return py::int_(j.get<uint64_t>());
    case Json::value_t::number_float: return py::float_(j.get<double>());
    case Json::value_t::string: return py::str(j.get_ref<const std::string&>());
    case Json::value_t::binary: {
      const auto& b = j.get_binary();
      return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
    }
    case Json::value_t::array: {
      py::list list(j.size());
      std::size_t i = 0;
      for (const Json& v : j) list[i++] = to_py(v);
      return std::move(list);
    }
    case Json::value_t::object: {
      py::dict dict;
      for (auto it = j.begin(); it != j.end(); ++it) dict[py::str(it.key())] = to_py(it.value());
      return std::move(dict);
    }
  }
  return py::none();
}

Json from_py(py::handle h, int depth = 0);

// ---------------------------------------------------------------------------------------------
// Images.

// Pixel layouts as channel letters: "RGBA", "BGRA", "RGB", "BGR", "L" (grey or mask), "A".
struct Layout {
  std::string letters;
  int index_of(char c) const {
    const auto p = letters.find(c);
    return p == std::string::npos ? -1 : static_cast<int>(p);
  }
};

Layout parse_layout(const std::string& s) {
  std::string up;
  for (char c : s) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  static const char* known[] = {"RGBA", "BGRA", "RGB", "BGR", "L", "A", "ARGB", "ABGR"};
  for (const char* k : known)
    if (up == k) return {up};
  throw py::value_error("kiln: unknown pixel layout '" + s + "' (use RGBA, BGRA, RGB, BGR, ARGB, ABGR, L or A)");
}

// The letters of a block's own channels.
Layout image_layout(uint32_t channels) {
  switch (channels) {
    case 1: return {"L"};
    case 3: return {"RGB"};
    default: return {"RGBA"};
  }
}

// For each destination channel, where it comes from: a source index, or -1 = constant (alpha
// 255 or the fill value), or -2 = grey source replicated into colour.
std::vector<int> channel_map(const Layout& from, const Layout& to) {
  std::vector<int> map;
  for (char c : to.letters) {
    int i = from.index_of(c);
    if (i < 0 && to.letters.size() == 1 && from.letters.size() == 1) i = 0;   // a mask is a mask
    if (i < 0 && (c == 'R' || c == 'G' || c == 'B') && from.letters == "L") i = 0;  // grey -> colour
    if (i < 0 && c == 'L' && from.index_of('A') >= 0 && from.index_of('R') < 0) i = from.index_of('A');
    if (i < 0 && c != 'A')
      throw py::value_error("kiln: cannot make " + to.letters + " pixels from " + from.letters +
                            " (channel " + std::string(1, c) + " is missing)");
    map.push_back(i);
  }
  return map;
}

void convert_rows(const uint8_t* src, std::size_t src_stride, int src_channels, uint8_t* dst, std::size_t dst_stride,
                  int dst_channels, const std::vector<int>& map, uint32_t width, uint32_t height, bool flip_y,
                  uint8_t fill) {
  const bool identity = src_channels == dst_channels && [&] {
    for (int c = 0; c < dst_channels; ++c)
      if (map[c] != c) return false;
    return true;
  }();
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t* s = src + src_stride * (flip_y ? height - 1 - y : y);
    uint8_t* d = dst + dst_stride * y;
    if (identity) {
      std::memcpy(d, s, std::size_t(width) * dst_channels);
      continue;
    }
    if (src_channels == 4 && dst_channels == 4 && map[0] == 2 && map[1] == 1 && map[2] == 0 && map[3] == 3) {
      // BGRA <-> RGBA, the Krita case: a tight loop the compiler vectorises.
      for (uint32_t x = 0; x < width; ++x, s += 4, d += 4) {
        d[0] = s[2];
        d[1] = s[1];
        d[2] = s[0];
        d[3] = s[3];
      }
      continue;
    }
    for (uint32_t x = 0; x < width; ++x, s += src_channels, d += dst_channels)
      for (int c = 0; c < dst_channels; ++c) d[c] = map[c] >= 0 ? s[map[c]] : fill;
  }
}

struct PyImage {
  kiln::ipc::ShmImage image;
  bool writable = false;

  const kiln::protocol::ImageDesc& desc() const { return image.desc(); }
  std::size_t sample_bytes() const { return kiln::protocol::bytes_per_sample(desc().dtype); }
  std::size_t packed_bytes() const { return std::size_t(desc().min_stride()) * desc().height; }

  // Copies `data` (tightly packed rows in `layout`) into the block; one pass, GIL released.
  void write(py::buffer data, const std::optional<std::string>& layout_name, bool flip_y) {
    if (!writable) throw py::value_error("kiln: this image is read-only (it belongs to kilnd)");
    py::buffer_info in = data.request();
    if (!PyBuffer_IsContiguous(reinterpret_cast<Py_buffer*>(in.view()), 'C'))
      throw py::value_error("kiln: Image.write needs contiguous data");
    const Layout own = image_layout(desc().channels);
    const Layout from = layout_name ? parse_layout(*layout_name) : own;
    const std::size_t in_bytes = std::size_t(in.size) * std::size_t(in.itemsize);
    const std::size_t expected = std::size_t(desc().width) * desc().height * from.letters.size() * sample_bytes();
    if (in_bytes != expected)
      throw py::value_error("kiln: Image.write got " + std::to_string(in_bytes) + " bytes; a " +
                            std::to_string(desc().width) + "x" + std::to_string(desc().height) + " " + from.letters +
                            " " + kiln::protocol::to_string(desc().dtype) + " image needs " + std::to_string(expected));
    if (from.letters != own.letters && desc().dtype != kiln::protocol::PixelType::U8)
      throw py::value_error("kiln: channel reordering is for u8 images; write this one in its own layout");
    const std::vector<int> map = channel_map(from, own);
    const auto* src = static_cast<const uint8_t*>(in.ptr);
    py::gil_scoped_release release;
    if (desc().dtype == kiln::protocol::PixelType::U8) {
      convert_rows(src, desc().width * from.letters.size(), int(from.letters.size()), image.data(), desc().stride,
                   int(desc().channels), map, desc().width, desc().height, flip_y, 255);
    } else {
      const std::size_t row = desc().min_stride();
      for (uint32_t y = 0; y < desc().height; ++y)
        std::memcpy(image.row(y), src + row * (flip_y ? desc().height - 1 - y : y), row);
    }
  }

  // The pixels as tightly packed bytes in `layout` (one copy). Missing alpha becomes `alpha`.
  py::bytes read(const std::optional<std::string>& layout_name, bool flip_y, int alpha) const {
    const Layout own = image_layout(desc().channels);
    const Layout to = layout_name ? parse_layout(*layout_name) : own;
    if (to.letters != own.letters && desc().dtype != kiln::protocol::PixelType::U8)
      throw py::value_error("kiln: channel reordering is for u8 images; read this one in its own layout");
    if (alpha < 0 || alpha > 255) throw py::value_error("kiln: alpha must be 0..255");
    const std::vector<int> map = channel_map(own, to);
    const std::size_t out_row = std::size_t(desc().width) * to.letters.size() * sample_bytes();
    PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(out_row * desc().height));
    if (!raw) throw py::error_already_set();
    py::bytes out = py::reinterpret_steal<py::bytes>(raw);
    auto* dst = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(raw));
    {
      py::gil_scoped_release release;
      if (desc().dtype == kiln::protocol::PixelType::U8) {
        convert_rows(image.data(), desc().stride, int(desc().channels), dst, out_row, int(to.letters.size()), map,
                     desc().width, desc().height, flip_y, static_cast<uint8_t>(alpha));
      } else {
        for (uint32_t y = 0; y < desc().height; ++y)
          std::memcpy(dst + out_row * y, image.row(flip_y ? desc().height - 1 - y : y), out_row);
      }
    }
    return out;
  }
};

Json image_ref_json(const PyImage& image) { return kiln::protocol::to_json(image.image.ref()); }

std::string type_name(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

Json from_py(py::handle h, int depth) {
  if (depth > 256) throw py::value_error("kiln: value nested too deeply to send to kilnd");
  PyObject* o = h.ptr();
  if (o == Py_None) return nullptr;
  if (PyBool_Check(o)) return o == Py_True;
  if (PyLong_Check(o)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow == 0) {
      if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
      return static_cast<int64_t>(v);
    }
    if (overflow > 0) {
      const unsigned long long u = PyLong_AsUnsignedLongLong(o);
      if (!PyErr_Occurred()) return static_cast<uint64_t>(u);
      PyErr_Clear();
    }
    throw py::value_error("kiln: integer " + std::string(py::str(h)) + " does not fit in 64 bits");
  }
  if (PyFloat_Check(o)) {
    const double d = PyFloat_AsDouble(o);
    if (!std::isfinite(d)) throw py::value_error("kiln: JSON has no NaN or infinity; got " + std::string(py::str(h)));
    return d;
  }
  if (PyUnicode_Check(o)) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s) throw py::error_already_set();
    return std::string(s, static_cast<std::size_t>(n));
  }
  if (PyDict_Check(o)) {
    Json obj = Json::object();
    PyObject *key = nullptr, *value = nullptr;
    Py_ssize_t pos = 0;
    while (PyDict_Next(o, &pos, &key, &value)) {
      if (!PyUnicode_Check(key))
        throw py::type_error("kiln: JSON object keys must be str, not " + type_name(key));
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(key, &n);
      if (!s) throw py::error_already_set();
      obj[std::string(s, static_cast<std::size_t>(n))] = from_py(value, depth + 1);
    }
    return obj;
  }
  if (PyList_Check(o) || PyTuple_Check(o)) {
    Json arr = Json::array();
    py::sequence seq = py::reinterpret_borrow<py::sequence>(h);
    for (py::handle item : seq) arr.push_back(from_py(item, depth + 1));
    return arr;
  }
  if (py::isinstance<PyImage>(h)) return image_ref_json(h.cast<const PyImage&>());
  // numpy scalars and other numbers: integers through __index__, the rest through __float__.
  if (PyIndex_Check(o) || (PyNumber_Check(o) && PyObject_HasAttrString(o, "__float__"))) {
    PyObject* number = PyIndex_Check(o) ? PyNumber_Index(o) : PyNumber_Float(o);
    if (!number) throw py::error_already_set();
    return from_py(py::reinterpret_steal<py::object>(number), depth + 1);
  }
  if (PyErr_Occurred()) throw py::error_already_set();
  throw py::type_error("kiln: cannot send a " + type_name(h) +
                       " to kilnd (use None, bool, int, float, str, list, tuple, dict with str keys, or kiln.Image)");
}

kiln::protocol::ImageRef parse_ref(const Json& j) {
  if (auto problem = kiln::protocol::check_image_ref(j)) throw kiln::ipc::ImageError("not an image reference: " + *problem);
  return kiln::protocol::image_ref_from_json(j);
}

// ---------------------------------------------------------------------------------------------
// Events for the host's UI thread.

struct QueuedEvent {
  std::string kind;    // "notification", "reply", "disconnect"
  std::string method;  // notification or request method
  Json payload;        // notification params or reply result
  std::optional<kiln::RpcError> error;
  PyRefPtr tag;        // the caller's tag for a reply
  PyRefPtr keep;       // request params kept alive until the reply (images inside)
};

struct PyEvent {
  std::string kind, method;
  py::object params, result, error, tag;
};

class EventQueue {
 public:
  explicit EventQueue(std::size_t maxlen) : maxlen_(maxlen) {}

  void push(QueuedEvent event) {
    std::optional<QueuedEvent> dropped;  // destroyed outside the lock (it may take the GIL)
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      if (maxlen_ && events_.size() >= maxlen_) {
        dropped.emplace(std::move(events_.front()));
        events_.pop_front();
        ++dropped_;
      }
      events_.push_back(std::move(event));
    }
    cv_.notify_all();
  }

  // With the GIL: converts to Python objects on the calling (UI) thread.
  py::list drain(std::optional<std::size_t> max) {
    std::deque<QueuedEvent> taken;
    {
      std::lock_guard lock(mutex_);
      const std::size_t n = max ? std::min(*max, events_.size()) : events_.size();
      for (std::size_t i = 0; i < n; ++i) {
        taken.push_back(std::move(events_.front()));
        events_.pop_front();
      }
    }
    py::list out;
    for (QueuedEvent& e : taken) {
      PyEvent ev;
      ev.kind = e.kind;
      ev.method = e.method;
      ev.params = e.kind == "reply" ? py::none() : to_py(e.payload);
      ev.result = e.kind == "reply" && !e.error ? to_py(e.payload) : py::none();
      ev.error = e.error ? make_error(*e.error) : py::none();
      ev.tag = e.tag ? e.tag->obj : py::none();
      out.append(py::cast(std::move(ev)));
    }
    return out;
  }

  bool wait(std::optional<double> timeout_s) {
    py::gil_scoped_release release;
    std::unique_lock lock(mutex_);
    auto ready = [&] { return !events_.empty() || closed_; };
    if (!timeout_s) {
      cv_.wait(lock, ready);
    } else {
      cv_.wait_for(lock, std::chrono::duration<double>(std::max(0.0, *timeout_s)), ready);
    }
    return !events_.empty();
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return events_.size();
  }
  std::size_t dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
  }
  void clear() {
    std::deque<QueuedEvent> old;
    {
      std::lock_guard lock(mutex_);
      old.swap(events_);
    }
  }

 private:
  std::size_t maxlen_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<QueuedEvent> events_;
  std::size_t dropped_ = 0;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------------------------
// The client.

// Runs `fn` with the GIL on a non-Python thread; a Python exception is reported, not propagated
// (there is no Python caller to give it to).
template <class Fn>
void with_gil(const char* where, Fn&& fn) {
  if (!interpreter_alive()) return;
  py::gil_scoped_acquire gil;
  try {
    fn();
  } catch (py::error_already_set& e) {
    e.discard_as_unraisable(where);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    PyErr_WriteUnraisable(py::str(where).ptr());
  }
}

class PyClient {
 public:
  PyClient(std::optional<std::string> socket, std::optional<std::string> data_dir, std::string name, bool autostart,
           std::optional<std::string> daemon, double start_timeout, std::optional<std::string> remote,
           std::optional<std::string> token, std::optional<std::string> compression) {
    kiln::ClientOptions o;
    o.remote = remote.value_or("");
    o.token = token.value_or("");
    if (compression) {
      if (*compression != "zstd" && *compression != "none") throw py::value_error("kiln: compression must be \"zstd\" or \"none\"");
      o.compression = *compression;
    }
    o.socket_path = socket.value_or("");
    o.data_dir = data_dir.value_or("");
    o.client_name = std::move(name);
    o.autostart = autostart;
    o.daemon_executable = daemon.value_or("");
    o.start_timeout = std::chrono::milliseconds(static_cast<int64_t>(start_timeout * 1000));
    client_ = std::make_unique<kiln::Client>(std::move(o));
  }

  ~PyClient() {
    // Joining the client thread may wait for a callback that needs the GIL.
    py::gil_scoped_release release;
    client_.reset();
  }

  void connect() {
    py::gil_scoped_release release;
    client_->connect();
  }
  void close() {
    py::gil_scoped_release release;
    client_->close();
  }
  bool connected() const { return client_->connected(); }
  py::object server_info() const { return to_py(client_->server_info()); }
  std::string socket_path() const { return client_->socket_path(); }
  bool is_remote() const { return client_->is_remote(); }
  std::string server_fingerprint() const { return client_->server_fingerprint(); }
  std::string upload_file(const std::string& path, const std::string& folder) {
    py::gil_scoped_release release;
    return client_->upload_file(path, folder);
  }
  void download_file(const std::string& daemon_path, const std::string& local_path) {
    py::gil_scoped_release release;
    client_->download_file(daemon_path, local_path);
  }

  py::object call(const std::string& method, py::object params, std::optional<double> timeout_s) {
    const Json p = params.is_none() ? Json::object() : from_py(params);
    const auto timeout = std::chrono::milliseconds(timeout_s ? static_cast<int64_t>(*timeout_s * 1000) : 0);
    Json result;
    {
      py::gil_scoped_release release;
      result = client_->call(method, p, timeout);
    }
    return to_py(result);
  }

  void call_async(const std::string& method, py::object params, py::object callback, py::object tag) {
    const Json p = params.is_none() ? Json::object() : from_py(params);
    PyRefPtr keep = hold(params);  // images in params must outlive the request
    kiln::Client::Callback done;
    if (py::isinstance<EventQueue>(callback)) {
      auto queue = callback.cast<std::shared_ptr<EventQueue>>();
      PyRefPtr t = tag.is_none() ? nullptr : hold(tag);
      // The kept params travel with the event, so they are dropped on the draining thread.
      done = [queue, t, keep, method](std::optional<Json> result, std::optional<kiln::RpcError> error) {
        queue->push({"reply", method, result ? std::move(*result) : Json(), std::move(error), t, keep});
      };
    } else if (!callback.is_none()) {
      if (!PyCallable_Check(callback.ptr())) throw py::type_error("kiln: callback must be callable, an EventQueue or None");
      PyRefPtr cb = hold(callback);
      done = [cb, keep](std::optional<Json> result, std::optional<kiln::RpcError> error) {
        with_gil("kiln call_async callback", [&] {
          if (error) cb->obj(py::none(), make_error(*error));
          else cb->obj(to_py(*result), py::none());
        });
      };
    } else {
      done = [keep](std::optional<Json>, std::optional<kiln::RpcError>) {};
    }
    py::gil_scoped_release release;
    client_->call_async(method, p, std::move(done));
  }

  int add_notification_handler(py::object handler) {
    kiln::Client::NotificationHandler fn;
    if (py::isinstance<EventQueue>(handler)) {
      auto queue = handler.cast<std::shared_ptr<EventQueue>>();
      fn = [queue](const std::string& method, const Json& params) { queue->push({"notification", method, params, {}, nullptr, nullptr}); };
    } else {
      if (!PyCallable_Check(handler.ptr())) throw py::type_error("kiln: a notification handler must be callable or an EventQueue");
      PyRefPtr cb = hold(handler);
      fn = [cb](const std::string& method, const Json& params) {
        with_gil("kiln notification handler", [&] { cb->obj(method, to_py(params)); });
      };
    }
    return client_->add_notification_handler(std::move(fn));
  }

  void remove_notification_handler(int token) {
    // The handler may be running on the client thread and need the GIL to finish.
    py::gil_scoped_release release;
    client_->remove_notification_handler(token);
  }

  void on_disconnect(py::object handler) {
    kiln::Client::DisconnectHandler fn;
    if (handler.is_none()) {
    } else if (py::isinstance<EventQueue>(handler)) {
      auto queue = handler.cast<std::shared_ptr<EventQueue>>();
      fn = [queue](const std::string& reason) { queue->push({"disconnect", "", Json{{"reason", reason}}, {}, nullptr, nullptr}); };
    } else {
      if (!PyCallable_Check(handler.ptr())) throw py::type_error("kiln: on_disconnect takes a callable, an EventQueue or None");
      PyRefPtr cb = hold(handler);
      fn = [cb](const std::string& reason) { with_gil("kiln disconnect handler", [&] { cb->obj(reason); }); };
    }
    py::gil_scoped_release release;
    client_->set_disconnect_handler(std::move(fn));
  }

  PyImage create_image(uint32_t width, uint32_t height, uint32_t channels, const std::string& dtype, bool premultiplied,
                       const std::string& color_space) {
    kiln::protocol::ImageDesc desc;
    desc.width = width;
    desc.height = height;
    desc.channels = channels;
    const auto type = kiln::protocol::pixel_type_from_string(dtype);
    if (!type) throw py::value_error("kiln: dtype must be \"u8\", \"u16\" or \"f32\", not \"" + dtype + "\"");
    desc.dtype = *type;
    const auto space = kiln::protocol::color_space_from_string(color_space);
    if (!space) throw py::value_error("kiln: color_space must be \"srgb\", \"linear-srgb\" or \"unspecified\"");
    desc.color_space = *space;
    desc.premultiplied = premultiplied;
    if (channels != 1 && channels != 3 && channels != 4) throw py::value_error("kiln: channels must be 1, 3 or 4");
    if (width == 0 || height == 0) throw py::value_error("kiln: an image needs a width and a height of at least 1");
    py::gil_scoped_release release;
    return PyImage{client_->create_image(desc), true};
  }

  PyImage read_image(py::object ref, bool take) {
    const kiln::protocol::ImageRef r = parse_ref(from_py(ref));
    const Json j = kiln::protocol::to_json(r);
    py::gil_scoped_release release;
    if (take) return PyImage{client_->take_image(j), false};
    return PyImage{kiln::ipc::ShmImage::open(r), false};
  }

 private:
  std::unique_ptr<kiln::Client> client_;
};

}  // namespace

PYBIND11_MODULE(_kiln, m) {
  m.doc() = "Native part of the kiln package: kiln::Client over the kilnd socket, shared-memory images, events.";

  py::dict ns;
  ns["__name__"] = m.attr("__name__");
  ns["_error_name"] = py::cpp_function([](int code) { return std::string(kiln::protocol::error_name(static_cast<ErrorCode>(code))); });
  py::exec(kExceptionSource, ns);
  for (const char* name : {"Error", "RpcError", "ConnectionError", "TimeoutError", "ImageError"}) {
    py::object cls = ns[name];
    cls.attr("__module__") = "kiln";
    m.attr(name) = cls;
  }
  exc_rpc = m.attr("RpcError").ptr();
  exc_connection = m.attr("ConnectionError").ptr();
  exc_timeout = m.attr("TimeoutError").ptr();
  exc_image = m.attr("ImageError").ptr();

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kiln::RpcError& e) {
      set_python_error(make_error(e));
    } catch (const kiln::ConnectionError& e) {
      set_python_error(make_error(ErrorCode::ConnectionLost, e.what(), nullptr));
    } catch (const kiln::ipc::ImageError& e) {
      PyErr_SetString(exc_image, e.what());
    } catch (const std::logic_error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.attr("VERSION") = kiln::protocol::kKilnVersion;
  m.attr("PROTOCOL_VERSION") = kiln::protocol::kProtocolVersion;
  m.def("error_name", [](int code) { return std::string(kiln::protocol::error_name(static_cast<ErrorCode>(code))); },
        py::arg("code"), "Short stable name of an error code, e.g. -32602 -> \"invalid_params\".");
  m.def(
      "find_daemon",
      [](std::optional<std::string> path) {
        py::gil_scoped_release release;
        return kiln::find_daemon_executable(path.value_or("")).string();
      },
      py::arg("path") = py::none(),
      "Path of the kilnd an autostarting Client would run: `path`, $KILN_DAEMON, beside this module, "
      "../bin from it, then $PATH. Raises kiln.ConnectionError naming the places it looked.");

  py::class_<PyImage>(m, "Image", py::buffer_protocol(), R"(A shared-memory image block.

Supports the buffer protocol: memoryview(image) and numpy.asarray(image) see the pixels in place,
shape (height, width, channels). Images from Client.create_image are writable; images from
Client.read_image are read-only views of kilnd's block. The block is released (back to the
client's pool, or unmapped) when the last reference, numpy views included, is gone.)")
      .def_buffer([](PyImage& im) -> py::buffer_info {
        const auto& d = im.desc();
        const std::size_t bps = im.sample_bytes();
        std::string format = d.dtype == kiln::protocol::PixelType::U8    ? py::format_descriptor<uint8_t>::format()
                             : d.dtype == kiln::protocol::PixelType::U16 ? py::format_descriptor<uint16_t>::format()
                                                                          : py::format_descriptor<float>::format();
        return py::buffer_info(const_cast<uint8_t*>(static_cast<const kiln::ipc::ShmImage&>(im.image).data()),
                               static_cast<py::ssize_t>(bps), format, 3,
                               {py::ssize_t(d.height), py::ssize_t(d.width), py::ssize_t(d.channels)},
                               {py::ssize_t(d.stride), py::ssize_t(d.channels * bps), py::ssize_t(bps)}, !im.writable);
      })
      .def_property_readonly("width", [](const PyImage& im) { return im.desc().width; })
      .def_property_readonly("height", [](const PyImage& im) { return im.desc().height; })
      .def_property_readonly("channels", [](const PyImage& im) { return im.desc().channels; })
      .def_property_readonly("dtype", [](const PyImage& im) { return std::string(kiln::protocol::to_string(im.desc().dtype)); })
      .def_property_readonly("stride", [](const PyImage& im) { return im.desc().stride; })
      .def_property_readonly("premultiplied", [](const PyImage& im) { return im.desc().premultiplied; })
      .def_property_readonly("color_space", [](const PyImage& im) { return std::string(kiln::protocol::to_string(im.desc().color_space)); })
      .def_property_readonly("name", [](const PyImage& im) { return im.image.name(); })
      .def_property_readonly("writable", [](const PyImage& im) { return im.writable; })
      .def_property_readonly("nbytes", [](const PyImage& im) { return im.packed_bytes(); })
      .def("ref", [](const PyImage& im) { return to_py(image_ref_json(im)); },
           "The JSON reference to pass in request params (passing the Image itself works too).")
      .def("write", &PyImage::write, py::arg("data"), py::arg("layout") = py::none(), py::arg("flip_y") = false,
           "Copies tightly packed pixels into the block in one pass. `layout` names the data's channel order "
           "(\"BGRA\" for Krita's pixelData, \"RGBA\", \"RGB\", \"L\" for a mask, ...; default: the image's own). "
           "flip_y: the data's rows are bottom-up (Blender).")
      .def("tobytes", &PyImage::read, py::arg("layout") = py::none(), py::arg("flip_y") = false, py::arg("alpha") = 255,
           "The pixels as tightly packed bytes in `layout` (default: the image's own), one copy; a missing alpha "
           "channel becomes `alpha`.")
      .def("__repr__", [](const PyImage& im) {
        const auto& d = im.desc();
        return "<kiln.Image " + std::to_string(d.width) + "x" + std::to_string(d.height) + "x" + std::to_string(d.channels) +
               " " + kiln::protocol::to_string(d.dtype) + (im.writable ? "" : " read-only") + " " + im.image.name() + ">";
      });

  py::class_<PyEvent>(m, "Event", "An event drained from an EventQueue.")
      .def_readonly("kind", &PyEvent::kind, "\"notification\", \"reply\" or \"disconnect\"")
      .def_readonly("method", &PyEvent::method, "the notification's method, or the request's method for a reply")
      .def_readonly("params", &PyEvent::params, "notification params (dict); {'reason': ...} for a disconnect")
      .def_readonly("result", &PyEvent::result, "a reply's result, or None")
      .def_readonly("error", &PyEvent::error, "a reply's kiln.RpcError, or None")
      .def_readonly("tag", &PyEvent::tag, "the tag given to call_async")
      .def("__repr__", [](const PyEvent& e) { return "<kiln.Event " + e.kind + " " + e.method + ">"; });

  py::class_<EventQueue, std::shared_ptr<EventQueue>>(m, "EventQueue", R"(A thread-safe queue of client events.

Give it to Client.add_notification_handler, Client.on_disconnect or Client.call_async instead of
a callable: events are queued by the client's background thread without touching Python, and
your UI thread takes them with drain() (from a Qt timer in Krita, bpy.app.timers in Blender).)")
      .def(py::init<std::size_t>(), py::arg("maxlen") = 0, "maxlen > 0 drops the oldest events beyond that many.")
      .def("drain", &EventQueue::drain, py::arg("max") = py::none(), "Takes the queued events (at most `max`), oldest first.")
      .def("wait", &EventQueue::wait, py::arg("timeout") = py::none(),
           "Blocks (without the GIL) until an event is queued or `timeout` seconds pass; True when one is.")
      .def("clear", &EventQueue::clear)
      .def_property_readonly("dropped", &EventQueue::dropped, "events dropped because of maxlen")
      .def("__len__", &EventQueue::size);

  py::class_<PyClient>(m, "Client", R"(A connection to kilnd (kiln::Client).

Client(socket=None, data_dir=None, name="kiln-python", autostart=True, daemon=None, start_timeout=20,
       remote=None, token=None, compression=None)
  remote      a remote kilnd: a saved remote's name (kiln remote add) or "kiln+tls://HOST:PORT"
              (default $KILN_REMOTE when no socket is given, else the local daemon)
  token       the remote's token when remote is an address (default $KILN_TOKEN or the saved remote's)
  compression images to and from a remote daemon: "zstd" or "none" (default $KILN_COMPRESSION, else "zstd")
  socket      socket path (default $KILN_SOCKET, else the per-user default)
  data_dir    data dir for a daemon this client starts
  autostart   start kilnd when none answers (found by kiln.find_daemon)
  daemon      path of kilnd to start

Callables given as callbacks or handlers run on the client's background thread (with the GIL):
keep them short and never touch Qt or bpy from them. Use a kiln.EventQueue to get events on your
UI thread instead. Blocking calls release the GIL.)")
      .def(py::init<std::optional<std::string>, std::optional<std::string>, std::string, bool, std::optional<std::string>, double,
                    std::optional<std::string>, std::optional<std::string>, std::optional<std::string>>(),
           py::arg("socket") = py::none(), py::arg("data_dir") = py::none(), py::arg("name") = "kiln-python",
           py::arg("autostart") = true, py::arg("daemon") = py::none(), py::arg("start_timeout") = 20.0,
           py::arg("remote") = py::none(), py::arg("token") = py::none(), py::arg("compression") = py::none())
      .def("connect", &PyClient::connect, "Connects (starting kilnd if allowed) and says hello; again reconnects.")
      .def("close", &PyClient::close)
      .def_property_readonly("connected", &PyClient::connected)
      .def_property_readonly("server_info", &PyClient::server_info, "the hello result: version, protocol, device, pid, methods")
      .def_property_readonly("socket_path", &PyClient::socket_path, "the socket, or kiln+tls://HOST:PORT of a remote daemon")
      .def_property_readonly("is_remote", &PyClient::is_remote)
      .def_property_readonly("server_fingerprint", &PyClient::server_fingerprint, "a remote daemon's certificate fingerprint")
      .def("upload_file", &PyClient::upload_file, py::arg("path"), py::arg("folder") = "",
           "A file of this machine for a method that takes paths: uploaded to a remote daemon (returns the path "
           "there; `folder` = the folder name of an earlier upload keeps files side by side), or its absolute path "
           "for a local one.")
      .def("download_file", &PyClient::download_file, py::arg("daemon_path"), py::arg("local_path"),
           "A file the daemon named (an output PNG, a LoRA file) to local_path: downloaded from a remote daemon, "
           "copied from a local one.")
      .def("call", &PyClient::call, py::arg("method"), py::arg("params") = py::none(), py::arg("timeout") = py::none(),
           "Sends a request and waits for its result (a dict). Raises kiln.RpcError, kiln.ConnectionError or "
           "kiln.TimeoutError (timeout in seconds; None waits as long as it takes).")
      .def("call_async", &PyClient::call_async, py::arg("method"), py::arg("params") = py::none(),
           py::arg("callback") = py::none(), py::arg("tag") = py::none(),
           "Sends a request and returns at once. callback(result, error) runs on the client thread; or pass an "
           "EventQueue to get a 'reply' Event carrying `tag` on your own thread.")
      .def("add_notification_handler", &PyClient::add_notification_handler, py::arg("handler"),
           "handler(method, params) on the client thread, or an EventQueue. Returns a token for removal.")
      .def("remove_notification_handler", &PyClient::remove_notification_handler, py::arg("token"))
      .def("on_disconnect", &PyClient::on_disconnect, py::arg("handler"),
           "handler(reason) on the client thread, an EventQueue, or None to clear.")
      .def("create_image", &PyClient::create_image, py::arg("width"), py::arg("height"), py::arg("channels") = 4,
           py::arg("dtype") = "u8", py::arg("premultiplied") = false, py::arg("color_space") = "srgb",
           "A writable shared-memory image of this client's, to fill and pass in params.")
      .def("read_image", &PyClient::read_image, py::arg("ref"), py::arg("take") = false,
           "Maps an image kilnd returned, read-only and without copying. take=True also removes its name (for "
           "images handed to this client, e.g. image.echo results); job results and previews are shared, leave "
           "take False for them.")
      .def("__enter__", [](PyClient& c) -> PyClient& { return c; }, py::return_value_policy::reference)
      .def("__exit__", [](PyClient& c, py::args) { c.close(); });
}
