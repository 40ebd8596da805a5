// The Photoshop bridge's C++ core against a real kilnd, through its export table: calls, errors,
// notifications, image hand-off (odd widths, RGB and RGBA), a client that goes away mid-job, a
// daemon that dies. A small test engine (TestArgs/TestResult below) stands where Node-API or UXP
// stands in the real glues, so what is tested here is exactly what both glues bind.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "bridge_client.h"
#include "daemon_process.h"
#include "js.h"
#include "pixels.h"

namespace {

using kiln::ps::ByteView;
using kiln::ps::JsError;
using kiln::ps::Json;
using kiln::test::DaemonProcess;
using kiln::test::eventually;
using namespace std::chrono_literals;

const std::string kTiny = std::string(KILN_TEST_FIXTURES_DIR) + "/sd15-tiny/model.safetensors";

// ---------------------------------------------------------------------------------------------
// A test engine: JavaScript values are JSON, byte buffers, handles or functions.

struct TestCallback : kiln::ps::Callback {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::vector<Json>> calls;
  std::function<void(const std::vector<Json>&)> on_call;  // runs as the call arrives, as a JS handler would
  void call(std::vector<Json> args) override {
    if (on_call) on_call(args);
    {
      std::lock_guard lock(mutex);
      calls.push_back(std::move(args));
    }
    cv.notify_all();
  }
  template <class Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds limit = 60s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, limit, [&] { return pred(calls); });
  }
  std::vector<std::vector<Json>> snapshot() {
    std::lock_guard lock(mutex);
    return calls;
  }
};

struct TestDeferred : kiln::ps::Deferred {
  std::promise<Json> promise;
  std::shared_future<Json> future = promise.get_future().share();
  int settled = 0;
  void resolve(Json value) override {
    ++settled;
    promise.set_value(std::move(value));
  }
  void reject(const JsError& error) override {
    ++settled;
    promise.set_exception(std::make_exception_ptr(error));
  }
  Json get(std::chrono::milliseconds limit = 60s) {
    if (future.wait_for(limit) != std::future_status::ready) throw std::runtime_error("the promise was not settled in time");
    return future.get();
  }
};

using Value = std::variant<std::monostate, Json, std::shared_ptr<std::vector<uint8_t>>, std::shared_ptr<kiln::ps::Object>,
                           std::shared_ptr<TestCallback>>;

class TestArgs : public kiln::ps::Args {
 public:
  explicit TestArgs(std::vector<Value> v) : v_(std::move(v)) {}
  size_t count() const override { return v_.size(); }
  bool present(size_t i) const override {
    return i < v_.size() && !std::holds_alternative<std::monostate>(v_[i]) &&
           !(std::holds_alternative<Json>(v_[i]) && std::get<Json>(v_[i]).is_null());
  }
  std::string string(size_t i, const char* n) const override { return as_json(i, n, Json::value_t::string).get<std::string>(); }
  double number(size_t i, const char* n) const override {
    const Json& j = json_at(i, n);
    if (!j.is_number()) throw JsError::type(std::string("argument '") + n + "' must be a number");
    return j.get<double>();
  }
  bool boolean(size_t i, const char* n) const override { return as_json(i, n, Json::value_t::boolean).get<bool>(); }
  Json json(size_t i, const char* n) const override { return json_at(i, n); }
  ByteView bytes(size_t i, const char* n) const override {
    if (i < v_.size())
      if (auto* b = std::get_if<std::shared_ptr<std::vector<uint8_t>>>(&v_[i])) return {(*b)->data(), (*b)->size()};
    throw JsError::type(std::string("argument '") + n + "' must be an ArrayBuffer or a typed array (e.g. Uint8Array)");
  }
  std::shared_ptr<kiln::ps::Object> object(size_t i, const char* n) const override {
    if (i < v_.size())
      if (auto* o = std::get_if<std::shared_ptr<kiln::ps::Object>>(&v_[i])) return *o;
    throw JsError::type(std::string("argument '") + n + "' must be a Kiln " + n + " handle from this addon");
  }
  std::shared_ptr<kiln::ps::Callback> function(size_t i, const char* n) const override {
    if (i < v_.size())
      if (auto* f = std::get_if<std::shared_ptr<TestCallback>>(&v_[i])) return *f;
    throw JsError::type(std::string("argument '") + n + "' must be a function");
  }

