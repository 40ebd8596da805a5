#pragma once
// Files between this machine and the daemon's: a local daemon reads and writes the paths as they
// are; a remote one gets uploads (kiln::Client::upload_file) and sends results back
// (download_file).
#include <filesystem>
#include <string>
#include <vector>

#include "client/client.h"

namespace kiln::cli {

// Image files or folders of images for datasets.add_images: absolute paths for a local daemon;
// for a remote one each folder's images (and the caption files beside them) are uploaded into a
// folder of their own there, and single files beside their captions.
std::vector<std::string> image_paths_for_daemon(Client& client, const std::vector<std::string>& local_paths);

// One file (a LoRA, a config): its absolute path, or the path of its upload.
std::string file_for_daemon(Client& client, const std::string& local_path);

// A file the daemon wrote (an output PNG, a LoRA file) to `to`, creating folders.
void fetch_file(Client& client, const std::string& daemon_path, const std::filesystem::path& to);

}  // namespace kiln::cli
