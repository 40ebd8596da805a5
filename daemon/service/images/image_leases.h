#pragma once
// The daemon's bookkeeping of the image blocks it creates. It keeps names, not mappings, so a
// handed-out block costs the daemon no memory:
//  - a result handed to a session belongs to that client, which removes it after reading; if it
//    does not (it died, or ignored it), the daemon removes it when the session ends or the lease
//    runs out;
//  - a job's preview is shared by every subscriber and removed by the daemon after a while.
// Orphans of dead processes are swept by ipc::sweep_orphan_shm_blocks at start and periodically.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "ipc/shm_image.h"

namespace kiln::service {

class ImageLeases {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes ownership of the name: the caller must not remove the block afterwards.
  protocol::ImageRef hand_to_session(uint64_t session_id, ipc::ShmImage image,
                                     std::chrono::seconds ttl = std::chrono::seconds(120));
  protocol::ImageRef keep_preview(const std::string& job_id, ipc::ShmImage image,
                                  std::chrono::seconds ttl = std::chrono::seconds(60));
  // A job's result image, for any client to copy within `ttl` (the files on disk stay).
  protocol::ImageRef keep_result(const std::string& job_id, ipc::ShmImage image,
                                 std::chrono::seconds ttl = std::chrono::seconds(600));

  void session_closed(uint64_t session_id);  // removes what the session did not take
  // Remote sessions: the daemon handed this block out (a result or a preview), so its pixels may
  // be sent to a client. Blocks of no lease are never sent.
  bool contains(const std::string& name) const;
  // A block handed to `session_id` that was sent to its remote client: removed now (the client
  // holds its own copy). False when it is not that session's.
  bool release_to_remote(uint64_t session_id, const std::string& name);
  std::size_t expire();                      // removes expired blocks; returns how many
  std::size_t remove_all();                  // at shutdown
  std::size_t size() const;

 private:
  struct Lease {
    std::string name;
    uint64_t session_id = 0;  // 0 for previews
    std::string job_id;
    bool preview = false;
    Clock::time_point expires;
  };
  mutable std::mutex mutex_;
  std::vector<Lease> leases_;
};

}  // namespace kiln::service
