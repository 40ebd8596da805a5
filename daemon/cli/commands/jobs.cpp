// kiln jobs list|show|watch|cancel|pause|resume|simulate
#include <iomanip>
#include <iostream>

#include "cli/commands/commands.h"
#include "cli/commands/job_watch.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

namespace {

void print_table(const Json& jobs) {
  if (jobs.empty()) {
    std::cout << "no jobs\n";
    return;
  }
  std::cout << std::left << std::setw(24) << "ID" << std::setw(10) << "TYPE" << std::setw(11) << "STATE" << std::setw(7)
            << "DONE" << std::setw(25) << "CREATED" << "MESSAGE\n";
  for (const Json& j : jobs) {
    const Json& p = j.at("progress");
    char pct[16];
    std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(p.value("fraction", 0.0) * 100));
    std::string message = p.value("message", "");
    if (j.at("error").is_object()) message = j.at("error").value("message", message);
    if (message.size() > 60) message = message.substr(0, 57) + "...";
    std::cout << std::left << std::setw(24) << j.value("id", "") << std::setw(10) << j.value("type", "") << std::setw(11)
              << j.value("state", "") << std::setw(7) << pct << std::setw(25) << j.value("created_at", "") << message << "\n";
  }
}

void print_job(const Json& j) {
  std::cout << "job " << j.value("id", "") << " (" << j.value("type", "") << ", " << j.value("priority", "") << ")\n"
            << "  state:    " << j.value("state", "") << "\n"
            << "  progress: " << progress_line(j.at("progress")) << "\n"
            << "  created:  " << j.value("created_at", "") << " by " << j.value("client", "") << "\n";
  if (!j.value("started_at", "").empty()) std::cout << "  started:  " << j.value("started_at", "") << "\n";
  if (!j.value("finished_at", "").empty()) std::cout << "  finished: " << j.value("finished_at", "") << "\n";
  if (j.at("error").is_object()) std::cout << "  error:    " << j.at("error").value("message", "") << "\n";
  if (!j.at("result").is_null()) std::cout << "  result:   " << j.at("result").dump() << "\n";
}

// A subcommand that takes one job id and calls `method` with it.
void add_id_command(CLI::App& jobs, const GlobalOptions& global, CommandResult& result, const char* name,
                    const char* help, const char* method) {
  auto* cmd = jobs.add_subcommand(name, help);
  auto id = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("id", *id, "job id")->required();
  cmd->add_flag("--json", *json, "print the job record as JSON");
  cmd->callback([&global, &result, id, json, method] {
    auto client = connect(global);
    const Json job = client->call(method, {{"id", *id}});
    if (*json) print_json(job);
    else print_job(job);
    result.exit_code = kExitOk;
  });
}

}  // namespace

void add_jobs_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto* jobs = app.add_subcommand("jobs", "list, watch and control the daemon's jobs");
  jobs->require_subcommand(1);

  auto* list = jobs->add_subcommand("list", "list jobs, newest first");
  auto list_json = std::make_shared<bool>(false);
  auto state = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(50);
  list->add_flag("--json", *list_json, "print the records as JSON");
  list->add_option("--state", *state, "only jobs in this state")
      ->check(CLI::IsMember({"queued", "running", "paused", "done", "failed", "cancelled"}));
  list->add_option("--limit", *limit, "at most this many")->check(CLI::PositiveNumber)->capture_default_str();
  list->callback([&global, &result, list_json, state, limit] {
    auto client = connect(global);
    Json params{{"limit", *limit}};
    if (!state->empty()) params["state"] = *state;
    const Json answer = client->call(protocol::method::kJobsList, params);
    if (*list_json) print_json(answer);
    else print_table(answer.at("jobs"));
    result.exit_code = kExitOk;
  });

  add_id_command(*jobs, global, result, "show", "show one job", protocol::method::kJobsGet);
  add_id_command(*jobs, global, result, "cancel", "cancel a job", protocol::method::kJobsCancel);
  add_id_command(*jobs, global, result, "pause", "pause a long job between steps", protocol::method::kJobsPause);
  add_id_command(*jobs, global, result, "resume", "resume a paused job, or continue an interrupted one",
                 protocol::method::kJobsResume);

  auto* watch = jobs->add_subcommand("watch", "follow a job with a progress bar until it ends");
  auto watch_id = std::make_shared<std::string>();
  auto watch_json = std::make_shared<bool>(false);
  watch->add_option("id", *watch_id, "job id")->required();
  watch->add_flag("--json", *watch_json, "print each event as a JSON line");
  watch->callback([&global, &result, watch_id, watch_json] {
    auto client = connect(global);
    result.exit_code = watch_job(*client, *watch_id, *watch_json);
  });

  auto* simulate = jobs->add_subcommand("simulate", "queue the built-in simulated job (a demo and a test of the queue)");
  auto steps = std::make_shared<int>(100);
  auto step_ms = std::make_shared<int>(50);
  auto priority = std::make_shared<std::string>("long");
  auto no_wait = std::make_shared<bool>(false);
  simulate->add_option("--steps", *steps, "number of steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  simulate->add_option("--step-ms", *step_ms, "milliseconds per step")->check(CLI::Range(0, 60000))->capture_default_str();
  simulate->add_option("--priority", *priority, "interactive or long")
      ->check(CLI::IsMember({"interactive", "long"}))
      ->capture_default_str();
  simulate->add_flag("--no-wait", *no_wait, "print the job id and return at once");
  simulate->callback([&global, &result, steps, step_ms, priority, no_wait] {
    auto client = connect(global);
    const Json job = client->call(protocol::method::kJobsSimulate,
                                  {{"steps", *steps}, {"step_ms", *step_ms}, {"priority", *priority}});
    const std::string id = job.at("id").get<std::string>();
    if (*no_wait) {
      std::cout << id << "\n";
      result.exit_code = kExitOk;
      return;
    }
    result.exit_code = watch_job(*client, id, false);
  });
}

}  // namespace kiln::cli
