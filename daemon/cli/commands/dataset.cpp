// kiln dataset create|add|list|show|check|tags|caption|tag|prepare|remove-images|rm
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/commands/commands.h"
#include "cli/commands/job_watch.h"
#include "cli/commands/transfers.h"
#include "cli/output.h"
#include "protocol/methods.h"

namespace kiln::cli {

namespace {
namespace fs = std::filesystem;


// Runs a job to its end: a progress bar for people; for --json, quietly (stdout is the JSON).
Json run_job(Client& client, const Json& queued, bool json) {
  const std::string id = queued.at("id");
  Json record;
  if (!json) {
    watch_job(client, id, false, &record);
    return record;
  }
  for (;;) {
    record = client.call(protocol::method::kJobsGet, {{"id", id}});
    const std::string state = record.value("state", "");
    if (state == "done" || state == "failed" || state == "cancelled") return record;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

[[noreturn]] void job_failed(const Json& record) {
  std::string message = "job " + record.value("id", "?") + " " + record.value("state", "?");
  if (record.contains("error") && record.at("error").is_object()) message += ": " + record.at("error").value("message", "");
  throw std::runtime_error(message);
}

// Each finding: its reason (naming the image and the numbers), then what to do about it.
void print_findings(const Json& findings, const std::string& indent) {
  for (const Json& f : findings) {
    std::cout << indent << "! " << f.value("code", "") << ": " << f.value("message", "") << "\n";
    const std::string action = f.value("action", "");
    if (!action.empty()) std::cout << indent << "  -> " << action << "\n";
  }
}

// One image as `check` and the import show it: source, stored file, caption, findings.
void print_image(const Json& img) {
  std::cout << "  " << img.value("id", "") << "  " << img.value("source_name", "") << "  ->  " << img.value("stored_file", "")
            << "\n";
  for (const Json& extra : img.value("extra_files", Json::array())) std::cout << "        + " << extra.get<std::string>() << "\n";
  std::cout << "        caption: " << (img.value("caption", "").empty() ? "(none)" : img.value("caption", "")) << "\n";
  print_findings(img.value("findings", Json::array()), "        ");
}

void print_dataset_findings(const Json& findings) {
  if (findings.empty()) return;
  std::cout << "the dataset as a whole:\n";
  print_findings(findings, "  ");
}

// `kiln dataset check`: the dataset's findings first, then each image that has some (the others
// are only counted), each finding with what to do. Returns the number of findings.
std::size_t print_check(const Json& d) {
  const Json& images = d.at("images");
  std::size_t findings = d.at("findings").size(), flagged = 0;
  for (const Json& img : images)
    if (!img.at("findings").empty()) findings += img.at("findings").size(), ++flagged;
  std::cout << "dataset '" << d.value("name", "") << "': " << images.size() << " image(s), " << findings << " finding(s)\n";
  if (!d.at("findings").empty()) {
    std::cout << "  the dataset as a whole:\n";
    print_findings(d.at("findings"), "    ");
  }
  for (const Json& img : images) {
    if (img.at("findings").empty()) continue;
    std::cout << "  " << img.value("id", "") << "  " << img.value("source_name", "") << "  (" << img.value("width", 0) << "x"
              << img.value("height", 0) << ", trained as " << img.value("stored_file", "") << ")\n";
    print_findings(img.at("findings"), "    ");
  }
  if (!images.empty())
    std::cout << "  " << images.size() - flagged << " of " << images.size() << " image(s) have no findings\n";
  return findings;
}

// Imports `paths` into `name` and prints what happened. Returns the exit code: 1 when some
// input could not be imported (the others were).
int import_paths(Client& client, const std::string& name, const std::vector<std::string>& paths, bool json, Json& out) {
  const Json abs = image_paths_for_daemon(client, paths);  // uploaded when the daemon is remote
  const Json queued = client.call(protocol::method::kDatasetsAddImages, {{"name", name}, {"paths", abs}});
  const Json record = run_job(client, queued, json);
  if (record.value("state", "") != "done") {
    if (json) {
      out["job"] = record;
      return kExitError;
    }
    job_failed(record);
  }
  const Json& r = record.at("result");
  if (json) {
    out["import"] = r;
  } else {
    for (const Json& img : r.at("images")) print_image(img);
    for (const Json& e : r.at("errors"))
      std::cout << "  x " << e.value("source", "") << ": not imported: " << e.value("message", "") << "\n";
    std::cout << "added " << r.at("added").size() << " image(s) to '" << name << "' (" << r.value("image_count", 0)
              << " in all); " << r.at("errors").size() << " could not be imported\n";
    print_dataset_findings(r.value("findings", Json::array()));
    std::cout << "kohya train_data_dir: " << r.value("folder", "") << "\n";
  }
  return r.at("errors").empty() ? kExitOk : kExitError;
}

// The settings options of create and prepare.
struct SettingsOptions {
  std::string preset, trigger, crop, background, size;
  int resolution = 512, repeats = 10;
  bool flip = false, no_flip = false, face_crops = false, no_face_crops = false, centre = false, no_centre = false;
  CLI::Option *preset_opt{}, *trigger_opt{}, *crop_opt{}, *background_opt{}, *size_opt{}, *resolution_opt{}, *repeats_opt{};

  void add(CLI::App* cmd) {
    preset_opt = cmd->add_option("--preset", preset, "product, character, anime, style or custom: sets the defaults")
                     ->check(CLI::IsMember({"product", "character", "anime", "style", "custom"}));
    trigger_opt = cmd->add_option("--trigger", trigger, "the word the LoRA learns, first in every caption (default: NAME)");
    crop_opt = cmd->add_option("--crop", crop, "center, focus (the subject) or face")->check(CLI::IsMember({"center", "focus", "face"}));
    size_opt = cmd->add_option("--size", size, "square or bucket (keep the aspect ratio)")->check(CLI::IsMember({"square", "bucket"}));
    resolution_opt = cmd->add_option("--resolution", resolution, "training side in pixels, a multiple of 64 (512 for SD 1.x)")
                         ->check(CLI::Range(64, 2048));
    background_opt = cmd->add_option("--background", background, "what transparent pixels become")
                         ->check(CLI::IsMember({"white", "grey", "gray"}));
    repeats_opt = cmd->add_option("--repeats", repeats, "kohya repeats per epoch")->check(CLI::Range(1, 1000));
    cmd->add_flag("--flip", flip, "add a mirrored copy of every image");
    cmd->add_flag("--no-flip", no_flip, "no mirrored copies (style presets add them)");
    cmd->add_flag("--center-subject", centre, "frame each picture around its subject, centred with a margin (product preset)");
    cmd->add_flag("--no-center-subject", no_centre,
                  "keep each photo's own framing, e.g. product photos in scenes (the crop mode still applies)");
    cmd->add_flag("--face-crops", face_crops, "add a face-only crop of every image with a face");
    cmd->add_flag("--no-face-crops", no_face_crops, "no face-only crops (the character preset adds them)");
  }

  void into(Json& params) const {
    if (preset_opt->count()) params["preset"] = preset;
    if (trigger_opt->count()) params["trigger"] = trigger;
    if (crop_opt->count()) params["crop"] = crop;
    if (size_opt->count()) params["size"] = size;
    if (resolution_opt->count()) params["resolution"] = resolution;
    if (background_opt->count()) params["background"] = background;
    if (repeats_opt->count()) params["repeats"] = repeats;
    if (flip || no_flip) params["flip"] = flip && !no_flip;
    if (face_crops || no_face_crops) params["face_enhance"] = face_crops && !no_face_crops;
    if (centre || no_centre) params["center_subject"] = centre && !no_centre;
  }
};

std::string settings_line(const Json& s) {
  std::ostringstream out;
  out << "preset " << s.value("preset", "") << ", trigger '" << s.value("trigger", "") << "', " << s.value("repeats", 0)
      << " repeats, " << s.value("crop", "") << " crop, " << s.value("size", "") << " " << s.value("resolution", 0)
      << (s.value("center_subject", false) ? ", subject centred" : "") << ", background " << s.value("background", "")
      << (s.value("flip", false) ? ", flipped copies" : "")
      << (s.value("face_enhance", false) ? ", face crops" : "");
  return out.str();
}

}  // namespace

void add_dataset_commands(CLI::App& app, const GlobalOptions& global, CommandResult& result) {
  auto* dataset = app.add_subcommand("dataset", "training datasets: create, add, list, show, check, tags, caption, tag, "
                                                "prepare, remove-images, rm");
  dataset->require_subcommand(1);

  // create
  {
    auto* cmd = dataset->add_subcommand("create", "create a dataset, optionally importing images (kohya folder layout)");
    auto name = std::make_shared<std::string>();
    auto from = std::make_shared<std::vector<std::string>>();
    auto settings = std::make_shared<SettingsOptions>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "dataset name")->required();
    cmd->add_option("--from", *from, "image files or folders of images to import")->expected(1, -1);
    settings->add(cmd);
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, name, from, settings, json] {
      auto client = connect(global);
      Json params{{"name", *name}};
      settings->into(params);
      const Json created = client->call(protocol::method::kDatasetsCreate, params);
      Json out{{"created", created}};
      if (!*json)
        std::cout << "created dataset '" << *name << "' (" << settings_line(created.at("settings")) << ")\n  in "
                  << created.value("folder", "") << "\n";
      result.exit_code = kExitOk;
      if (!from->empty()) result.exit_code = import_paths(*client, *name, *from, *json, out);
      if (*json) {
        out["dataset"] = client->call(protocol::method::kDatasetsGet, {{"name", *name}});
        print_json(out);
      }
    });
  }

