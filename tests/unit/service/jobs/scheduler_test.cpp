#include "service/jobs/scheduler.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "service/errors.h"
#include "service/jobs/simulate_job.h"

using namespace kiln::service;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("kiln-scheduler-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Waits until `pred` holds, up to a generous limit; false on timeout.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

// A job type that logs each of its steps, so tests can see the order of work on the device.
struct StepLog {
  std::mutex mutex;
  std::vector<std::string> entries;
  void add(std::string e) {
    std::lock_guard lock(mutex);
    entries.push_back(std::move(e));
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mutex);
    return entries;
  }
};

JobType logging_type(const std::string& name, JobPriority priority, StepLog& log) {
  JobType t;
  t.name = name;
  t.priority = priority;
  t.run = [&log](JobContext& ctx) -> Json {
    const int steps = ctx.params().value("steps", 3);
    const std::string tag = ctx.params().value("tag", std::string("?"));
    for (int i = 0; i < steps; ++i) {
      ctx.checkpoint();
      std::this_thread::sleep_for(std::chrono::milliseconds(ctx.params().value("step_ms", 5)));
      log.add(tag + std::to_string(i));
      ctx.report(i + 1, steps, "step");
    }
    return {{"tag", tag}};
  };
  return t;
}

struct Harness {
  fs::path dir;
  std::mutex events_mutex;
  std::vector<std::pair<std::string, std::string>> state_events;  // (job id, state)
  std::unique_ptr<JobStore> store;
  ImageLeases leases;
  std::unique_ptr<Scheduler> scheduler;  // last: stopped before what its observer touches is destroyed

  bool remove_dir_at_end = true;

  // `reuse` opens the folder a previous Harness of the same name left (to test restarts).
  explicit Harness(const std::string& name, bool reuse = false)
      : dir(reuse ? fs::temp_directory_path() / ("kiln-scheduler-" + name + "-" + std::to_string(::getpid())) : fresh_dir(name)) {
    make();
  }
  ~Harness() {
    scheduler.reset();
    if (remove_dir_at_end) fs::remove_all(dir);
  }
  void make() {
    store = std::make_unique<JobStore>(dir / "jobs");
    scheduler = std::make_unique<Scheduler>(*store, leases);
    scheduler->register_type(make_simulate_job_type());
    scheduler->set_observer([this](const JobRecord& r, Scheduler::Event e, const std::optional<kiln::protocol::ImageRef>&) {
      if (e != Scheduler::Event::State) return;
      std::lock_guard lock(events_mutex);
      state_events.emplace_back(r.id, to_string(r.state));
    });
  }
  JobState state(const std::string& id) { return scheduler->get(id).state; }
};

}  // namespace

TEST(Scheduler, RunsAJobToDoneWithProgressAndResult) {
  Harness h("done");
  h.scheduler->start();
  JobRecord r = h.scheduler->submit("simulate", {{"steps", 5}, {"step_ms", 1}}, "test");
  EXPECT_EQ(r.state, JobState::Queued);
  ASSERT_TRUE(eventually([&] { return h.state(r.id) == JobState::Done; }));
  JobRecord done = h.scheduler->get(r.id);
  EXPECT_EQ(done.progress.step, 5);
  EXPECT_DOUBLE_EQ(done.progress.fraction, 1.0);
  EXPECT_EQ(done.result["steps"], 5);
  EXPECT_FALSE(done.started_at.empty());
  EXPECT_FALSE(done.finished_at.empty());
  EXPECT_EQ(done.attempts, 1);
}

TEST(Scheduler, InteractiveJobsGoBeforeQueuedLongJobs) {
  Harness h("priority");
  StepLog log;
  h.scheduler->register_type(logging_type("long", JobPriority::Long, log));
  h.scheduler->register_type(logging_type("quick", JobPriority::Interactive, log));
  // Queue before starting the worker so the order of submission cannot decide it.
  h.scheduler->submit("long", {{"tag", "L"}, {"steps", 2}}, "t");
  const JobRecord q = h.scheduler->submit("quick", {{"tag", "Q"}, {"steps", 2}}, "t");
  h.scheduler->start();
  ASSERT_TRUE(eventually([&] { return log.snapshot().size() == 4; }));
  EXPECT_EQ(log.snapshot(), (std::vector<std::string>{"Q0", "Q1", "L0", "L1"}));
  EXPECT_EQ(h.state(q.id), JobState::Done);
}

