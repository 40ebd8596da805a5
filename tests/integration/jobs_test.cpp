// Jobs through a real daemon: notifications with previews, cancel, and records that survive
// a graceful stop and a kill -9.
#include <condition_variable>
#include <mutex>

#include <gtest/gtest.h>

#include "daemon_process.h"
#include "protocol/methods.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;

namespace {
// Collects the notifications of one job.
struct JobEvents {
  std::mutex mutex;
  std::vector<Json> progress, states;
  std::vector<std::string> previews_read;
  void attach(Client& client, const std::string& id) {
    client.add_notification_handler([this, id, &client](const std::string& method, const Json& params) {
      if (params.at("job").at("id") != id) return;
      std::lock_guard lock(mutex);
      if (method == protocol::notification::kJobState) states.push_back(params.at("job"));
      else progress.push_back(params.at("job"));
      if (params.contains("preview")) {
        // Subscribers copy a preview out promptly; the daemon owns and later removes it.
        try {
          const ipc::ShmImage p = ipc::ShmImage::open(protocol::image_ref_from_json(params.at("preview")));
          previews_read.push_back(std::to_string(p.desc().width) + "x" + std::to_string(p.desc().height));
        } catch (const std::exception& e) {
          previews_read.push_back(std::string("error: ") + e.what());
        }
      }
    });
  }
  std::string last_state() {
    std::lock_guard lock(mutex);
    return states.empty() ? "" : states.back().at("state").get<std::string>();
  }
};
}  // namespace

TEST(Jobs, SubscribersSeeProgressStatesAndPreviews) {
  DaemonProcess daemon;
  auto client = daemon.client();
  const Json job = client->call(protocol::method::kJobsSimulate, {{"steps", 30}, {"step_ms", 10}, {"preview_every", 10}});
  const std::string id = job.at("id");
  JobEvents events;
  events.attach(*client, id);
  const Json sub = client->call(protocol::method::kJobsSubscribe, {{"id", id}});
  EXPECT_EQ(sub.at("job").at("id"), id);
  ASSERT_TRUE(eventually([&] { return events.last_state() == "done"; }));
  std::lock_guard lock(events.mutex);
  ASSERT_GE(events.progress.size(), 3u);
  int64_t last = 0;
  for (const Json& p : events.progress) {
    const int64_t step = p.at("progress").at("step");
    EXPECT_GE(step, last) << "progress never goes backwards";
    last = step;
  }
  EXPECT_EQ(events.states.back().at("progress").at("step"), 30);
  EXPECT_EQ(events.states.back().at("result").at("steps"), 30);
  ASSERT_FALSE(events.previews_read.empty());
  for (const auto& p : events.previews_read) EXPECT_EQ(p, "64x64");
}

TEST(Jobs, AnyClientCanWatchAndCancelAnyJob) {
  DaemonProcess daemon;
  auto owner = daemon.client("owner");
  auto other = daemon.client("other");
  const std::string id = owner->call(protocol::method::kJobsSimulate, {{"steps", 100000}, {"step_ms", 2}}).at("id");
  JobEvents events;
  events.attach(*owner, id);
  owner->call(protocol::method::kJobsSubscribe, Json::object());  // every job
  ASSERT_TRUE(eventually([&] { return other->call(protocol::method::kJobsGet, {{"id", id}}).at("state") == "running"; }));
  other->call(protocol::method::kJobsCancel, {{"id", id}});
  EXPECT_TRUE(eventually([&] { return events.last_state() == "cancelled"; }));
  const Json listed = other->call(protocol::method::kJobsList, {{"state", "cancelled"}});
  ASSERT_EQ(listed.at("jobs").size(), 1u);
  EXPECT_EQ(listed.at("jobs")[0].at("client"), "owner");
}

TEST(Jobs, RecordsSurviveAGracefulStopAndTheJobContinues) {
  std::unique_ptr<DaemonProcess> first = std::make_unique<DaemonProcess>();
  first->keep_folders();
  std::string done_id, long_id;
  {
    auto client = first->client();
    done_id = client->call(protocol::method::kJobsSimulate, {{"steps", 2}, {"step_ms", 1}}).at("id");
    ASSERT_TRUE(eventually([&] { return client->call(protocol::method::kJobsGet, {{"id", done_id}}).at("state") == "done"; }));
    long_id = client->call(protocol::method::kJobsSimulate, {{"steps", 150}, {"step_ms", 10}}).at("id");
    ASSERT_TRUE(eventually([&] { return client->call(protocol::method::kJobsGet, {{"id", long_id}}).at("progress").at("step") >= 20; }));
  }
  ASSERT_EQ(first->terminate(), 0);
  DaemonProcess second(*first, {});
  auto client = second.client();
  EXPECT_EQ(client->call(protocol::method::kJobsGet, {{"id", done_id}}).at("state"), "done");
  ASSERT_TRUE(eventually([&] { return client->call(protocol::method::kJobsGet, {{"id", long_id}}).at("state") == "done"; }));
  const Json record = client->call(protocol::method::kJobsGet, {{"id", long_id}});
  EXPECT_GE(record.at("result").at("resumed_from").get<int>(), 20);
  EXPECT_EQ(record.at("attempts"), 2);
}

TEST(Jobs, AJobCutOffByKillNineResumesAfterRestart) {
  std::unique_ptr<DaemonProcess> first = std::make_unique<DaemonProcess>();
  first->keep_folders();
  std::string id;
  int64_t reached = 0;
  {
    auto client = first->client();
    id = client->call(protocol::method::kJobsSimulate, {{"steps", 200}, {"step_ms", 10}}).at("id");
    ASSERT_TRUE(eventually([&] {
      reached = client->call(protocol::method::kJobsGet, {{"id", id}}).at("progress").at("step");
      return reached >= 60;
    }));
  }
  first->kill9();
  DaemonProcess second(*first, {});
  auto client = second.client();
  ASSERT_TRUE(eventually([&] { return client->call(protocol::method::kJobsGet, {{"id", id}}).at("state") == "done"; }));
  const Json record = client->call(protocol::method::kJobsGet, {{"id", id}});
  const int resumed_from = record.at("result").at("resumed_from");
  EXPECT_GT(resumed_from, 0) << "saved state was used";
  EXPECT_GE(resumed_from, reached - 40) << "at most the steps since the last save (~200 ms) are lost";
}