  // add
  {
    auto* cmd = dataset->add_subcommand("add", "import image files or folders into a dataset");
    auto name = std::make_shared<std::string>();
    auto files = std::make_shared<std::vector<std::string>>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "dataset name")->required();
    cmd->add_option("files", *files, "image files or folders")->required();
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, name, files, json] {
      auto client = connect(global);
      Json out = Json::object();
      result.exit_code = import_paths(*client, *name, *files, *json, out);
      if (*json) {
        out["dataset"] = client->call(protocol::method::kDatasetsGet, {{"name", *name}});
        print_json(out);
      }
    });
  }

  // list
  {
    auto* cmd = dataset->add_subcommand("list", "list the datasets");
    auto json = std::make_shared<bool>(false);
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, json] {
      auto client = connect(global);
      const Json answer = client->call(protocol::method::kDatasetsList);
      if (*json) {
        print_json(answer);
      } else if (answer.at("datasets").empty()) {
        std::cout << "no datasets yet: `kiln dataset create NAME --from FOLDER` makes one\n";
      } else {
        std::cout << std::left << std::setw(28) << "NAME" << std::setw(11) << "PRESET" << std::setw(20) << "TRIGGER"
                  << std::setw(8) << "IMAGES" << "UPDATED\n";
        for (const Json& d : answer.at("datasets"))
          std::cout << std::left << std::setw(28) << d.value("name", "") << std::setw(11) << d.value("preset", "") << std::setw(20)
                    << d.value("trigger", "") << std::setw(8) << d.value("image_count", 0) << d.value("updated_at", "") << "\n";
      }
      result.exit_code = kExitOk;
    });
  }

  // show
  {
    auto* cmd = dataset->add_subcommand("show", "one dataset: settings, folder, images and captions");
    auto name = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "dataset name")->required();
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, name, json] {
      auto client = connect(global);
      const Json d = client->call(protocol::method::kDatasetsGet, {{"name", *name}});
      if (*json) {
        print_json(d);
      } else {
        std::cout << d.value("name", "") << "\n  folder:   " << d.value("folder", "") << "\n  settings: "
                  << settings_line(d.at("settings")) << "\n  images:   " << d.at("images").size() << " (" << d.value("training_images", 0)
                  << " training files, about " << d.value("estimated_steps", 0) << " steps over "
                  << d.at("settings").value("epochs", 0) << " epochs)\n  keep_tokens: " << d.value("keep_tokens", 0) << "\n";
        for (const Json& img : d.at("images")) {
          std::string codes;
          for (const Json& f : img.at("findings")) codes += (codes.empty() ? "" : ", ") + f.value("code", "");
          std::cout << "  " << img.value("id", "") << "  " << std::left << std::setw(24) << img.value("source_name", "") << " "
                    << img.value("caption", "") << (codes.empty() ? "" : "   [" + codes + "]") << "\n";
        }
        print_dataset_findings(d.at("findings"));
        std::cout << "`kiln dataset check " << *name << "` gives each finding's reason and what to do.\n";
      }
      result.exit_code = kExitOk;
    });
  }

  // check
  {
    auto* cmd = dataset->add_subcommand("check", "quality findings per image and for the dataset, with reasons");
    auto name = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "dataset name")->required();
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, name, json] {
      auto client = connect(global);
      const Json d = client->call(protocol::method::kDatasetsGet, {{"name", *name}});
      std::size_t warnings = d.at("findings").size();
      Json images = Json::array();
      for (const Json& img : d.at("images")) {
        warnings += img.at("findings").size();
        images.push_back({{"id", img.at("id")},
                          {"source_name", img.at("source_name")},
                          {"stored_file", img.at("stored_file")},
                          {"extra_files", img.at("extra_files")},
                          {"caption", img.at("caption")},
                          {"findings", img.at("findings")}});
      }
      if (*json) {
        print_json({{"dataset", d.at("name")},
                    {"folder", d.at("folder")},
                    {"images", images},
                    {"findings", d.at("findings")},
                    {"warnings", warnings},
                    {"training_images", d.at("training_images")},
                    {"estimated_steps", d.at("estimated_steps")}});
      } else {
        print_check(d);
        if (warnings > 0)
          std::cout << "The images stay as they are. To drop some: kiln dataset remove-images " << *name
                    << " ID...; to replace one, drop it and add the better picture.\n";
      }
      result.exit_code = kExitOk;
    });
  }

  // tags
  {
    auto* cmd = dataset->add_subcommand("tags", "batch-edit captions (the trigger stays first) and show tag counts");
    struct Args {
      std::string name;
      std::vector<std::string> add, remove, replace, move_to_end, ids;
      bool dedupe = false, stats = false, json = false;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("name", a->name, "dataset name")->required();
    cmd->add_option("--add", a->add, "append this tag where missing (repeatable)");
    cmd->add_option("--remove", a->remove, "delete this tag (repeatable)");
    cmd->add_option("--replace", a->replace, "OLD=NEW: rename a tag (repeatable)");
    cmd->add_option("--move-to-end", a->move_to_end, "move this tag to the end (repeatable)");
    cmd->add_option("--id", a->ids, "only this image (repeatable; default: every image)");
    cmd->add_flag("--dedupe", a->dedupe, "drop repeated tags");
    cmd->add_flag("--stats", a->stats, "show how many captions hold each tag");
    cmd->add_flag("--json", a->json, "print JSON");
    cmd->callback([&global, &result, a] {
      for (const std::string& r : a->replace)
        if (r.find('=') == std::string::npos) throw CLI::ValidationError("--replace", "must be OLD=NEW, not '" + r + "'");
      auto client = connect(global);
      const bool edit = !a->add.empty() || !a->remove.empty() || !a->replace.empty() || !a->move_to_end.empty() || a->dedupe;
      Json out = Json::object();
      if (edit) {
        Json params{{"name", a->name}};
        if (!a->add.empty()) params["add"] = a->add;
        if (!a->remove.empty()) params["remove"] = a->remove;
        if (!a->replace.empty()) params["replace"] = a->replace;
        if (!a->move_to_end.empty()) params["move_to_end"] = a->move_to_end;
        if (!a->ids.empty()) params["ids"] = a->ids;
        if (a->dedupe) params["dedupe"] = true;
        const Json d = client->call(protocol::method::kDatasetsTags, params);
        Json captions = Json::array();
        for (const Json& img : d.at("images")) captions.push_back({{"id", img.at("id")}, {"caption", img.at("caption")}});
        out["captions"] = captions;
        if (!a->json)
          for (const Json& c : captions) std::cout << "  " << c.value("id", "") << "  " << c.value("caption", "") << "\n";
      }
      if (a->stats || !edit) {
        const Json stats = client->call(protocol::method::kDatasetsTagStats, {{"name", a->name}});
        out["tags"] = stats.at("tags");
        out["images"] = stats.at("images");
        if (!a->json) {
          std::cout << "tags in " << stats.value("images", 0) << " caption(s):\n";
          for (const Json& t : stats.at("tags"))
            std::cout << "  " << std::right << std::setw(5) << t.value("count", 0) << "  " << t.value("tag", "") << "\n";
        }
      }
      if (a->json) print_json(out);
      result.exit_code = kExitOk;
    });
  }

  // caption
  {
    auto* cmd = dataset->add_subcommand("caption", "set one image's caption");
    auto name = std::make_shared<std::string>();
    auto id = std::make_shared<std::string>();
    auto text = std::make_shared<std::string>();
    cmd->add_option("name", *name, "dataset name")->required();
    cmd->add_option("id", *id, "image id (`kiln dataset show NAME` lists them)")->required();
    cmd->add_option("text", *text, "the caption: comma-separated tags")->required();
    cmd->callback([&global, &result, name, id, text] {
      auto client = connect(global);
      const Json img = client->call(protocol::method::kDatasetsSetCaption, {{"name", *name}, {"id", *id}, {"caption", *text}});
      std::cout << img.value("id", "") << "  " << img.value("caption", "") << "\n";
      result.exit_code = kExitOk;
    });
  }

  // tag (auto-tag)
  {
    auto* cmd = dataset->add_subcommand("tag", "auto-tag every image with an installed WD1.4 tagger");
    auto name = std::make_shared<std::string>();
    auto threshold = std::make_shared<double>(0.35);
    auto replace = std::make_shared<bool>(false);
    auto tagger = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "dataset name")->required();
    auto* threshold_opt = cmd->add_option("--threshold", *threshold, "keep tags above this probability")->check(CLI::Range(0.0, 1.0));
    cmd->add_flag("--replace", *replace, "caption = trigger + found tags (default: found tags are appended)");
    cmd->add_option("--tagger", *tagger, "folder under <data dir>/taggers (default wd14)");
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, name, threshold, threshold_opt, replace, tagger, json] {
      auto client = connect(global);
      Json params{{"name", *name}, {"replace", *replace}};
      if (threshold_opt->count()) params["threshold"] = *threshold;
      if (!tagger->empty()) params["tagger"] = *tagger;
      const Json record = run_job(*client, client->call(protocol::method::kDatasetsAutoTag, params), *json);
      if (record.value("state", "") != "done") job_failed(record);
      const Json& r = record.at("result");
      if (*json) {
        print_json(r);
      } else {
        for (const Json& img : r.at("images")) std::cout << "  " << img.value("id", "") << "  " << img.value("caption", "") << "\n";
        std::cout << "tagged " << r.value("tagged", 0) << " image(s) with " << r.value("tagger", "") << "\n";
      }
      result.exit_code = kExitOk;
    });
  }

  // prepare
  {
    auto* cmd = dataset->add_subcommand("prepare", "prepare every image again from its original, with changed settings");
    auto name = std::make_shared<std::string>();
    auto settings = std::make_shared<SettingsOptions>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "dataset name")->required();
    settings->add(cmd);
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, name, settings, json] {
      auto client = connect(global);
      Json params{{"name", *name}};
      settings->into(params);
      const Json record = run_job(*client, client->call(protocol::method::kDatasetsPrepare, params), *json);
      if (record.value("state", "") != "done") job_failed(record);
      const Json& d = record.at("result");
      if (*json) {
        print_json(d);
      } else {
        std::cout << "prepared " << d.at("images").size() << " image(s): " << settings_line(d.at("settings")) << "\n";
        print_dataset_findings(d.at("findings"));
      }
      result.exit_code = kExitOk;
    });
  }

  // remove-images
  {
    auto* cmd = dataset->add_subcommand("remove-images", "drop images (their original, training files and captions)");
    auto name = std::make_shared<std::string>();
    auto ids = std::make_shared<std::vector<std::string>>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("name", *name, "dataset name")->required();
    cmd->add_option("ids", *ids, "image ids (`kiln dataset check NAME` lists the ones with findings)")->required();
    cmd->add_flag("--json", *json, "print JSON");
    cmd->callback([&global, &result, name, ids, json] {
      auto client = connect(global);
      const Json d = client->call(protocol::method::kDatasetsRemoveImages, {{"name", *name}, {"ids", *ids}});
      if (*json) {
        print_json(d);
      } else {
        std::cout << "removed " << ids->size() << " image(s) from '" << *name << "'; " << d.at("images").size() << " left\n";
        print_check(d);
      }
      result.exit_code = kExitOk;
    });
  }

  // rm
  {
    auto* cmd = dataset->add_subcommand("rm", "delete a dataset and all its files");
    auto name = std::make_shared<std::string>();
    cmd->add_option("name", *name, "dataset name")->required();
    cmd->callback([&global, &result, name] {
      auto client = connect(global);
      client->call(protocol::method::kDatasetsRemove, {{"name", *name}});
      std::cout << "removed dataset '" << *name << "' and its files\n";
      result.exit_code = kExitOk;
    });
  }
}

}  // namespace kiln::cli
