// Node-API glue: binds the bridge's exports (exports.cpp) for Node. This is the build the tests
// load (`require("kiln_bridge.node")`); Photoshop loads the UXP glue (uxp_glue.cpp) over the
// same exports.
//
// Work from other threads reaches JavaScript through thread-safe functions: one per callback
// (unref'd, so a handler alone never keeps Node running) and one per promise (ref'd, so Node
// waits for a pending call the way it waits for any I/O).
#define NAPI_VERSION 8
#include <node_api.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "js.h"

namespace {

using kiln::ps::ByteView;
using kiln::ps::JsError;
using kiln::ps::Json;

// A JavaScript exception is already pending (thrown by JSON.stringify, a getter, ...): let it
// propagate as it is.
struct Pending {};

void check(napi_env env, napi_status status) {
  if (status == napi_ok) return;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) throw Pending{};
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  throw JsError(std::string("Node-API call failed: ") + (info && info->error_message ? info->error_message : "unknown error"));
}

napi_valuetype type_of(napi_env env, napi_value v) {
  napi_valuetype t = napi_undefined;
  check(env, napi_typeof(env, v, &t));
  return t;
}

// ---------------------------------------------------------------------------------------------
// JSON <-> JavaScript values.

napi_value to_js(napi_env env, const Json& j) {
  napi_value out = nullptr;
  switch (j.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
    case Json::value_t::binary: check(env, napi_get_null(env, &out)); break;
    case Json::value_t::boolean: check(env, napi_get_boolean(env, j.get<bool>(), &out)); break;
    case Json::value_t::number_integer: check(env, napi_create_double(env, double(j.get<int64_t>()), &out)); break;
    case Json::value_t::number_unsigned: check(env, napi_create_double(env, double(j.get<uint64_t>()), &out)); break;
    case Json::value_t::number_float: check(env, napi_create_double(env, j.get<double>(), &out)); break;
    case Json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      check(env, napi_create_string_utf8(env, s.data(), s.size(), &out));
      break;
    }
    case Json::value_t::array: {
      check(env, napi_create_array_with_length(env, j.size(), &out));
      uint32_t i = 0;
      for (const Json& v : j) check(env, napi_set_element(env, out, i++, to_js(env, v)));
      break;
    }
    case Json::value_t::object: {
      check(env, napi_create_object(env, &out));
      for (auto it = j.begin(); it != j.end(); ++it) {
        napi_value key = nullptr;
        check(env, napi_create_string_utf8(env, it.key().data(), it.key().size(), &key));
        check(env, napi_set_property(env, out, key, to_js(env, it.value())));
      }
      break;
    }
  }
  return out;
}

std::string utf8(napi_env env, napi_value v) {
  size_t n = 0;
  check(env, napi_get_value_string_utf8(env, v, nullptr, 0, &n));
  std::string s(n, '\0');
  check(env, napi_get_value_string_utf8(env, v, s.data(), n + 1, &n));
  s.resize(n);
  return s;
}

// Through JSON.stringify, so toJSON(), Dates and typed arrays behave as JavaScript users expect.
Json from_js(napi_env env, napi_value v) {
  napi_value global = nullptr, json = nullptr, stringify = nullptr, text = nullptr;
  check(env, napi_get_global(env, &global));
  check(env, napi_get_named_property(env, global, "JSON", &json));
  check(env, napi_get_named_property(env, json, "stringify", &stringify));
  check(env, napi_call_function(env, json, stringify, 1, &v, &text));
  if (type_of(env, text) != napi_string) return nullptr;  // undefined, a function, a symbol
  const std::string s = utf8(env, text);
  try {
    return Json::parse(s);
  } catch (const std::exception& e) {
    throw JsError(std::string("cannot send this value to kilnd: ") + e.what());
  }
}

