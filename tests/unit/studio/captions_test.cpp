#include "studio/dataset/captions.h"

#include <gtest/gtest.h>

#include "studio/error.h"

namespace kiln::studio {
namespace {

TEST(Captions, SplitJoinAndNormalise) {
  EXPECT_EQ(split_tags(" a,b ,, c\nd "), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(join_tags({"a", "b"}), "a, b");
  EXPECT_TRUE(same_tag("Long_Hair", "long  hair"));
  EXPECT_FALSE(same_tag("long hair", "longhair"));
  // Trigger first (moved there), duplicates gone with the first spelling kept.
  EXPECT_EQ(normalize_caption("white background, acme, Speaker, speaker, white_background", "acme"),
            "acme, white background, Speaker");
  EXPECT_EQ(normalize_caption("", "acme"), "acme");
  EXPECT_EQ(normalize_caption("a, a", ""), "a");
}

TEST(Captions, BatchEditKeepsTriggerFirst) {
  TagEdit edit;
  edit.replace = {{"red dress", "blue dress"}};
  edit.remove = {"watermark"};
  edit.add = {"studio lighting, acme"};
  edit.move_to_end = {"transparent background"};
  EXPECT_EQ(apply_tag_edit("transparent background, acme, red dress, watermark, 1girl", edit, "acme"),
            "acme, blue dress, 1girl, studio lighting, transparent background");
  // Adding a tag twice or adding the trigger changes nothing twice over.
  EXPECT_EQ(apply_tag_edit("acme, x", TagEdit{{}, {}, {"x", "acme"}, {}}, "acme"), "acme, x");
}

TEST(Captions, TriggerCannotBeRemovedOrReplaced) {
  for (const TagEdit& edit : {TagEdit{{}, {"ACME"}, {}, {}}, TagEdit{{{"acme", "other"}}, {}, {}, {}},
                              TagEdit{{}, {}, {}, {"acme"}}}) {
    try {
      apply_tag_edit("acme, a", edit, "acme");
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("trigger"), std::string::npos);
    }
  }
}

TEST(Captions, FrequencyAndKeepTokens) {
  const std::vector<std::string> captions = {"acme, speaker, white background", "acme, speaker, Speaker",
                                             "acme, close-up"};
  const auto freq = tag_frequency(captions);
  ASSERT_GE(freq.size(), 4u);
  EXPECT_EQ(freq[0], (std::pair<std::string, int>{"acme", 3}));
  EXPECT_EQ(freq[1], (std::pair<std::string, int>{"speaker", 2}));  // counted once per caption
  EXPECT_EQ(keep_tokens_hint(captions, "acme"), 1);
  EXPECT_EQ(keep_tokens_hint({"acme, a", "b, acme"}, "acme"), 0);
  EXPECT_EQ(keep_tokens_hint(captions, ""), 0);
}

}  // namespace
}  // namespace kiln::studio
