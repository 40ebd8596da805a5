#include "studio/dataset/kohya_folder.h"

#include <gtest/gtest.h>

#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "studio/error.h"
#include "synthetic.h"
#include "temp_dir.h"

namespace kiln::studio {
namespace {
namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

TEST(KohyaFolder, ReadsRepeatFoldersAndMixedCaptions) {
  test::TempDir dir;
  fs::create_directories(dir / "10_acme");
  fs::create_directories(dir / "3_acme style");
  fs::create_directories(dir / "notes");          // no repeat count: kohya skips it
  fs::create_directories(dir / "0_disabled");     // repeats below 1: skipped
  fs::create_directories(dir / "originals");      // Kiln's own folder: skipped silently
  const cv::Mat img = test::scene(64, 64);
  for (const char* f : {"10_acme/a.png", "10_acme/b.jpg", "10_acme/c.webp", "10_acme/d.PNG", "3_acme style/e.bmp",
                        "3_acme style/f.jpeg", "0_disabled/g.png"})
    cv::imwrite((dir / f).string(), img);
  write(dir / "10_acme/x.gif", "GIF89a");         // not an extension kohya reads
  write(dir / "10_acme/y.Png", "");               // nor this spelling (kohya's glob is case-sensitive)
  write(dir / "10_acme/a.txt", "acme, speaker \nsecond line ignored\n");
  write(dir / "10_acme/b.caption", "acme, from caption");
  write(dir / "10_acme/c.txt", "");               // empty: kohya refuses it
  write(dir / "3_acme style/e.txt", "style one");
  write(dir / "3_acme style/e.caption", "style other");

  const DatasetFolder folder = scan_kohya_folder(dir.path());
  ASSERT_EQ(folder.subsets.size(), 2u);
  const KohyaSubset& acme = folder.subsets[0];
  EXPECT_EQ(acme.repeats, 10);
  EXPECT_EQ(acme.class_tokens, "acme");
  ASSERT_EQ(acme.images.size(), 4u);
  EXPECT_EQ(acme.images[0].path.filename(), "a.png");
  EXPECT_EQ(acme.images[0].caption, "acme, speaker");
  EXPECT_EQ(acme.images[1].caption, "acme, from caption");
  EXPECT_FALSE(acme.images[2].caption.has_value());  // the empty c.txt
  EXPECT_FALSE(acme.images[3].caption.has_value());  // d.PNG has none
  const KohyaSubset& style = folder.subsets[1];
  EXPECT_EQ(style.repeats, 3);
  EXPECT_EQ(style.class_tokens, "acme style");
  EXPECT_EQ(style.images[0].caption, "style one");   // .txt first by default
  EXPECT_EQ(folder.image_count(), 6);
  EXPECT_EQ(folder.images_with_repeats(), 4 * 10 + 2 * 3);

  std::string warnings;
  for (const auto& w : folder.warnings) warnings += w + "\n";
  EXPECT_NE(warnings.find("'notes'"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("0_disabled"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("c.txt is empty"), std::string::npos) << warnings;
  EXPECT_EQ(warnings.find("originals"), std::string::npos) << warnings;

  // kohya's --caption_extension picks one kind only.
  const DatasetFolder captions = scan_kohya_folder(dir.path(), "caption");
  EXPECT_FALSE(captions.subsets[0].images[0].caption.has_value());
  EXPECT_EQ(captions.subsets[0].images[1].caption, "acme, from caption");
  EXPECT_EQ(captions.subsets[1].images[0].caption, "style other");
}

TEST(KohyaFolder, ClearErrorsForWrongFolders) {
  test::TempDir dir;
  try {
    scan_kohya_folder(dir / "missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
  }
  cv::imwrite((dir / "loose.png").string(), test::scene(64, 64));  // images not in a repeat folder
  try {
    scan_kohya_folder(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("10_"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln::studio
