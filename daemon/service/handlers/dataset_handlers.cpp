// datasets.*: the dataset library (studio/dataset/dataset_store.h). Quick edits answer at once;
// importing, preparing and auto-tagging are jobs (service/jobs/dataset_jobs.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include <opencv2/imgproc.hpp>

#include "ipc/shm_image.h"
#include "protocol/image_ref.h"
#include "protocol/methods.h"
#include "service/errors.h"
#include "service/images/image_leases.h"
#include "service/jobs/dataset_jobs.h"
#include "service/jobs/scheduler.h"
#include "service/server/session.h"
#include "studio/dataset/dataset_store.h"
#include "studio/names.h"

namespace kiln::service {

using Json = nlohmann::json;
using protocol::ErrorCode;

namespace {

[[noreturn]] void invalid(const std::string& message) { throw ServiceError(ErrorCode::InvalidParams, message); }

std::string name_of(const Call& call) { return call.params.at("name").get<std::string>(); }

// A tag or a list of tags.
std::vector<std::string> tags_param(const Json& params, const char* method, const char* key) {
  std::vector<std::string> out;
  if (!params.contains(key)) return out;
  const Json& v = params.at(key);
  if (v.is_string()) return {v.get<std::string>()};
  if (v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& t) { return t.is_string(); }))
    return v.get<std::vector<std::string>>();
  invalid(std::string(method) + ": '" + key + "' must be a tag or a list of tags (strings)");
}

std::vector<std::string> ids_param(const Json& params, const char* method) {
  if (!params.contains("ids")) return {};
  const Json& v = params.at("ids");
  if (!std::all_of(v.begin(), v.end(), [](const Json& t) { return t.is_string(); }))
    invalid(std::string(method) + ": 'ids' must be a list of image ids (strings such as \"0001\")");
  return v.get<std::vector<std::string>>();
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// "OLD=NEW", {"old": O, "new": N}, or a list of those.
std::vector<std::pair<std::string, std::string>> replace_param(const Json& params) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!params.contains("replace")) return out;
  const auto bad = [] {
    invalid("datasets.tags: 'replace' must be \"OLD=NEW\", {\"old\": \"OLD\", \"new\": \"NEW\"} or a list of those");
  };
  const auto one = [&](const Json& r) {
    std::string from, to;
    if (r.is_string()) {
      const std::string s = r.get<std::string>();
      const auto eq = s.find('=');
      if (eq == std::string::npos) bad();
      from = trim(s.substr(0, eq));
      to = trim(s.substr(eq + 1));
    } else if (r.is_object() && r.size() == 2 && r.contains("old") && r.contains("new") && r.at("old").is_string() &&
               r.at("new").is_string()) {
      from = trim(r.at("old").get<std::string>());
      to = trim(r.at("new").get<std::string>());
    } else {
      bad();
    }
    if (from.empty() || to.empty()) invalid("datasets.tags: 'replace' needs a tag on both sides of OLD=NEW");
    out.emplace_back(from, to);
  };
  const Json& v = params.at("replace");
  if (v.is_array()) {
    for (const Json& r : v) one(r);
  } else {
    one(v);
  }
  return out;
}

uint8_t to_u8(const uint8_t* sample, protocol::PixelType type) {
  switch (type) {
    case protocol::PixelType::U8: return *sample;
    case protocol::PixelType::U16: {
      uint16_t v;
      std::memcpy(&v, sample, 2);
      return static_cast<uint8_t>((v + 128) / 257);
    }
    case protocol::PixelType::F32: {
      float v;
      std::memcpy(&v, sample, 4);
      if (!(v > 0)) return 0;  // also NaN
      return static_cast<uint8_t>(std::lround(std::min(v, 1.0f) * 255.0f));
    }
  }
  return 0;
}