napi_value make_error(napi_env env, const JsError& e) {
  napi_value message = nullptr, error = nullptr;
  check(env, napi_create_string_utf8(env, e.what(), NAPI_AUTO_LENGTH, &message));
  if (e.type_error()) check(env, napi_create_type_error(env, nullptr, message, &error));
  else check(env, napi_create_error(env, nullptr, message, &error));
  napi_value code = nullptr;
  check(env, napi_create_int32(env, e.code(), &code));
  check(env, napi_set_named_property(env, error, "code", code));
  if (!e.data().is_null()) check(env, napi_set_named_property(env, error, "data", to_js(env, e.data())));
  return error;
}

// ---------------------------------------------------------------------------------------------
// Callbacks and promises settled from other threads.

// Whether a thread-safe function still exists: the env may finalize it at shutdown while a
// client thread still holds our wrapper.
struct TsfnState {
  std::mutex mutex;
  napi_threadsafe_function tsfn = nullptr;
  bool alive = false;
};

void tsfn_finalized(napi_env, void* data, void*) {
  auto* state = static_cast<std::shared_ptr<TsfnState>*>(data);
  {
    std::lock_guard lock((*state)->mutex);
    (*state)->alive = false;
  }
  delete state;
}

std::shared_ptr<TsfnState> make_tsfn(napi_env env, napi_value fn, const char* name, napi_threadsafe_function_call_js call_js,
                                     bool keep_alive) {
  auto state = std::make_shared<TsfnState>();
  napi_value resource = nullptr;
  check(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource));
  auto* finalize_data = new std::shared_ptr<TsfnState>(state);
  const napi_status s =
      napi_create_threadsafe_function(env, fn, nullptr, resource, 0, 1, finalize_data, tsfn_finalized, nullptr, call_js, &state->tsfn);
  if (s != napi_ok) {
    delete finalize_data;
    check(env, s);
  }
  state->alive = true;
  if (!keep_alive) check(env, napi_unref_threadsafe_function(env, state->tsfn));
  return state;
}

// Queues `payload` (owned) for the JavaScript thread; false (payload not taken) when it is gone.
bool post(TsfnState& state, void* payload) {
  std::lock_guard lock(state.mutex);
  return state.alive && napi_call_threadsafe_function(state.tsfn, payload, napi_tsfn_nonblocking) == napi_ok;
}

void release(TsfnState& state) {
  std::lock_guard lock(state.mutex);
  if (state.alive) napi_release_threadsafe_function(state.tsfn, napi_tsfn_release);
  state.alive = false;  // ours is gone either way; the env finalizes it
}

class NodeCallback : public kiln::ps::Callback {
 public:
  NodeCallback(napi_env env, napi_value fn) : state_(make_tsfn(env, fn, "kiln callback", &NodeCallback::call_js, false)) {}
  ~NodeCallback() override { release(*state_); }

  void call(std::vector<Json> args) override {
    auto* payload = new std::vector<Json>(std::move(args));
    if (!post(*state_, payload)) delete payload;
  }

 private:
  static void call_js(napi_env env, napi_value fn, void*, void* data) {
    std::unique_ptr<std::vector<Json>> args(static_cast<std::vector<Json>*>(data));
    if (!env || !fn) return;  // shutting down
    try {
      std::vector<napi_value> argv;
      for (const Json& a : *args) argv.push_back(to_js(env, a));
      napi_value undefined = nullptr;
      napi_get_undefined(env, &undefined);
      // An exception the handler throws stays pending: Node reports it as uncaught.
      napi_call_function(env, undefined, fn, argv.size(), argv.data(), nullptr);
    } catch (...) {
    }
  }

  std::shared_ptr<TsfnState> state_;
};

struct Settlement {
  napi_deferred deferred;
  bool ok;
  Json value;
  std::unique_ptr<JsError> error;
};

class NodeDeferred : public kiln::ps::Deferred {
 public:
  NodeDeferred(napi_env env, napi_deferred deferred)
      : deferred_(deferred), state_(make_tsfn(env, nullptr, "kiln promise", &NodeDeferred::call_js, true)) {}
  ~NodeDeferred() override { release(*state_); }

