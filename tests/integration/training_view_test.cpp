// What the hosts' training panels use, through a real daemon on the tiny model: gallery thumbnails
// (datasets.thumbnails), the plan before training (train.plan: resolved values, exact steps,
// warnings, the time from earlier runs), the live record of a run (train.history: the loss at every
// step and the samples and files of each epoch, read while it trains and after), and choosing the
// result (loras.use_epoch, seen by generation, the grid and `kiln loras list`).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "daemon_process.h"
#include "protocol/image_ref.h"
#include "protocol/methods.h"
#include "studio/png.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
using protocol::ErrorCode;
namespace fs = std::filesystem;
namespace m = protocol::method;

namespace {

const fs::path kTiny = fs::path(KILN_TEST_FIXTURES_DIR) / "sd15-tiny";

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class TrainingView : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new DaemonProcess({}, "tv");
    auto c = daemon_->client();
    c->call(m::kModelsAdd, {{"path", (kTiny / "model.safetensors").string()}, {"name", "tiny"}});
    // Four 96x80 product pictures on transparency (the last with a soft edge), imported from files.
    const fs::path dir = daemon_->root() / "inputs";
    fs::create_directories(dir);
    Json paths = Json::array();
    for (int i = 0; i < 4; ++i) {
      cv::Mat img(80, 96, CV_8UC4, cv::Scalar(0, 0, 0, 0));
      cv::rectangle(img, {20 + 6 * i, 12}, {60 + 6 * i, 70}, cv::Scalar(30 + 50 * i, 60, 200, 255), cv::FILLED);
      cv::circle(img, {40 + 6 * i, 12}, 8, cv::Scalar(20, 120, 40 * i, 255), cv::FILLED);
      const fs::path file = dir / ("bottle" + std::to_string(i) + ".png");
      cv::imwrite(file.string(), img);
      paths.push_back(file.string());
    }
    c->call(m::kDatasetsCreate, {{"name", "bottles"}, {"preset", "product"}, {"trigger", "tinyprod"}, {"repeats", 2},
                                 {"resolution", 256}});
    const Json added = wait(*c, c->call(m::kDatasetsAddImages, {{"name", "bottles"}, {"paths", paths}}).at("id"));
    ASSERT_EQ(added.at("state"), "done") << added.dump();
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }

  static Json wait(Client& c, const std::string& id, std::chrono::seconds limit = std::chrono::seconds(300)) {
    Json record;
    EXPECT_TRUE(eventually(
        [&] {
          record = c.call(m::kJobsGet, {{"id", id}});
          const std::string s = record.at("state");
          return s == "done" || s == "failed" || s == "cancelled";
        },
        limit))
        << record.dump();
    return record;
  }

  static ErrorCode code_of(const std::function<void()>& call, std::string* message = nullptr) {
    try {
      call();
    } catch (const RpcError& e) {
      if (message) *message = e.what();
      return e.code();
    }
    ADD_FAILURE() << "the call was accepted";
    return ErrorCode::InternalError;
  }

  // A short run on the dataset at the tiny model's size: 4 images x 2 repeats = 8 steps an epoch.
  static Json train_params(const std::string& name, int epochs, std::vector<std::string> extra = {}) {
    std::vector<std::string> set = {"max_train_epochs=" + std::to_string(epochs), "resolution=64", "train_batch_size=1",
                                    "learning_rate=2e-3", "text_encoder_lr=1e-3", "seed=42", "sample_every_n_epochs=1",
                                    "sample_prompts=tinyprod, bottle --w 64 --h 64 --d 7 --s 3",
                                    "min_bucket_reso=64", "max_bucket_reso=128"};
    set.insert(set.end(), extra.begin(), extra.end());
    return {{"base", "tiny"}, {"dataset", "bottles"}, {"name", name}, {"preset", "product"}, {"set", set}};
  }

  static DaemonProcess* daemon_;
};
DaemonProcess* TrainingView::daemon_ = nullptr;

}  // namespace

