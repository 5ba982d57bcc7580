#include "sandbox/image/image.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "common/files.h"
#include "common/subprocess.h"
#include "common/url.h"

namespace kiln::sandbox::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kBuildTimeoutMs = 30 * 60 * 1000;

bool isDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool validPackage(const std::string& p) {
  // Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+; an optional :arch qualifier is not needed here.
  if (p.size() < 2 || p.size() > 100 || !(std::islower(p[0]) || std::isdigit(p[0]))) {
    return false;
  }
  return std::all_of(p.begin(), p.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '.' || c == '-';
  });
}

bool validSuite(const std::string& s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || c == '-';
  });
}

bool validMirror(const std::string& m) {
  Result<Url> url = parseUrl(m);
  if (!url || (url->scheme != "http" && url->scheme != "https")) return false;
  return std::none_of(m.begin(), m.end(), [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) || c == '\'' || c == '"';
  });
}

std::string tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

Status writeManifest(const std::string& path, const ImageManifest& m) {
  std::ofstream out(path, std::ios::trunc);
  out << m.toJson().dump(2) << "\n";
  return out ? Status::ok() : errnoStatus("image: write " + path, errno);
}

Result<ImageManifest> readManifest(const std::string& dir) {
  Result<std::string> text = readFile(dir + "/manifest.json");
  if (!text) return notFound("image: no manifest in " + dir);
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return invalidArgument("image: bad manifest in " + dir);
  ImageManifest m;
  m.name = j.value("name", "");
  ASSIGN_OR_RETURN(m.spec, ImageSpec::fromJson(j.value("spec", json::object()).dump()));
  m.builtAtUnix = j.value("builtAtUnix", int64_t{0});
  m.buildSeconds = j.value("buildSeconds", int64_t{0});
  m.rootfs = dir + "/rootfs";
  return m;
}

}  // namespace

Result<ImageSpec> ImageSpec::fromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return invalidArgument("image spec: not a JSON object");
  ImageSpec spec;
  for (const auto& [key, value] : j.items()) {
    if (key == "suite" && value.is_string()) {
      spec.suite = value;
    } else if (key == "mirror" && value.is_string()) {
      spec.mirror = value;
    } else if (key == "packages" && value.is_array()) {
      for (const auto& p : value) {
        if (!p.is_string()) return invalidArgument("image spec: packages must be strings");
        spec.packages.push_back(p);
      }
    } else {
      return invalidArgument("image spec: unknown or mistyped field \"" + key + "\"");
    }
  }
  RETURN_IF_ERROR(spec.validate());
  return spec;
}

Status ImageSpec::validate() const {
  if (!validSuite(suite)) return invalidArgument("image spec: bad suite \"" + suite + "\"");
  if (!validMirror(mirror)) return invalidArgument("image spec: bad mirror \"" + mirror + "\"");
  for (const auto& p : packages) {
    if (!validPackage(p)) return invalidArgument("image spec: bad package name \"" + p + "\"");
  }
  return Status::ok();
}

json ImageSpec::toJson() const {
  return json{{"suite", suite}, {"mirror", mirror}, {"packages", packages}};
}

json ImageManifest::toJson() const {
  return json{{"name", name},
              {"spec", spec.toJson()},
              {"builtAtUnix", builtAtUnix},
              {"buildSeconds", buildSeconds},
              {"rootfs", rootfs}};
}