TEST(Scheduler, LongJobYieldsToInteractiveBetweenSteps) {
  Harness h("yield");
  StepLog log;
  h.scheduler->register_type(logging_type("long", JobPriority::Long, log));
  h.scheduler->register_type(logging_type("quick", JobPriority::Interactive, log));
  h.scheduler->start();
  const JobRecord l = h.scheduler->submit("long", {{"tag", "L"}, {"steps", 40}, {"step_ms", 10}}, "t");
  ASSERT_TRUE(eventually([&] { return log.snapshot().size() >= 3; }));
  h.scheduler->submit("quick", {{"tag", "Q"}, {"steps", 2}, {"step_ms", 1}}, "t");
  ASSERT_TRUE(eventually([&] { return h.state(l.id) == JobState::Done; }, 20s));
  const auto entries = log.snapshot();
  const auto q0 = std::find(entries.begin(), entries.end(), "Q0");
  ASSERT_NE(q0, entries.end());
  EXPECT_EQ(*(q0 + 1), "Q1") << "the interactive job runs whole";
  EXPECT_NE(q0 - entries.begin(), 0);
  EXPECT_LT(std::count_if(entries.begin(), q0, [](const std::string& e) { return e[0] == 'L'; }), 40)
      << "the interactive job did not wait for the long one to finish";
  // The long job was shown as paused while it yielded, then running again. (Events are delivered
  // just after the record changes, so wait for the last one.)
  auto long_states = [&] {
    std::lock_guard lock(h.events_mutex);
    std::vector<std::string> states;
    for (auto& [id, st] : h.state_events)
      if (id == l.id) states.push_back(st);
    return states;
  };
  ASSERT_TRUE(eventually([&] { return long_states().back() == "done"; }));
  const auto states = long_states();
  const auto paused = std::find(states.begin(), states.end(), "paused");
  ASSERT_NE(paused, states.end());
  EXPECT_EQ(*(paused + 1), "running");
}

TEST(Scheduler, CancelQueuedAndRunningJobs) {
  Harness h("cancel");
  h.scheduler->start();
  const JobRecord running = h.scheduler->submit("simulate", {{"steps", 100000}, {"step_ms", 5}}, "t");
  const JobRecord queued = h.scheduler->submit("simulate", {{"steps", 10}}, "t");
  ASSERT_TRUE(eventually([&] { return h.state(running.id) == JobState::Running; }));
  EXPECT_EQ(h.scheduler->cancel(queued.id).state, JobState::Cancelled);
  h.scheduler->cancel(running.id);
  ASSERT_TRUE(eventually([&] { return h.state(running.id) == JobState::Cancelled; }, 2s));
  EXPECT_LT(h.scheduler->get(running.id).progress.step, 100000);
  try {
    h.scheduler->cancel(queued.id);
    FAIL() << "cancelling an ended job must be an error";
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.code(), kiln::protocol::ErrorCode::InvalidState);
  }
  EXPECT_THROW(h.scheduler->cancel("no-such-job"), ServiceError);
}

TEST(Scheduler, PauseAndResumeALongJob) {
  Harness h("pause");
  h.scheduler->start();
  const JobRecord r = h.scheduler->submit("simulate", {{"steps", 60}, {"step_ms", 5}}, "t");
  ASSERT_TRUE(eventually([&] { return h.scheduler->get(r.id).progress.step >= 2; }));
  h.scheduler->pause(r.id);
  ASSERT_TRUE(eventually([&] { return h.state(r.id) == JobState::Paused; }));
  const int64_t at = h.scheduler->get(r.id).progress.step;
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(h.scheduler->get(r.id).progress.step, at) << "a paused job makes no progress";
  h.scheduler->resume(r.id);
  ASSERT_TRUE(eventually([&] { return h.state(r.id) == JobState::Done; }));
}

