#include "cli/plugins/zip_archive.h"

#include <zip.h>

#include <fstream>
#include <memory>
#include <stdexcept>

namespace kiln::cli {
namespace fs = std::filesystem;

namespace {

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
using Zip = std::unique_ptr<zip_t, ZipCloser>;

Zip open_zip(const fs::path& path) {
  int error = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &error);
  if (!z) {
    zip_error_t e;
    zip_error_init_with_code(&e, error);
    const std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    throw std::runtime_error("cannot read the plugin bundle " + path.string() + ": " + why +
                             "; reinstall Kiln's package or rebuild the bundle");
  }
  return Zip(z);
}

// A relative path without "..", or an empty path for names that must not be extracted.
fs::path safe_relative(const std::string& name, const fs::path& zip) {
  const fs::path p = fs::path(name).lexically_normal();
  if (name.empty() || p.is_absolute() || p.empty() || *p.begin() == "..")
    throw std::runtime_error(zip.string() + " holds an entry named '" + name + "' that would land outside the plugin folder");
  return p;
}

// Regular files only: libzip reports the creator's Unix mode in the external attributes.
bool is_symlink(zip_t* z, zip_uint64_t i) {
  zip_uint8_t os = 0;
  zip_uint32_t attributes = 0;
  if (zip_file_get_external_attributes(z, i, 0, &os, &attributes) != 0 || os != ZIP_OPSYS_UNIX) return false;
  return ((attributes >> 16) & 0170000) == 0120000;
}

}  // namespace

std::vector<std::string> zip_file_names(const fs::path& path) {
  Zip z = open_zip(path);
  std::vector<std::string> names;
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* raw = zip_get_name(z.get(), static_cast<zip_uint64_t>(i), 0);
    const std::string name = raw ? raw : "";
    if (!name.empty() && name.back() == '/') continue;  // a folder entry
    safe_relative(name, path);
    if (is_symlink(z.get(), static_cast<zip_uint64_t>(i)))
      throw std::runtime_error(path.string() + " holds a symbolic link '" + name + "'; plugin bundles hold plain files only");
    names.push_back(name);
  }
  return names;
}

std::vector<fs::path> extract_zip(const fs::path& path, const fs::path& target, bool dry_run) {
  const std::vector<std::string> names = zip_file_names(path);  // checks every name first
  std::vector<fs::path> written;
  Zip z = open_zip(path);
  for (const std::string& name : names) {
    const fs::path out = target / safe_relative(name, path);
    written.push_back(out);
    if (dry_run) continue;
    zip_file_t* f = zip_fopen(z.get(), name.c_str(), 0);
    if (!f) throw std::runtime_error("cannot read '" + name + "' in " + path.string());
    fs::create_directories(out.parent_path());
    const fs::path partial = out.string() + ".kiln-partial";
    {
      std::ofstream o(partial, std::ios::binary | std::ios::trunc);
      char buffer[1 << 16];
      zip_int64_t got = 0;
      while ((got = zip_fread(f, buffer, sizeof buffer)) > 0) o.write(buffer, got);
      zip_fclose(f);
      if (got < 0 || !o) throw std::runtime_error("cannot write " + out.string() + " (disk full or not writable?)");
    }
    fs::rename(partial, out);  // a half-written file never takes the real name
  }
  return written;
}

}  // namespace kiln::cli
