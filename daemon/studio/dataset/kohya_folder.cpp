#include "studio/dataset/kohya_folder.h"

#include <algorithm>
#include <cctype>
#include <fstream>

#include "studio/error.h"
#include "studio/text_encoding.h"

namespace kiln::studio {
namespace fs = std::filesystem;
namespace {

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// kohya: int(name.split("_")[0]) — Python's int() allows surrounding spaces and a sign.
std::optional<int> repeats_of(const std::string& folder) {
  const std::string head = trim(folder.substr(0, folder.find('_')));
  if (head.empty()) return std::nullopt;
  std::size_t i = (head[0] == '+' || head[0] == '-') ? 1 : 0;
  if (i == head.size()) return std::nullopt;
  for (std::size_t k = i; k < head.size(); ++k)
    if (!std::isdigit(static_cast<unsigned char>(head[k]))) return std::nullopt;
  if (head.size() - i > 6) return 1000000;  // absurd but positive; kohya would accept it
  return std::stoi(head);
}

}  // namespace

bool is_kohya_image_file(const fs::path& path) {
  static const char* const kExtensions[] = {".png", ".jpg", ".jpeg", ".webp", ".bmp",
                                            ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP"};
  const std::string ext = path.extension().string();
  return std::find(std::begin(kExtensions), std::end(kExtensions), ext) != std::end(kExtensions);
}

int DatasetFolder::image_count() const {
  int n = 0;
  for (const KohyaSubset& s : subsets) n += static_cast<int>(s.images.size());
  return n;
}

long long DatasetFolder::images_with_repeats() const {
  long long n = 0;
  for (const KohyaSubset& s : subsets) n += static_cast<long long>(s.images.size()) * s.repeats;
  return n;
}

DatasetFolder scan_kohya_folder(const fs::path& root, const std::string& caption_extension) {
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw Error(ErrorKind::NotFound, root.string() + " is not a folder; give the training folder that holds the "
                                                     "\"<repeats>_<name>\" folders (kohya's train_data_dir)");
  std::vector<std::string> extensions;
  if (!caption_extension.empty()) {
    extensions.push_back(caption_extension.front() == '.' ? caption_extension : "." + caption_extension);
  } else {
    extensions = {".txt", ".caption"};
  }

  DatasetFolder out;
  out.root = root;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(root, ec))
    if (entry.is_directory(ec)) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());

  for (const fs::path& dir : dirs) {
    const std::string name = dir.filename().string();
    if (name.empty() || name.front() == '.') continue;  // hidden folders
    const auto repeats = repeats_of(name);
    if (!repeats) {
      // Kiln keeps the untouched imports and the near-duplicate signatures there; kohya skips them too.
      if (name != "originals" && name != "signatures")
        out.warnings.push_back("folder '" + name + "' is skipped: kohya reads only folders named "
                               "\"<repeats>_<name>\", e.g. \"10_" + name + "\"");
      continue;
    }
    if (*repeats < 1) {
      out.warnings.push_back("folder '" + name + "' is skipped: its repeat count is below 1");
      continue;
    }
    KohyaSubset subset;
    subset.dir = dir;
    subset.repeats = *repeats;
    const std::size_t underscore = name.find('_');
    subset.class_tokens = underscore == std::string::npos ? "" : name.substr(underscore + 1);

    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string file = entry.path().filename().string();
      if (!file.empty() && file.front() != '.' && entry.is_regular_file(ec) && is_kohya_image_file(entry.path()))
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& image : files) {
      KohyaImage item{image, std::nullopt, {}};
      for (const std::string& ext : extensions) {
        fs::path caption = image;
        caption.replace_extension(ext);
        if (!fs::is_regular_file(caption, ec)) continue;
        std::ifstream in(caption, std::ios::binary);
        std::string line;
        std::getline(in, line);
        item.caption_file = caption;
        if (!is_valid_utf8(line)) {
          out.warnings.push_back(caption.string() + " is not UTF-8 text; kohya refuses it - save it as UTF-8");
        } else if (fs::file_size(caption, ec) == 0) {
          out.warnings.push_back(caption.string() + " is empty; kohya stops on empty caption files - write the "
                                                    "caption or delete the file");
        } else {
          item.caption = trim(line);
        }
        break;
      }
      subset.images.push_back(std::move(item));
    }
    if (subset.images.empty()) {
      out.warnings.push_back("folder '" + name + "' holds no images kohya reads (.png .jpg .jpeg .webp .bmp)");
      continue;
    }
    out.subsets.push_back(std::move(subset));
  }
  if (out.subsets.empty())
    throw Error(ErrorKind::InvalidArgument,
                root.string() + " holds no training images in kohya's layout: put the images (and .txt captions) in "
                                "a subfolder named \"<repeats>_<trigger>\", e.g. \"10_myproduct\"");
  return out;
}

}  // namespace kiln::studio
