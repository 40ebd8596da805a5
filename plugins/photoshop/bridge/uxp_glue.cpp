// UXP hybrid addon glue: binds the bridge's exports (exports.cpp) for Photoshop 24.2 and later,
// which loads "kiln_bridge.uxpaddon" (this file built as a .dll / .dylib and renamed) through
// `require` in the panel. Written against Adobe's UXP Hybrid Plugin SDK (UxpAddon.h: the
// UXP_ADDON_INIT / UXP_ADDON_TERMINATE macros and the UxpAddonApis table of uxp_addon_*
// functions); the SDK is not redistributable, so this file compiles only where -DKILN_UXP_SDK
// names it. The Node-API glue (node_glue.cpp) is its twin and what the tests run.
//
// Threads: exports run on UXP's scripting thread. Replies and notifications arrive on the
// kiln::Client thread and are handed to the scripting thread with
// uxp_addon_schedule_on_javascript_queue, where promises are settled and handlers called.
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "UxpAddon.h"
#include "js.h"

namespace {

using kiln::ps::ByteView;
using kiln::ps::JsError;
using kiln::ps::Json;

std::atomic<bool> terminating{false};  // after terminate, nothing is scheduled any more

struct Pending {};  // a JavaScript exception is pending: let it propagate

void check(addon_env env, addon_status status) {
  if (status == addon_ok) return;
  bool pending = false;
  if (UxpAddonApis.uxp_addon_is_exception_pending(env, &pending) == addon_ok && pending) throw Pending{};
  const addon_extended_error_info* info = nullptr;
  UxpAddonApis.uxp_addon_get_last_error_info(env, &info);
  throw JsError(std::string("UXP addon call failed: ") + (info && info->error_message ? info->error_message : "unknown error"));
}

addon_valuetype type_of(addon_env env, addon_value v) {
  addon_valuetype t = addon_undefined;
  check(env, UxpAddonApis.uxp_addon_typeof(env, v, &t));
  return t;
}

addon_value property(addon_env env, addon_value object, const char* name) {
  addon_value v = nullptr;
  check(env, UxpAddonApis.uxp_addon_get_named_property(env, object, name, &v));
  return v;
}

// ---------------------------------------------------------------------------------------------
// JSON <-> JavaScript values (the same conversions as node_glue.cpp).

addon_value to_js(addon_env env, const Json& j) {
  addon_value out = nullptr;
  switch (j.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
    case Json::value_t::binary: check(env, UxpAddonApis.uxp_addon_get_null(env, &out)); break;
    case Json::value_t::boolean: check(env, UxpAddonApis.uxp_addon_get_boolean(env, j.get<bool>(), &out)); break;
    case Json::value_t::number_integer:
      check(env, UxpAddonApis.uxp_addon_create_double(env, double(j.get<int64_t>()), &out));
      break;
    case Json::value_t::number_unsigned:
      check(env, UxpAddonApis.uxp_addon_create_double(env, double(j.get<uint64_t>()), &out));
      break;
    case Json::value_t::number_float: check(env, UxpAddonApis.uxp_addon_create_double(env, j.get<double>(), &out)); break;
    case Json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      check(env, UxpAddonApis.uxp_addon_create_string_utf8(env, s.data(), s.size(), &out));
      break;
    }
    case Json::value_t::array: {
      check(env, UxpAddonApis.uxp_addon_create_array_with_length(env, j.size(), &out));
      uint32_t i = 0;
      for (const Json& v : j) check(env, UxpAddonApis.uxp_addon_set_element(env, out, i++, to_js(env, v)));
      break;
    }
    case Json::value_t::object: {
      check(env, UxpAddonApis.uxp_addon_create_object(env, &out));
      for (auto it = j.begin(); it != j.end(); ++it) {
        addon_value key = nullptr;
        check(env, UxpAddonApis.uxp_addon_create_string_utf8(env, it.key().data(), it.key().size(), &key));
        check(env, UxpAddonApis.uxp_addon_set_property(env, out, key, to_js(env, it.value())));
      }
      break;
    }
  }
  return out;
}

std::string utf8(addon_env env, addon_value v) {
  size_t n = 0;
  check(env, UxpAddonApis.uxp_addon_get_value_string_utf8(env, v, nullptr, 0, &n));
  std::string s(n, '\0');
  check(env, UxpAddonApis.uxp_addon_get_value_string_utf8(env, v, s.data(), n + 1, &n));
  s.resize(n);
  return s;
}

