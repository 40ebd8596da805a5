#include "service/jobs/job_store.h"

#include <fstream>

#include <gtest/gtest.h>

using namespace kiln::service;
namespace fs = std::filesystem;

TEST(JobStore, SavesAndLoadsRecordsAndSkipsCorruptOnes) {
  const fs::path dir = fs::temp_directory_path() / ("kiln-store-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  JobStore store(dir);
  JobRecord r;
  r.id = "20260101-000000-0001";
  r.type = "simulate";
  r.state = JobState::Failed;
  r.params = {{"steps", 3}};
  r.error = JobError{-32041, "boom"};
  r.progress.extra = {{"loss", 0.25}};
  store.save(r);
  // A record cut in half (as no atomic write would leave it) and one that is not JSON at all.
  fs::create_directories(dir / "20260101-000000-0002");
  std::ofstream(dir / "20260101-000000-0002" / "job.json") << "{\"id\": \"20260101-000000-0002\", \"ty";
  fs::create_directories(dir / "20260101-000000-0003");
  std::ofstream(dir / "20260101-000000-0003" / "job.json") << "\x01\x02";

  const auto records = store.load_all();
  ASSERT_EQ(records.size(), 1u);
  const JobRecord& back = records[0];
  EXPECT_EQ(back.id, r.id);
  EXPECT_EQ(back.state, JobState::Failed);
  ASSERT_TRUE(back.error);
  EXPECT_EQ(back.error->message, "boom");
  EXPECT_EQ(back.params["steps"], 3);
  EXPECT_DOUBLE_EQ(back.progress.extra["loss"].get<double>(), 0.25);
  // No temporary files are left beside the record.
  for (const auto& e : fs::directory_iterator(dir / r.id)) EXPECT_EQ(e.path().filename(), "job.json");
  fs::remove_all(dir);
}
