#pragma once
// The dataset library in the data dir, in kohya's folder convention so kohya-compatible trainers
// use a Kiln dataset as it is (train_data_dir = <data dir>/datasets/<name>):
//
//   <data dir>/datasets/<name>/
//     dataset.json              settings, and per image: id, source name, files, caption, findings
//     originals/0001.jpg        the untouched imports, so preparation can be re-run with other settings
//     <repeats>_<trigger>/      what kohya trains on: 0001.png + 0001.txt + 0001.caption (same caption;
//                               .txt for most tools, .caption for kohya's default extension),
//                               0001_flip.png, 0001_face.png, ... for the extra copies
//
// Thread-safe: operations on one dataset run one at a time; different datasets run in parallel.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core.hpp>

#include "studio/dataset/captions.h"
#include "studio/dataset/quality.h"
#include "studio/dataset/settings.h"
#include "studio/dataset/tagger.h"
#include "studio/image.h"
#include "studio/progress.h"

namespace kiln::studio {

class FaceDetector;

struct DatasetImage {
  std::string id;                        // "0001", never reused within the dataset
  std::string source_name;               // the client's name for it (file or layer name)
  std::string original_file;             // relative to the dataset folder: "originals/0001.jpg"
  std::string stored_file;               // the main training image: "10_sks/0001.png"
  std::vector<std::string> extra_files;  // flips and face crops: "10_sks/0001_flip.png"
  std::string caption;                   // tags, trigger first: "sks, speaker, white background"
  int width = 0;                         // of the original
  int height = 0;
  std::string signature;                 // of its subject, for near-duplicates (duplicates.h; dataset.json only)
  std::vector<Finding> findings;         // quality and preparation findings (near-duplicates included by get)
};

struct Dataset {
  std::string name;
  std::filesystem::path folder;          // the kohya train_data_dir
  DatasetSettings settings;
  std::vector<DatasetImage> images;
  std::vector<Finding> findings;         // dataset-level: few images, step estimate
  int training_images = 0;               // image files kohya will see (extras included)
  int64_t estimated_steps = 0;           // images × repeats × epochs / batch, kohya's count
  int keep_tokens = 0;                   // hint for kohya's keep_tokens (1 when the trigger leads every caption)
  std::string created_at;                // ISO 8601, UTC
  std::string updated_at;

  const DatasetImage* find(const std::string& id) const;
};

struct DatasetSummary {
  std::string name;
  Preset preset = Preset::Custom;
  std::string trigger;
  int image_count = 0;
  std::string updated_at;
};

// One picture to import: decoded pixels (from a client's buffer) or a file to read.
struct ImageInput {
  cv::Mat image;                       // grey, BGR or BGRA (OpenCV order); empty: read `file`
  std::filesystem::path file;
  std::string source_name;             // shown to the user; the file name when empty
  std::optional<std::string> caption;  // for files without one, "<stem>.txt" / ".caption" beside them is used

  static ImageInput from_pixels(const PixelView& pixels, ChannelOrder order, std::string source_name,
                                std::optional<std::string> caption = std::nullopt);
  static ImageInput from_file(std::filesystem::path file, std::optional<std::string> caption = std::nullopt);
};

// Inputs for `kiln dataset create --from DIR|FILES...`: a folder contributes its image files
// (.png .jpg .jpeg .webp .bmp .tif .tiff in any letter case, not recursive, sorted by name; hidden
// files and captions skipped); any other path is passed on as it is, so a missing or unreadable
// file is reported by add_images by name rather than dropped.
std::vector<ImageInput> inputs_from_paths(const std::vector<std::filesystem::path>& paths);

struct ImportError {
  std::string source;   // the source name or file
  std::string message;  // why it was not imported
};

struct AddResult {
  std::vector<std::string> added;    // ids, in input order
  std::vector<ImportError> errors;   // inputs that could not be imported; the others were
};

// A small preview of one image (datasets.thumbnails), for a host's gallery.
struct ImagePreview {
  std::string id;
  cv::Mat image;          // BGR, or BGRA for an original with alpha; the longer side at most the size asked
  int source_width = 0;   // of the file it was made from
  int source_height = 0;
};

struct AutoTagResult {
  int tagged = 0;
  std::vector<std::pair<std::string, std::vector<std::string>>> tags;  // id -> tags the tagger found
};

class DatasetStore {
 public:
  // `data_dir` is Kiln's data dir; datasets live in <data_dir>/datasets. `face_cascade` overrides
  // where the face detector's model is looked for (tests, unusual installs).
  explicit DatasetStore(std::filesystem::path data_dir, std::filesystem::path face_cascade = {});
  ~DatasetStore();

