#include "studio/names.h"

#include <gtest/gtest.h>

#include "studio/error.h"
#include "temp_dir.h"

namespace kiln::studio {
namespace {

TEST(Names, AcceptsOrdinaryNames) {
  for (const std::string& name : std::vector<std::string>{"product", "My Speaker v2", "perfume_bottle-01", "a.b", "x", "模型 猫", "Ünïcode",
                                 std::string(64, 'a'), std::string("猫") + std::string(63, 'b')}) {
    EXPECT_NO_THROW(validate_library_name(name, "dataset name")) << name;
  }
}

TEST(Names, RefusesHostileNamesSayingWhatIsAllowed) {
  const std::vector<std::string> hostile = {"../x", "/abs", "", std::string(65, 'a'), "a/b", "a\\b",
                                            std::string("a\0b", 3), "..", ".", ".hidden", " lead", "trail ",
                                            "trail.", "tab\tname", "new\nline", "semi;colon", "$(rm -rf)",
                                            "star*", "q?", "\xff\xfe", "\xc0\xaf",  // invalid / overlong UTF-8
                                            "rtl\xe2\x80\xaeoverride", "zero\xe2\x80\x8bwidth", "full\xef\xbc\x8fslash",
                                            std::string(67, 'a').replace(0, 3, "猫")};
  for (const std::string& name : hostile) {
    EXPECT_FALSE(is_valid_library_name(name)) << printable(name);
    try {
      validate_library_name(name, "dataset name");
      ADD_FAILURE() << "accepted " << printable(name);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::InvalidName);
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("dataset name '", 0), 0u) << msg;
      EXPECT_NE(msg.find("letters, digits"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\0'), std::string::npos);
      EXPECT_EQ(msg.find('\n'), std::string::npos);
    }
  }
}

TEST(Names, LongNameByteLimitHolds) {
  // 64 four-byte characters are 256 bytes: too long for "<name>-000001.safetensors".
  std::string emoji;
  for (int i = 0; i < 64; ++i) emoji += "\xF0\x9F\x90\xB1";
  EXPECT_FALSE(is_valid_library_name(emoji));
}

TEST(Names, SafeJoinStaysInsideRoot) {
  test::TempDir dir;
  EXPECT_EQ(safe_join(dir.path(), "datasets/cat"), dir.path() / "datasets" / "cat");
  EXPECT_EQ(safe_join(dir.path(), "10_cat/img 1.png"), dir.path() / "10_cat" / "img 1.png");
  for (const std::string& bad : std::vector<std::string>{"../x", "/abs", "", "a/../../b", "a//b", "./a", "a/.", "a\\b", "..",
                                "a\nb"}) {
    try {
      safe_join(dir.path(), bad);
      ADD_FAILURE() << "accepted " << printable(bad);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::InvalidName) << e.what();
    }
  }
  EXPECT_THROW(safe_join(dir.path(), std::string("a\0b", 3)), Error);
}

TEST(Names, SafeJoinRefusesSymlinksLeadingOut) {
  test::TempDir dir;
  test::TempDir outside;
  std::filesystem::create_directory_symlink(outside.path(), dir / "link");
  EXPECT_THROW(safe_join(dir.path(), "link/file.png"), Error);
  std::filesystem::create_directory(dir / "real");
  EXPECT_NO_THROW(safe_join(dir.path(), "real/file.png"));
}

}  // namespace
}  // namespace kiln::studio