  void resolve(Json value) override { settle(new Settlement{deferred_, true, std::move(value), nullptr}); }
  void reject(const JsError& error) override {
    settle(new Settlement{deferred_, false, nullptr, std::make_unique<JsError>(error)});
  }

 private:
  void settle(Settlement* s) {
    std::lock_guard lock(mutex_);
    if (settled_) {
      delete s;
      return;
    }
    settled_ = true;
    if (!post(*state_, s)) delete s;
    release(*state_);  // one settlement per promise: let Node go once it is delivered
  }

  static void call_js(napi_env env, napi_value, void*, void* data) {
    std::unique_ptr<Settlement> s(static_cast<Settlement*>(data));
    if (!env) return;
    try {
      if (s->ok) napi_resolve_deferred(env, s->deferred, to_js(env, s->value));
      else napi_reject_deferred(env, s->deferred, make_error(env, *s->error));
    } catch (...) {
      napi_value fallback = nullptr;
      napi_create_string_utf8(env, "kiln bridge: could not convert the reply", NAPI_AUTO_LENGTH, &fallback);
      napi_reject_deferred(env, s->deferred, fallback);
    }
  }

  napi_deferred deferred_;
  std::mutex mutex_;
  bool settled_ = false;
  std::shared_ptr<TsfnState> state_;
};

// ---------------------------------------------------------------------------------------------
// Args and Result for one call.

constexpr size_t kMaxArgs = 8;

class NodeArgs : public kiln::ps::Args {
 public:
  NodeArgs(napi_env env, size_t argc, napi_value* argv) : env_(env), argc_(argc), argv_(argv) {}

  size_t count() const override { return argc_; }
  bool present(size_t i) const override {
    if (i >= argc_) return false;
    const napi_valuetype t = type_of(env_, argv_[i]);
    return t != napi_undefined && t != napi_null;
  }
  std::string string(size_t i, const char* name) const override {
    expect(i, napi_string, name, "a string");
    return utf8(env_, argv_[i]);
  }
  double number(size_t i, const char* name) const override {
    expect(i, napi_number, name, "a number");
    double d = 0;
    check(env_, napi_get_value_double(env_, argv_[i], &d));
    return d;
  }
  bool boolean(size_t i, const char* name) const override {
    expect(i, napi_boolean, name, "true or false");
    bool b = false;
    check(env_, napi_get_value_bool(env_, argv_[i], &b));
    return b;
  }
  Json json(size_t i, const char* name) const override {
    if (i >= argc_) throw JsError::type(std::string("argument '") + name + "' is missing");
    return from_js(env_, argv_[i]);
  }
  ByteView bytes(size_t i, const char* name) const override {
    if (i < argc_) {
      napi_value v = argv_[i];
      bool is = false;
      ByteView view;
      void* data = nullptr;
      check(env_, napi_is_arraybuffer(env_, v, &is));
      if (is) {
        check(env_, napi_get_arraybuffer_info(env_, v, &data, &view.size));
        view.data = static_cast<uint8_t*>(data);
        return view;
      }
      check(env_, napi_is_typedarray(env_, v, &is));
      if (is) {
        napi_typedarray_type type;
        size_t length = 0, offset = 0;
        napi_value buffer = nullptr;
        check(env_, napi_get_typedarray_info(env_, v, &type, &length, &data, &buffer, &offset));
        static const size_t sizes[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
        view.data = static_cast<uint8_t*>(data);  // already at the view's offset
        view.size = length * (size_t(type) < sizeof sizes / sizeof *sizes ? sizes[type] : 1);
        return view;
      }
      check(env_, napi_is_dataview(env_, v, &is));
      if (is) {
        napi_value buffer = nullptr;
        size_t offset = 0;
        check(env_, napi_get_dataview_info(env_, v, &view.size, &data, &buffer, &offset));
        view.data = static_cast<uint8_t*>(data);
        return view;
      }
    }
    throw JsError::type(std::string("argument '") + name + "' must be an ArrayBuffer or a typed array (e.g. Uint8Array)");
  }
  std::shared_ptr<kiln::ps::Object> object(size_t i, const char* name) const override {
    if (i < argc_ && type_of(env_, argv_[i]) == napi_external) {
      void* box = nullptr;
      check(env_, napi_get_value_external(env_, argv_[i], &box));
      if (auto o = kiln::ps::unbox_object(box)) return o;
    }
    throw JsError::type(std::string("argument '") + name + "' must be a Kiln " + name + " handle from this addon");
  }
  std::shared_ptr<kiln::ps::Callback> function(size_t i, const char* name) const override {
    expect(i, napi_function, name, "a function");
    return std::make_shared<NodeCallback>(env_, argv_[i]);
  }

 private:
  void expect(size_t i, napi_valuetype t, const char* name, const char* what) const {
    if (i >= argc_ || type_of(env_, argv_[i]) != t)
      throw JsError::type(std::string("argument '") + name + "' must be " + what);
  }

  napi_env env_;
  size_t argc_;
  napi_value* argv_;
};

void finalize_box(napi_env, void* box, void*) { kiln::ps::release_box(box); }

class NodeResult : public kiln::ps::Result {
 public:
  explicit NodeResult(napi_env env) : env_(env) {}
  napi_value value() const { return value_; }

