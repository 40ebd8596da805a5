#include "studio/dataset/signature_store.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "studio/atomic_write.h"

namespace kiln::studio {
namespace fs = std::filesystem;

namespace {

fs::path signature_path(const fs::path& folder, const std::string& id) {
  return folder / kSignatureFolder / (id + ".png");
}

}  // namespace

std::string save_signature(const fs::path& folder, const std::string& id, const PictureSignature& signature) {
  const std::vector<unsigned char> png = encode_thumbnails(signature);
  if (png.empty()) {
    remove_signature(folder, id);
    return "";
  }
  fs::create_directories(folder / kSignatureFolder);
  write_atomically(signature_path(folder, id), std::string(png.begin(), png.end()));
  return encode_facts(signature);
}

PictureSignature load_signature(const fs::path& folder, const std::string& id, const std::string& facts) {
  if (facts.empty()) return {};
  std::ifstream in(signature_path(folder, id), std::ios::binary);
  if (!in) return {};
  const std::vector<unsigned char> png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return decode_signature(facts, png);
}

void remove_signature(const fs::path& folder, const std::string& id) {
  std::error_code ec;
  fs::remove(signature_path(folder, id), ec);
}

void add_similar_pairs(const std::string& id, const PictureSignature& signature,
                       const std::vector<std::pair<std::string, PictureSignature>>& known,
                       std::vector<SimilarPair>& pairs) {
  if (signature.empty()) return;
  for (const auto& [other, sig] : known) {
    if (other == id || sig.empty()) continue;
    const double s = picture_similarity(sig, signature);
    // Three decimals: the file stays readable and the limit is given with two.
    if (s >= kKeptSimilarity) pairs.push_back({other, id, std::round(s * 1000) / 1000});
  }
}

void drop_similar_pairs(std::vector<SimilarPair>& pairs, const std::vector<std::string>& ids) {
  const auto gone = [&](const std::string& id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); };
  pairs.erase(std::remove_if(pairs.begin(), pairs.end(), [&](const SimilarPair& p) { return gone(p.a) || gone(p.b); }),
              pairs.end());
}

nlohmann::json similar_pairs_json(const std::vector<SimilarPair>& pairs) {
  nlohmann::json out = nlohmann::json::array();
  for (const SimilarPair& p : pairs) out.push_back({p.a, p.b, p.similarity});
  return out;
}

std::vector<SimilarPair> similar_pairs_from_json(const nlohmann::json& j) {
  std::vector<SimilarPair> out;
  if (!j.is_array()) return out;
  for (const nlohmann::json& e : j)
    if (e.is_array() && e.size() == 3 && e[0].is_string() && e[1].is_string() && e[2].is_number())
      out.push_back({e[0].get<std::string>(), e[1].get<std::string>(), e[2].get<double>()});
  return out;
}

}  // namespace kiln::studio