// One entry of datasets.add_images' "images": its pixels copied out of the client's block now,
// as 8-bit straight alpha, so the client may drop the block as soon as the job is queued.
studio::ImageInput copy_input(const Json& entry, std::size_t index) {
  const std::string where = "datasets.add_images: images[" + std::to_string(index) + "]";
  if (!entry.is_object() || !entry.contains("image"))
    invalid(where + " must be {\"image\": image reference, \"name\"?: string, \"caption\"?: string}");
  for (auto it = entry.begin(); it != entry.end(); ++it) {
    if (it.key() != "image" && it.key() != "name" && it.key() != "caption")
      invalid(where + ": unknown key '" + it.key() + "' (it takes image, name, caption)");
    if (it.key() != "image" && !it.value().is_string()) invalid(where + ": '" + it.key() + "' must be a string");
  }
  if (auto problem = protocol::check_image_ref(entry.at("image"))) invalid(where + ".image: " + *problem);
  std::optional<ipc::ShmImage> block;
  try {
    block.emplace(ipc::ShmImage::open(protocol::image_ref_from_json(entry.at("image"))));
  } catch (const ipc::ImageError& e) {
    throw ServiceError(ErrorCode::ImageError, where + ": " + e.what());
  }
  const ipc::ShmImage& image = *block;  // read-only mapping: the const accessors
  const protocol::ImageDesc& d = image.desc();
  if (d.channels != 1 && d.channels != 3 && d.channels != 4)
    invalid(where + ": images must have 1 (grey), 3 (RGB) or 4 (RGBA) channels, not " + std::to_string(d.channels));
  const std::string name = entry.value("name", "");
  std::optional<std::string> caption;
  if (entry.contains("caption")) caption = entry.at("caption").get<std::string>();

  const uint8_t* data = image.data();
  std::size_t stride = d.stride;
  std::vector<uint8_t> converted;
  const bool unpremultiply = d.premultiplied && d.channels == 4;
  if (d.dtype != protocol::PixelType::U8 || unpremultiply) {
    const std::size_t c = d.channels, bytes = protocol::bytes_per_sample(d.dtype);
    converted.resize(std::size_t(d.width) * d.height * c);
    for (uint32_t y = 0; y < d.height; ++y) {
      const uint8_t* row = image.row(y);
      uint8_t* out = converted.data() + std::size_t(y) * d.width * c;
      for (std::size_t i = 0; i < d.width * c; ++i) out[i] = to_u8(row + i * bytes, d.dtype);
      if (unpremultiply)
        for (std::size_t x = 0; x < d.width; ++x) {
          uint8_t* px = out + 4 * x;
          for (int k = 0; k < 3; ++k) px[k] = px[3] ? static_cast<uint8_t>(std::min(255, (px[k] * 255 + px[3] / 2) / px[3])) : 0;
        }
    }
    data = converted.data();
    stride = std::size_t(d.width) * c;
  }
  const studio::PixelView view{data, static_cast<int>(d.width), static_cast<int>(d.height), static_cast<int>(d.channels), stride};
  return studio::ImageInput::from_pixels(view, studio::ChannelOrder::RGB, name, caption);
}

Json create(Call& call) {
  const auto settings = dataset_settings_from_params(call.params, studio::DatasetSettings{});
  return call.services.datasets.create(name_of(call), settings.value_or(studio::DatasetSettings{}));
}

Json list(Call& call) {
  Json datasets = Json::array();
  for (const studio::DatasetSummary& s : call.services.datasets.list()) datasets.push_back(s);
  return {{"datasets", datasets}};
}

Json get(Call& call) { return call.services.datasets.get(name_of(call)); }

Json remove(Call& call) {
  const std::string name = name_of(call);
  call.services.datasets.remove(name);
  return {{"removed", name}};
}

Json add_images(Call& call) {
  Json params = call.params;
  DatasetImportInputs inputs;
  if (params.contains("images")) {
    const Json& images = params.at("images");
    for (std::size_t i = 0; i < images.size(); ++i) inputs.images.push_back(copy_input(images[i], i));
    // The job record keeps what the request said about its images, not the pixels or block names.
    Json described = Json::array();
    for (const Json& e : images) {
      Json d = {{"width", e.at("image").at("width")}, {"height", e.at("image").at("height")}};
      for (const char* key : {"name", "caption"})
        if (e.contains(key)) d[key] = e.at(key);
      described.push_back(std::move(d));
    }
    params["images"] = std::move(described);
  }
  return to_json(call.services.scheduler.submit("datasets.add_images", params, call.session.client_name(), std::nullopt,
                                                std::move(inputs)));
}

Json remove_images(Call& call) {
  const std::vector<std::string> ids = ids_param(call.params, "datasets.remove_images");
  if (ids.empty()) invalid("datasets.remove_images: 'ids' is empty; name the images to remove");
  const std::string name = name_of(call);
  call.services.datasets.remove_images(name, ids);
  return call.services.datasets.get(name);
}

Json set_caption(Call& call) {
  const std::string name = name_of(call), id = call.params.at("id");
  call.services.datasets.set_caption(name, id, call.params.at("caption").get<std::string>());
  const studio::Dataset d = call.services.datasets.get(name);
  return *d.find(id);  // set_caption threw NotFound for an unknown id
}