 private:
  const Json& json_at(size_t i, const char* n) const {
    if (i < v_.size())
      if (auto* j = std::get_if<Json>(&v_[i])) return *j;
    throw JsError::type(std::string("argument '") + n + "' is missing or not a JSON value");
  }
  const Json& as_json(size_t i, const char* n, Json::value_t t) const {
    const Json& j = json_at(i, n);
    if (j.type() != t) throw JsError::type(std::string("argument '") + n + "' has the wrong type");
    return j;
  }
  std::vector<Value> v_;
};

class TestResult : public kiln::ps::Result {
 public:
  Json json;
  std::vector<uint8_t> buffer;
  std::shared_ptr<kiln::ps::Object> object;
  std::shared_ptr<TestDeferred> deferred;
  void set_json(const Json& v) override { json = v; }
  uint8_t* set_buffer(size_t size) override {
    buffer.assign(size, 0xEE);  // filled by the export: a stale byte would show
    return buffer.data();
  }
  void set_object(std::shared_ptr<kiln::ps::Object> o) override { object = std::move(o); }
  std::shared_ptr<kiln::ps::Deferred> set_promise() override { return deferred = std::make_shared<TestDeferred>(); }
};

TestResult run(const std::string& name, std::vector<Value> args) {
  for (const auto& e : kiln::ps::exports())
    if (name == e.name) {
      TestArgs a(std::move(args));
      TestResult r;
      e.function(a, r);
      return r;
    }
  throw std::runtime_error("no export " + name);
}

std::shared_ptr<std::vector<uint8_t>> bytes(std::vector<uint8_t> v) { return std::make_shared<std::vector<uint8_t>>(std::move(v)); }

std::vector<uint8_t> pattern(size_t n, int seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed * 7 + (i >> 8));
  return v;
}

// ---------------------------------------------------------------------------------------------

class PhotoshopBridge : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new DaemonProcess({}, "psb");
    daemon_->client()->call("models.add", {{"path", kTiny}, {"name", "tiny"}});
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }

  static std::shared_ptr<kiln::ps::Object> connected_client(DaemonProcess& d = *daemon_) {
    auto client = run("createClient", {Json{{"socket", d.socket().string()}, {"autostart", false}, {"name", "bridge-test"}}}).object;
    const Json info = run("connect", {client}).deferred->get();
    EXPECT_EQ(info.at("protocol"), 1);
    return client;
  }
  static Json call(const std::shared_ptr<kiln::ps::Object>& c, const std::string& method, Json params = Json::object()) {
    return run("call", {c, Json(method), std::move(params)}).deferred->get();
  }

  static DaemonProcess* daemon_;
};
DaemonProcess* PhotoshopBridge::daemon_ = nullptr;

TEST_F(PhotoshopBridge, ExportsAreListedOnceWithTheirSignatures) {
  std::vector<std::string> names;
  for (const auto& e : kiln::ps::exports()) {
    names.push_back(e.name);
    EXPECT_EQ(std::string(e.signature).rfind(std::string(e.name) + "(", 0), 0u) << e.signature;
  }
  const std::vector<std::string> expected = {"version", "findDaemon", "createClient", "connect", "close", "isConnected",
                                             "serverInfo", "socketPath", "call", "onNotification", "onDisconnect",
                                             "createImage", "writeImage", "readImage", "openImage", "takeImage",
                                             "imageInfo", "imageRef", "releaseImage", "readFile", "downloadFile"};
  EXPECT_EQ(names, expected);
}

