#include "studio/dataset/dataset_store.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <ctime>
#include <fstream>
#include <random>

#include <opencv2/imgproc.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "studio/atomic_write.h"
#include "studio/dataset/duplicates.h"
#include "studio/dataset/face_detector.h"
#include "studio/dataset/kohya_folder.h"
#include "studio/dataset/prepare.h"
#include "studio/dataset/signature_store.h"
#include "studio/error.h"
#include "studio/names.h"

namespace kiln::studio {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr const char* kManifest = "dataset.json";
constexpr const char* kOriginals = "originals";
// Caption files kohya-compatible tools read: .txt (most GUIs) and .caption (kohya's default).
constexpr const char* kCaptionExtensions[] = {".txt", ".caption"};

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// What is stored in dataset.json besides the images.
struct Manifest {
  Dataset dataset;
  int next_id = 1;
  std::vector<SimilarPair> similar;  // pairs that look alike, for the near-duplicate check
};

Json manifest_json(const Manifest& m) {
  Json images = Json::array();
  for (const DatasetImage& img : m.dataset.images) {
    Json j = img;
    if (!img.signature.empty()) j["signature"] = img.signature;
    images.push_back(std::move(j));
  }
  return {{"version", 1},
          {"name", m.dataset.name},
          {"created_at", m.dataset.created_at},
          {"updated_at", m.dataset.updated_at},
          {"next_id", m.next_id},
          {"settings", m.dataset.settings},
          {"images", images},
          {"similar", similar_pairs_json(m.similar)}};
}

Manifest read_manifest(const fs::path& folder, const std::string& name) {
  const fs::path file = folder / kManifest;
  std::ifstream in(file);
  if (!in) throw Error(ErrorKind::NotFound, "no dataset named '" + name + "' (create it first)");
  Manifest m;
  try {
    const Json j = Json::parse(in);
    m.dataset.name = j.at("name").get<std::string>();
    m.dataset.created_at = j.value("created_at", "");
    m.dataset.updated_at = j.value("updated_at", "");
    m.next_id = j.value("next_id", 1);
    from_json(j.at("settings"), m.dataset.settings);
    for (const Json& ji : j.at("images")) {
      DatasetImage img;
      img.id = ji.at("id").get<std::string>();
      img.source_name = ji.value("source_name", "");
      img.original_file = ji.value("original_file", "");
      img.stored_file = ji.value("stored_file", "");
      img.extra_files = ji.value("extra_files", std::vector<std::string>{});
      img.caption = ji.value("caption", "");
      img.width = ji.value("width", 0);
      img.height = ji.value("height", 0);
      img.signature = ji.value("signature", "");  // absent in datasets made before it existed (found on the next import)
      for (const Json& jf : ji.value("findings", Json::array()))
        if (jf.value("code", "") != "near_duplicate")  // recomputed by get()
          img.findings.push_back(
              {jf.value("code", ""), jf.value("message", ""), jf.value("action", ""), jf.value("other", "")});
      m.dataset.images.push_back(std::move(img));
    }
    m.similar = similar_pairs_from_json(j.value("similar", Json::array()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::BadFormat, file.string() + " is damaged (" + e.what() +
                                          "); fix or delete the dataset folder and import the images again");
  }
  m.dataset.folder = folder;
  return m;
}

void save_manifest(Manifest& m) {
  m.dataset.updated_at = utc_now();
  write_atomically(m.dataset.folder / kManifest, manifest_json(m).dump(2) + "\n");
}

std::string image_id(int n) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d", n);
  return buf;
}

// Writes the caption beside every training file of `img` (no file for an empty caption: kohya
// refuses empty caption files and falls back to the folder's class tokens).
void write_captions(const fs::path& folder, const DatasetImage& img) {
  std::vector<std::string> files = {img.stored_file};
  files.insert(files.end(), img.extra_files.begin(), img.extra_files.end());
  for (const std::string& f : files) {
    if (f.empty()) continue;
    for (const char* ext : kCaptionExtensions) {
      fs::path caption = folder / f;
      caption.replace_extension(ext);
      if (img.caption.empty()) {
        std::error_code ec;
        fs::remove(caption, ec);
      } else {
        write_atomically(caption, img.caption + "\n");
      }
    }
  }
}

void remove_training_files(const fs::path& folder, const DatasetImage& img) {
  std::vector<std::string> files = {img.stored_file};
  files.insert(files.end(), img.extra_files.begin(), img.extra_files.end());
  std::error_code ec;
  for (const std::string& f : files) {
    if (f.empty()) continue;
    fs::remove(folder / f, ec);
    for (const char* ext : kCaptionExtensions) fs::remove((folder / f).replace_extension(ext), ec);
  }
}

// The caption file beside an imported file, as kohya names it.
std::optional<std::string> sidecar_caption(const fs::path& file) {
  for (const char* ext : kCaptionExtensions) {
    fs::path caption = file;
    caption.replace_extension(ext);
    std::ifstream in(caption);
    std::string line;
    if (in && std::getline(in, line)) return line;
  }
  return std::nullopt;
}

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Prepares `img` from `original` into `out_dir` (relative name `repeat_name`), filling its files
// and its findings: every check is judged on what training will see, so all of them are made
// again whenever the image is prepared again. Returns its signature (not saved yet).
PictureSignature prepare_into(const fs::path& out_dir, const std::string& repeat_name, const cv::Mat& original,
                              const DatasetSettings& settings, const FaceDetector* faces, DatasetImage& img) {
  Preparation prep = prepare_image(original, settings, faces);
  ImageAssessment quality = assess_image(original, prep, settings, img.source_name);
  img.stored_file.clear();
  img.extra_files.clear();
  for (const PreparedImage& out : prep.outputs) {
    const std::string file = img.id + out.suffix + ".png";
    write_png(out_dir / file, out.image);
    const std::string relative = repeat_name + "/" + file;
    if (out.suffix.empty()) {
      img.stored_file = relative;
    } else {
      img.extra_files.push_back(relative);
    }
  }
  img.findings = std::move(quality.findings);
  return std::move(quality.signature);
}

// Every pair of `signatures` compared afresh (after preparation with other settings).
std::vector<SimilarPair> all_similar_pairs(const std::vector<std::pair<std::string, PictureSignature>>& signatures) {
  std::vector<SimilarPair> pairs;
  std::vector<std::pair<std::string, PictureSignature>> known;
  for (const auto& entry : signatures) {
    add_similar_pairs(entry.first, entry.second, known, pairs);
    known.push_back(entry);
  }
  return pairs;
}

void complete(Dataset& d, const std::vector<SimilarPair>& similar) {
  // Near-duplicates are a property of the set: found from the stored pairs whenever it is read.
  std::vector<PictureSignature> facts;
  std::vector<std::string> names, ids;
  std::map<std::string, std::size_t> index;
  for (const DatasetImage& img : d.images) {
    index[img.id] = facts.size();
    facts.push_back(decode_signature(img.signature, {}));  // sizes and sharpness: which copy to keep
    names.push_back(img.source_name);
    ids.push_back(img.id);
  }
  std::vector<std::tuple<std::size_t, std::size_t, double>> pairs;
  for (const SimilarPair& p : similar) {
    const auto a = index.find(p.a), b = index.find(p.b);
    if (a != index.end() && b != index.end()) pairs.emplace_back(a->second, b->second, p.similarity);
  }
  for (auto& [i, finding] : near_duplicate_findings(facts, pairs, names, ids, QualityThresholds{}.min_similarity))
    d.images[i].findings.push_back(std::move(finding));
  d.training_images = 0;
  std::vector<std::string> captions;
  for (const DatasetImage& img : d.images) {
    d.training_images += (img.stored_file.empty() ? 0 : 1) + static_cast<int>(img.extra_files.size());
    captions.push_back(img.caption);
  }
  d.estimated_steps = estimated_steps(d.training_images, d.settings);
  d.findings = check_dataset(static_cast<int>(d.images.size()), d.training_images, d.settings, d.name);
  d.keep_tokens = keep_tokens_hint(captions, d.settings.trigger);
}

// The saved signatures of `m`'s pictures. Pictures imported before signatures were kept (or whose
// file is gone) get theirs now, from their originals, and are compared with the others.
std::vector<std::pair<std::string, PictureSignature>> known_signatures(const fs::path& dir, Manifest& m,
                                                                       const FaceDetector* faces) {
  std::vector<std::pair<std::string, PictureSignature>> known;
  std::vector<DatasetImage*> missing;
  for (DatasetImage& img : m.dataset.images) {
    PictureSignature sig = load_signature(dir, img.id, img.signature);
    if (sig.empty()) missing.push_back(&img);
    else known.emplace_back(img.id, std::move(sig));
  }
  for (DatasetImage* img : missing) {
    try {
      const cv::Mat original = read_image_file(dir / img->original_file);
      const Preparation prep = prepare_image(original, m.dataset.settings, faces);
      const PictureSignature sig = assess_image(original, prep, m.dataset.settings, img->source_name).signature;
      img->signature = save_signature(dir, img->id, sig);
      drop_similar_pairs(m.similar, {img->id});
      add_similar_pairs(img->id, sig, known, m.similar);
      known.emplace_back(img->id, sig);
    } catch (const std::exception& e) {
      spdlog::warn("datasets: no signature for {} in '{}': {}", img->id, m.dataset.name, e.what());
    }
  }
  return known;
}

DatasetImage& find_image(Dataset& d, const std::string& id) {
  for (DatasetImage& img : d.images)
    if (img.id == id) return img;
  throw Error(ErrorKind::NotFound, "dataset '" + d.name + "' has no image with id '" + printable(id) + "'");
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() & 0xFFFFFFFFu);
}

}  // namespace

