// Runs the UXP build of the bridge (kiln_bridge.uxpaddon, uxp_glue.cpp) inside Node, so the same
// node tests exercise the UXP glue: it loads the addon ($KILN_UXPADDON) and hands it an addon_apis
// table implemented with Node-API. Adobe's addon API mirrors Node-API call for call (same argument
// order, status and value-type numbering), so each entry is the Node-API function itself, and
// schedule_on_javascript_queue is a thread-safe function. It emulates UXP's API, not UXP: what it
// shows is that the glue's own code (conversions, promises, callbacks, errors, handles) works.
// Built only with -DKILN_UXP_SDK, whose UxpAddonShared.h declares the table.
#define NAPI_VERSION 8
#include <node_api.h>
#include <dlfcn.h>
#include <cstdio>
#include <string>
#include "UxpAddonShared.h"

namespace {
napi_threadsafe_function queue = nullptr;
struct Job { addon_task task; addon_task_data data; addon_task_destructor deleter; };

void run_job(napi_env env, napi_value, void*, void* data) {
  Job* j = static_cast<Job*>(data);
  if (env) j->task(j->data);
  if (j->deleter) j->deleter(j->data);
  delete j;
}
void schedule_js(addon_env, addon_task task, addon_task_data data, addon_task_destructor deleter) {
  napi_call_threadsafe_function(queue, new Job{task, data, deleter}, napi_tsfn_nonblocking);
}
void schedule_main(addon_env e, addon_task t, addon_task_data d, addon_task_destructor x) { schedule_js(e, t, d, x); }

using InitFn = addon_value (*)(addon_env, addon_value, addon_apis&&);
using TermFn = void (*)(addon_env);
TermFn terminate_fn = nullptr;
void cleanup(void* env) { if (terminate_fn) terminate_fn(reinterpret_cast<addon_env>(env)); }
}  // namespace

#define MAP(field, fn) apis.field = reinterpret_cast<decltype(apis.field)>(&fn)

NAPI_MODULE_INIT() {
  const char* path = getenv("KILN_UXPADDON");
  if (!path) {
    napi_throw_error(env, nullptr, "set KILN_UXPADDON to the kiln_bridge.uxpaddon to load");
    return nullptr;
  }
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    napi_throw_error(env, nullptr, dlerror());
    return nullptr;
  }
  auto init = reinterpret_cast<InitFn>(dlsym(lib, "uxp_addon_init"));
  terminate_fn = reinterpret_cast<TermFn>(dlsym(lib, "uxp_addon_terminate"));
  napi_value name; napi_create_string_utf8(env, "uxp queue", NAPI_AUTO_LENGTH, &name);
  napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr, run_job, &queue);
  napi_unref_threadsafe_function(env, queue);
  addon_apis apis{};
  MAP(uxp_addon_create_int32, napi_create_int32);
  MAP(uxp_addon_get_cb_info, napi_get_cb_info);
  MAP(uxp_addon_throw_error, napi_throw_error);
  MAP(uxp_addon_get_value_int32, napi_get_value_int32);
  MAP(uxp_addon_create_function, napi_create_function);
  MAP(uxp_addon_set_named_property, napi_set_named_property);
  MAP(uxp_addon_get_last_error_info, napi_get_last_error_info);
  MAP(uxp_addon_get_undefined, napi_get_undefined);
  MAP(uxp_addon_get_null, napi_get_null);
  MAP(uxp_addon_get_global, napi_get_global);
  MAP(uxp_addon_get_boolean, napi_get_boolean);
  MAP(uxp_addon_create_object, napi_create_object);
  MAP(uxp_addon_create_array, napi_create_array);
  MAP(uxp_addon_create_array_with_length, napi_create_array_with_length);
  MAP(uxp_addon_create_double, napi_create_double);
  MAP(uxp_addon_create_string_utf8, napi_create_string_utf8);
  MAP(uxp_addon_create_error, napi_create_error);
  MAP(uxp_addon_create_type_error, napi_create_type_error);
  MAP(uxp_addon_typeof, napi_typeof);
  MAP(uxp_addon_get_value_double, napi_get_value_double);
  MAP(uxp_addon_get_value_bool, napi_get_value_bool);
  MAP(uxp_addon_get_value_string_utf8, napi_get_value_string_utf8);
  MAP(uxp_addon_set_property, napi_set_property);
  MAP(uxp_addon_get_named_property, napi_get_named_property);
  MAP(uxp_addon_set_element, napi_set_element);
  MAP(uxp_addon_call_function, napi_call_function);
  MAP(uxp_addon_create_external, napi_create_external);
  MAP(uxp_addon_get_value_external, napi_get_value_external);
  MAP(uxp_addon_create_reference, napi_create_reference);
  MAP(uxp_addon_delete_reference, napi_delete_reference);
  MAP(uxp_addon_get_reference_value, napi_get_reference_value);
  MAP(uxp_addon_open_handle_scope, napi_open_handle_scope);
  MAP(uxp_addon_close_handle_scope, napi_close_handle_scope);
  MAP(uxp_addon_throw, napi_throw);
  MAP(uxp_addon_is_exception_pending, napi_is_exception_pending);
  MAP(uxp_addon_get_and_clear_last_exception, napi_get_and_clear_last_exception);
  MAP(uxp_addon_is_arraybuffer, napi_is_arraybuffer);
  MAP(uxp_addon_create_arraybuffer, napi_create_arraybuffer);
  MAP(uxp_addon_get_arraybuffer_info, napi_get_arraybuffer_info);
  MAP(uxp_addon_is_typedarray, napi_is_typedarray);
  MAP(uxp_addon_is_dataview, napi_is_dataview);
  MAP(uxp_addon_get_dataview_info, napi_get_dataview_info);
  MAP(uxp_addon_create_promise, napi_create_promise);
  MAP(uxp_addon_resolve_deferred, napi_resolve_deferred);
  MAP(uxp_addon_reject_deferred, napi_reject_deferred);
  apis.uxp_addon_schedule_on_javascript_queue = schedule_js;
  apis.uxp_addon_schedule_on_main_queue = schedule_main;
  napi_add_env_cleanup_hook(env, cleanup, env);
  return reinterpret_cast<napi_value>(init(reinterpret_cast<addon_env>(env), reinterpret_cast<addon_value>(exports), std::move(apis)));
}
