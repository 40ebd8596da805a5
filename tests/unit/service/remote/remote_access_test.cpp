// The remote daemon's bookkeeping: hashed tokens, the slow-down of failed attempts, what a remote
// client may download, and the daemon's own certificate.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "ipc/tls_stream.h"
#include "service/errors.h"
#include "service/remote/auth_throttle.h"
#include "service/remote/certificate.h"
#include "service/remote/remote_access.h"
#include "service/remote/token_store.h"

using namespace kiln::service;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {
fs::path temp_dir(const std::string& name) {
  std::random_device rd;
  fs::path dir = fs::temp_directory_path() / ("kiln-" + name + "-" + std::to_string(rd()));
  fs::create_directories(dir);
  return dir;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST(TokenStore, KeepsOnlyHashesAndVerifiesAgainstEveryOne) {
  const fs::path dir = temp_dir("tokens");
  std::string a, b;
  {
    TokenStore store(dir / "remote" / "tokens.json");
    a = store.create("laptop-1", false).token;
    const auto created = store.create("", true);
    b = created.token;
    EXPECT_EQ(created.info.name, "token-" + created.info.id);
    EXPECT_EQ(a.rfind("kiln_", 0), 0u);
    EXPECT_GE(a.size(), 45u);
    EXPECT_NE(a, b);
    EXPECT_THROW(store.create("laptop-1", false), ServiceError) << "names are unique";
    EXPECT_THROW(store.create("../x", false), ServiceError);
  }
  const std::string file = read(dir / "remote" / "tokens.json");
  EXPECT_EQ(file.find(a.substr(5)), std::string::npos);
  EXPECT_EQ(file.find(b.substr(5)), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "remote" / "tokens.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  TokenStore again(dir / "remote" / "tokens.json");  // read back from disk
  ASSERT_TRUE(again.verify(a));
  EXPECT_EQ(again.verify(a)->name, "laptop-1");
  EXPECT_TRUE(again.verify(b)->read_only);
  EXPECT_FALSE(again.verify(a + "x"));
  EXPECT_FALSE(again.verify(""));
  EXPECT_FALSE(again.list()[0].last_used_at.empty()) << "uses are recorded";
  ASSERT_TRUE(again.revoke("laptop-1"));
  EXPECT_FALSE(again.verify(a)) << "revoked";
  EXPECT_TRUE(again.verify(b));
  EXPECT_FALSE(again.revoke("laptop-1"));
  fs::remove_all(dir);
}

TEST(AuthThrottle, EachFailureDoublesTheWaitPerAddress) {
  AuthThrottle t(std::chrono::milliseconds(500), std::chrono::seconds(60));
  const auto now = Clock::now();
  EXPECT_FALSE(t.wait_left("10.0.0.1", now));
  EXPECT_EQ(t.failed("10.0.0.1", now).delay, std::chrono::milliseconds(500));
  EXPECT_TRUE(t.wait_left("10.0.0.1", now + std::chrono::milliseconds(100)));
  EXPECT_FALSE(t.wait_left("10.0.0.2", now)) << "another address is not slowed";
  EXPECT_FALSE(t.wait_left("10.0.0.1", now + std::chrono::milliseconds(600)));
  EXPECT_EQ(t.failed("10.0.0.1", now + std::chrono::seconds(1)).delay, std::chrono::seconds(1));
  EXPECT_EQ(t.failed("10.0.0.1", now + std::chrono::seconds(3)).delay, std::chrono::seconds(2));
  for (int i = 0; i < 20; ++i) t.failed("10.0.0.1", now + std::chrono::seconds(4));
  EXPECT_EQ(t.failed("10.0.0.1", now + std::chrono::seconds(5)).delay, std::chrono::seconds(60)) << "capped";
  EXPECT_FALSE(t.wait_left("10.0.0.1", now + std::chrono::minutes(30))) << "forgotten after a quiet while";
  EXPECT_EQ(address_of_peer("127.0.0.1:5000"), "127.0.0.1");
  EXPECT_EQ(address_of_peer("[::1]:5000"), "::1");
}

TEST(RemoteAccess, OnlyResultsMayBeDownloadedAndUploadNamesStayNames) {
  const fs::path data = temp_dir("remote-data");
  RemoteAccess remote(data, RemoteSettings{});
  fs::create_directories(data / "outputs");
  fs::create_directories(data / "loras" / "x");
  std::ofstream(data / "outputs" / "a.png") << "png";
  std::ofstream(data / "loras" / "x" / "x.safetensors") << "lora";
  std::ofstream(data / "secret.txt") << "no";
  EXPECT_EQ(remote.downloadable((data / "outputs" / "a.png").string()), fs::canonical(data / "outputs" / "a.png"));
  EXPECT_NO_THROW(remote.downloadable((data / "loras" / "x" / "x.safetensors").string()));
  for (const fs::path& p : {data / "secret.txt", data / "outputs" / ".." / "secret.txt", fs::path("outputs/a.png"), data / "outputs",
                            data / "outputsx" / "a.png"}) {
    EXPECT_THROW(remote.downloadable(p.string()), ServiceError) << p;
  }
  fs::create_symlink(data / "secret.txt", data / "outputs" / "link.png");
  EXPECT_THROW(remote.downloadable((data / "outputs" / "link.png").string()), ServiceError) << "links are followed, then judged";

  const fs::path received = remote.incoming_file_path();
  std::ofstream(received) << "upload";
  const fs::path stored = remote.store_upload(received, "../../evil.png");
  EXPECT_EQ(stored.filename(), "evil.png");
  EXPECT_EQ(stored.parent_path().parent_path(), data / "uploads");
  const fs::path second = remote.incoming_file_path();
  std::ofstream(second) << "caption";
  EXPECT_EQ(remote.store_upload(second, "evil.txt", stored.parent_path().filename().string()).parent_path(), stored.parent_path());
  const fs::path third = remote.incoming_file_path();
  std::ofstream(third) << "x";
  EXPECT_THROW(remote.store_upload(third, "..", ""), ServiceError);
  EXPECT_THROW(remote.store_upload(third, "a.png", "../../etc"), ServiceError);
  fs::remove_all(data);
}

TEST(TlsIdentity, KilndMakesItsCertificateOnceAndKeepsTheKeyPrivate) {
  const fs::path dir = temp_dir("tls");
  const TlsIdentity first = load_or_create_tls_identity(dir / "tls", "", "");
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.fingerprint.rfind("SHA256:", 0), 0u);
  EXPECT_EQ(first.fingerprint.size(), 7u + 32 * 3 - 1);
  struct stat st {};
  ASSERT_EQ(::stat(first.key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const TlsIdentity again = load_or_create_tls_identity(dir / "tls", "", "");
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.fingerprint, first.fingerprint) << "made once, then kept";
  EXPECT_NO_THROW(kiln::ipc::make_server_tls_context(first.cert, first.key));
  EXPECT_THROW(load_or_create_tls_identity(dir, first.cert.string(), ""), std::runtime_error) << "cert without key";
  ::chmod(first.key.c_str(), 0644);
  EXPECT_THROW(load_or_create_tls_identity(dir, first.cert.string(), first.key.string()), std::runtime_error)
      << "a key others can read is refused";
  fs::remove_all(dir);
}