const DatasetImage* Dataset::find(const std::string& id) const {
  for (const DatasetImage& img : images)
    if (img.id == id) return &img;
  return nullptr;
}

ImageInput ImageInput::from_pixels(const PixelView& pixels, ChannelOrder order, std::string source_name,
                                   std::optional<std::string> caption) {
  ImageInput in;
  in.image = mat_from_pixels(pixels, order);
  in.source_name = std::move(source_name);
  in.caption = std::move(caption);
  return in;
}

ImageInput ImageInput::from_file(fs::path file, std::optional<std::string> caption) {
  ImageInput in;
  in.source_name = file.filename().string();
  in.file = std::move(file);
  in.caption = std::move(caption);
  return in;
}

std::vector<ImageInput> inputs_from_paths(const std::vector<fs::path>& paths) {
  static const char* const kImageExtensions[] = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"};
  std::vector<ImageInput> out;
  for (const fs::path& p : paths) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) {
      out.push_back(ImageInput::from_file(p));
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(p, ec)) {
      const std::string name = entry.path().filename().string();
      const std::string ext = lower_extension(entry.path());
      if (!name.empty() && name.front() != '.' && entry.is_regular_file(ec) &&
          std::find(std::begin(kImageExtensions), std::end(kImageExtensions), ext) != std::end(kImageExtensions))
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) out.push_back(ImageInput::from_file(f));
  }
  return out;
}

