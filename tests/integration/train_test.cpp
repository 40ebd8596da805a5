// LoRA training through a real daemon on the tiny reference model: every output of a run, the
// kohya metadata, falling loss, resume after kill -9 with identical weights, the trained LoRA in
// generation, the validation grid, and configs refused before any work.
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "daemon_process.h"
#include "protocol/methods.h"
#include "studio/infotext.h"
#include "studio/png.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
using protocol::ErrorCode;
namespace fs = std::filesystem;

namespace {

const fs::path kTiny = fs::path(KILN_TEST_FIXTURES_DIR) / "sd15-tiny";

// A kohya folder: `count` 64×64 pictures of a red bottle-like shape, each a little different,
// with captions "tinyprod, bottle, ...".
fs::path make_dataset(const fs::path& root, int count, const std::string& folder = "5_tinyprod") {
  const fs::path dir = root / folder;
  fs::create_directories(dir);
  for (int i = 0; i < count; ++i) {
    cv::Mat img(64, 64, CV_8UC3, cv::Scalar(245, 245, 245));
    cv::rectangle(img, {22 + i, 18}, {42 + i, 56}, cv::Scalar(30, 30, 200), cv::FILLED);
    cv::circle(img, {32 + i, 14}, 6, cv::Scalar(20, 20, 120), cv::FILLED);
    const std::string stem = "img" + std::to_string(i);
    cv::imwrite((dir / (stem + ".png")).string(), img);
    std::ofstream(dir / (stem + ".txt")) << "tinyprod, bottle, " << (i % 2 ? "white background" : "studio light");
  }
  return root;
}

struct Safetensors {
  Json header;
  std::string data;  // the data section, byte for byte
};

Safetensors read_safetensors(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  Safetensors s;
  s.header = Json::parse(header);
  s.data.assign(std::istreambuf_iterator<char>(in), {});
  return s;
}

class Train : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new DaemonProcess({}, "train");
    daemon_->keep_folders();
    daemon_->client()->call(protocol::method::kModelsAdd, {{"path", (kTiny / "model.safetensors").string()}, {"name", "tiny"}});
    data_ = new fs::path(make_dataset(daemon_->root() / "data", 4));
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete data_;
  }

  static Json wait_for_end(Client& client, const std::string& id, std::chrono::seconds limit = std::chrono::seconds(300)) {
    Json record;
    EXPECT_TRUE(eventually(
        [&] {
          record = client.call(protocol::method::kJobsGet, {{"id", id}});
          const std::string s = record.at("state");
          return s == "done" || s == "failed" || s == "cancelled";
        },
        limit));
    return record;
  }

  // A short run of the product preset at the tiny model's size.
  static Json train_params(const std::string& name, int epochs, std::vector<std::string> extra = {}) {
    std::vector<std::string> set = {"max_train_epochs=" + std::to_string(epochs), "resolution=64", "train_batch_size=1",
                                    "learning_rate=2e-3", "text_encoder_lr=1e-3", "seed=42", "sample_every_n_epochs=1",
                                    "sample_prompts=tinyprod, bottle --d 7 --s 6",  // no --w/--h: the training resolution
                                    "min_bucket_reso=64", "max_bucket_reso=128"};
    set.insert(set.end(), extra.begin(), extra.end());
    return {{"base", "tiny"}, {"data", data_->string()}, {"name", name}, {"preset", "product"}, {"set", set}};
  }

  static DaemonProcess* daemon_;
  static fs::path* data_;
};
DaemonProcess* Train::daemon_ = nullptr;
fs::path* Train::data_ = nullptr;

double mean_loss(const Json& losses, int epoch) {
  double sum = 0;
  int n = 0;
  for (const Json& l : losses)
    if (l.at("epoch") == epoch) sum += l.at("loss").get<double>(), ++n;
  return n ? sum / n : 0;
}

}  // namespace