bool validImageName(const std::string& n) {
  if (n.empty() || n.size() > 64 || !(std::islower(n[0]) || std::isdigit(n[0]))) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

Result<ImageManifest> buildImage(const BuildOptions& o) {
  if (!validImageName(o.name)) {
    return invalidArgument("image: bad name \"" + o.name + "\" (want [a-z0-9][a-z0-9._-]*)");
  }
  RETURN_IF_ERROR(o.spec.validate());
  std::error_code ec;
  fs::create_directories(o.imagesDir, ec);
  if (ec) return internalError("image: create " + o.imagesDir + ": " + ec.message());
  const std::string imagesDir = fs::absolute(o.imagesDir).lexically_normal().string();
  const std::string tmp = imagesDir + "/.build-" + o.name + "-" + std::to_string(getpid());
  fs::remove_all(tmp, ec);
  if (mkdir(tmp.c_str(), 0755) != 0) return errnoStatus("image: mkdir " + tmp, errno);
  std::vector<std::string> argv = {"debootstrap", "--variant=minbase"};
  if (!o.spec.packages.empty()) {
    std::string include = "--include=";
    for (size_t i = 0; i < o.spec.packages.size(); ++i) {
      include += (i ? "," : "") + o.spec.packages[i];
    }
    argv.push_back(include);
  }
  if (!o.debCacheDir.empty()) {
    fs::create_directories(o.debCacheDir, ec);
    argv.push_back("--cache-dir=" + fs::absolute(o.debCacheDir).string());
  }
  argv.insert(argv.end(), {o.spec.suite, tmp + "/rootfs", o.spec.mirror});
  ProcessOptions popts;
  popts.timeoutMs = kBuildTimeoutMs;
  popts.env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  const auto start = std::chrono::steady_clock::now();
  Result<ProcessOutput> run = runProcess(argv, popts);
  const int64_t seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start)
          .count();
  if (!run || run->exitCode != 0) {
    fs::remove_all(tmp, ec);
    if (!run) return run.status().withContext("image: debootstrap");
    return Status(Code::kUnprocessable, "image: debootstrap failed (exit " +
                                            std::to_string(run->exitCode) +
                                            (run->timedOut ? ", timed out" : "") +
                                            "): " + tail(run->out + run->err, 2000));
  }
  ImageManifest m;
  m.name = o.name;
  m.spec = o.spec;
  m.builtAtUnix = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  m.buildSeconds = seconds;
  const std::string final = imagesDir + "/" + o.name;
  m.rootfs = final + "/rootfs";
  Status st = writeManifest(tmp + "/manifest.json", m);
  if (!st) {
    fs::remove_all(tmp, ec);
    return st;
  }
  // Swap: sandboxes already running on the old build keep their mounts of it.
  const std::string old = imagesDir + "/.old-" + o.name + "-" + std::to_string(getpid());
  bool hadOld = isDir(final);
  if (hadOld && rename(final.c_str(), old.c_str()) != 0) {
    fs::remove_all(tmp, ec);
    return errnoStatus("image: rename " + final, errno);
  }
  if (rename(tmp.c_str(), final.c_str()) != 0) {
    int err = errno;
    if (hadOld) (void)!rename(old.c_str(), final.c_str());
    fs::remove_all(tmp, ec);
    return errnoStatus("image: rename " + tmp, err);
  }
  if (hadOld) fs::remove_all(old, ec);
  return m;
}

Result<std::string> resolveImageRootfs(const std::string& imagesDir, const std::string& image) {
  std::string root;
  if (image.find('/') != std::string::npos) {
    if (image[0] != '/') return invalidArgument("image: a path must be absolute: " + image);
    root = isDir(image + "/rootfs") ? image + "/rootfs" : image;
  } else {
    if (!validImageName(image)) return invalidArgument("image: bad name \"" + image + "\"");
    if (imagesDir.empty()) return notFound("image: no images dir configured for " + image);
    root = imagesDir + "/" + image + "/rootfs";
  }
  if (!isDir(root)) return notFound("image: no such image: " + image);
  std::error_code ec;
  root = fs::canonical(root, ec).string();
  if (ec) return notFound("image: " + image + ": " + ec.message());
  // The path becomes part of an overlayfs option string.
  if (root.find_first_of(":,") != std::string::npos) {
    return invalidArgument("image: path must not contain ':' or ',': " + root);
  }
  if (!isDir(root + "/usr") || !isDir(root + "/etc")) {
    return invalidArgument("image: " + root + " is not a root filesystem (no usr/ or etc/)");
  }
  return root;
}

std::vector<ImageManifest> listImages(const std::string& imagesDir) {
  std::vector<ImageManifest> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(imagesDir, ec)) {
    const std::string name = e.path().filename();
    if (!validImageName(name)) continue;
    if (auto m = readManifest(e.path().string())) out.push_back(std::move(m).value());
  }
  std::sort(out.begin(), out.end(),
            [](const ImageManifest& a, const ImageManifest& b) { return a.name < b.name; });
  return out;
}

}  // namespace kiln::sandbox::image
