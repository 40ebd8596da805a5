// Real clients against a real daemon: many at once, permissions, single instance, autostart,
// shared-memory round trips.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "daemon_process.h"
#include "protocol/methods.h"

using namespace kiln;
using namespace kiln::test;
using Json = nlohmann::json;
using protocol::ErrorCode;

TEST(Daemon, StatusDescribesVersionDeviceAndPaths) {
  DaemonProcess daemon;
  auto client = daemon.client();
  const Json s = client->call(protocol::method::kStatus);
  EXPECT_FALSE(s.at("version").get<std::string>().empty());
  EXPECT_NE(s.at("device").get<std::string>().find("cpu"), std::string::npos);
  EXPECT_EQ(s.at("protocol"), 1);
  EXPECT_EQ(s.at("socket"), daemon.socket().string());
  EXPECT_EQ(s.at("data_dir"), daemon.data_dir().string());
  EXPECT_EQ(s.at("clients"), 1);
  EXPECT_EQ(client->server_info().at("protocol"), 1);
}

TEST(Daemon, SocketAndFoldersAreOnlyForTheUser) {
  DaemonProcess daemon;
  struct stat st{};
  ASSERT_EQ(::stat(daemon.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(daemon.socket().parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(daemon.data_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(Daemon, OnlyOneInstancePerSocketAndDataDir) {
  DaemonProcess daemon;
  auto [status, out] = run_command({kilnd_path(), "--socket", daemon.socket().string(), "--data-dir",
                                    daemon.data_dir().string(), "--quiet"});
  EXPECT_EQ(status, 1);
  EXPECT_TRUE(daemon.running());
  EXPECT_EQ(daemon.client()->call(protocol::method::kStatus).at("pid"), daemon.pid());
}

TEST(Daemon, ShutdownMethodStopsItCleanly) {
  DaemonProcess daemon;
  daemon.client()->call(protocol::method::kShutdown);
  EXPECT_TRUE(eventually([&] { return !daemon.running(); }));
  EXPECT_FALSE(std::filesystem::exists(daemon.socket())) << "the socket file is removed";
}

TEST(Daemon, SigtermStopsItWithExitCodeZero) {
  DaemonProcess daemon;
  EXPECT_EQ(daemon.terminate(), 0);
}

TEST(Daemon, ThirtyTwoClientsTimesTwoHundredRequestsNoLostOrMixedReplies) {
  DaemonProcess daemon;
  std::atomic<int> wrong{0}, done{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < 32; ++c) {
    threads.emplace_back([&, c] {
      auto client = daemon.client("c" + std::to_string(c));
      protocol::ImageDesc d;
      d.width = 3;
      d.height = 2;
      d.channels = 4;
      for (int i = 0; i < 200; ++i) {
        if (i % 10 == 0) {
          // A tiny image whose bytes say which client and request it belongs to.
          ipc::ShmImage image = client->create_image(d);
          for (uint64_t b = 0; b < image.data_size(); ++b) image.data()[b] = static_cast<uint8_t>(c * 7 + i + b);
          const Json r = client->call(protocol::method::kImageEcho, {{"image", protocol::to_json(image.ref())}});
          const ipc::ShmImage back = client->take_image(r.at("image"));
          if (std::memcmp(back.data(), image.data(), image.data_size()) != 0) ++wrong;
        } else {
          // The error names the id we asked for: a reply meant for someone else would not.
          const std::string id = "client" + std::to_string(c) + "-req" + std::to_string(i);
          try {
            client->call(protocol::method::kJobsGet, {{"id", id}});
            ++wrong;
          } catch (const RpcError& e) {
            if (e.code() != ErrorCode::NotFound || std::string(e.what()).find("'" + id + "'") == std::string::npos) ++wrong;
          }
        }
        ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), 32 * 200);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_TRUE(shm_blocks_of(daemon.pid()).empty());
}

TEST(Daemon, ImageRoundTripIntoACallerBlock) {
  DaemonProcess daemon;
  auto client = daemon.client();
  protocol::ImageDesc d;
  d.width = 513;
  d.height = 257;
  d.channels = 3;
  d.dtype = protocol::PixelType::U16;
  ipc::ShmImage in = client->create_image(d);
  for (uint64_t b = 0; b < in.data_size(); ++b) in.data()[b] = static_cast<uint8_t>(b * 13);
  ipc::ShmImage out = client->create_image(d);
  const Json r = client->call(protocol::method::kImageEcho,
                              {{"image", protocol::to_json(in.ref())}, {"into", protocol::to_json(out.ref())}});
  EXPECT_EQ(r.at("image").at("shm"), out.name());
  EXPECT_EQ(std::memcmp(in.data(), out.data(), in.data_size()), 0);
  // A target of another size is refused, not overrun.
  d.width = 512;
  ipc::ShmImage small = client->create_image(d);
  EXPECT_THROW(client->call(protocol::method::kImageEcho,
                            {{"image", protocol::to_json(in.ref())}, {"into", protocol::to_json(small.ref())}}),
               RpcError);
}

TEST(Client, StartsTheDaemonWhenNoneRuns) {
  const auto root = std::filesystem::temp_directory_path() / ("kt-auto-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  ClientOptions options;
  options.socket_path = (root / "run" / "kilnd.sock").string();
  options.data_dir = (root / "data").string();
  options.daemon_executable = kilnd_path();
  options.client_name = "autostart-test";
  {
    Client client(options);
    client.connect();
    const int pid = client.server_info().at("pid").get<int>();
    EXPECT_GT(pid, 0);
    EXPECT_NE(pid, ::getppid());
    client.call(protocol::method::kShutdown);
  }
  EXPECT_TRUE(eventually([&] { return !std::filesystem::exists(root / "run" / "kilnd.sock"); }));
  std::filesystem::remove_all(root);
}

TEST(Client, ReportsAMissingDaemonWhenNotAllowedToStartOne) {
  ClientOptions options;
  options.socket_path = "/tmp/kiln-no-daemon-here.sock";
  options.autostart = false;
  Client client(options);
  try {
    client.connect();
    FAIL();
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("kiln daemon start"), std::string::npos) << e.what();
  }
}

TEST(Client, PendingCallsFailWhenTheDaemonDies) {
  DaemonProcess daemon;
  auto client = daemon.client();
  const Json job = client->call(protocol::method::kJobsSimulate, {{"steps", 100000}, {"step_ms", 5}});
  std::atomic<bool> failed{false}, disconnected{false};
  client->set_disconnect_handler([&](const std::string&) { disconnected = true; });
  daemon.kill9();
  client->call_async(protocol::method::kStatus, Json::object(), [&](std::optional<Json>, std::optional<RpcError> e) {
    failed = e && e->code() == ErrorCode::ConnectionLost;
  });
  EXPECT_TRUE(eventually([&] { return failed && disconnected; }));
  EXPECT_THROW(client->call(protocol::method::kStatus), RpcError);
}