TEST_F(PhotoshopBridge, CallsResolveWithTheDaemonsResult) {
  auto c = connected_client();
  EXPECT_TRUE(run("isConnected", {c}).json.get<bool>());
  const Json status = call(c, "status");
  EXPECT_TRUE(status.is_object());
  EXPECT_EQ(run("socketPath", {c}).json, daemon_->socket().string());
  EXPECT_EQ(run("serverInfo", {c}).json.at("protocol"), 1);
  const Json models = call(c, "models.list");
  ASSERT_EQ(models.at("models").size(), 1u);
  EXPECT_EQ(models["models"][0]["name"], "tiny");
  run("close", {c});
  EXPECT_FALSE(run("isConnected", {c}).json.get<bool>());
}

TEST_F(PhotoshopBridge, ErrorsCarryTheDaemonsMessageAndCode) {
  auto c = connected_client();
  try {
    call(c, "no.such.method");
    FAIL() << "no error";
  } catch (const JsError& e) {
    EXPECT_EQ(e.code(), -32601);
    EXPECT_NE(std::string(e.what()).find("no.such.method"), std::string::npos) << e.what();
    EXPECT_FALSE(e.type_error());
  }
  try {
    call(c, "generate", {{"model", "tiny"}, {"prompt", "x"}, {"steps", "many"}});
    FAIL() << "no error";
  } catch (const JsError& e) {
    EXPECT_EQ(e.code(), -32602);
    EXPECT_NE(std::string(e.what()).find("steps"), std::string::npos) << e.what();
  }
  // Arguments are checked before anything is sent, as TypeErrors naming the argument.
  EXPECT_THROW(run("call", {c}), JsError);
  try {
    run("createImage", {c, Json(0), Json(4)});
    FAIL();
  } catch (const JsError& e) {
    EXPECT_TRUE(e.type_error());
    EXPECT_NE(std::string(e.what()).find("width"), std::string::npos);
  }
  auto image = run("createImage", {c, Json(2), Json(2), Json(4)}).object;
  try {
    run("call", {image, Json("status")});
    FAIL();
  } catch (const JsError& e) {
    EXPECT_STREQ(e.what(), "argument 'client' must be a Kiln client, not a Kiln image");
  }
  try {
    run("createClient", {Json{{"sockets", "x"}}});
    FAIL();
  } catch (const JsError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown client option 'sockets'"), std::string::npos);
  }
  // A client that cannot reach a daemon says where it looked, with the daemon's fix.
  auto lonely = run("createClient", {Json{{"socket", (daemon_->root() / "none.sock").string()}, {"autostart", false}}}).object;
  try {
    run("connect", {lonely}).deferred->get();
    FAIL();
  } catch (const JsError& e) {
    EXPECT_EQ(e.code(), -32090);
    EXPECT_NE(std::string(e.what()).find("none.sock"), std::string::npos) << e.what();
  }
}

TEST_F(PhotoshopBridge, ImagesRoundTripOneCopyEachWay) {
  auto c = connected_client();
  for (auto [w, h, ch] : std::vector<std::tuple<uint32_t, uint32_t, uint32_t>>{{33, 17, 4}, {33, 17, 3}, {1, 1, 4}, {257, 3, 3}, {5, 9, 1}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h) + "x" + std::to_string(ch));
    const std::string layout = ch == 4 ? "RGBA" : ch == 3 ? "RGB" : "L";
    const auto src = pattern(size_t(w) * h * ch, int(w + ch));
    auto image = run("createImage", {c, Json(w), Json(h), Json(ch)}).object;
    run("writeImage", {image, bytes(src), Json(layout)});
    const Json ref = run("imageRef", {image}).json;
    EXPECT_EQ(ref.at("width"), w);
    const Json echoed = call(c, "image.echo", {{"image", ref}});
    auto back = run("takeImage", {c, echoed.at("image")}).object;
    const Json info = run("imageInfo", {back}).json;
    EXPECT_EQ(info.at("channels"), ch);
    EXPECT_FALSE(info.at("writable").get<bool>());
    EXPECT_GE(info.at("stride").get<uint64_t>(), uint64_t(w) * ch);
    EXPECT_EQ(run("readImage", {back, Json(layout)}).buffer, src);
    EXPECT_THROW(run("writeImage", {back, bytes(src)}), JsError);  // kilnd's block is read-only to us
    run("releaseImage", {back});
    EXPECT_THROW(run("readImage", {back}), JsError);
  }
}