DatasetStore::DatasetStore(fs::path data_dir, fs::path face_cascade)
    : root_(std::move(data_dir) / "datasets"), face_cascade_(std::move(face_cascade)) {}

DatasetStore::~DatasetStore() = default;

std::unique_lock<std::mutex> DatasetStore::lock(const std::string& name) const {
  std::shared_ptr<std::mutex> m;
  {
    std::lock_guard guard(mutex_);
    auto& slot = locks_[name];
    if (!slot) slot = std::make_shared<std::mutex>();
    m = slot;
  }
  // The map keeps the mutex alive for the store's lifetime; names are few.
  return std::unique_lock<std::mutex>(*m);
}

const FaceDetector* DatasetStore::faces_for(const DatasetSettings& s) const {
  if (s.crop != CropMode::Face && !s.face_enhance) return nullptr;
  std::lock_guard guard(mutex_);
  if (!faces_) faces_ = std::make_unique<FaceDetector>(face_cascade_);  // throws NotFound naming opencv-data
  return faces_.get();
}

fs::path DatasetStore::folder(const std::string& name) const {
  validate_library_name(name, "dataset name");
  const fs::path dir = safe_join(root_, name);
  if (!fs::is_regular_file(dir / kManifest)) throw Error(ErrorKind::NotFound, "no dataset named '" + name + "'");
  return dir;
}

