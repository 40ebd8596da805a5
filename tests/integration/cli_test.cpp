// The `kiln` command line: JSON output, exit codes (0 ok, 1 error, 2 usage).
#include <gtest/gtest.h>

#include "daemon_process.h"

using namespace kiln::test;
using Json = nlohmann::json;

TEST(Cli, StatusJsonHasVersionAndDevice) {
  DaemonProcess daemon;
  auto [code, out] = run_command({kiln_cli_path(), "status", "--json"}, {{"KILN_SOCKET", daemon.socket().string()}});
  ASSERT_EQ(code, 0);
  const Json s = Json::parse(out);
  EXPECT_TRUE(s.contains("version"));
  EXPECT_TRUE(s.contains("device"));
  EXPECT_EQ(s.at("pid"), daemon.pid());
}

TEST(Cli, UsageErrorsExitWithTwo) {
  EXPECT_EQ(run_command({kiln_cli_path(), "jobs", "cancel"}).first, 2);
  EXPECT_EQ(run_command({kiln_cli_path(), "no-such-command"}).first, 2);
  EXPECT_EQ(run_command({kiln_cli_path(), "jobs", "list", "--state", "exploded"}).first, 2);
}

TEST(Cli, MissingDaemonWithoutAutostartExitsWithOne) {
  auto [code, out] = run_command({kiln_cli_path(), "--no-autostart", "--socket", "/tmp/kiln-none.sock", "status"});
  EXPECT_EQ(code, 1);
  auto [status_code, status_out] = run_command({kiln_cli_path(), "--socket", "/tmp/kiln-none.sock", "daemon", "status"});
  EXPECT_EQ(status_code, 1);
  EXPECT_NE(status_out.find("not running"), std::string::npos);
}

TEST(Cli, SimulatedJobRunsToDoneAndIsListed) {
  DaemonProcess daemon;
  const std::vector<std::pair<std::string, std::string>> env{{"KILN_SOCKET", daemon.socket().string()}};
  auto [code, out] = run_command({kiln_cli_path(), "jobs", "simulate", "--steps", "5", "--step-ms", "1"}, env);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("done"), std::string::npos) << out;
  auto [list_code, list_out] = run_command({kiln_cli_path(), "jobs", "list", "--json"}, env);
  ASSERT_EQ(list_code, 0);
  const Json jobs = Json::parse(list_out).at("jobs");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].at("state"), "done");
  auto [cancel_code, cancel_out] = run_command({kiln_cli_path(), "jobs", "cancel", jobs[0].at("id")}, env);
  EXPECT_EQ(cancel_code, 1) << "cancelling a finished job is an error";
}

TEST(Cli, DaemonStartStopAndStatus) {
  const std::string socket = "/tmp/kt-cli-" + std::to_string(::getpid()) + "/kilnd.sock";
  const std::string data = "/tmp/kt-cli-" + std::to_string(::getpid()) + "/data";
  const std::vector<std::pair<std::string, std::string>> env{{"KILN_SOCKET", socket}, {"KILN_DATA_DIR", data},
                                                             {"KILN_DAEMON", kilnd_path()}};
  EXPECT_EQ(run_command({kiln_cli_path(), "daemon", "status"}, env).first, 1);
  auto [start_code, start_out] = run_command({kiln_cli_path(), "daemon", "start"}, env);
  EXPECT_EQ(start_code, 0);
  EXPECT_NE(start_out.find("started"), std::string::npos) << start_out;
  EXPECT_EQ(run_command({kiln_cli_path(), "daemon", "status"}, env).first, 0);
  EXPECT_NE(run_command({kiln_cli_path(), "daemon", "start"}, env).second.find("already running"), std::string::npos);
  auto [stop_code, stop_out] = run_command({kiln_cli_path(), "daemon", "stop"}, env);
  EXPECT_EQ(stop_code, 0);
  EXPECT_NE(stop_out.find("stopped"), std::string::npos);
  EXPECT_EQ(run_command({kiln_cli_path(), "daemon", "status"}, env).first, 1);
  std::filesystem::remove_all("/tmp/kt-cli-" + std::to_string(::getpid()));
}

TEST(Cli, BenchIpcJsonHasTheDocumentedKeys) {
  DaemonProcess daemon;
  auto [code, out] = run_command({kiln_cli_path(), "bench", "ipc", "--json", "--requests", "200", "--images", "2"},
                                 {{"KILN_SOCKET", daemon.socket().string()}});
  ASSERT_EQ(code, 0) << out;
  const Json r = Json::parse(out);
  for (const char* key : {"hello_p50_us", "hello_p99_us", "echo_4096_rgba_ms", "echo_4096_rgba_in_place_ms"}) {
    ASSERT_TRUE(r.contains(key)) << key;
    EXPECT_GT(r.at(key).get<double>(), 0) << key;
  }
  EXPECT_LE(r.at("hello_p50_us").get<double>(), r.at("hello_p99_us").get<double>());
}
