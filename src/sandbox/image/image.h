// Base images: standalone Debian root filesystems built with debootstrap, one per name under
// <imagesDir>/<name>/ (rootfs/ plus manifest.json). A sandbox with SandboxSpec.image runs on
// one instead of the host's read-only system dirs. Building is blocking and slow (a minute or
// more): run it from the CLI or a BlockingPool thread. Functions are thread-safe; building
// the same name twice at once is not.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"

namespace kiln::sandbox::image {

inline constexpr const char* kDefaultMirror = "http://deb.debian.org/debian";

// What to build. The spec file is JSON: {"suite": "bookworm", "mirror": "...",
// "packages": ["git", "python3"]}; every field is optional.
struct ImageSpec {
  std::string suite = "bookworm";
  std::string mirror = kDefaultMirror;
  std::vector<std::string> packages;  // on top of debootstrap's minbase

  static Result<ImageSpec> fromJson(const std::string& text);
  nlohmann::json toJson() const;
  Status validate() const;
};

struct ImageManifest {
  std::string name;
  ImageSpec spec;
  int64_t builtAtUnix = 0;
  int64_t buildSeconds = 0;
  std::string rootfs;  // absolute path

  nlohmann::json toJson() const;
};

// Lower-case letters, digits, '.', '_', '-'; 1-64 long, starting with a letter or digit.
bool validImageName(const std::string& name);

struct BuildOptions {
  std::string imagesDir;
  std::string name;
  ImageSpec spec;
  std::string debCacheDir;  // optional: debootstrap --cache-dir (keeps downloaded .debs)
};

// Runs debootstrap --variant=minbase into a temp dir next to the image, writes the manifest,
// then swaps it in place of an older build of the same name. On failure, the error carries the
// tail of debootstrap's output and nothing is left behind.
Result<ImageManifest> buildImage(const BuildOptions& opts);

// The rootfs of `image`: a name under imagesDir, or an absolute path to an image dir (with
// rootfs/) or to a root filesystem itself. It must hold usr/ and etc/. not_found when missing.
Result<std::string> resolveImageRootfs(const std::string& imagesDir, const std::string& image);

// Every image with a readable manifest, by name.
std::vector<ImageManifest> listImages(const std::string& imagesDir);

}  // namespace kiln::sandbox::image