TEST_F(Train, TwoEpochsWriteEveryOutputWithKohyaMetadataAndTheLossFalls) {
  auto c = daemon_->client();
  const Json job = c->call(protocol::method::kTrain, train_params("prod", 2));
  const Json record = wait_for_end(*c, job.at("id"));
  ASSERT_EQ(record.at("state"), "done") << record.dump(2);
  const Json& r = record.at("result");
  const fs::path folder = r.at("folder").get<std::string>();
  EXPECT_EQ(folder, daemon_->data_dir() / "loras" / "prod");
  // kohya's step count: 4 images × 5 repeats / batch 1 = 20 steps per epoch.
  EXPECT_EQ(r.at("steps"), 40);
  EXPECT_EQ(r.at("images_with_repeats"), 20);
  for (const char* f : {"prod-000001.safetensors", "prod.safetensors", "loss.csv", "loss.json", "loss.png", "config.json",
                        "config.toml"})
    EXPECT_TRUE(fs::exists(folder / f)) << f;
  EXPECT_FALSE(fs::exists(folder / "prod-000002.safetensors")) << "the last epoch is the final file, as kohya names it";
  int samples = 0;
  for (const auto& e : fs::directory_iterator(folder / "samples")) {
    if (e.path().extension() != ".png") continue;
    ++samples;
    const cv::Mat sample = cv::imread(e.path().string());
    EXPECT_EQ(sample.cols, 64) << "a prompt without --w/--h samples at the training resolution: " << e.path();
    EXPECT_EQ(sample.rows, 64) << e.path();
  }
  EXPECT_EQ(samples, 2) << "one sample after epoch 1 and one of the final weights";

  const Safetensors epoch1 = read_safetensors(folder / "prod-000001.safetensors");
  const Json& m = epoch1.header.at("__metadata__");
  EXPECT_EQ(m.at("ss_network_module"), "networks.lora");
  EXPECT_EQ(m.at("ss_output_name"), "prod");
  EXPECT_EQ(m.at("ss_epoch"), "1");
  EXPECT_EQ(m.at("ss_steps"), "20");
  EXPECT_EQ(m.at("ss_num_epochs"), "2");
  EXPECT_EQ(m.at("ss_max_train_steps"), "40");
  EXPECT_EQ(m.at("ss_num_train_images"), "20");
  EXPECT_EQ(m.at("ss_seed"), "42");
  EXPECT_EQ(m.at("ss_resolution"), "(64, 64)");
  EXPECT_EQ(m.at("ss_optimizer"), "torch.optim.adamw.AdamW");
  EXPECT_EQ(m.at("ss_lr_scheduler"), "cosine_with_restarts");
  EXPECT_EQ(m.at("ss_learning_rate"), "0.002");
  EXPECT_EQ(m.at("ss_sd_model_name"), "model.safetensors");
  EXPECT_EQ(m.at("ss_base_model_version"), "sd_v1");
  EXPECT_EQ(m.at("modelspec.architecture"), "stable-diffusion-v1/lora");
  const Json tags = Json::parse(m.at("ss_tag_frequency").get<std::string>());
  EXPECT_EQ(tags.at("5_tinyprod").at("tinyprod"), 4);
  EXPECT_EQ(tags.at("5_tinyprod").at("white background"), 2);
  EXPECT_EQ(Json::parse(m.at("ss_dataset_dirs").get<std::string>()).at("5_tinyprod").at("n_repeats"), 5);
  EXPECT_TRUE(epoch1.header.contains("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"));
  EXPECT_EQ(epoch1.header.at("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight").at("dtype"), "F16")
      << "the product preset saves fp16, as the one-click tools do";

  std::ifstream losses_in(folder / "loss.json");
  const Json losses = Json::parse(losses_in);
  ASSERT_EQ(losses.size(), 40u);
  EXPECT_LT(mean_loss(losses, 2), mean_loss(losses, 1)) << "the loss must fall from epoch 1 to epoch 2";

  // The library knows it, with its epoch file and trigger word.
  const Json lora = c->call(protocol::method::kLorasGet, {{"name", "prod"}});
  EXPECT_EQ(lora.at("epochs").size(), 1u);
  EXPECT_EQ(lora.at("info").at("trigger_words").at(0), "tinyprod");
}