Dataset DatasetStore::create(const std::string& name, DatasetSettings settings) {
  validate_library_name(name, "dataset name");
  if (settings.trigger.empty()) settings.trigger = name;
  validate_settings(settings);
  {
  auto guard = lock(name);
  fs::create_directories(root_);
  const fs::path dir = safe_join(root_, name);
  if (fs::exists(dir))
    throw Error(ErrorKind::AlreadyExists, "a dataset named '" + name + "' already exists; choose another name or "
                                                                      "add images to it");
  // Built in a hidden folder and renamed into place, so a half-created dataset is never listed.
  const fs::path staging = root_ / (".creating-" + random_suffix());
  fs::create_directories(staging / kOriginals);
  fs::create_directories(staging / repeat_folder_name(settings));
  Manifest m;
  m.dataset.name = name;
  m.dataset.folder = staging;
  m.dataset.settings = settings;
  m.dataset.created_at = utc_now();
  save_manifest(m);
  std::error_code ec;
  fs::rename(staging, dir, ec);
  if (ec) {
    fs::remove_all(staging, ec);
    throw Error(ErrorKind::AlreadyExists, "cannot create dataset '" + name + "': " + ec.message());
  }
  }
  return get(name);
}

std::vector<DatasetSummary> DatasetStore::list() const {
  std::vector<DatasetSummary> out;
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory(ec) || !is_valid_library_name(name)) continue;  // staging and foreign folders
    try {
      const Manifest m = read_manifest(entry.path(), name);
      out.push_back({name, m.dataset.settings.preset, m.dataset.settings.trigger,
                     static_cast<int>(m.dataset.images.size()), m.dataset.updated_at});
    } catch (const Error& e) {
      spdlog::warn("datasets: skipping {}: {}", entry.path().string(), e.what());
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Dataset DatasetStore::get(const std::string& name) const {
  const fs::path dir = folder(name);
  auto guard = lock(name);
  Manifest m = read_manifest(dir, name);
  complete(m.dataset, m.similar);
  return std::move(m.dataset);
}

void DatasetStore::remove(const std::string& name) {
  const fs::path dir = folder(name);
  auto guard = lock(name);
  // Renamed first, so the dataset disappears at once even if deleting many files takes a while.
  const fs::path doomed = root_ / (".removing-" + random_suffix());
  fs::rename(dir, doomed);
  std::error_code ec;
  fs::remove_all(doomed, ec);
  if (ec) spdlog::warn("datasets: could not delete all of {}: {}", doomed.string(), ec.message());
}

AddResult DatasetStore::add_images(const std::string& name, const std::vector<ImageInput>& inputs, const Hooks& hooks) {
  const fs::path dir = folder(name);
  auto guard = lock(name);
  Manifest m = read_manifest(dir, name);
  const DatasetSettings& s = m.dataset.settings;
  const FaceDetector* faces = faces_for(s);
  const std::string repeat_name = repeat_folder_name(s);
  fs::create_directories(dir / repeat_name);
  fs::create_directories(dir / kOriginals);

  // The pictures already here, for each new one to be compared with.
  std::vector<std::pair<std::string, PictureSignature>> known = known_signatures(dir, m, faces);

  AddResult result;
  const int total = static_cast<int>(inputs.size());
  for (int i = 0; i < total; ++i) {
    const ImageInput& input = inputs[i];
    const std::string source = !input.source_name.empty() ? input.source_name
                               : !input.file.empty()      ? input.file.filename().string()
                                                          : "image " + std::to_string(i + 1);
    if (hooks.cancelled && hooks.cancelled()) {
      save_manifest(m);
      throw Error(ErrorKind::Cancelled, "import cancelled after " + std::to_string(result.added.size()) + " of " +
                                            std::to_string(total) + " images; those stay in dataset '" + name + "'");
    }
    hooks.report(i, total, "adding " + source);
    DatasetImage img;
    img.id = image_id(m.next_id);
    try {
      cv::Mat original;
      std::string original_file;
      std::optional<std::string> caption = input.caption;
      if (input.image.empty()) {
        if (input.file.empty()) throw Error(ErrorKind::InvalidArgument, "no pixels and no file given");
        const std::string bytes = read_file_bytes(input.file);
        original = decode_image(bytes, input.file.string());
        // The untouched file, byte for byte, under a name Kiln chose.
        std::string ext = lower_extension(input.file);
        if (ext.empty() || ext.size() > 6) ext = ".img";
        original_file = std::string(kOriginals) + "/" + img.id + ext;
        write_atomically(dir / original_file, bytes);
        if (!caption) caption = sidecar_caption(input.file);
      } else {
        if (input.image.depth() != CV_8U || (input.image.channels() != 1 && input.image.channels() != 3 &&
                                             input.image.channels() != 4))
          throw Error(ErrorKind::Unsupported, "only 8-bit grey, BGR or BGRA images can be added");
        original = input.image;
        original_file = std::string(kOriginals) + "/" + img.id + ".png";
        write_png(dir / original_file, original);
      }
      img.source_name = source;
      img.original_file = original_file;
      img.width = original.cols;
      img.height = original.rows;
      img.caption = normalize_caption(caption.value_or(""), s.trigger);
      const PictureSignature signature = prepare_into(dir / repeat_name, repeat_name, original, s, faces, img);
      write_captions(dir, img);
      img.signature = save_signature(dir, img.id, signature);
      add_similar_pairs(img.id, signature, known, m.similar);
      known.emplace_back(img.id, signature);
    } catch (const Error& e) {
      result.errors.push_back({source, e.what()});
      std::error_code ec;
      if (!img.original_file.empty()) fs::remove(dir / img.original_file, ec);
      remove_training_files(dir, img);
      remove_signature(dir, img.id);
      continue;
    } catch (const cv::Exception& e) {
      result.errors.push_back({source, "OpenCV could not process it: " + e.err});
      continue;
    }
    ++m.next_id;
    result.added.push_back(img.id);
    m.dataset.images.push_back(std::move(img));
    save_manifest(m);  // after each image: a crash loses at most the one in progress
  }
  hooks.report(total, total, "added " + std::to_string(result.added.size()) + " of " + std::to_string(total) + " images");
  if (total == 0) save_manifest(m);
  return result;
}

void DatasetStore::remove_images(const std::string& name, const std::vector<std::string>& ids) {
  const fs::path dir = folder(name);
  auto guard = lock(name);
  Manifest m = read_manifest(dir, name);
  for (const std::string& id : ids) find_image(m.dataset, id);  // all known, or nothing happens
  for (const std::string& id : ids) {
    auto it = std::find_if(m.dataset.images.begin(), m.dataset.images.end(),
                           [&](const DatasetImage& img) { return img.id == id; });
    if (it == m.dataset.images.end()) continue;  // listed twice
    remove_training_files(dir, *it);
    remove_signature(dir, it->id);
    std::error_code ec;
    if (!it->original_file.empty()) fs::remove(dir / it->original_file, ec);
    m.dataset.images.erase(it);
  }
  drop_similar_pairs(m.similar, ids);
  save_manifest(m);
}

void DatasetStore::set_caption(const std::string& name, const std::string& id, const std::string& caption) {
  const fs::path dir = folder(name);
  auto guard = lock(name);
  Manifest m = read_manifest(dir, name);
  DatasetImage& img = find_image(m.dataset, id);
  img.caption = normalize_caption(caption, m.dataset.settings.trigger);
  write_captions(dir, img);
  save_manifest(m);
}

Dataset DatasetStore::prepare(const std::string& name, const std::optional<DatasetSettings>& settings,
                              const Hooks& hooks) {
  const fs::path dir = folder(name);
  {
    auto guard = lock(name);
    Manifest m = read_manifest(dir, name);
    const DatasetSettings old = m.dataset.settings;
    DatasetSettings s = settings.value_or(old);
    if (s.trigger.empty()) s.trigger = old.trigger;
    validate_settings(s);
    const FaceDetector* faces = faces_for(s);
    const std::string old_repeat = repeat_folder_name(old), new_repeat = repeat_folder_name(s);

    // Everything is written to a hidden folder first and swapped in at the end.
    const fs::path staging = dir / (".preparing-" + random_suffix());
    fs::create_directories(staging);
    std::vector<DatasetImage> images = m.dataset.images;
    const int total = static_cast<int>(images.size());
    std::vector<std::pair<std::string, PictureSignature>> signatures;
    try {
      for (int i = 0; i < total; ++i) {
        DatasetImage& img = images[i];
        hooks.check("preparing dataset '" + name + "'");
        hooks.report(i, total, "preparing " + img.source_name);
        const cv::Mat original = read_image_file(dir / img.original_file);
        if (old.trigger != s.trigger) {
          // The old trigger leaves the captions; the new one leads them.
          std::vector<std::string> tags = split_tags(img.caption);
          tags.erase(std::remove_if(tags.begin(), tags.end(), [&](const std::string& t) { return same_tag(t, old.trigger); }),
                     tags.end());
          img.caption = join_tags(tags);
        }
        img.caption = normalize_caption(img.caption, s.trigger);
        signatures.emplace_back(img.id, prepare_into(staging, new_repeat, original, s, faces, img));
      }
      // Signatures follow the settings (the training scale, the background of layers): every
      // pair is compared again.
      hooks.report(total, total, "comparing the pictures with each other");
      m.similar = all_similar_pairs(signatures);
    } catch (...) {
      std::error_code ec;
      fs::remove_all(staging, ec);
      throw;
    }
    // Swap: the old training folder goes, the new one takes its name.
    std::error_code ec;
    const fs::path retired = dir / (".retired-" + random_suffix());
    if (fs::exists(dir / old_repeat)) fs::rename(dir / old_repeat, retired);
    fs::rename(staging, dir / new_repeat);
    fs::remove_all(retired, ec);
    m.dataset.settings = s;
    for (std::size_t i = 0; i < images.size(); ++i) images[i].signature = save_signature(dir, images[i].id, signatures[i].second);
    m.dataset.images = std::move(images);
    for (const DatasetImage& img : m.dataset.images) write_captions(dir, img);
    save_manifest(m);
    hooks.report(total, total, "prepared " + std::to_string(total) + " images");
  }
  return get(name);
}

Dataset DatasetStore::edit_tags(const std::string& name, const TagEdit& edit, const std::vector<std::string>& ids) {
  const fs::path dir = folder(name);
  {
    auto guard = lock(name);
    Manifest m = read_manifest(dir, name);
    validate_tag_edit(edit, m.dataset.settings.trigger);
    for (const std::string& id : ids) find_image(m.dataset, id);
    for (DatasetImage& img : m.dataset.images) {
      if (!ids.empty() && std::find(ids.begin(), ids.end(), img.id) == ids.end()) continue;
      img.caption = apply_tag_edit(img.caption, edit, m.dataset.settings.trigger);
      write_captions(dir, img);
    }
    save_manifest(m);
  }
  return get(name);
}

std::vector<std::pair<std::string, int>> DatasetStore::tag_stats(const std::string& name) const {
  const Dataset d = get(name);
  std::vector<std::string> captions;
  for (const DatasetImage& img : d.images) captions.push_back(img.caption);
  return tag_frequency(captions);
}

std::vector<ImagePreview> DatasetStore::thumbnails(const std::string& name, const std::vector<std::string>& ids, int size,
                                                bool original) const {
  if (size < 1) throw Error(ErrorKind::InvalidArgument, "a thumbnail needs a size of at least 1 pixel");
  std::vector<std::pair<std::string, fs::path>> files;
  {
    const fs::path dir = folder(name);
    auto guard = lock(name);
    Manifest m = read_manifest(dir, name);
    for (const std::string& id : ids) find_image(m.dataset, id);  // NotFound for an unknown id
    for (const DatasetImage& img : m.dataset.images)
      if (ids.empty() || std::find(ids.begin(), ids.end(), img.id) != ids.end())
        files.emplace_back(img.id, dir / (original ? img.original_file : img.stored_file));
  }
  // Decoding happens outside the dataset's lock: edits need not wait for a gallery.
  std::vector<ImagePreview> out;
  for (const auto& [id, file] : files) {
    ImagePreview t;
    t.id = id;
    try {
      cv::Mat image = read_image_file(file);
      t.source_width = image.cols;
      t.source_height = image.rows;
      if (image.channels() == 1) cv::cvtColor(image, image, cv::COLOR_GRAY2BGR);
      const double scale = double(size) / std::max(image.cols, image.rows);
      if (scale < 1.0)
        cv::resize(image, image, cv::Size(std::max(1, int(std::lround(image.cols * scale))), std::max(1, int(std::lround(image.rows * scale)))),
                   0, 0, cv::INTER_AREA);
      t.image = image;
    } catch (const std::exception& e) {
      spdlog::warn("datasets: no thumbnail of {} in '{}': {}", id, name, e.what());
    }
    out.push_back(std::move(t));
  }
  return out;
}

AutoTagResult DatasetStore::auto_tag(const std::string& name, const fs::path& tagger_folder,
                                     const TaggerOptions& options, bool replace, const Hooks& hooks) {
  const fs::path dir = folder(name);
  const Tagger tagger(tagger_folder);  // NotFound with what to install where
  auto guard = lock(name);
  Manifest m = read_manifest(dir, name);
  AutoTagResult result;
  const int total = static_cast<int>(m.dataset.images.size());
  for (int i = 0; i < total; ++i) {
    DatasetImage& img = m.dataset.images[i];
    if (hooks.cancelled && hooks.cancelled()) {
      save_manifest(m);
      throw Error(ErrorKind::Cancelled, "auto-tagging cancelled after " + std::to_string(i) + " of " +
                                            std::to_string(total) + " images; their new tags are kept");
    }
    hooks.report(i, total, "tagging " + img.source_name);
    std::vector<std::string> found;
    for (const auto& [tag, p] : tagger.tag(read_image_file(dir / img.original_file), options)) found.push_back(tag);
    std::vector<std::string> tags = replace ? std::vector<std::string>{} : split_tags(img.caption);
    tags.insert(tags.end(), found.begin(), found.end());
    img.caption = join_tags(normalize_tags(std::move(tags), m.dataset.settings.trigger));
    write_captions(dir, img);
    result.tags.emplace_back(img.id, std::move(found));
    ++result.tagged;
  }
  save_manifest(m);
  hooks.report(total, total, "tagged " + std::to_string(total) + " images");
  return result;
}

void to_json(Json& j, const Finding& f) {
  j = {{"code", f.code}, {"message", f.message}, {"action", f.action}};
  if (!f.other.empty()) j["other"] = f.other;
}

void to_json(Json& j, const DatasetImage& img) {
  j = {{"id", img.id},
       {"source_name", img.source_name},
       {"original_file", img.original_file},
       {"stored_file", img.stored_file},
       {"extra_files", img.extra_files},
       {"caption", img.caption},
       {"width", img.width},
       {"height", img.height},
       {"findings", img.findings}};
}

void to_json(Json& j, const Dataset& d) {
  j = {{"name", d.name},
       {"folder", d.folder.string()},
       {"settings", d.settings},
       {"images", d.images},
       {"findings", d.findings},
       {"training_images", d.training_images},
       {"estimated_steps", d.estimated_steps},
       {"keep_tokens", d.keep_tokens},
       {"created_at", d.created_at},
       {"updated_at", d.updated_at}};
}

void to_json(Json& j, const DatasetSummary& s) {
  j = {{"name", s.name},
       {"preset", to_string(s.preset)},
       {"trigger", s.trigger},
       {"image_count", s.image_count},
       {"updated_at", s.updated_at}};
}

}  // namespace kiln::studio