TEST_F(PhotoshopBridge, ChannelsAreConvertedDuringTheCopy) {
  auto c = connected_client();
  auto rgb = run("createImage", {c, Json(3), Json(1), Json(3)}).object;
  // Opaque red, half green, transparent blue: onto white.
  run("writeImage", {rgb, bytes({255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0}), Json("RGBA"), Json::array({255, 255, 255})});
  EXPECT_EQ(run("readImage", {rgb, Json("RGB")}).buffer, (std::vector<uint8_t>{255, 0, 0, 127, 255, 127, 255, 255, 255}));
  EXPECT_EQ(run("readImage", {rgb, Json("RGBA")}).buffer,
            (std::vector<uint8_t>{255, 0, 0, 255, 127, 255, 127, 255, 255, 255, 255, 255}));
  // Without a background, RGBA -> RGB keeps the colour and drops alpha.
  run("writeImage", {rgb, bytes({1, 2, 3, 0, 4, 5, 6, 9, 7, 8, 9, 255}), Json("RGBA")});
  EXPECT_EQ(run("readImage", {rgb}).buffer, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  auto mask = run("createImage", {c, Json(2), Json(1), Json(1)}).object;
  run("writeImage", {mask, bytes({0, 200}), Json("L")});
  EXPECT_EQ(run("readImage", {mask, Json("RGB")}).buffer, (std::vector<uint8_t>{0, 0, 0, 200, 200, 200}));
  EXPECT_THROW(run("readImage", {rgb, Json("L")}), JsError);
  EXPECT_THROW(run("writeImage", {rgb, bytes({1, 2}), Json("RGB")}), JsError);
  EXPECT_THROW(run("writeImage", {rgb, bytes(std::vector<uint8_t>(9)), Json("BGR")}), JsError);
}

TEST_F(PhotoshopBridge, NotificationsReachTheHandlerInOrderWithPreviews) {
  auto c = connected_client();
  auto events = std::make_shared<TestCallback>();
  // Previews are offered for a while only: read them as they come, as the panel does.
  std::atomic<int> previews_read{0};
  events->on_call = [&](const std::vector<Json>& a) {
    if (a.size() != 2 || !a[1].contains("preview")) return;
    auto image = run("openImage", {a[1]["preview"]}).object;  // shared with other subscribers: open, not take
    if (!run("readImage", {image}).buffer.empty()) ++previews_read;
  };
  run("onNotification", {c, events});
  call(c, "jobs.subscribe");
  const Json job = call(c, "jobs.simulate", {{"steps", 6}, {"step_ms", 5}, {"preview_every", 2}, {"priority", "interactive"}});
  const std::string id = job.at("id");
  ASSERT_TRUE(events->wait_for([&](const auto& calls) {
    for (const auto& a : calls)
      if (a[0] == "job.state" && a[1]["job"]["id"] == id && a[1]["job"]["state"] == "done") return true;
    return false;
  }));
  std::vector<int> steps;
  for (const auto& a : events->snapshot()) {
    ASSERT_EQ(a.size(), 2u);  // handler(method, params)
    if (a[1]["job"]["id"] != id || a[0] != "job.progress") continue;
    steps.push_back(a[1]["job"]["progress"]["step"].get<int>());
  }
  EXPECT_FALSE(steps.empty());
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  EXPECT_GT(previews_read.load(), 0);
  run("onNotification", {c, Json(nullptr)});
}

TEST_F(PhotoshopBridge, AGenerateJobWithItsResultImage) {
  auto c = connected_client();
  auto events = std::make_shared<TestCallback>();
  run("onNotification", {c, events});
  call(c, "jobs.subscribe");
  const Json job = call(c, "generate", {{"model", "tiny"}, {"prompt", "a bottle"}, {"steps", 3}, {"seed", 3}, {"width", 64},
                                        {"height", 48}, {"sampler", "Euler"}, {"save", false}});
  Json done;
  ASSERT_TRUE(events->wait_for([&](const auto& calls) {
    for (const auto& a : calls)
      if (a[0] == "job.state" && a[1]["job"]["id"] == job["id"] && a[1]["job"]["state"] == "done") return done = a[1]["job"], true;
    return false;
  }));
  auto image = run("openImage", {done["result"]["images"][0]["image"]}).object;
  const auto px = run("readImage", {image, Json("RGBA")}).buffer;
  ASSERT_EQ(px.size(), 64u * 48 * 4);
  EXPECT_EQ(px[3], 255);
}

TEST_F(PhotoshopBridge, AClientThatDisappearsMidJobLeavesTheDaemonServingOthers) {
  auto watcher = connected_client();
  std::string id;
  {
    auto leaver = connected_client();
    auto init = run("createImage", {leaver, Json(64), Json(64), Json(3)}).object;
    run("writeImage", {init, bytes(pattern(64 * 64 * 3, 2)), Json("RGB")});
    id = call(leaver, "generate", {{"model", "tiny"}, {"prompt", "x"}, {"steps", 8}, {"seed", 1}, {"width", 64}, {"height", 64},
                                   {"init_image", run("imageRef", {init}).json}, {"strength", 0.6}, {"sampler", "Euler"},
                                   {"save", false}})["id"];
    // The handles go out of scope: the client and its blocks are destroyed mid-job.
  }
  Json record;
  ASSERT_TRUE(eventually([&] {
    record = call(watcher, "jobs.get", {{"id", id}});
    return record["state"] == "done" || record["state"] == "failed";
  }, 60000ms));
  EXPECT_EQ(record["state"], "done") << record.dump();  // input pixels were copied when queued
  EXPECT_TRUE(call(watcher, "status").is_object());
}

TEST_F(PhotoshopBridge, ADaemonThatDiesIsReportedAndPendingCallsFail) {
  DaemonProcess own({}, "psk");
  auto c = connected_client(own);
  auto dropped = std::make_shared<TestCallback>();
  run("onDisconnect", {c, dropped});
  call(c, "jobs.simulate", {{"steps", 1000}, {"step_ms", 20}});
  auto pending = run("call", {c, Json("jobs.simulate"), Json{{"steps", 1}, {"step_ms", 60000}, {"priority", "long"}}}).deferred;
  own.kill9();
  ASSERT_TRUE(dropped->wait_for([](const auto& calls) { return !calls.empty(); }, 10s));
  EXPECT_FALSE(run("isConnected", {c}).json.get<bool>());
  try {
    call(c, "status");
    FAIL();
  } catch (const JsError& e) {
    EXPECT_EQ(e.code(), -32090);
  }
  try {
    pending->get(10s);  // answered before the kill, or failed by it: never left hanging
  } catch (const JsError& e) {
    EXPECT_EQ(e.code(), -32090);
  }
  EXPECT_EQ(pending->settled, 1);
  own.start();
  EXPECT_NO_THROW(run("connect", {c}).deferred->get());
  EXPECT_TRUE(call(c, "status").is_object());
}

// A Photoshop on Windows or macOS reaches a Linux GPU machine's kilnd over TLS: createClient's
// remote and token, then the same calls and the same images (they travel as binary frames).
TEST(PhotoshopBridgeRemote, ARemoteDaemonServesTheSameCallsAndImages) {
  DaemonProcess d({"--listen", "127.0.0.1:0"}, "psr");
  const std::string config = (d.root() / "client-config").string();
  ::setenv("KILN_CONFIG_DIR", config.c_str(), 1);  // the pin of this test only
  auto local = d.client();
  const std::string token = local->call("remote.tokens.create", {{"name", "photoshop"}}).at("token");
  const std::string url = "kiln+tls://" + local->call("status").at("remote").at("address").get<std::string>();
  auto wrong = run("createClient", {Json{{"remote", url}, {"token", "kiln_not-a-token"}, {"autostart", false}}}).object;
  try {
    run("connect", {wrong}).deferred->get();
    ADD_FAILURE() << "a wrong token was accepted";
  } catch (const JsError& e) {
    EXPECT_EQ(e.code(), -32005) << e.what();
  }
  std::this_thread::sleep_for(700ms);  // the address waits after a failed token
  auto c = run("createClient", {Json{{"remote", url}, {"token", token}, {"autostart", false}, {"name", "ps-remote"}}}).object;
  const Json info = run("connect", {c}).deferred->get();
  EXPECT_EQ(info.at("remote").at("token"), "photoshop");
  EXPECT_EQ(run("socketPath", {c}).json, url);
  const auto src = pattern(size_t(65) * 47 * 4, 5);
  auto image = run("createImage", {c, Json(65), Json(47), Json(4)}).object;
  run("writeImage", {image, bytes(src), Json("RGBA")});
  const Json echoed = run("call", {c, Json("image.echo"), Json{{"image", run("imageRef", {image}).json}}}).deferred->get();
  auto back = run("takeImage", {c, echoed.at("image")}).object;
  EXPECT_EQ(run("readImage", {back, Json("RGBA")}).buffer, src) << "the layer's pixels after a round trip over TLS";

  // downloadFile: a file kilnd named (a LoRA's grid) to this machine, where readFile reads it.
  namespace fs = std::filesystem;
  fs::create_directories(d.data_dir() / "outputs");
  const std::string grid = (d.data_dir() / "outputs" / "grid.png").string();
  const std::string content = "a grid's bytes\n\x89PNG";
  std::ofstream(grid, std::ios::binary) << content;
  const std::string copy = run("downloadFile", {c, Json(grid)}).deferred->get().get<std::string>();
  EXPECT_NE(copy, grid);
  EXPECT_EQ(fs::path(copy).filename().string().substr(fs::path(copy).filename().string().size() - 8), "grid.png");
  EXPECT_EQ(fs::status(fs::path(copy).parent_path()).permissions() & fs::perms::all, fs::perms::owner_all) << "a private folder";
  EXPECT_EQ(run("readFile", {Json(copy)}).buffer, std::vector<uint8_t>(content.begin(), content.end()));
  const std::string chosen = (d.root() / "laptop" / "grid-copy.png").string();
  fs::create_directories(d.root() / "laptop");
  EXPECT_EQ(run("downloadFile", {c, Json(grid), Json(chosen)}).deferred->get(), Json(chosen));
  EXPECT_EQ(run("readFile", {Json(chosen)}).buffer, std::vector<uint8_t>(content.begin(), content.end()));
  try {  // only results (outputs/, loras/, datasets/) may be downloaded
    run("downloadFile", {c, Json((d.root() / "client-config" / "known_daemons.json").string())}).deferred->get();
    ADD_FAILURE() << "a file outside the results folders was downloaded";
  } catch (const JsError& e) {
    EXPECT_NE(std::string(e.what()).find("outputs/"), std::string::npos) << e.what();
  }
  EXPECT_THROW(run("downloadFile", {c}), JsError) << "daemonPath is required";
  run("close", {c});
  fs::remove_all(fs::path(copy).parent_path());
  ::unsetenv("KILN_CONFIG_DIR");
}

TEST(PhotoshopBridgeBoxes, ForeignPointersAreRefused) {
  auto image = std::make_shared<kiln::ps::BridgeImage>(kiln::ipc::ShmImage::create({4, 4, 4}), true);
  void* box = kiln::ps::box_object(image);
  EXPECT_EQ(kiln::ps::unbox_object(box), image);
  int foreign = 0;
  EXPECT_EQ(kiln::ps::unbox_object(&foreign), nullptr);
  kiln::ps::release_box(box);
  EXPECT_EQ(kiln::ps::unbox_object(box), nullptr);
  kiln::ps::release_box(&foreign);  // ignored, not deleted
}

}  // namespace