TEST_F(TrainingView, ThumbnailsArePreviewsOfTheTrainingImagesOrTheOriginalsWithAlpha) {
  auto c = daemon_->client();
  const Json dataset = c->call(m::kDatasetsGet, {{"name", "bottles"}});
  const Json t = c->call(m::kDatasetsThumbnails, {{"name", "bottles"}, {"size", 32}});
  ASSERT_EQ(t.at("images").size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    const Json& e = t.at("images")[i];
    EXPECT_EQ(e.at("id"), dataset.at("images")[i].at("id")) << "in the dataset's order";
    EXPECT_EQ(e.at("source_width"), 256) << "the prepared image is what training sees";
    const ipc::ShmImage img = c->take_image(e.at("image"));  // mapped read-only
    EXPECT_EQ(img.desc().width, 32u);
    EXPECT_EQ(img.desc().height, 32u);
    EXPECT_EQ(img.desc().channels, 3u);
    // The product (blue-ish, from BGR 30+50i,60,200) on the white background, in RGB order.
    const uint8_t* centre = img.row(16) + 3 * 16;
    const uint8_t* corner = img.row(0);
    EXPECT_GT(centre[0], centre[2]) << "RGB order: the product's red channel is its strongest";
    EXPECT_EQ(corner[0], 255) << "the product preset puts transparency on white";
  }
  // Originals keep their size ratio and their alpha; a subset by id.
  const std::string second = dataset.at("images")[1].at("id");
  const Json o = c->call(m::kDatasetsThumbnails, {{"name", "bottles"}, {"ids", {second}}, {"size", 48}, {"source", "original"}});
  ASSERT_EQ(o.at("images").size(), 1u);
  EXPECT_EQ(o.at("images")[0].at("id"), second);
  EXPECT_EQ(o.at("images")[0].at("source_width"), 96);
  const ipc::ShmImage orig = c->take_image(o.at("images")[0].at("image"));
  EXPECT_EQ(orig.desc().width, 48u);
  EXPECT_EQ(orig.desc().height, 40u);
  ASSERT_EQ(orig.desc().channels, 4u);
  EXPECT_EQ(orig.row(0)[3], 0) << "the original's transparent corner";
  EXPECT_EQ(orig.row(20)[4 * 20 + 3], 255) << "and its opaque product";

  std::string message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsThumbnails, {{"name", "bottles"}, {"ids", {"0999"}}}); }, &message),
            ErrorCode::NotFound);
  EXPECT_NE(message.find("0999"), std::string::npos) << message;
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsThumbnails, {{"name", "bottles"}, {"size", 4096}}); }), ErrorCode::InvalidParams);
  EXPECT_EQ(code_of([&] { c->call(m::kDatasetsThumbnails, {{"name", "nope"}}); }), ErrorCode::NotFound);
}

