// train and lora.grid: both queue a job on the device worker (the job types check the request
// first, so a bad config is refused here, before anything is queued). train.plan answers what a
// train request would do; train.history what a training job has done so far (for live views).
#include <cstdio>
#include <fstream>
#include <regex>

#include "protocol/methods.h"
#include "service/errors.h"
#include "service/jobs/scheduler.h"
#include "service/server/session.h"

namespace kiln::service {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using protocol::ErrorCode;

namespace {

Json train(Call& call) { return to_json(call.services.scheduler.submit("train", call.params, call.session.client_name())); }

Json grid(Call& call) { return to_json(call.services.scheduler.submit("lora.grid", call.params, call.session.client_name())); }

// Seconds per optimizer step measured by the newest finished training of the same base model at
// the same resolution and batch size; else by another of the same base, scaled by pixels per step.
void estimate_time(const Scheduler& scheduler, Json& plan) {
  const Json size = plan.at("resolution");
  const int64_t batch = plan.at("config").value("train_batch_size", int64_t{1});
  const double pixels = size.at(0).get<double>() * size.at(1).get<double>() * double(batch);
  std::optional<JobRecord> same, similar;
  for (const JobRecord& r : scheduler.list(JobState::Done, 500)) {
    if (r.type != "train" || !r.result.is_object() || r.result.value("seconds_per_step", 0.0) <= 0 ||
        r.result.value("base", "") != plan.at("base").get<std::string>())
      continue;
    if (r.result.value("resolution", Json()) == size && r.result.value("train_batch_size", int64_t{0}) == batch) {
      same = r;
      break;
    }
    if (!similar) similar = r;
  }
  const std::optional<JobRecord>& basis = same ? same : similar;
  if (!basis) {
    plan["seconds_per_step"] = nullptr;
    plan["estimated_seconds"] = nullptr;
    plan["time_basis"] = "no training of " + plan.at("base").get<std::string>() +
                         " has finished on this daemon yet: the time shows once the first steps are done";
    return;
  }
  const Json& r = basis->result;
  const Json rsize = r.value("resolution", Json::array({512, 512}));
  const int64_t rbatch = r.value("train_batch_size", int64_t{1});
  double seconds = r.at("seconds_per_step").get<double>();
  char what[256];
  std::snprintf(what, sizeof what, "%s training of %s at %lldx%lld, batch %lld (job %s, %.2f s a step)",
                same ? "measured by the last" : "scaled by pixels per step from the last", r.value("base", "").c_str(),
                static_cast<long long>(rsize.at(0).get<int64_t>()), static_cast<long long>(rsize.at(1).get<int64_t>()),
                static_cast<long long>(rbatch), basis->id.c_str(), seconds);
  if (!same) seconds *= pixels / (rsize.at(0).get<double>() * rsize.at(1).get<double>() * double(rbatch));
  plan["seconds_per_step"] = seconds;
  plan["estimated_seconds"] = seconds * plan.at("steps").get<double>();
  plan["time_basis"] = std::string(what) + "; training steps only (loading and samples add a little)";
}

Json plan(Call& call) {
  Json p = call.services.scheduler.plan("train", call.params);
  estimate_time(call.services.scheduler, p);
  return p;
}

// loss.csv lines from the job folder ("step,epoch,loss,lr"), from the `from`-th point on. A last
// line still being written (no newline yet) is left for the next call.
Json read_losses(const fs::path& csv, int64_t from, int64_t& count) {
  Json out = Json::array();
  count = 0;
  std::ifstream in(csv, std::ios::binary);
  if (!in) return out;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = text.find('\n');  // the header
  while (pos != std::string::npos) {
    const std::size_t end = text.find('\n', pos + 1);
    if (end == std::string::npos) break;
    const std::string line = text.substr(pos + 1, end - pos - 1);
    pos = end;
    long long step = 0, epoch = 0;
    double loss = 0, lr = 0;
    if (std::sscanf(line.c_str(), "%lld,%lld,%lf,%lf", &step, &epoch, &loss, &lr) != 4) continue;
    if (count++ >= from) out.push_back({{"step", step}, {"epoch", epoch}, {"loss", loss}, {"lr", lr}});
  }
  return out;
}

Json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  Json j = Json::parse(in, nullptr, false);
  return j.is_discarded() ? Json() : j;
}

// A finished run from before jobs kept loss.csv and live.json: what its result and LoRA folder hold.
void from_result(const Json& result, Json& losses, Json& samples, Json& files, int64_t from, int64_t& count) {
  const Json saved = read_json(fs::path(result.value("folder", "")) / "loss.json");
  count = 0;
  if (saved.is_array())
    for (const Json& l : saved)
      if (count++ >= from) losses.push_back(l);
  static const std::regex sample_name(R"(.*_e(\d{6})_s(\d{6})_(\d{2})\.png)");
  for (const Json& s : result.value("samples", Json::array())) {
    std::smatch m;
    const std::string path = s.get<std::string>();
    if (std::regex_match(path, m, sample_name))
      samples.push_back({{"epoch", std::stoi(m[1])}, {"step", std::stoi(m[2])}, {"index", std::stoi(m[3])}, {"path", path}});
  }
  static const std::regex epoch_name(R"(.*-(\d{6})\.safetensors)");
  for (const Json& f : result.value("files", Json::array())) {
    std::smatch m;
    const std::string path = f.get<std::string>();
    if (std::regex_match(path, m, epoch_name)) files.push_back({{"epoch", std::stoi(m[1])}, {"path", path}});
    else if (path == result.value("final", "")) files.push_back({{"epoch", result.value("epochs", 0)}, {"path", path}});
  }
}

Json history(Call& call) {
  const std::string id = call.params.at("id");
  const JobRecord record = call.services.scheduler.get(id);  // NotFound for unknown ids
  if (record.type != "train")
    throw ServiceError(ErrorCode::InvalidParams, "train.history: job " + id + " is a " + record.type + " job, not a training");
  const int64_t from = call.params.value("from", int64_t{0});
  if (from < 0) throw ServiceError(ErrorCode::InvalidParams, "train.history: 'from' must be 0 or more");
  const fs::path dir = call.services.info.data_dir / "jobs" / id;
  int64_t count = 0;
  Json losses = Json::array(), samples = Json::array(), files = Json::array();
  if (fs::exists(dir / "loss.csv")) {
    losses = read_losses(dir / "loss.csv", from, count);
    const Json live = read_json(dir / "live.json");
    if (live.is_object()) {
      samples = live.value("samples", Json::array());
      files = live.value("files", Json::array());
    }
  } else if (record.result.is_object()) {
    from_result(record.result, losses, samples, files, from, count);
  }
  const Json progress = to_json(record.progress);
  Json lora = record.params.value("name", Json());
  if (record.result.is_object() && record.result.contains("lora")) lora = record.result.at("lora");
  return {{"id", id},
          {"state", to_string(record.state)},
          {"lora", lora},
          {"client", record.client},
          {"created_at", record.created_at},
          {"loss", losses},
          {"from", from},
          {"next", std::max(from, count)},
          {"samples", samples},
          {"files", files},
          {"epochs", record.result.is_object() ? record.result.value("epochs", Json()) : progress.at("extra").value("epochs", Json())},
          {"progress", progress},
          {"result", record.result},
          {"error", record.error ? Json(record.error->message) : Json()}};
}

}  // namespace

void register_train_handlers(Dispatcher& d) {
  d.add(protocol::method::kTrain, train);
  d.add(protocol::method::kTrainPlan, plan);
  d.add(protocol::method::kTrainHistory, history);
  d.add(protocol::method::kLoraGrid, grid);
}

}  // namespace kiln::service
