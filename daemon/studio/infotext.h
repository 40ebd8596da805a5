#pragma once
// A1111 "infotext": the generation settings Stable Diffusion web UI stores in a PNG's `parameters`
// text chunk and shows under "PNG Info". Kiln writes the same layout so A1111, ComfyUI, Civitai and
// other readers recover prompt, seed and settings from Kiln's images, and reads it back.
//
//   <prompt, possibly several lines>
//   Negative prompt: <negative prompt>        (only when not empty)
//   Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: abcdef0123, ...
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::studio {

struct GenerationInfo {
  std::string prompt;
  std::string negative_prompt;
  int steps = 20;
  std::string sampler = "Euler a";        // A1111's sampler names
  std::string schedule_type;              // A1111 1.9+ "Schedule type" (e.g. "Karras"); empty: omitted
  double cfg_scale = 7.0;
  int64_t seed = 0;
  int width = 512;
  int height = 512;
  std::string model_hash;                 // A1111 short hash (first 10 hex of SHA-256); empty: omitted
  std::string model;                      // model name; empty: omitted
  std::optional<double> denoising_strength;  // img2img and inpainting only
  int clip_skip = 1;                      // written only when above 1, as A1111 does
  std::string rng = "CPU";                // "RNG": Kiln's initial noise is CPU randn, A1111's "CPU" source;
                                          // empty omits it (A1111's own default, GPU)
  std::optional<double> mask_blur;        // inpainting only (A1111 writes it among the extra parameters)
  // Further parameters in order, after the standard ones: e.g. {"Lora hashes", "name: 0123456789ab"}.
  std::vector<std::pair<std::string, std::string>> extra;
  std::string version;                    // "Version", written last; empty: omitted
};

// The infotext for `info`, exactly in A1111's layout and parameter order. Values holding `,` `:`
// `"`, a line break or other control characters, or surrounding spaces, are JSON-quoted so that
// A1111's parser reads them back unchanged (A1111 itself quotes only `,` `:` and line breaks).
std::string format_infotext(const GenerationInfo& info);

// What A1111's parse_generation_parameters would read from an infotext: prompt lines until a line
// starting with "Negative prompt:", negative prompt lines until the parameters line (the last line,
// when it holds at least three "Key: value" pairs), parameters with JSON-quoted values unquoted.
// Like A1111, every prompt line is trimmed and parameters with an empty value are skipped. Unlike
// A1111, "Size" stays one value ("512x768") rather than "Size-1" / "Size-2", and no defaults
// (Clip skip 1, RNG GPU, ...) are added.
struct Infotext {
  std::string prompt;
  std::string negative_prompt;
  std::vector<std::pair<std::string, std::string>> params;  // in text order

  const std::string* find(std::string_view key) const;  // nullptr when absent
};

Infotext parse_infotext(std::string_view text);

// Typed settings from a parsed infotext; parameters GenerationInfo has no field for go to `extra`.
// Throws Error(BadFormat) naming the parameter when a number or the size is malformed.
GenerationInfo to_generation_info(const Infotext& parsed);

// A value as A1111 formats Python numbers: integral values without ".0" (as they arrive from its
// UI), others in the shortest form that reads back to the same double ("0.75", "7.5").
std::string format_infotext_number(double value);

// One parameter value, JSON-quoted when it must be (see format_infotext).
std::string quote_infotext_value(std::string_view value);

}  // namespace kiln::studio
