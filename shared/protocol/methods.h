#pragma once
// The one place that defines every method and notification of protocol v1: names, parameters
// (with types, whether required, and a line of help) and what they do. The daemon validates
// every request against these specs before a handler runs; the CLI and bindings use the names.
#include <optional>
#include <string_view>
#include <vector>

#include "protocol/jsonrpc.h"

namespace kiln::protocol {

namespace method {
inline constexpr const char* kHello = "hello";
inline constexpr const char* kStatus = "status";
inline constexpr const char* kShutdown = "shutdown";
// The remote daemon: tokens (local socket only) and file transfer (remote connections only).
inline constexpr const char* kRemoteTokensCreate = "remote.tokens.create";
inline constexpr const char* kRemoteTokensList = "remote.tokens.list";
inline constexpr const char* kRemoteTokensRevoke = "remote.tokens.revoke";
inline constexpr const char* kFilesUpload = "files.upload";
inline constexpr const char* kFilesDownload = "files.download";
inline constexpr const char* kJobsList = "jobs.list";
inline constexpr const char* kJobsGet = "jobs.get";
inline constexpr const char* kJobsCancel = "jobs.cancel";
inline constexpr const char* kJobsPause = "jobs.pause";
inline constexpr const char* kJobsResume = "jobs.resume";
inline constexpr const char* kJobsSubscribe = "jobs.subscribe";
inline constexpr const char* kJobsUnsubscribe = "jobs.unsubscribe";
inline constexpr const char* kJobsSimulate = "jobs.simulate";
inline constexpr const char* kImageEcho = "image.echo";
inline constexpr const char* kModelsList = "models.list";
inline constexpr const char* kModelsAdd = "models.add";
inline constexpr const char* kModelsRemove = "models.remove";
inline constexpr const char* kGenerate = "generate";
inline constexpr const char* kBenchGenerate = "bench.generate";
inline constexpr const char* kShot = "shot";
inline constexpr const char* kLorasList = "loras.list";
inline constexpr const char* kLorasGet = "loras.get";
inline constexpr const char* kLorasAdd = "loras.add";
inline constexpr const char* kLorasRemove = "loras.remove";
inline constexpr const char* kLorasUseEpoch = "loras.use_epoch";
inline constexpr const char* kTrain = "train";
inline constexpr const char* kTrainPlan = "train.plan";
inline constexpr const char* kTrainHistory = "train.history";
inline constexpr const char* kLoraGrid = "lora.grid";
inline constexpr const char* kDatasetsCreate = "datasets.create";
inline constexpr const char* kDatasetsList = "datasets.list";
inline constexpr const char* kDatasetsGet = "datasets.get";
inline constexpr const char* kDatasetsRemove = "datasets.remove";
inline constexpr const char* kDatasetsAddImages = "datasets.add_images";
inline constexpr const char* kDatasetsRemoveImages = "datasets.remove_images";
inline constexpr const char* kDatasetsSetCaption = "datasets.set_caption";
inline constexpr const char* kDatasetsTags = "datasets.tags";
inline constexpr const char* kDatasetsTagStats = "datasets.tag_stats";
inline constexpr const char* kDatasetsPrepare = "datasets.prepare";
inline constexpr const char* kDatasetsAutoTag = "datasets.auto_tag";
inline constexpr const char* kDatasetsThumbnails = "datasets.thumbnails";
}  // namespace method

namespace notification {
// {job: JobRecord-like progress fields, preview?: ImageRef}; at most ~20 per second per job.
inline constexpr const char* kJobProgress = "job.progress";
// {job: JobRecord} whenever a job changes state (queued, running, paused, done, failed, cancelled).
inline constexpr const char* kJobState = "job.state";
}  // namespace notification

enum class ParamType { String, Integer, Number, Boolean, Object, Array, Image, Any };

// What a parameter's value is, beyond its type, for the remote daemon's checks.
inline constexpr unsigned kDaemonPath = 1;     // may name a file or folder on the daemon's machine (read)
inline constexpr unsigned kDaemonOutPath = 2;  // names a file the daemon writes on its machine
inline constexpr unsigned kResultImage = 4;    // an image the daemon writes into (a remote client sends no pixels)

struct ParamSpec {
  const char* name;
  ParamType type;
  bool required;
  const char* help;
  unsigned flags = 0;
};

// Who may call a method over a remote (TLS) connection. The local socket allows everything but Remote.
enum class Access {
  Read,    // any token, read-only ones included: reading, generating, watching jobs
  Write,   // a full token: training, adding, changing, deleting, shutting down (the default)
  Local,   // only over the local socket, on the daemon's own machine (token management)
  Remote,  // only over a remote connection (file transfer; local clients pass paths)
};

struct MethodSpec {
  const char* name;
  const char* help;
  std::vector<ParamSpec> params;
  bool before_hello = false;  // only `hello` may come first
  Access access = Access::Write;
};

const std::vector<MethodSpec>& all_methods();
const MethodSpec* find_method(std::string_view name);
const char* param_type_name(ParamType type);
const char* access_name(Access access);

// Checks params against the spec: an object, every required key present, every key known and of
// the right type (integers must be integral, images must be well-formed ImageRefs).
std::optional<RpcError> validate_params(const MethodSpec& spec, const Json& params);

}  // namespace kiln::protocol