TEST_F(TrainingView, PlanResolvesThePresetAndTheRequestCountsStepsAndWarnsBeforeAnythingIsQueued) {
  auto c = daemon_->client();
  const std::size_t jobs_before = c->call(m::kJobsList).at("jobs").size();
  Json params = train_params("planned", 3, {"network_dim=8"});
  params["config"] = {{"network_alpha", 4}};
  const Json plan = c->call(m::kTrainPlan, params);
  EXPECT_EQ(c->call(m::kJobsList).at("jobs").size(), jobs_before) << "planning queues nothing";
  EXPECT_EQ(plan.at("base"), "tiny");
  EXPECT_EQ(plan.at("images"), 4);
  EXPECT_EQ(plan.at("images_with_repeats"), 8) << "4 images x the dataset's 2 repeats";
  EXPECT_EQ(plan.at("epochs"), 3);
  EXPECT_EQ(plan.at("steps"), 24);
  EXPECT_EQ(plan.at("files"), 3) << "one file per epoch, the last being the final one (the product preset)";
  EXPECT_EQ(plan.at("sample_images"), 3) << "a sample after epochs 1 and 2 and of the final weights";
  EXPECT_EQ(plan.at("resolution"), Json::array({64, 64}));
  const Json& cfg = plan.at("config");
  EXPECT_EQ(cfg.at("network_dim"), 8);
  EXPECT_EQ(cfg.at("network_alpha"), 4.0);
  EXPECT_EQ(cfg.at("optimizer_type"), "AdamW") << "the preset's value";
  EXPECT_EQ(cfg.at("lr_scheduler"), "cosine_with_restarts") << "the preset's value";
  EXPECT_EQ(plan.at("origins").at("network_dim"), "--set");
  EXPECT_EQ(plan.at("origins").at("network_alpha"), "request");
  EXPECT_EQ(plan.at("origins").at("lr_scheduler"), "preset product");
  ASSERT_EQ(plan.at("folders").size(), 1u);
  EXPECT_EQ(plan.at("folders")[0].at("name"), "2_tinyprod");
  // 4 images and 24 steps are far from what the guides call usual: both said, with what to change.
  const std::string warnings = plan.at("warnings").dump();
  EXPECT_NE(warnings.find("1,500"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("images"), std::string::npos) << warnings;
  EXPECT_TRUE(plan.at("estimated_seconds").is_null()) << "nothing has trained on this daemon yet";
  EXPECT_NE(plan.at("time_basis").get<std::string>().find("no training"), std::string::npos);

  // No name: the dataset's. A bad request is refused as train refuses it, every problem at once.
  Json unnamed = train_params("", 1);
  unnamed.erase("name");
  EXPECT_EQ(c->call(m::kTrainPlan, unnamed).at("config").at("output_name"), "bottles");
  std::string message;
  Json bad = train_params("planned", 1, {"netwrk_dim=8", "learning_rate=-1"});
  EXPECT_EQ(code_of([&] { c->call(m::kTrainPlan, bad); }, &message), ErrorCode::InvalidParams);
  EXPECT_NE(message.find("netwrk_dim"), std::string::npos) << message;
  EXPECT_NE(message.find("learning_rate"), std::string::npos) << message;
}

TEST_F(TrainingView, HistoryFollowsTheRunStepByStepThenTheEpochsChoiceIsUsedByGenerationAndTheCli) {
  auto c = daemon_->client();
  const std::string id = c->call(m::kTrain, train_params("view", 2)).at("id");
  // While it trains: the points arrive in order, each call from the last one's `next`.
  Json points = Json::array();
  int64_t next = 0;
  int calls_with_points_while_running = 0;
  std::set<int64_t> sample_epochs_while_running;
  std::string state;
  ASSERT_TRUE(eventually(
      [&] {
        const Json h = c->call(m::kTrainHistory, {{"id", id}, {"from", next}});
        state = h.at("state");
        EXPECT_EQ(h.at("from"), next);
        for (const Json& p : h.at("loss")) points.push_back(p);
        if (state == "running" && !h.at("loss").empty()) ++calls_with_points_while_running;
        if (state == "running")
          for (const Json& s : h.at("samples")) sample_epochs_while_running.insert(s.at("epoch").get<int64_t>());
        next = h.at("next");
        return state == "done" || state == "failed" || state == "cancelled";
      },
      std::chrono::seconds(300)));
  ASSERT_EQ(state, "done");
  EXPECT_GE(calls_with_points_while_running, 2) << "the loss was readable step by step while training";
  ASSERT_EQ(points.size(), 16u) << "one point per step: 2 epochs of 8";
  for (std::size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].at("step"), static_cast<int64_t>(i + 1));
    EXPECT_EQ(points[i].at("epoch"), i < 8 ? 1 : 2);
  }
  // The same losses the LoRA folder keeps.
  std::ifstream saved_in(daemon_->data_dir() / "loras" / "view" / "loss.json");
  const Json saved = Json::parse(saved_in);
  ASSERT_EQ(saved.size(), points.size());
  for (std::size_t i = 0; i < points.size(); ++i)
    EXPECT_NEAR(points[i].at("loss").get<double>(), saved[i].at("loss").get<double>(), 1e-6);

  const Json h = c->call(m::kTrainHistory, {{"id", id}});
  EXPECT_EQ(h.at("lora"), "view");
  EXPECT_EQ(h.at("loss").size(), 16u);
  EXPECT_EQ(h.at("next"), 16);
  EXPECT_EQ(c->call(m::kTrainHistory, {{"id", id}, {"from", 16}}).at("loss").size(), 0u);
  ASSERT_EQ(h.at("samples").size(), 2u);
  EXPECT_EQ(h.at("samples")[0].at("epoch"), 1);
  EXPECT_EQ(h.at("samples")[1].at("epoch"), 2);
  EXPECT_EQ(h.at("samples")[0].at("prompt"), "tinyprod, bottle");
  for (const Json& s : h.at("samples")) EXPECT_TRUE(fs::exists(s.at("path").get<std::string>()));
  ASSERT_EQ(h.at("files").size(), 2u);
  EXPECT_EQ(h.at("files")[0].at("epoch"), 1);
  EXPECT_EQ(h.at("files")[1].at("epoch"), 2);
  EXPECT_EQ(h.at("files")[1].at("path"), (daemon_->data_dir() / "loras" / "view" / "view.safetensors").string());
  EXPECT_TRUE(sample_epochs_while_running.count(1)) << "epoch 1's sample was listed before the run ended";
  EXPECT_GT(h.at("result").at("seconds_per_step").get<double>(), 0.0);

  // A second plan of the same size now estimates the time from this run.
  const Json plan = c->call(m::kTrainPlan, train_params("next", 3));
  ASSERT_TRUE(plan.at("estimated_seconds").is_number()) << plan.dump();
  EXPECT_NEAR(plan.at("estimated_seconds").get<double>(), 24 * h.at("result").at("seconds_per_step").get<double>(), 1e-6);
  EXPECT_NE(plan.at("time_basis").get<std::string>().find(id), std::string::npos) << plan.at("time_basis");

  // "Use this epoch": the final file becomes epoch 1's, the trained final is kept as epoch 2's.
  const fs::path folder = daemon_->data_dir() / "loras" / "view";
  const std::string trained_final = file_bytes(folder / "view.safetensors");
  const Json chosen = c->call(m::kLorasUseEpoch, {{"name", "view"}, {"epoch", 1}});
  EXPECT_EQ(chosen.at("chosen_epoch"), 1);
  EXPECT_EQ(file_bytes(folder / "view.safetensors"), file_bytes(folder / "view-000001.safetensors"));
  EXPECT_EQ(file_bytes(folder / "view-000002.safetensors"), trained_final);
  ASSERT_EQ(chosen.at("epochs").size(), 2u);
  EXPECT_EQ(chosen.at("info").at("metadata").at("ss_epoch"), "1");

  // Generation with <lora:view:1> now gives what epoch 1's own file gives.
  const auto render = [&](const std::string& lora) {
    const Json done = wait(*c, c->call(m::kGenerate, {{"model", "tiny"}, {"prompt", "tinyprod, bottle <lora:" + lora + ":1>"},
                                                      {"width", 64}, {"height", 64}, {"seed", 5}, {"steps", 3},
                                                      {"sampler", "Euler"}, {"save", true}})
                                        .at("id"));
    EXPECT_EQ(done.at("state"), "done") << done.dump();
    return studio::read_png(done.at("result").at("images")[0].at("png").get<std::string>()).pixels;
  };
  EXPECT_EQ(render("view"), render("view-000001"));
  EXPECT_NE(render("view"), render("view-000002"));

  // The CLI lists which epoch the LoRA uses.
  const auto [status, output] = run_command({kiln_cli_path(), "--socket", daemon_->socket().string(), "loras", "list"});
  ASSERT_EQ(status, 0) << output;
  EXPECT_NE(output.find("USES"), std::string::npos) << output;
  const auto line = output.substr(output.find("\nview "));
  EXPECT_NE(line.substr(0, line.find('\n', 1)).find("epoch 1"), std::string::npos) << output;

  // The grid compares the two epoch files (the final one is a copy now).
  const Json grid = wait(*c, c->call(m::kLoraGrid, {{"lora", "view"}, {"prompt", "tinyprod"}, {"strengths", {1.0}}, {"steps", 2}})
                                 .at("id"));
  ASSERT_EQ(grid.at("state"), "done") << grid.dump();
  EXPECT_EQ(grid.at("result").at("columns"), Json::array({"000001", "000002"}));

  // An epoch without a file names those there are; the last epoch undoes the choice.
  std::string message;
  EXPECT_EQ(code_of([&] { c->call(m::kLorasUseEpoch, {{"name", "view"}, {"epoch", 7}}); }, &message), ErrorCode::NotFound);
  EXPECT_NE(message.find("epochs with files: 1, 2"), std::string::npos) << message;
  const auto [use_status, use_output] =
      run_command({kiln_cli_path(), "--socket", daemon_->socket().string(), "loras", "use", "view", "2"});
  ASSERT_EQ(use_status, 0) << use_output;
  EXPECT_NE(use_output.find("uses:     epoch 2"), std::string::npos) << use_output;
  EXPECT_EQ(c->call(m::kLorasGet, {{"name", "view"}}).at("chosen_epoch"), 2);
  EXPECT_EQ(file_bytes(folder / "view.safetensors"), trained_final);

  // History of a job that is not a training.
  const std::string sim = c->call(m::kJobsSimulate, {{"steps", 1}}).at("id");
  EXPECT_EQ(code_of([&] { c->call(m::kTrainHistory, {{"id", sim}}); }), ErrorCode::InvalidParams);
}

