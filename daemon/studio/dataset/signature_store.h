#pragma once
// Where a dataset keeps what its near-duplicates are found from: each picture's signature
// (duplicates.h) as <dataset>/signatures/<id>.png beside the facts in dataset.json, and the
// similarities of its pairs that could matter (at least kKeptSimilarity), found when pictures are
// added or prepared, so reading a dataset needs no image work.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "studio/dataset/duplicates.h"

namespace kiln::studio {

inline constexpr const char* kSignatureFolder = "signatures";

struct SimilarPair {
  std::string a, b;  // image ids
  double similarity = 0;
};

// Writes `signature`'s thumbnails as <folder>/signatures/<id>.png (atomically); returns its facts
// for dataset.json.
std::string save_signature(const std::filesystem::path& folder, const std::string& id, const PictureSignature& signature);
// The signature saved for `id` with `facts`; empty when either is missing or damaged.
PictureSignature load_signature(const std::filesystem::path& folder, const std::string& id, const std::string& facts);
void remove_signature(const std::filesystem::path& folder, const std::string& id);

// Compares `signature` (of image `id`) with each of `known` and keeps the pairs worth keeping.
void add_similar_pairs(const std::string& id, const PictureSignature& signature,
                       const std::vector<std::pair<std::string, PictureSignature>>& known,
                       std::vector<SimilarPair>& pairs);
// Drops every pair with one of `ids` in it.
void drop_similar_pairs(std::vector<SimilarPair>& pairs, const std::vector<std::string>& ids);

// dataset.json's "similar": [[a, b, similarity], ...]. Malformed entries are skipped.
nlohmann::json similar_pairs_json(const std::vector<SimilarPair>& pairs);
std::vector<SimilarPair> similar_pairs_from_json(const nlohmann::json& j);

}  // namespace kiln::studio