  // Throws InvalidName for a bad name, AlreadyExists when taken, InvalidArgument for bad settings.
  // An empty trigger becomes the dataset's name.
  Dataset create(const std::string& name, DatasetSettings settings);
  std::vector<DatasetSummary> list() const;
  // With all findings (near-duplicates and dataset-level ones computed now). NotFound when absent.
  Dataset get(const std::string& name) const;
  void remove(const std::string& name);
  // <data dir>/datasets/<name>: the kohya train_data_dir. Validates the name; NotFound when absent.
  std::filesystem::path folder(const std::string& name) const;

  // Imports, prepares and checks each input. Inputs that fail (corrupt files, unreadable paths)
  // are reported in the result and the rest go on. Progress per image; cancellation between
  // images keeps those already added and throws Error(Cancelled) saying how many.
  AddResult add_images(const std::string& name, const std::vector<ImageInput>& inputs, const Hooks& hooks = {});
  // NotFound naming the first unknown id; nothing is removed then.
  void remove_images(const std::string& name, const std::vector<std::string>& ids);
  // The caption is normalised: trigger first, repeated tags dropped.
  void set_caption(const std::string& name, const std::string& id, const std::string& caption);

  // Prepares every image again from its original, with `settings` when given (the folder and the
  // captions' trigger follow a changed trigger or repeats). On failure or cancellation the
  // previous preparation stays as it was.
  Dataset prepare(const std::string& name, const std::optional<DatasetSettings>& settings = std::nullopt,
                  const Hooks& hooks = {});

  // The edit on the captions of `ids` (all images when empty). Returns the dataset afterwards.
  Dataset edit_tags(const std::string& name, const TagEdit& edit, const std::vector<std::string>& ids = {});
  std::vector<std::pair<std::string, int>> tag_stats(const std::string& name) const;

  // Previews of `ids` (every image when empty) in the dataset's order, the longer side `size` pixels
  // at most (never enlarged): the prepared image training sees, or with original = true the
  // imported original with its alpha. NotFound naming the first unknown id; an image whose file
  // is missing or unreadable gets an empty Mat (the caller says so) and the others go on.
  std::vector<ImagePreview> thumbnails(const std::string& name, const std::vector<std::string>& ids, int size,
                                    bool original = false) const;

  // Tags every image with the tagger installed in `tagger_folder` (Error(NotFound) naming what to
  // install where when there is none). replace = true: caption = trigger + found tags; false: found
  // tags are appended to the existing ones.
  AutoTagResult auto_tag(const std::string& name, const std::filesystem::path& tagger_folder,
                         const TaggerOptions& options = {}, bool replace = false, const Hooks& hooks = {});

 private:
  std::unique_lock<std::mutex> lock(const std::string& name) const;
  const FaceDetector* faces_for(const DatasetSettings& settings) const;

  std::filesystem::path root_;
  std::filesystem::path face_cascade_;
  mutable std::mutex mutex_;  // guards locks_ and faces_
  mutable std::map<std::string, std::shared_ptr<std::mutex>> locks_;
  mutable std::unique_ptr<FaceDetector> faces_;
};

// JSON for clients and dataset.json: every field above (but the signature, which only dataset.json
// keeps), findings as {code, message, action, other?}.
void to_json(nlohmann::json& j, const Finding& f);
void to_json(nlohmann::json& j, const DatasetImage& image);
void to_json(nlohmann::json& j, const Dataset& dataset);
void to_json(nlohmann::json& j, const DatasetSummary& summary);

}  // namespace kiln::studio
