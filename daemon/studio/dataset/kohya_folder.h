#pragma once
// Reading a kohya-style train_data_dir the way kohya's sd-scripts does (train_network.py with
// train_data_dir): subfolders named "<repeats>_<class tokens>", images with the extensions kohya
// globs for, one caption file per image. Used for Kiln's own datasets and for users' folders.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln::studio {

struct KohyaImage {
  std::filesystem::path path;
  std::optional<std::string> caption;  // first line, trimmed, as kohya reads it; nullopt: none (kohya
                                       // then uses the folder's class tokens)
  std::filesystem::path caption_file;  // empty when there is none
};

struct KohyaSubset {
  std::filesystem::path dir;
  int repeats = 0;
  std::string class_tokens;            // the folder name after "<repeats>_"
  std::vector<KohyaImage> images;      // sorted by path, as kohya sorts them
};

struct DatasetFolder {
  std::filesystem::path root;
  std::vector<KohyaSubset> subsets;     // sorted by folder name
  std::vector<std::string> warnings;    // ignored folders, captions kohya would refuse, ...
  int image_count() const;
  // Σ images × repeats: the images one epoch shows (kohya's "num train images * repeats").
  long long images_with_repeats() const;
};

// Reads `root`. Captions come from "<stem><caption_extension>" when given (kohya's
// --caption_extension, e.g. ".txt"); otherwise ".txt", then ".caption" (kohya's default).
// Throws Error(NotFound) when root is not a folder and Error(InvalidArgument) when it holds no
// usable "<repeats>_<name>" folder with images, saying what kohya expects.
DatasetFolder scan_kohya_folder(const std::filesystem::path& root, const std::string& caption_extension = "");

// kohya's image extensions (exactly these spellings, as its glob is case-sensitive).
bool is_kohya_image_file(const std::filesystem::path& path);

}  // namespace kiln::studio