Json tags(Call& call) {
  studio::TagEdit edit;
  edit.replace = replace_param(call.params);
  edit.remove = tags_param(call.params, "datasets.tags", "remove");
  edit.add = tags_param(call.params, "datasets.tags", "add");
  edit.move_to_end = tags_param(call.params, "datasets.tags", "move_to_end");
  // Every edit drops repeated tags and puts the trigger first; dedupe alone does only that.
  if (edit.empty() && !call.params.value("dedupe", false))
    invalid("datasets.tags: nothing to do; give add, remove, replace, move_to_end or dedupe");
  return call.services.datasets.edit_tags(name_of(call), edit, ids_param(call.params, "datasets.tags"));
}

Json tag_stats(Call& call) {
  const std::string name = name_of(call);
  const studio::Dataset d = call.services.datasets.get(name);
  Json tags = Json::array();
  for (const auto& [tag, count] : call.services.datasets.tag_stats(name)) tags.push_back({{"tag", tag}, {"count", count}});
  return {{"dataset", name}, {"images", d.images.size()}, {"trigger", d.settings.trigger}, {"tags", tags}};
}

// Gallery previews: one shared-memory block per image, handed to the session (the client takes it).
Json thumbnails(Call& call) {
  const std::string name = name_of(call);
  const int64_t size = call.params.value("size", int64_t{128});
  if (size < 16 || size > 512) invalid("datasets.thumbnails: 'size' must be between 16 and 512 pixels");
  const std::string source = call.params.value("source", "training");
  if (source != "training" && source != "original")
    invalid("datasets.thumbnails: 'source' must be \"training\" (the prepared images) or \"original\"");
  const auto previews = call.services.datasets.thumbnails(name, ids_param(call.params, "datasets.thumbnails"),
                                                          static_cast<int>(size), source == "original");
  Json images = Json::array();
  for (const studio::ImagePreview& t : previews) {
    Json entry{{"id", t.id}, {"source_width", t.source_width}, {"source_height", t.source_height}};
    if (t.image.empty()) {
      entry["image"] = nullptr;
      entry["error"] = "its image file is missing or unreadable; prepare the dataset again or remove the image";
      images.push_back(std::move(entry));
      continue;
    }
    cv::Mat rgb;
    cv::cvtColor(t.image, rgb, t.image.channels() == 4 ? cv::COLOR_BGRA2RGBA : cv::COLOR_BGR2RGB);
    protocol::ImageDesc d;
    d.width = static_cast<uint32_t>(rgb.cols);
    d.height = static_cast<uint32_t>(rgb.rows);
    d.channels = static_cast<uint32_t>(rgb.channels());
    ipc::ShmImage block = ipc::ShmImage::create(d);
    for (int y = 0; y < rgb.rows; ++y) std::memcpy(block.row(static_cast<uint32_t>(y)), rgb.ptr(y), d.min_stride());
    entry["image"] = protocol::to_json(call.services.leases.hand_to_session(call.session.id(), std::move(block)));
    images.push_back(std::move(entry));
  }
  return {{"dataset", name}, {"source", source}, {"images", images}};
}

Json prepare(Call& call) {
  return to_json(call.services.scheduler.submit("datasets.prepare", call.params, call.session.client_name()));
}

Json auto_tag(Call& call) {
  return to_json(call.services.scheduler.submit("datasets.auto_tag", call.params, call.session.client_name()));
}

}  // namespace

void register_dataset_handlers(Dispatcher& d) {
  d.add(protocol::method::kDatasetsCreate, create);
  d.add(protocol::method::kDatasetsList, list);
  d.add(protocol::method::kDatasetsGet, get);
  d.add(protocol::method::kDatasetsRemove, remove);
  d.add(protocol::method::kDatasetsAddImages, add_images);
  d.add(protocol::method::kDatasetsRemoveImages, remove_images);
  d.add(protocol::method::kDatasetsSetCaption, set_caption);
  d.add(protocol::method::kDatasetsTags, tags);
  d.add(protocol::method::kDatasetsTagStats, tag_stats);
  d.add(protocol::method::kDatasetsPrepare, prepare);
  d.add(protocol::method::kDatasetsAutoTag, auto_tag);
  d.add(protocol::method::kDatasetsThumbnails, thumbnails);
}

}  // namespace kiln::service
