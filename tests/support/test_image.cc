#include "support/test_image.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/files.h"
#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

std::string imageCache() {
  const char* env = getenv("KILN_TEST_IMAGE_CACHE");
  return env && *env ? env : "/var/tmp/kiln-test-images";
}

// The packages the image at dir was built with, per its manifest; nullopt without one.
std::optional<std::vector<std::string>> builtPackages(const std::string& dir) {
  auto text = readFile(dir + "/manifest.json");
  if (!text) return std::nullopt;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("spec") || !j["spec"].is_object()) return std::nullopt;
  auto packages = j["spec"].value("packages", nlohmann::json::array());
  if (!packages.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& p : packages) {
    if (p.is_string()) out.push_back(p.get<std::string>());
  }
  return out;
}

}  // namespace

Result<std::string> cachedTestImage(const std::string& name,
                                    const std::vector<std::string>& packages) {
  const std::string cache = imageCache();
  std::error_code ec;
  std::filesystem::create_directories(cache, ec);
  if (ec) return internalError("test image: create " + cache + ": " + ec.message());
  int lock = open((cache + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return errnoStatus("test image: open " + cache + "/.lock", errno);
  flock(lock, LOCK_EX);
  std::string out;
  int rc = 0;
  if (builtPackages(cache + "/" + name) != packages) {
    std::string cmd = std::string(KILN_BINARY) + " image --images-dir " + shellQuote(cache) +
                      " build " + shellQuote(name) + " --deb-cache " + shellQuote(cache + "/debs");
    for (const auto& p : packages) cmd += " --package " + shellQuote(p);
    rc = shell(cmd, &out);
  }
  flock(lock, LOCK_UN);
  close(lock);
  if (rc != 0) return internalError("test image: kiln image build " + name + ": " + out);
  return cache;
}

}  // namespace kiln::testing