TEST_F(TrainingView, AnEpochCannotBeChosenWhileItsLoraTrainsAndPauseKeepsTheHistory) {
  auto c = daemon_->client();
  // 4 epochs of 8 steps: long enough to pause it before it ends.
  const std::string id = c->call(m::kTrain, train_params("busy", 4, {"sample_every_n_epochs=none"})).at("id");
  ASSERT_TRUE(eventually([&] { return c->call(m::kTrainHistory, {{"id", id}}).at("loss").size() >= 2; },
                         std::chrono::seconds(120)));
  c->call(m::kJobsPause, {{"id", id}});
  ASSERT_TRUE(eventually([&] { return c->call(m::kJobsGet, {{"id", id}}).at("state") == "paused"; }, std::chrono::seconds(60)));
  const Json paused = c->call(m::kTrainHistory, {{"id", id}});
  EXPECT_EQ(paused.at("state"), "paused");
  const std::size_t seen = paused.at("loss").size();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(c->call(m::kTrainHistory, {{"id", id}}).at("loss").size(), seen) << "no steps while paused";
  std::string message;
  EXPECT_EQ(code_of([&] { c->call(m::kLorasUseEpoch, {{"name", "busy"}, {"epoch", 1}}); }, &message), ErrorCode::InvalidState);
  EXPECT_NE(message.find("still being trained"), std::string::npos) << message;
  c->call(m::kJobsResume, {{"id", id}});
  const Json done = wait(*c, id);
  ASSERT_EQ(done.at("state"), "done") << done.dump();
  EXPECT_EQ(c->call(m::kTrainHistory, {{"id", id}}).at("loss").size(), 32u);
}

