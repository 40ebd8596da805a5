#pragma once
// One thing a user should know about an image or a dataset. Findings are warnings: images are
// never dropped, the user decides.
#include <string>
#include <utility>

namespace kiln::studio {

struct Finding {
  std::string code;     // stable identifier: too_small, blurry, near_duplicate, extreme_aspect, transparent,
                        // flat, upscaled, no_face, no_subject, few_images, steps; clients may translate by it
  std::string message;  // what is wrong, naming the image and giving the numbers measured and the limit
  std::string action;   // what to do about it, in one sentence
  std::string other;    // near_duplicate: the id of the image this one repeats (the one to keep)

  Finding() = default;
  Finding(std::string code_, std::string message_, std::string action_ = {}, std::string other_ = {})
      : code(std::move(code_)), message(std::move(message_)), action(std::move(action_)), other(std::move(other_)) {}
};

}  // namespace kiln::studio