Json from_js(addon_env env, addon_value v) {
  addon_value global = nullptr, text = nullptr;
  check(env, UxpAddonApis.uxp_addon_get_global(env, &global));
  addon_value json = property(env, global, "JSON");
  addon_value stringify = property(env, json, "stringify");
  check(env, UxpAddonApis.uxp_addon_call_function(env, json, stringify, 1, &v, &text));
  if (type_of(env, text) != addon_string) return nullptr;
  try {
    return Json::parse(utf8(env, text));
  } catch (const std::exception& e) {
    throw JsError(std::string("cannot send this value to kilnd: ") + e.what());
  }
}

addon_value make_error(addon_env env, const JsError& e) {
  addon_value message = nullptr, error = nullptr, code = nullptr;
  check(env, UxpAddonApis.uxp_addon_create_string_utf8(env, e.what(), std::strlen(e.what()), &message));
  if (e.type_error()) check(env, UxpAddonApis.uxp_addon_create_type_error(env, nullptr, message, &error));
  else check(env, UxpAddonApis.uxp_addon_create_error(env, nullptr, message, &error));
  check(env, UxpAddonApis.uxp_addon_create_double(env, e.code(), &code));
  check(env, UxpAddonApis.uxp_addon_set_named_property(env, error, "code", code));
  if (!e.data().is_null()) check(env, UxpAddonApis.uxp_addon_set_named_property(env, error, "data", to_js(env, e.data())));
  return error;
}

// ---------------------------------------------------------------------------------------------
// Work handed to the scripting thread.

// One scheduled piece of work: `run` on the scripting thread inside a handle scope.
struct Task {
  addon_env env;
  std::function<void(addon_env)> run;
};

void run_task(addon_task_data data) {
  auto* task = static_cast<Task*>(data);
  if (terminating) return;
  try {
    HandlerScope scope(task->env);
    task->run(task->env);
    bool pending = false;
    if (UxpAddonApis.uxp_addon_is_exception_pending(task->env, &pending) == addon_ok && pending) {
      addon_value ignored = nullptr;  // thrown by a handler: nobody to give it to
      UxpAddonApis.uxp_addon_get_and_clear_last_exception(task->env, &ignored);
    }
  } catch (...) {
  }
}

void delete_task(addon_task_data data) { delete static_cast<Task*>(data); }

void schedule(addon_env env, std::function<void(addon_env)> run) {
  if (terminating) return;
  UxpAddonApis.uxp_addon_schedule_on_javascript_queue(env, run_task, new Task{env, std::move(run)}, delete_task);
}

// A strong reference to a JavaScript value, deleted on the scripting thread.
struct Ref {
  addon_env env;
  addon_ref ref = nullptr;
  Ref(addon_env e, addon_value v) : env(e) { check(env, UxpAddonApis.uxp_addon_create_reference(env, v, 1, &ref)); }
  ~Ref() {
    addon_ref r = ref;
    addon_env e = env;
    schedule(e, [r](addon_env env) { UxpAddonApis.uxp_addon_delete_reference(env, r); });
  }
  addon_value value(addon_env e) const {
    addon_value v = nullptr;
    check(e, UxpAddonApis.uxp_addon_get_reference_value(e, ref, &v));
    return v;
  }
};

class UxpCallback : public kiln::ps::Callback {
 public:
  UxpCallback(addon_env env, addon_value fn) : fn_(std::make_shared<Ref>(env, fn)) {}

  void call(std::vector<Json> args) override {
    auto fn = fn_;
    schedule(fn->env, [fn, args = std::move(args)](addon_env env) {
      std::vector<addon_value> argv;
      for (const Json& a : args) argv.push_back(to_js(env, a));
      addon_value global = nullptr;
      check(env, UxpAddonApis.uxp_addon_get_global(env, &global));
      UxpAddonApis.uxp_addon_call_function(env, global, fn->value(env), argv.size(), argv.data(), nullptr);
    });
  }

 private:
  std::shared_ptr<Ref> fn_;  // shared with queued calls: the function outlives them
};

class UxpDeferred : public kiln::ps::Deferred {
 public:
  UxpDeferred(addon_env env, addon_deferred deferred) : env_(env), deferred_(deferred) {}