TEST_F(TrainingView, UseEpochNeverLosesAFinalFileOfUnknownEpoch) {
  auto c = daemon_->client();
  // An imported LoRA: one final file, no epoch files, no ss_epoch in its metadata.
  c->call(m::kLorasAdd, {{"path", (kTiny / "lora_rank4.safetensors").string()}, {"name", "imported"}});
  std::string message;
  EXPECT_EQ(code_of([&] { c->call(m::kLorasUseEpoch, {{"name", "imported"}, {"epoch", 1}}); }, &message), ErrorCode::NotFound);
  EXPECT_NE(message.find("it has no epoch files"), std::string::npos) << message;
  // An epoch file beside it: choosing it would overwrite a final file nothing can keep under its epoch.
  const fs::path folder = daemon_->data_dir() / "loras" / "imported";
  fs::copy_file(kTiny / "lora_locon.safetensors", folder / "imported-000001.safetensors");
  const std::string final_before = file_bytes(folder / "imported.safetensors");
  EXPECT_EQ(code_of([&] { c->call(m::kLorasUseEpoch, {{"name", "imported"}, {"epoch", 1}}); }, &message),
            ErrorCode::InvalidParams);
  EXPECT_NE(message.find("does not say which epoch"), std::string::npos) << message;
  EXPECT_EQ(file_bytes(folder / "imported.safetensors"), final_before) << "the final file is untouched";
  EXPECT_FALSE(fs::exists(folder / "chosen.json"));
}
