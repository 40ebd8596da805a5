#include "service/library/file_hash.h"

#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <stdexcept>
#include <vector>

namespace kiln::service {

std::string sha256_file(const std::filesystem::path& path,
                        const std::function<bool(uint64_t, uint64_t)>& keep_going) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string() + " to hash it");
  const uint64_t total = std::filesystem::file_size(path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) throw std::runtime_error("OpenSSL SHA-256 is unavailable");
  std::vector<char> buffer(8u << 20);
  uint64_t done = 0, last_report = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buffer.data(), n);
    done += n;
    if (keep_going && done - last_report >= (256u << 20)) {
      last_report = done;
      if (!keep_going(done, total)) throw std::runtime_error("hashing " + path.string() + " was stopped");
    }
  }
  if (in.bad()) throw std::runtime_error("read error while hashing " + path.string());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

}  // namespace kiln::service