  void resolve(Json value) override {
    if (!claim()) return;
    addon_deferred d = deferred_;
    schedule(env_, [d, value = std::move(value)](addon_env env) {
      check(env, UxpAddonApis.uxp_addon_resolve_deferred(env, d, to_js(env, value)));
    });
  }
  void reject(const JsError& error) override {
    if (!claim()) return;
    addon_deferred d = deferred_;
    schedule(env_, [d, error](addon_env env) {
      check(env, UxpAddonApis.uxp_addon_reject_deferred(env, d, make_error(env, error)));
    });
  }

 private:
  bool claim() {
    std::lock_guard lock(mutex_);
    if (settled_) return false;
    settled_ = true;
    return true;
  }
  addon_env env_;
  addon_deferred deferred_;
  std::mutex mutex_;
  bool settled_ = false;
};

// ---------------------------------------------------------------------------------------------
// Args and Result for one call.

constexpr size_t kMaxArgs = 8;

class UxpArgs : public kiln::ps::Args {
 public:
  UxpArgs(addon_env env, size_t argc, addon_value* argv) : env_(env), argc_(argc), argv_(argv) {}

  size_t count() const override { return argc_; }
  bool present(size_t i) const override {
    if (i >= argc_) return false;
    const addon_valuetype t = type_of(env_, argv_[i]);
    return t != addon_undefined && t != addon_null;
  }
  std::string string(size_t i, const char* name) const override {
    expect(i, addon_string, name, "a string");
    return utf8(env_, argv_[i]);
  }
  double number(size_t i, const char* name) const override {
    expect(i, addon_number, name, "a number");
    double d = 0;
    check(env_, UxpAddonApis.uxp_addon_get_value_double(env_, argv_[i], &d));
    return d;
  }
  bool boolean(size_t i, const char* name) const override {
    expect(i, addon_boolean, name, "true or false");
    bool b = false;
    check(env_, UxpAddonApis.uxp_addon_get_value_bool(env_, argv_[i], &b));
    return b;
  }
  Json json(size_t i, const char* name) const override {
    if (i >= argc_) throw JsError::type(std::string("argument '") + name + "' is missing");
    return from_js(env_, argv_[i]);
  }
  ByteView bytes(size_t i, const char* name) const override {
    if (i < argc_) {
      addon_value v = argv_[i];
      bool is = false;
      ByteView view;
      void* data = nullptr;
      check(env_, UxpAddonApis.uxp_addon_is_arraybuffer(env_, v, &is));
      if (is) {
        check(env_, UxpAddonApis.uxp_addon_get_arraybuffer_info(env_, v, &data, &view.size));
        view.data = static_cast<uint8_t*>(data);
        return view;
      }
      check(env_, UxpAddonApis.uxp_addon_is_dataview(env_, v, &is));
      if (is) {
        addon_value buffer = nullptr;
        size_t offset = 0;
        check(env_, UxpAddonApis.uxp_addon_get_dataview_info(env_, v, &view.size, &data, &buffer, &offset));
        view.data = static_cast<uint8_t*>(data);
        return view;
      }
      check(env_, UxpAddonApis.uxp_addon_is_typedarray(env_, v, &is));
      if (is) {
        // The SDK has no typed-array info call: read the view's own buffer, offset and length.
        size_t size = 0;
        check(env_, UxpAddonApis.uxp_addon_get_arraybuffer_info(env_, property(env_, v, "buffer"), &data, &size));
        double offset = 0, length = 0;
        check(env_, UxpAddonApis.uxp_addon_get_value_double(env_, property(env_, v, "byteOffset"), &offset));
        check(env_, UxpAddonApis.uxp_addon_get_value_double(env_, property(env_, v, "byteLength"), &length));
        if (offset < 0 || length < 0 || offset + length > double(size)) throw JsError("a typed array outside its buffer");
        view.data = static_cast<uint8_t*>(data) + static_cast<size_t>(offset);
        view.size = static_cast<size_t>(length);
        return view;
      }
    }
    throw JsError::type(std::string("argument '") + name + "' must be an ArrayBuffer or a typed array (e.g. Uint8Array)");
  }
  std::shared_ptr<kiln::ps::Object> object(size_t i, const char* name) const override {
    if (i < argc_ && type_of(env_, argv_[i]) == addon_external) {
      void* box = nullptr;
      check(env_, UxpAddonApis.uxp_addon_get_value_external(env_, argv_[i], &box));
      if (auto o = kiln::ps::unbox_object(box)) return o;
    }
    throw JsError::type(std::string("argument '") + name + "' must be a Kiln " + name + " handle from this addon");
  }
  std::shared_ptr<kiln::ps::Callback> function(size_t i, const char* name) const override {
    expect(i, addon_function, name, "a function");
    return std::make_shared<UxpCallback>(env_, argv_[i]);
  }