TEST_F(Train, TheTrainedLoraReproducesItsOwnSampleInGeneration) {
  auto c = daemon_->client();
  const Json record = wait_for_end(*c, c->call(protocol::method::kTrain,
                                               train_params("selfcheck", 1, {"save_precision=float", "num_repeats=2"}))
                                           .at("id"));
  ASSERT_EQ(record.at("state"), "done") << record.dump(2);
  const std::string sample = record.at("result").at("samples").back();
  // The same prompt, size, seed, steps and sampler as the sample, with the saved file at strength 1.
  const Json gen = c->call(protocol::method::kGenerate,
                           {{"model", "tiny"}, {"prompt", "tinyprod, bottle <lora:selfcheck:1>"}, {"width", 64}, {"height", 64},
                            {"seed", 7}, {"steps", 6}, {"cfg", 7.5}, {"sampler", "Euler a"}});
  const Json done = wait_for_end(*c, gen.at("id"));
  ASSERT_EQ(done.at("state"), "done") << done.dump(2);
  ASSERT_EQ(done.at("result").at("loras").size(), 1u);
  EXPECT_EQ(done.at("result").at("loras")[0].at("unmatched_keys"), 0);
  const auto a = studio::read_png(sample), b = studio::read_png(done.at("result").at("images")[0].at("png").get<std::string>());
  ASSERT_EQ(a.pixels.size(), b.pixels.size());
  int worst = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  EXPECT_LE(worst, 1) << "generation with the saved LoRA must give the image the training sampled";

  const Json plain = wait_for_end(*c, c->call(protocol::method::kGenerate,
                                               {{"model", "tiny"}, {"prompt", "tinyprod, bottle"}, {"width", 64}, {"height", 64},
                                                {"seed", 7}, {"steps", 6}, {"cfg", 7.5}, {"sampler", "Euler a"}})
                                           .at("id"));
  const auto p = studio::read_png(plain.at("result").at("images")[0].at("png").get<std::string>());
  EXPECT_NE(p.pixels, b.pixels) << "the LoRA must change the image";
}

TEST_F(Train, KillNineMidTrainingThenRestartFinishesWithTheSameWeights) {
  auto c = daemon_->client();
  // 4 images × 2 repeats: 8 steps an epoch, 24 in all.
  const std::vector<std::string> no_samples = {"sample_every_n_epochs=none", "sample_every_n_steps=none", "num_repeats=2"};
  const Json reference =
      wait_for_end(*c, c->call(protocol::method::kTrain, train_params("straight", 3, no_samples)).at("id"));
  ASSERT_EQ(reference.at("state"), "done") << reference.dump(2);

  // A second daemon on its own folders, killed while epoch 2 trains (epoch 1's file and state saved).
  auto first = std::make_unique<DaemonProcess>(std::vector<std::string>{}, "resume");
  first->keep_folders();
  first->client()->call(protocol::method::kModelsAdd, {{"path", (kTiny / "model.safetensors").string()}, {"name", "tiny"}});
  const std::string id = first->client()->call(protocol::method::kTrain, train_params("interrupted", 3, no_samples)).at("id");
  ASSERT_TRUE(eventually(
      [&] {
        const Json r = first->client()->call(protocol::method::kJobsGet, {{"id", id}});
        return r.at("progress").at("step").get<int>() >= 12;
      },
      std::chrono::seconds(300)));
  first->kill9();
  ASSERT_TRUE(fs::exists(first->data_dir() / "loras" / "interrupted" / "interrupted-000001.safetensors"));
  EXPECT_FALSE(fs::exists(first->data_dir() / "loras" / "interrupted" / "interrupted.safetensors"));

  DaemonProcess second(*first, {});
  auto c2 = second.client();
  const Json resumed = wait_for_end(*c2, id);
  ASSERT_EQ(resumed.at("state"), "done") << resumed.dump(2);
  EXPECT_EQ(resumed.at("result").at("steps"), 24);

  const Safetensors a = read_safetensors(daemon_->data_dir() / "loras" / "straight" / "straight.safetensors");
  const Safetensors b = read_safetensors(second.data_dir() / "loras" / "interrupted" / "interrupted.safetensors");
  EXPECT_EQ(a.data.size(), b.data.size());
  EXPECT_TRUE(a.data == b.data) << "the resumed run must end with the uninterrupted run's weights, bit for bit";
  std::ifstream la(daemon_->data_dir() / "loras" / "straight" / "loss.json"),
      lb(second.data_dir() / "loras" / "interrupted" / "loss.json");
  EXPECT_EQ(Json::parse(la), Json::parse(lb)) << "and with its loss history";
}