TEST(Scheduler, FailureIsRecordedWithItsMessage) {
  Harness h("fail");
  h.scheduler->start();
  const JobRecord r = h.scheduler->submit("simulate", {{"steps", 10}, {"step_ms", 1}, {"fail_at_step", 4}}, "t");
  ASSERT_TRUE(eventually([&] { return h.state(r.id) == JobState::Failed; }));
  JobRecord failed = h.scheduler->get(r.id);
  ASSERT_TRUE(failed.error);
  EXPECT_NE(failed.error->message.find("step 4"), std::string::npos);
  EXPECT_EQ(failed.progress.step, 3);
}

TEST(Scheduler, InvalidParamsAreRefusedBeforeQueuing) {
  Harness h("invalid");
  EXPECT_THROW(h.scheduler->submit("simulate", {{"steps", 0}}, "t"), ServiceError);
  EXPECT_THROW(h.scheduler->submit("simulate", {{"steps", 5}, {"priority", "urgent"}}, "t"), ServiceError);
  EXPECT_THROW(h.scheduler->submit("no-such-type", Json::object(), "t"), ServiceError);
  EXPECT_TRUE(h.scheduler->list(std::nullopt, 100).empty());
}

TEST(Scheduler, RecordsSurviveARestartAndInterruptedWorkResumes) {
  std::string done_id, stopped_id, cut_id;
  {
    Harness h("restart");
    h.remove_dir_at_end = false;  // the next daemon life reads it
    h.scheduler->start();
    done_id = h.scheduler->submit("simulate", {{"steps", 3}, {"step_ms", 1}}, "t").id;
    ASSERT_TRUE(eventually([&] { return h.state(done_id) == JobState::Done; }));
    stopped_id = h.scheduler->submit("simulate", {{"steps", 200}, {"step_ms", 5}}, "t").id;
    ASSERT_TRUE(eventually([&] { return h.scheduler->get(stopped_id).progress.step >= 10; }));
    ASSERT_TRUE(h.scheduler->stop(5s));
    const JobRecord stopped = h.scheduler->get(stopped_id);
    EXPECT_EQ(stopped.state, JobState::Paused);
    EXPECT_TRUE(stopped.resume_on_start);
    EXPECT_EQ(stopped.resume_state["step"], stopped.progress.step) << "the job saved exactly how far it got";
  }
  Harness again("restart", /*reuse=*/true);
  again.scheduler->recover();
  EXPECT_EQ(again.state(done_id), JobState::Done) << "finished jobs are listed after a restart";
  EXPECT_EQ(again.state(stopped_id), JobState::Queued);
  again.scheduler->start();
  ASSERT_TRUE(eventually([&] { return again.state(stopped_id) == JobState::Done; }, 10s));
  const JobRecord resumed = again.scheduler->get(stopped_id);
  EXPECT_GE(resumed.result["resumed_from"].get<int>(), 10);
  EXPECT_EQ(resumed.attempts, 2);
}

TEST(Scheduler, ACrashedNonResumableJobIsMarkedFailedOnRecovery) {
  Harness h("crash");
  StepLog log;
  // Write a record as a crashed daemon leaves it: running, never finished.
  JobRecord r;
  r.id = "20260101-000000-dead";
  r.type = "quick";
  r.state = JobState::Running;
  r.created_at = "2026-01-01T00:00:00.000Z";
  h.store->save(r);
  h.scheduler->register_type(logging_type("quick", JobPriority::Interactive, log));
  h.scheduler->recover();
  const JobRecord after = h.scheduler->get(r.id);
  EXPECT_EQ(after.state, JobState::Failed);
  ASSERT_TRUE(after.error);
  EXPECT_NE(after.error->message.find("daemon stopped"), std::string::npos);
}

TEST(Scheduler, ProgressHasRateAndEta) {
  Harness h("eta");
  h.scheduler->start();
  const JobRecord r = h.scheduler->submit("simulate", {{"steps", 400}, {"step_ms", 5}}, "t");
  ASSERT_TRUE(eventually([&] { return h.scheduler->get(r.id).progress.step >= 40; }));
  const JobProgress p = h.scheduler->get(r.id).progress;
  EXPECT_GT(p.steps_per_s, 20);   // 5 ms steps: about 200/s, well above 20 even on a busy machine
  EXPECT_LT(p.steps_per_s, 1000);
  EXPECT_GT(p.eta_s, 0);
  EXPECT_NEAR(p.fraction, double(p.step) / 400.0, 1e-9);
  h.scheduler->cancel(r.id);
}
