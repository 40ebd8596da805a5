#pragma once
// What the bridge's exports need from a JavaScript engine, written once per engine by a glue:
// node_glue.cpp (Node-API: the tests and any Node host) and uxp_glue.cpp (Adobe's UXP hybrid
// addon API: Photoshop). The exports (exports.cpp) see only these classes, so both glues offer
// exactly the same functions with the same argument checks and the same errors.
//
// Threads: an export runs on the JavaScript thread. Callback::call and Deferred::resolve/reject
// may be called from any thread (the kiln::Client thread mostly); the glue runs the JavaScript
// side later on the JavaScript thread.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::ps {

using Json = nlohmann::json;

// Thrown by an export (or given to Deferred::reject): becomes a JavaScript Error whose message is
// `what()`, with `.code` (the daemon's error code, e.g. -32602, or 0) and `.data` when not null.
// `type_error` makes it a TypeError (a wrong argument: a programming mistake, not a user's).
class JsError : public std::runtime_error {
 public:
  explicit JsError(const std::string& message, int code = 0, Json data = nullptr, bool type_error = false)
      : std::runtime_error(message), code_(code), data_(std::move(data)), type_error_(type_error) {}
  int code() const { return code_; }
  const Json& data() const { return data_; }
  bool type_error() const { return type_error_; }
  static JsError type(const std::string& message) { return JsError(message, 0, nullptr, true); }

 private:
  int code_;
  Json data_;
  bool type_error_;
};

// A native object handed to JavaScript as an opaque handle (a client, an image). JavaScript keeps
// it alive; the glue drops its reference when the handle is garbage-collected.
class Object {
 public:
  virtual ~Object() = default;
  virtual const char* kind() const = 0;  // "client", "image": for error messages
};

// A JavaScript function kept after the call that passed it. call() may come from any thread;
// the function runs later on the JavaScript thread with the arguments converted from JSON.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void call(std::vector<Json> args) = 0;
};

// A Promise returned to JavaScript; settled once, from any thread.
class Deferred {
 public:
  virtual ~Deferred() = default;
  virtual void resolve(Json value) = 0;
  virtual void reject(const JsError& error) = 0;
};

struct ByteView {
  uint8_t* data = nullptr;
  std::size_t size = 0;
};

// The arguments of one call. Every accessor throws JsError::type naming the argument when the
// value has the wrong type. Views and values are valid only during the call.
class Args {
 public:
  virtual ~Args() = default;
  virtual std::size_t count() const = 0;
  virtual bool present(std::size_t i) const = 0;  // given, and not undefined or null
  virtual std::string string(std::size_t i, const char* name) const = 0;
  virtual double number(std::size_t i, const char* name) const = 0;
  virtual bool boolean(std::size_t i, const char* name) const = 0;
  virtual Json json(std::size_t i, const char* name) const = 0;  // any JSON-able value (JSON.stringify)
  // An ArrayBuffer, a typed array or a DataView: the bytes it views, in place.
  virtual ByteView bytes(std::size_t i, const char* name) const = 0;
  virtual std::shared_ptr<Object> object(std::size_t i, const char* name) const = 0;
  virtual std::shared_ptr<Callback> function(std::size_t i, const char* name) const = 0;

  template <class T>
  std::shared_ptr<T> object_as(std::size_t i, const char* name) const {
    std::shared_ptr<Object> o = object(i, name);
    auto t = std::dynamic_pointer_cast<T>(o);
    if (!t) throw JsError::type(std::string("argument '") + name + "' must be a Kiln " + T::kKind + ", not a Kiln " + o->kind());
    return t;
  }
};

// What the export returns; set at most one.
class Result {
 public:
  virtual ~Result() = default;
  virtual void set_json(const Json& value) = 0;  // null becomes undefined
  // A new ArrayBuffer of `size` bytes; the export writes the returned memory (one copy out).
  virtual uint8_t* set_buffer(std::size_t size) = 0;
  virtual void set_object(std::shared_ptr<Object> object) = 0;
  virtual std::shared_ptr<Deferred> set_promise() = 0;
};

using ExportFunction = void (*)(const Args& args, Result& result);

struct Export {
  const char* name;
  ExportFunction function;
  const char* signature;  // as JavaScript sees it, for the docs and the typings
};

// The one list of exports both glues bind (exports.cpp).
const std::vector<Export>& exports();

// Boxes for Objects given to JavaScript: the glue stores the pointer box() returns in the
// engine's external value and asks unbox() for it back, which refuses pointers this addon did not
// make (an external from another addon) instead of trusting them.
void* box_object(std::shared_ptr<Object> object);
std::shared_ptr<Object> unbox_object(void* box);  // null when `box` is not one of ours
void release_box(void* box);                      // the JavaScript handle was collected

// Called by a glue when its engine shuts down (Node's env cleanup, UXP's terminate): closes every
// client so that no thread calls into a dead engine afterwards.
void shutdown_all_clients();

}  // namespace kiln::ps
