#include "ipc/paths.h"

#include <cstdlib>

#include <gtest/gtest.h>

using namespace kiln::ipc;

namespace {
// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};
}  // namespace

TEST(Paths, EnvironmentOverridesDefaults) {
  ScopedEnv socket("KILN_SOCKET", "/tmp/kiln-test/s.sock");
  ScopedEnv data("KILN_DATA_DIR", "/tmp/kiln-test/data");
  EXPECT_EQ(default_socket_path(), "/tmp/kiln-test/s.sock");
  EXPECT_EQ(default_data_dir(), "/tmp/kiln-test/data");
  EXPECT_EQ(resolve_socket_path("/x/y.sock"), "/x/y.sock") << "an explicit path wins";
}

TEST(Paths, XdgRuntimeDirThenCache) {
  ScopedEnv socket("KILN_SOCKET", nullptr);
  ScopedEnv home("HOME", "/home/someone");
  {
    ScopedEnv runtime("XDG_RUNTIME_DIR", "/tmp");
    EXPECT_EQ(default_socket_path(), "/tmp/kiln/kilnd.sock");
  }
  ScopedEnv runtime("XDG_RUNTIME_DIR", nullptr);
  EXPECT_EQ(default_socket_path(), "/home/someone/.cache/kiln/kilnd.sock");
  ScopedEnv data("KILN_DATA_DIR", nullptr);
  ScopedEnv xdg("XDG_DATA_HOME", nullptr);
  EXPECT_EQ(default_data_dir(), "/home/someone/.local/share/kiln");
}

TEST(Paths, OverlongSocketPathIsExplained) {
  EXPECT_EQ(check_socket_path("/tmp/k.sock"), "");
  const std::string problem = check_socket_path("/tmp/" + std::string(200, 'a') + ".sock");
  EXPECT_NE(problem.find("at most"), std::string::npos) << problem;
}