  void set_json(const Json& v) override {
    if (v.is_null()) check(env_, napi_get_undefined(env_, &value_));
    else value_ = to_js(env_, v);
  }
  uint8_t* set_buffer(size_t size) override {
    void* data = nullptr;
    check(env_, napi_create_arraybuffer(env_, size, &data, &value_));
    return static_cast<uint8_t*>(data);
  }
  void set_object(std::shared_ptr<kiln::ps::Object> object) override {
    void* box = kiln::ps::box_object(std::move(object));
    const napi_status s = napi_create_external(env_, box, finalize_box, nullptr, &value_);
    if (s != napi_ok) kiln::ps::release_box(box);
    check(env_, s);
  }
  std::shared_ptr<kiln::ps::Deferred> set_promise() override {
    napi_deferred deferred = nullptr;
    check(env_, napi_create_promise(env_, &deferred, &value_));
    return std::make_shared<NodeDeferred>(env_, deferred);
  }

 private:
  napi_env env_;
  napi_value value_ = nullptr;
};

napi_value trampoline(napi_env env, napi_callback_info info) {
  size_t argc = kMaxArgs;
  napi_value argv[kMaxArgs];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) return nullptr;
  argc = argc < kMaxArgs ? argc : kMaxArgs;
  const auto* exp = static_cast<const kiln::ps::Export*>(data);
  try {
    NodeArgs args(env, argc, argv);
    NodeResult result(env);
    exp->function(args, result);
    if (result.value()) return result.value();
    napi_value undefined = nullptr;
    napi_get_undefined(env, &undefined);
    return undefined;
  } catch (const Pending&) {
    return nullptr;
  } catch (const JsError& e) {
    try {
      napi_throw(env, make_error(env, e));
    } catch (...) {
    }
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  return nullptr;
}

void cleanup(void*) { kiln::ps::shutdown_all_clients(); }

}  // namespace

NAPI_MODULE_INIT() {
  try {
    for (const kiln::ps::Export& e : kiln::ps::exports()) {
      napi_value fn = nullptr;
      check(env, napi_create_function(env, e.name, NAPI_AUTO_LENGTH, trampoline, const_cast<kiln::ps::Export*>(&e), &fn));
      check(env, napi_set_named_property(env, exports, e.name, fn));
    }
    napi_value engine = nullptr;
    check(env, napi_create_string_utf8(env, "node", NAPI_AUTO_LENGTH, &engine));
    check(env, napi_set_named_property(env, exports, "engine", engine));
    // Clients close before Node tears the environment down, so no thread calls into it later.
    check(env, napi_add_env_cleanup_hook(env, cleanup, nullptr));
  } catch (...) {
    napi_throw_error(env, nullptr, "kiln bridge: could not register its functions");
    return nullptr;
  }
  return exports;
}
