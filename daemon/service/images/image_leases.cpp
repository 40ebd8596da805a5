#include "service/images/image_leases.h"

#include <algorithm>

namespace kiln::service {

protocol::ImageRef ImageLeases::hand_to_session(uint64_t session_id, ipc::ShmImage image, std::chrono::seconds ttl) {
  protocol::ImageRef ref = image.ref();
  image.disown();
  std::lock_guard lock(mutex_);
  leases_.push_back(Lease{ref.shm, session_id, "", false, Clock::now() + ttl});
  return ref;
}

protocol::ImageRef ImageLeases::keep_preview(const std::string& job_id, ipc::ShmImage image, std::chrono::seconds ttl) {
  protocol::ImageRef ref = image.ref();
  image.disown();
  std::lock_guard lock(mutex_);
  // Keep at most the two newest previews of a job: a slow subscriber may still be reading the older.
  std::vector<std::size_t> mine;
  for (std::size_t i = 0; i < leases_.size(); ++i)
    if (leases_[i].preview && leases_[i].job_id == job_id) mine.push_back(i);
  if (mine.size() >= 2) {
    ipc::remove_shm(leases_[mine.front()].name);
    leases_.erase(leases_.begin() + static_cast<std::ptrdiff_t>(mine.front()));
  }
  leases_.push_back(Lease{ref.shm, 0, job_id, true, Clock::now() + ttl});
  return ref;
}

protocol::ImageRef ImageLeases::keep_result(const std::string& job_id, ipc::ShmImage image, std::chrono::seconds ttl) {
  protocol::ImageRef ref = image.ref();
  image.disown();
  std::lock_guard lock(mutex_);
  leases_.push_back(Lease{ref.shm, 0, job_id, false, Clock::now() + ttl});
  return ref;
}

void ImageLeases::session_closed(uint64_t session_id) {
  std::lock_guard lock(mutex_);
  auto it = std::remove_if(leases_.begin(), leases_.end(), [&](const Lease& l) {
    if (l.session_id != session_id) return false;
    ipc::remove_shm(l.name);
    return true;
  });
  leases_.erase(it, leases_.end());
}

bool ImageLeases::contains(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return std::any_of(leases_.begin(), leases_.end(), [&](const Lease& l) { return l.name == name; });
}

bool ImageLeases::release_to_remote(uint64_t session_id, const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(leases_.begin(), leases_.end(),
                         [&](const Lease& l) { return l.name == name && l.session_id == session_id && session_id != 0; });
  if (it == leases_.end()) return false;
  ipc::remove_shm(it->name);
  leases_.erase(it);
  return true;
}

std::size_t ImageLeases::expire() {
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  std::size_t removed = 0;
  auto it = std::remove_if(leases_.begin(), leases_.end(), [&](const Lease& l) {
    if (l.expires > now) return false;
    removed += ipc::remove_shm(l.name) ? 1 : 0;
    return true;
  });
  leases_.erase(it, leases_.end());
  return removed;
}

std::size_t ImageLeases::remove_all() {
  std::lock_guard lock(mutex_);
  std::size_t removed = 0;
  for (const Lease& l : leases_) removed += ipc::remove_shm(l.name) ? 1 : 0;
  leases_.clear();
  return removed;
}

std::size_t ImageLeases::size() const {
  std::lock_guard lock(mutex_);
  return leases_.size();
}

}  // namespace kiln::service
