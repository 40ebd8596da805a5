// The same work asked of one kilnd locally and through its TLS port with the `kiln` command line:
// generate (txt2img and img2img with an uploaded init image), a dataset from uploaded files, a
// short training and the LoRA exported; every output equal byte for byte.
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "daemon_process.h"
#include "protocol/methods.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kTiny = fs::path(KILN_TEST_FIXTURES_DIR) / "sd15-tiny";

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The tensors of a .safetensors file, byte for byte (the header holds names and times).
std::string tensor_bytes(const fs::path& p) {
  const std::string all = bytes_of(p);
  if (all.size() < 8) return "";
  uint64_t n = 0;
  std::memcpy(&n, all.data(), 8);
  return all.substr(8 + n);
}

class RemoteCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new DaemonProcess({"--listen", "127.0.0.1:0"}, "rcli");
    auto c = daemon_->client();
    c->call(protocol::method::kModelsAdd, {{"path", (kTiny / "model.safetensors").string()}, {"name", "tiny"}});
    const Json status = c->call(protocol::method::kStatus);
    address_ = new std::string(status.at("remote").at("address").get<std::string>());
    const std::string token = c->call(protocol::method::kRemoteTokensCreate, {{"name", "cli-laptop"}}).at("token");
    local_ = new std::vector<std::pair<std::string, std::string>>{{"KILN_SOCKET", daemon_->socket().string()},
                                                                  {"KILN_CONFIG_DIR", (daemon_->root() / "cfg").string()}};
    remote_ = new std::vector<std::pair<std::string, std::string>>{{"KILN_REMOTE", "gpu"},
                                                                   {"KILN_CONFIG_DIR", (daemon_->root() / "cfg").string()}};
    // Pairing, as a person would: saves the token (0600) and pins the certificate.
    const auto [code, out] = run_command({kiln_cli_path(), "remote", "add", "gpu", *address_, "--token", token}, *local_);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("pinned"), std::string::npos) << out;
    // A folder of pictures with captions on "the laptop".
    pictures_ = new fs::path(daemon_->root() / "laptop" / "bottles");
    fs::create_directories(*pictures_);
    for (int i = 0; i < 3; ++i) {
      cv::Mat img(64, 64, CV_8UC3, cv::Scalar(245, 245, 245));
      cv::rectangle(img, {22 + i, 18}, {42 + i, 56}, cv::Scalar(30, 30, 200), cv::FILLED);
      cv::imwrite((*pictures_ / ("img" + std::to_string(i) + ".png")).string(), img);
      std::ofstream(*pictures_ / ("img" + std::to_string(i) + ".txt")) << "tinyprod, bottle, studio light";
    }
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete address_;
    delete local_;
    delete remote_;
    delete pictures_;
  }
  static std::pair<int, std::string> kiln(std::vector<std::string> args, bool remote) {
    args.insert(args.begin(), kiln_cli_path());
    return run_command(args, remote ? *remote_ : *local_);
  }
  static DaemonProcess* daemon_;
  static std::string* address_;
  static std::vector<std::pair<std::string, std::string>>*local_, *remote_;
  static fs::path* pictures_;
};
DaemonProcess* RemoteCli::daemon_ = nullptr;
std::string* RemoteCli::address_ = nullptr;
std::vector<std::pair<std::string, std::string>>* RemoteCli::local_ = nullptr;
std::vector<std::pair<std::string, std::string>>* RemoteCli::remote_ = nullptr;
fs::path* RemoteCli::pictures_ = nullptr;

}  // namespace

