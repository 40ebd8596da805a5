#include "service/jobs/dataset_jobs.h"

#include <spdlog/spdlog.h>

#include "service/errors.h"
#include "studio/error.h"
#include "studio/names.h"

namespace kiln::service {
namespace fs = std::filesystem;
using protocol::ErrorCode;

namespace {

// The keys of DatasetSettings' JSON (studio/dataset/settings.cpp) that requests may carry.
constexpr const char* kSettingKeys[] = {"preset",     "trigger",    "repeats",        "epochs", "batch_size",
                                        "crop",       "size",       "resolution",     "background",
                                        "center_subject", "margin", "flip",           "face_enhance"};

studio::Hooks hooks_for(JobContext& ctx) {
  studio::Hooks hooks;
  hooks.progress = [&ctx](int done, int total, const std::string& message) { ctx.report(done, total, message); };
  hooks.cancelled = [&ctx] { return ctx.stop_requested(); };
  return hooks;
}

// The store stops between images when asked and throws studio::Error(Cancelled) saying what was
// kept; the scheduler then needs to know whether the user cancelled or the daemon is stopping.
template <class F>
auto cancellable(JobContext& ctx, F&& work) {
  try {
    return work();
  } catch (const studio::Error& e) {
    if (e.kind() != studio::ErrorKind::Cancelled) throw;
    spdlog::info("job {}: {}", ctx.id(), e.what());
    ctx.checkpoint();  // throws JobCancelled, or JobInterrupted at a shutdown
    throw;
  }
}

Json images_with_ids(const studio::Dataset& d, const std::vector<std::string>& ids) {
  Json out = Json::array();
  for (const std::string& id : ids)
    if (const studio::DatasetImage* img = d.find(id)) out.push_back(*img);
  return out;
}

double fraction_param(const Json& p, const char* method, const char* key, double fallback) {
  const double v = p.value(key, fallback);
  if (!(v >= 0 && v <= 1))
    throw ServiceError(ErrorCode::InvalidParams, std::string(method) + ": '" + key + "' must be between 0 and 1");
  return v;
}

}  // namespace

std::optional<studio::DatasetSettings> dataset_settings_from_params(const Json& params, const studio::DatasetSettings& base) {
  Json settings = Json::object();
  for (const char* key : kSettingKeys)
    if (params.contains(key)) settings[key] = params.at(key);
  if (settings.empty()) return std::nullopt;
  studio::DatasetSettings s = base;
  from_json(settings, s);
  return s;
}

fs::path tagger_folder(const fs::path& taggers_dir, const Json& params) {
  const std::string name = params.value("tagger", std::string("wd14"));
  studio::validate_library_name(name, "tagger folder name");
  return taggers_dir / name;
}

JobType make_dataset_add_images_job_type(studio::DatasetStore& store) {
  JobType type;
  type.name = "datasets.add_images";
  type.priority = JobPriority::Interactive;
  type.resumable = false;
  type.validate = [&store](const Json& p) {
    store.folder(p.at("name").get<std::string>());  // InvalidName / NotFound
    const Json paths = p.value("paths", Json::array());
    for (const Json& path : paths) {
      if (!path.is_string())
        throw ServiceError(ErrorCode::InvalidParams, "datasets.add_images: 'paths' must hold strings, not " + path.dump());
      if (!fs::path(path.get<std::string>()).is_absolute())
        throw ServiceError(ErrorCode::InvalidParams, "datasets.add_images: paths must be absolute: '" +
                                                         studio::printable(path.get<std::string>()) + "'");
    }
    if (paths.empty() && p.value("images", Json::array()).empty())
      throw ServiceError(ErrorCode::InvalidParams, "datasets.add_images: give 'images' (shared-memory images) or 'paths' "
                                                   "(absolute files or folders)");
  };
  type.run = [&store](JobContext& ctx) -> Json {
    const Json& p = ctx.params();
    const std::string name = p.at("name");
    std::vector<studio::ImageInput> inputs;
    if (const auto* copied = std::any_cast<DatasetImportInputs>(&ctx.attachment())) {
      inputs = copied->images;  // cv::Mat copies share the pixels
    } else if (!p.value("images", Json::array()).empty()) {
      throw ServiceError(ErrorCode::JobFailed, "the images of this job were lost (the daemon restarted); add them again");
    }
    std::vector<studio::ImportError> folder_errors;
    for (const Json& path : p.value("paths", Json::array())) {
      const fs::path file = path.get<std::string>();
      std::vector<studio::ImageInput> found = studio::inputs_from_paths({file});
      std::error_code ec;
      if (found.empty() && fs::is_directory(file, ec))
        folder_errors.push_back({file.string(), "no image files (.png .jpg .jpeg .webp .bmp .tif .tiff) in the folder " +
                                                    file.string()});
      for (studio::ImageInput& in : found) inputs.push_back(std::move(in));
    }
    const studio::AddResult added = cancellable(ctx, [&] { return store.add_images(name, inputs, hooks_for(ctx)); });
    const studio::Dataset d = store.get(name);
    Json errors = Json::array();
    const std::vector<studio::ImportError>* lists[] = {&folder_errors, &added.errors};
    for (const auto* list : lists)
      for (const studio::ImportError& e : *list) errors.push_back({{"source", e.source}, {"message", e.message}});
    return {{"dataset", name},
            {"added", added.added},
            {"errors", errors},
            {"images", images_with_ids(d, added.added)},
            {"image_count", d.images.size()},
            {"findings", d.findings},
            {"folder", d.folder.string()}};
  };
  return type;
}

JobType make_dataset_prepare_job_type(studio::DatasetStore& store) {
  JobType type;
  type.name = "datasets.prepare";
  type.priority = JobPriority::Interactive;
  type.resumable = false;
  type.validate = [&store](const Json& p) {
    // folder(), not get(): get() waits while another job works on the dataset. The keys given
    // are checked the same whatever the dataset's current settings are.
    store.folder(p.at("name").get<std::string>());
    if (auto s = dataset_settings_from_params(p, studio::DatasetSettings{})) studio::validate_settings(*s);
  };
  type.run = [&store](JobContext& ctx) -> Json {
    const Json& p = ctx.params();
    const std::string name = p.at("name");
    const auto settings = dataset_settings_from_params(p, store.get(name).settings);
    const studio::Dataset d = cancellable(ctx, [&] { return store.prepare(name, settings, hooks_for(ctx)); });
    return d;
  };
  return type;
}

JobType make_dataset_auto_tag_job_type(studio::DatasetStore& store, fs::path taggers_dir) {
  JobType type;
  type.name = "datasets.auto_tag";
  type.priority = JobPriority::Interactive;
  type.resumable = false;
  type.validate = [&store, taggers_dir](const Json& p) {
    store.folder(p.at("name").get<std::string>());
    fraction_param(p, "datasets.auto_tag", "threshold", 0.35);
    fraction_param(p, "datasets.auto_tag", "character_threshold", 0.85);
    // Said at once rather than by a failed job: what to install where.
    const fs::path folder = tagger_folder(taggers_dir, p);
    std::error_code ec;
    if (!fs::is_regular_file(folder / "model.onnx", ec) || !fs::is_regular_file(folder / "selected_tags.csv", ec))
      throw ServiceError(ErrorCode::NotFound, "no tagger installed in " + folder.string() + ": " +
                                                  studio::tagger_install_hint(folder));
  };
  type.run = [&store, taggers_dir](JobContext& ctx) -> Json {
    const Json& p = ctx.params();
    const std::string name = p.at("name");
    studio::TaggerOptions options;
    options.general_threshold = static_cast<float>(fraction_param(p, "datasets.auto_tag", "threshold", 0.35));
    options.character_threshold = static_cast<float>(fraction_param(p, "datasets.auto_tag", "character_threshold", 0.85));
    const fs::path folder = tagger_folder(taggers_dir, p);
    const bool replace = p.value("replace", false);
    ctx.report(0, 0, "loading the tagger from " + folder.string());
    const studio::AutoTagResult tagged =
        cancellable(ctx, [&] { return store.auto_tag(name, folder, options, replace, hooks_for(ctx)); });
    const studio::Dataset d = store.get(name);
    Json images = Json::array();
    for (const auto& [id, found] : tagged.tags) {
      const studio::DatasetImage* img = d.find(id);
      images.push_back({{"id", id}, {"found", found}, {"caption", img ? img->caption : std::string()}});
    }
    return {{"dataset", name}, {"tagged", tagged.tagged}, {"tagger", folder.string()}, {"images", images}};
  };
  return type;
}

}  // namespace kiln::service
