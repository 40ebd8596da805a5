#include "protocol/methods.h"

#include <set>

#include <gtest/gtest.h>

#include "protocol/image_ref.h"

using namespace kiln::protocol;

namespace {
Json good_image() {
  return {{"shm", "kiln.0.1.00000000000000000000000000000000"}, {"width", 4}, {"height", 2}, {"channels", 4}, {"dtype", "u8"},
          {"stride", 16}};
}
}  // namespace

TEST(Methods, NamesAreUniqueAndFindable) {
  std::set<std::string> names;
  for (const auto& spec : all_methods()) {
    EXPECT_TRUE(names.insert(spec.name).second) << "duplicate method " << spec.name;
    EXPECT_EQ(find_method(spec.name), &spec);
    EXPECT_NE(std::string(spec.help), "");
  }
  EXPECT_EQ(find_method("no.such.method"), nullptr);
  EXPECT_TRUE(find_method(method::kHello)->before_hello);
  EXPECT_FALSE(find_method(method::kStatus)->before_hello);
}

TEST(Methods, ValidParamsPass) {
  EXPECT_FALSE(validate_params(*find_method(method::kJobsGet), Json{{"id", "a"}}));
  EXPECT_FALSE(validate_params(*find_method(method::kJobsList), Json::object()));
  EXPECT_FALSE(validate_params(*find_method(method::kImageEcho), Json{{"image", good_image()}}));
}

TEST(Methods, MissingUnknownAndMistypedParamsAreNamed) {
  auto missing = validate_params(*find_method(method::kJobsGet), Json::object());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->code, ErrorCode::InvalidParams);
  EXPECT_NE(missing->message.find("'id'"), std::string::npos);

  auto unknown = validate_params(*find_method(method::kJobsGet), Json{{"id", "a"}, {"idd", 1}});
  ASSERT_TRUE(unknown);
  EXPECT_NE(unknown->message.find("'idd'"), std::string::npos);

  auto mistyped = validate_params(*find_method(method::kJobsGet), Json{{"id", 12}});
  ASSERT_TRUE(mistyped);
  EXPECT_NE(mistyped->message.find("must be a string"), std::string::npos);

  auto fractional = validate_params(*find_method(method::kJobsList), Json{{"limit", 2.5}});
  ASSERT_TRUE(fractional);
  EXPECT_NE(fractional->message.find("an integer"), std::string::npos);

  EXPECT_TRUE(validate_params(*find_method(method::kStatus), Json{{"verbose", true}}));
  EXPECT_TRUE(validate_params(*find_method(method::kStatus), Json::array()));
}

TEST(Methods, ImageReferencesAreCheckedStructurally) {
  const MethodSpec& echo = *find_method(method::kImageEcho);
  for (const char* key : {"shm", "width", "height", "channels", "dtype", "stride"}) {
    Json image = good_image();
    image.erase(key);
    auto problem = validate_params(echo, Json{{"image", image}});
    ASSERT_TRUE(problem) << "accepted an image without " << key;
    EXPECT_NE(problem->message.find(key), std::string::npos) << problem->message;
  }
  Json image = good_image();
  image["channels"] = 2;
  EXPECT_TRUE(validate_params(echo, Json{{"image", image}}));
  image = good_image();
  image["dtype"] = "f16";
  EXPECT_TRUE(validate_params(echo, Json{{"image", image}}));
  image = good_image();
  image["width"] = -3;
  EXPECT_TRUE(validate_params(echo, Json{{"image", image}}));
  EXPECT_TRUE(validate_params(echo, Json{{"image", "kiln.0.1.x"}}));
}

TEST(ImageRef, JsonRoundTrip) {
  ImageRef ref;
  ref.shm = "kiln.1.2.0123456789abcdef0123456789abcdef";
  ref.desc.width = 33;
  ref.desc.height = 7;
  ref.desc.channels = 3;
  ref.desc.dtype = PixelType::U16;
  ref.desc.stride = 33 * 3 * 2 + 2;
  ref.desc.premultiplied = true;
  ref.desc.color_space = ColorSpace::LinearSRGB;
  const Json j = to_json(ref);
  ASSERT_FALSE(check_image_ref(j));
  const ImageRef back = image_ref_from_json(j);
  EXPECT_EQ(back.shm, ref.shm);
  EXPECT_EQ(back.desc.width, 33u);
  EXPECT_EQ(back.desc.height, 7u);
  EXPECT_EQ(back.desc.channels, 3u);
  EXPECT_EQ(back.desc.dtype, PixelType::U16);
  EXPECT_EQ(back.desc.stride, ref.desc.stride);
  EXPECT_TRUE(back.desc.premultiplied);
  EXPECT_EQ(back.desc.color_space, ColorSpace::LinearSRGB);
}