TEST_F(RemoteCli, PairingSavesThePrivateTokenAndStatusWorksRemotely) {
  const fs::path remotes = daemon_->root() / "cfg" / "remotes.json";
  struct stat st {};
  ASSERT_EQ(::stat(remotes.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto [code, out] = kiln({"status", "--json"}, true);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(Json::parse(out).at("pid"), daemon_->pid());
  const auto [list_code, list_out] = kiln({"remote", "list"}, true);
  EXPECT_EQ(list_code, 0);
  EXPECT_NE(list_out.find("SHA256:"), std::string::npos) << list_out;
  EXPECT_EQ(list_out.find(bytes_of(remotes).substr(bytes_of(remotes).find("kiln_"), 30)), std::string::npos) << "no token shown";
}

TEST_F(RemoteCli, GenerateGivesTheSamePngLocallyAndRemotely) {
  const fs::path out = daemon_->root() / "laptop" / "out";
  const std::vector<std::string> common = {"generate", "--model", "tiny", "--prompt", "a red bottle, studio light", "--steps", "4",
                                           "--width", "64", "--height", "64", "--seed", "11"};
  auto with = [&](std::vector<std::string> extra, const fs::path& file) {
    std::vector<std::string> a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    a.push_back("--out");
    a.push_back(file.string());
    return a;
  };
  auto [lc, lo] = kiln(with({}, out / "local.png"), false);
  auto [rc, ro] = kiln(with({}, out / "remote.png"), true);
  ASSERT_EQ(lc, 0) << lo;
  ASSERT_EQ(rc, 0) << ro;
  EXPECT_FALSE(bytes_of(out / "local.png").empty());
  EXPECT_EQ(bytes_of(out / "local.png"), bytes_of(out / "remote.png")) << "txt2img";
  // img2img: the init image is this machine's file; it goes to the remote daemon as pixels.
  const std::vector<std::string> init = {"--init", (*pictures_ / "img1.png").string(), "--strength", "0.6"};
  auto [lc2, lo2] = kiln(with(init, out / "local-i2i.png"), false);
  auto [rc2, ro2] = kiln(with(init, out / "remote-i2i.png"), true);
  ASSERT_EQ(lc2, 0) << lo2;
  ASSERT_EQ(rc2, 0) << ro2;
  EXPECT_EQ(bytes_of(out / "local-i2i.png"), bytes_of(out / "remote-i2i.png")) << "img2img";
  EXPECT_NE(bytes_of(out / "local.png"), bytes_of(out / "local-i2i.png"));
}

TEST_F(RemoteCli, ADatasetFromUploadedFilesTrainsTheSameLora) {
  const std::vector<std::string> settings = {"--preset", "product", "--trigger", "tinyprod", "--repeats", "1", "--json"};
  auto create = [&](const std::string& name, bool remote) {
    std::vector<std::string> a = {"dataset", "create", name, "--from", pictures_->string()};
    a.insert(a.end(), settings.begin(), settings.end());
    return kiln(a, remote);
  };
  auto [lc, lo] = create("bottles-local", false);
  auto [rc, ro] = create("bottles-remote", true);
  ASSERT_EQ(lc, 0) << lo;
  ASSERT_EQ(rc, 0) << ro;
  auto c = daemon_->client();
  const Json local = c->call(protocol::method::kDatasetsGet, {{"name", "bottles-local"}});
  const Json remote = c->call(protocol::method::kDatasetsGet, {{"name", "bottles-remote"}});
  ASSERT_EQ(local.at("images").size(), 3u);
  ASSERT_EQ(remote.at("images").size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const Json& a = local.at("images")[i];
    const Json& b = remote.at("images")[i];
    EXPECT_EQ(a.at("source_name"), b.at("source_name"));
    EXPECT_EQ(a.at("caption"), b.at("caption")) << "the caption files travelled beside their images";
    const std::string pa = bytes_of(fs::path(local.at("folder").get<std::string>()) / a.at("stored_file").get<std::string>());
    const std::string pb = bytes_of(fs::path(remote.at("folder").get<std::string>()) / b.at("stored_file").get<std::string>());
    EXPECT_FALSE(pa.empty());
    EXPECT_EQ(pa, pb) << "training image " << i;
  }
  // A short training of each, then the remote one exported to the laptop. The batch size is fixed:
  // "auto" follows the free memory, which other programs change between the two trainings.
  const std::vector<std::string> train = {"--base", "tiny", "--preset", "product", "--set", "train_batch_size=1",
                                          "--set", "max_train_epochs=1", "--set",
                                          "resolution=64", "--set", "seed=42", "--set", "sample_every_n_epochs=none",
                                          "--set", "sample_every_n_steps=none", "--set", "min_bucket_reso=64",
                                          "--set", "max_bucket_reso=128"};
  auto run_training = [&](const std::string& dataset, const std::string& lora, bool remote) {
    std::vector<std::string> a = {"train", "--dataset", dataset, "--name", lora};
    a.insert(a.end(), train.begin(), train.end());
    return kiln(a, remote);
  };
  auto [ltc, lto] = run_training("bottles-local", "bottle-local", false);
  auto [rtc, rto] = run_training("bottles-remote", "bottle-remote", true);
  ASSERT_EQ(ltc, 0) << lto;
  ASSERT_EQ(rtc, 0) << rto;
  const fs::path exported = daemon_->root() / "laptop" / "bottle.safetensors";
  auto [ec, eo] = kiln({"loras", "export", "bottle-remote", "--out", exported.string()}, true);
  ASSERT_EQ(ec, 0) << eo;
  EXPECT_NE(eo.find("downloaded"), std::string::npos) << eo;
  const Json library = c->call(protocol::method::kLorasGet, {{"name", "bottle-remote"}});
  EXPECT_EQ(bytes_of(exported), bytes_of(library.at("file").get<std::string>())) << "the export is the library's file";
  const Json local_lora = c->call(protocol::method::kLorasGet, {{"name", "bottle-local"}});
  const std::string a = tensor_bytes(local_lora.at("file").get<std::string>());
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, tensor_bytes(exported)) << "the same weights from the same pictures, locally and remotely";
}

TEST_F(RemoteCli, AChangedCertificateSaysHowToRePin) {
  // Pin something else for the address: the next contact is refused with the way out.
  const std::string known = (daemon_->root() / "cfg" / "known_daemons.json").string();
  const std::string saved = bytes_of(known);
  Json j = Json::parse(saved);
  j[*address_]["fingerprint"] = "SHA256:" + std::string(95, '0');
  std::ofstream(known) << j.dump();
  const auto [code, out] = kiln({"status"}, true);
  EXPECT_EQ(code, 1);
  auto [repin_code, repin_out] = kiln({"remote", "repin", "gpu"}, true);
  EXPECT_EQ(repin_code, 0) << repin_out;
  EXPECT_NE(repin_out.find("re-pinned"), std::string::npos) << repin_out;
  EXPECT_EQ(kiln({"status"}, true).first, 0);
}
