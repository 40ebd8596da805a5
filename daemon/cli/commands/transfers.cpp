#include "cli/commands/transfers.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace kiln::cli {
namespace fs = std::filesystem;

namespace {
// What datasets.add_images reads from a folder, and the caption files it reads beside an image.
const char* const kImageExtensions[] = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"};
const char* const kCaptionExtensions[] = {".txt", ".caption"};

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

bool has(const char* const* begin, const char* const* end, const std::string& ext) { return std::find(begin, end, ext) != end; }

std::string folder_of(const std::string& daemon_path) { return fs::path(daemon_path).parent_path().filename().string(); }
}  // namespace

std::vector<std::string> image_paths_for_daemon(Client& client, const std::vector<std::string>& local_paths) {
  std::vector<std::string> out;
  if (!client.is_remote()) {
    for (const std::string& p : local_paths) out.push_back(fs::absolute(p).lexically_normal().string());
    return out;
  }
  std::map<fs::path, std::string> folders;  // a local folder → its upload folder there
  for (const std::string& p : local_paths) {
    const fs::path path = fs::absolute(p).lexically_normal();
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      std::vector<fs::path> files;
      for (const auto& entry : fs::directory_iterator(path, ec)) {
        const std::string name = entry.path().filename().string();
        const std::string ext = lower_extension(entry.path());
        if (!name.empty() && name.front() != '.' && entry.is_regular_file(ec) &&
            (has(std::begin(kImageExtensions), std::end(kImageExtensions), ext) ||
             has(std::begin(kCaptionExtensions), std::end(kCaptionExtensions), ext)))
          files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
      std::string folder, last;
      for (const fs::path& f : files) {
        last = client.upload_file(f.string(), folder);
        folder = folder_of(last);
      }
      // The folder there (the daemon reads its images as it would read this one's); an empty
      // folder is passed as it is, for the daemon to say it holds no images.
      out.push_back(last.empty() ? path.string() : fs::path(last).parent_path().string());
      continue;
    }
    if (!fs::is_regular_file(path, ec)) {
      out.push_back(path.string());  // the daemon names what is wrong with it
      continue;
    }
    std::string& folder = folders[path.parent_path()];
    const std::string uploaded = client.upload_file(path.string(), folder);
    folder = folder_of(uploaded);
    for (const char* ext : kCaptionExtensions) {
      fs::path caption = path;
      caption.replace_extension(ext);
      if (fs::is_regular_file(caption, ec)) client.upload_file(caption.string(), folder);
    }
    out.push_back(uploaded);
  }
  return out;
}

std::string file_for_daemon(Client& client, const std::string& local_path) {
  if (!client.is_remote()) return fs::absolute(local_path).lexically_normal().string();
  return client.upload_file(local_path);
}

void fetch_file(Client& client, const std::string& daemon_path, const fs::path& to) { client.download_file(daemon_path, to.string()); }

}  // namespace kiln::cli
