// Remote addresses, saved remotes and pinned fingerprints on the client side.
#include "client/remotes.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "ipc/tls_stream.h"

using namespace kiln;
namespace fs = std::filesystem;

TEST(RemoteAddress, ParsesUrlsHostPortsAndV6) {
  EXPECT_EQ(parse_remote_address("kiln+tls://gpu-box.local:7433").str(), "gpu-box.local:7433");
  EXPECT_EQ(parse_remote_address("10.0.0.5:9").port, 9);
  const auto v6 = parse_remote_address("[fd00::2]:7433");
  EXPECT_EQ(v6.host, "fd00::2");
  EXPECT_EQ(v6.str(), "[fd00::2]:7433");
  EXPECT_EQ(v6.url(), "kiln+tls://[fd00::2]:7433");
  for (const char* bad : {"gpu-box", "http://gpu:80", "gpu:0", "gpu:70000", "gpu:x", ":7433", "g u:1", "a:b:c"})
    EXPECT_THROW(parse_remote_address(bad), std::invalid_argument) << bad;
  try {
    parse_remote_address("gpu-box");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("HOST:PORT"), std::string::npos);
  }
}

TEST(RemoteConfig, SavesRemotesPrivatelyAndPinsByAddress) {
  std::random_device rd;
  const fs::path dir = fs::temp_directory_path() / ("kiln-remotes-" + std::to_string(rd()));
  {
    RemoteConfig config(dir);
    EXPECT_TRUE(config.remotes().empty());
    config.save_remote({"gpu", parse_remote_address("gpu:7433"), "kiln_secret"});
    struct stat st {};
    ASSERT_EQ(::stat((dir / "remotes.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "the token file is private";
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_TRUE(config.find("gpu"));
    EXPECT_EQ(config.find("gpu")->token, "kiln_secret");
    EXPECT_EQ(config.find_by_address(parse_remote_address("kiln+tls://gpu:7433"))->name, "gpu");
    EXPECT_FALSE(config.pinned(parse_remote_address("gpu:7433")));
    config.pin(parse_remote_address("gpu:7433"), "SHA256:AA");
    EXPECT_EQ(config.pinned(parse_remote_address("gpu:7433")), "SHA256:AA");
    EXPECT_FALSE(config.pinned(parse_remote_address("gpu:7434"))) << "a pin belongs to one host and port";
    EXPECT_TRUE(config.unpin(parse_remote_address("gpu:7433")));
    EXPECT_TRUE(config.remove_remote("gpu"));
    EXPECT_FALSE(config.find("gpu"));
    EXPECT_THROW(config.save_remote({"../x", parse_remote_address("gpu:1"), "t"}), std::invalid_argument);
  }
  fs::remove_all(dir);
}

TEST(Fingerprints, CompareWithoutCaseOrPrefix) {
  std::string colons = "SHA256:";
  for (int i = 0; i < 32; ++i) colons += std::string(i ? ":" : "") + "AB";
  std::string plain;
  for (int i = 0; i < 32; ++i) plain += "ab";
  EXPECT_TRUE(ipc::same_fingerprint(colons, plain));
  EXPECT_FALSE(ipc::same_fingerprint(colons, plain.substr(0, 62) + "ac"));
  EXPECT_FALSE(ipc::same_fingerprint("", "")) << "nothing is not a fingerprint";
}