 private:
  void expect(size_t i, addon_valuetype t, const char* name, const char* what) const {
    if (i >= argc_ || type_of(env_, argv_[i]) != t) throw JsError::type(std::string("argument '") + name + "' must be " + what);
  }
  addon_env env_;
  size_t argc_;
  addon_value* argv_;
};

void finalize_box(addon_env, void* box, void*) { kiln::ps::release_box(box); }

class UxpResult : public kiln::ps::Result {
 public:
  explicit UxpResult(addon_env env) : env_(env) {}
  addon_value value() const { return value_; }

  void set_json(const Json& v) override {
    if (v.is_null()) check(env_, UxpAddonApis.uxp_addon_get_undefined(env_, &value_));
    else value_ = to_js(env_, v);
  }
  uint8_t* set_buffer(size_t size) override {
    void* data = nullptr;
    check(env_, UxpAddonApis.uxp_addon_create_arraybuffer(env_, size, &data, &value_));
    return static_cast<uint8_t*>(data);
  }
  void set_object(std::shared_ptr<kiln::ps::Object> object) override {
    void* box = kiln::ps::box_object(std::move(object));
    const addon_status s = UxpAddonApis.uxp_addon_create_external(env_, box, finalize_box, nullptr, &value_);
    if (s != addon_ok) kiln::ps::release_box(box);
    check(env_, s);
  }
  std::shared_ptr<kiln::ps::Deferred> set_promise() override {
    addon_deferred deferred = nullptr;
    check(env_, UxpAddonApis.uxp_addon_create_promise(env_, &deferred, &value_));
    return std::make_shared<UxpDeferred>(env_, deferred);
  }

 private:
  addon_env env_;
  addon_value value_ = nullptr;
};

addon_value trampoline(addon_env env, addon_callback_info info) {
  size_t argc = kMaxArgs;
  addon_value argv[kMaxArgs];
  void* data = nullptr;
  if (UxpAddonApis.uxp_addon_get_cb_info(env, info, &argc, argv, nullptr, &data) != addon_ok) return nullptr;
  argc = argc < kMaxArgs ? argc : kMaxArgs;
  const auto* exp = static_cast<const kiln::ps::Export*>(data);
  try {
    UxpArgs args(env, argc, argv);
    UxpResult result(env);
    exp->function(args, result);
    if (result.value()) return result.value();
    addon_value undefined = nullptr;
    UxpAddonApis.uxp_addon_get_undefined(env, &undefined);
    return undefined;
  } catch (const Pending&) {
  } catch (const JsError& e) {
    try {
      UxpAddonApis.uxp_addon_throw(env, make_error(env, e));
    } catch (...) {
      UxpAddonApis.uxp_addon_throw_error(env, nullptr, e.what());
    }
  } catch (const std::exception& e) {
    UxpAddonApis.uxp_addon_throw_error(env, nullptr, e.what());
  } catch (...) {
    UxpAddonApis.uxp_addon_throw_error(env, nullptr, "kiln bridge: unexpected failure");
  }
  return nullptr;
}

addon_value init(addon_env env, addon_value exports, const addon_apis&) {
  for (const kiln::ps::Export& e : kiln::ps::exports()) {
    addon_value fn = nullptr;
    // Unnamed, then set by name: Adobe's samples do this (a named create_function can fail).
    check(env, UxpAddonApis.uxp_addon_create_function(env, nullptr, 0, trampoline, const_cast<kiln::ps::Export*>(&e), &fn));
    check(env, UxpAddonApis.uxp_addon_set_named_property(env, exports, e.name, fn));
  }
  addon_value engine = nullptr;
  check(env, UxpAddonApis.uxp_addon_create_string_utf8(env, "uxp", 3, &engine));
  check(env, UxpAddonApis.uxp_addon_set_named_property(env, exports, "engine", engine));
  return exports;
}

void terminate(addon_env) {
  terminating = true;
  kiln::ps::shutdown_all_clients();
}

}  // namespace

UXP_ADDON_INIT(init)
UXP_ADDON_TERMINATE(terminate)