TEST_F(Train, ValidationGridHasTheEpochsAsColumnsAndTheStrengthsAsRows) {
  auto c = daemon_->client();
  ASSERT_EQ(wait_for_end(*c, c->call(protocol::method::kTrain, train_params("gridded", 2, {"sample_every_n_epochs=none", "sample_every_n_steps=none", "num_repeats=1"})).at("id"))
                .at("state"),
            "done");
  const fs::path out = daemon_->root() / "grid.png";
  const auto [status, output] =
      run_command({kiln_cli_path(), "--socket", daemon_->socket().string(), "grid", "--lora", "gridded", "--prompt",
                   "tinyprod, bottle", "--strengths", "0.5,1", "--steps", "4", "--seed", "3", "--out", out.string()});
  ASSERT_EQ(status, 0) << output;
  EXPECT_NE(output.find("wrote " + out.string()), std::string::npos) << output;
  const auto png = studio::read_png(out);
  // Two columns (000001, final) and two rows of 64-pixel cells, plus labels.
  EXPECT_GT(png.width, 2 * 64);
  EXPECT_GT(png.height, 2 * 64);
  ASSERT_FALSE(png.text.empty());
  EXPECT_EQ(png.text[0].key, "parameters");
  const auto info = studio::parse_infotext(png.text[0].value);
  EXPECT_EQ(info.prompt, "tinyprod, bottle");

  const Json listed = c->call(protocol::method::kLorasGet, {{"name", "gridded"}});
  EXPECT_TRUE(listed.at("grid").is_null()) << "--out elsewhere leaves the LoRA folder's grid.png alone";
  try {
    c->call(protocol::method::kLoraGrid, {{"lora", "gridded"}, {"epochs", {7}}});
    FAIL() << "an epoch that was never saved must be refused";
  } catch (const RpcError& e) {
    EXPECT_NE(std::string(e.what()).find("epoch 7"), std::string::npos) << e.what();
  }
}

TEST_F(Train, BadConfigsAreRefusedBeforeAnyWorkStarts) {
  auto c = daemon_->client();
  auto refused = [&](Json params, const std::string& words) {
    try {
      c->call(protocol::method::kTrain, params);
      ADD_FAILURE() << "accepted: " << params.dump();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidParams) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  Json p = train_params("bad", 1);
  p["set"].push_back("netwrk_dim=8");
  refused(p, "netwrk_dim");
  p = train_params("bad", 1);
  p["set"].push_back("learning_rate=-1");
  refused(p, "learning_rate");
  p = train_params("bad", 1);
  p["data"] = (daemon_->root() / "no-such-folder").string();
  refused(p, "does not exist");
  p = train_params("bad", 1);
  p["base"] = "no-such-model";
  refused(p, "no-such-model");
  p = train_params("../escape", 1);
  refused(p, "name");
  EXPECT_FALSE(fs::exists(daemon_->data_dir() / "escape"));

  // A model of a family Kiln does not run: an SD2.x-looking file (OpenCLIP ViT-H text encoder names).
  const fs::path sd2 = daemon_->root() / "sd2.safetensors";
  {
    const std::string header =
        R"({"cond_stage_model.model.ln_final.weight":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
        R"("model.diffusion_model.input_blocks.0.0.weight":{"dtype":"F16","shape":[1,4,1,1],"data_offsets":[4,12]}})";
    std::ofstream out(sd2, std::ios::binary);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << std::string(12, '\0');
  }
  p = train_params("bad", 1);
  p["base"] = sd2.string();
  const Json job = c->call(protocol::method::kTrain, p);
  const Json failed = wait_for_end(*c, job.at("id"));
  EXPECT_EQ(failed.at("state"), "failed");
  EXPECT_NE(failed.at("error").at("message").get<std::string>().find("SD2.x"), std::string::npos) << failed.dump(2);
  EXPECT_FALSE(fs::exists(daemon_->data_dir() / "loras" / "bad" / "bad.safetensors"));

  // An image that cannot be decoded: the job fails naming it, before the first step.
  const fs::path broken = daemon_->root() / "broken";
  make_dataset(broken, 2, "5_thing");
  std::ofstream(broken / "5_thing" / "corrupt.png") << "not a png at all";
  p = train_params("bad2", 1);
  p["data"] = broken.string();
  const Json failed2 = wait_for_end(*c, c->call(protocol::method::kTrain, p).at("id"));
  EXPECT_EQ(failed2.at("state"), "failed");
  EXPECT_NE(failed2.at("error").at("message").get<std::string>().find("corrupt.png"), std::string::npos) << failed2.dump(2);
  EXPECT_EQ(failed2.at("progress").at("step"), 0);
}
