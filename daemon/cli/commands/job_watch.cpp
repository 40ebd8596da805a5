#include "cli/commands/job_watch.h"

#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>

#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

namespace {
bool finished(const std::string& state) { return state == "done" || state == "failed" || state == "cancelled"; }

std::string final_line(const Json& job) {
  const std::string state = job.value("state", "?");
  std::string line = "job " + job.value("id", "?") + " " + state;
  if (state == "failed" && job.contains("error") && job.at("error").is_object())
    line += ": " + job.at("error").value("message", "");
  return line;
}
}  // namespace

int watch_job(Client& client, const std::string& job_id, bool json_lines, Json* final_record, const JobEventNote& note) {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::pair<std::string, Json>> events;
  bool disconnected = false;
  std::string disconnect_reason;

  const int token = client.add_notification_handler([&](const std::string& method, const Json& params) {
    if (!params.contains("job") || params.at("job").value("id", "") != job_id) return;
    std::lock_guard lock(mutex);
    events.emplace_back(method, params);
    changed.notify_one();
  });
  client.set_disconnect_handler([&](const std::string& reason) {
    std::lock_guard lock(mutex);
    disconnected = true;
    disconnect_reason = reason;
    changed.notify_one();
  });

  const Json subscribed = client.call(protocol::method::kJobsSubscribe, {{"id", job_id}});
  Json job = subscribed.at("job");
  ProgressPrinter printer;
  auto show = [&](const std::string& method, const Json& params) {
    if (json_lines) {
      std::cout << Json{{"event", method}, {"job", params.at("job")}, {"preview", params.value("preview", Json())}}.dump()
                << "\n" << std::flush;
    } else if (!finished(params.at("job").value("state", ""))) {  // the end gets its own line
      if (note)
        if (const std::string line = note(params.at("job")); !line.empty()) printer.note(line);
      printer.update(progress_line(params.at("job").at("progress")), method == protocol::notification::kJobState);
    }
  };

  show(protocol::notification::kJobState, {{"job", job}});
  if (!finished(job.value("state", ""))) {
    std::unique_lock lock(mutex);
    while (true) {
      changed.wait(lock, [&] { return !events.empty() || disconnected; });
      if (!events.empty()) {
        auto [method, params] = std::move(events.front());
        events.pop_front();
        lock.unlock();
        show(method, params);
        job = params.at("job");
        lock.lock();
        if (finished(job.value("state", ""))) break;
        continue;
      }
      if (disconnected) {
        lock.unlock();
        client.remove_notification_handler(token);
        if (!json_lines) printer.finish("");
        print_error("lost the daemon while watching job " + job_id + " (" + disconnect_reason +
                    "); `kiln jobs show " + job_id + "` tells what happened once it is back");
        return kExitError;
      }
    }
  }
  client.remove_notification_handler(token);
  client.set_disconnect_handler(nullptr);
  if (!json_lines) printer.finish(final_line(job));
  if (final_record) *final_record = job;
  return job.value("state", "") == "done" ? kExitOk : kExitError;
}

}  // namespace kiln::cli
