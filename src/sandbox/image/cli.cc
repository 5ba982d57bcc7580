// `kiln image build NAME [--spec FILE] [--suite S] [--mirror URL] [--package P]...` builds a
// Debian root filesystem with debootstrap under <dataDir>/images/NAME; `kiln image list` shows
// what is there. Needs root (debootstrap).
#include "sandbox/image/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/files.h"
#include "node/node.h"
#include "sandbox/image/image.h"

namespace kiln::sandbox::image {
namespace {

struct BuildFlags {
  std::string specFile, suite, mirror;
  std::vector<std::string> packages;
};

Result<ImageSpec> specFrom(const BuildFlags& f) {
  ImageSpec spec;
  if (!f.specFile.empty()) {
    Result<std::string> text = readFile(f.specFile);
    if (!text) return notFound("image: cannot read spec " + f.specFile);
    ASSIGN_OR_RETURN(spec, ImageSpec::fromJson(*text));
  }
  if (!f.suite.empty()) spec.suite = f.suite;
  if (!f.mirror.empty()) spec.mirror = f.mirror;
  spec.packages.insert(spec.packages.end(), f.packages.begin(), f.packages.end());
  RETURN_IF_ERROR(spec.validate());
  return spec;
}

int runBuild(BuildOptions& o, const BuildFlags& f) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "kiln image: building an image needs root (debootstrap)\n");
    return 1;
  }
  Result<ImageSpec> spec = specFrom(f);
  if (!spec) {
    std::fprintf(stderr, "kiln image: %s\n", spec.status().message().c_str());
    return 2;
  }
  o.spec = *spec;
  std::fprintf(stderr, "kiln image: building %s (%s from %s%s%s) ...\n", o.name.c_str(),
               o.spec.suite.c_str(), o.spec.mirror.c_str(), o.spec.packages.empty() ? "" : ", +",
               o.spec.packages.empty() ? "" : std::to_string(o.spec.packages.size()).c_str());
  Result<ImageManifest> m = buildImage(o);
  if (!m) {
    std::fprintf(stderr, "kiln image: %s\n", m.status().message().c_str());
    return 1;
  }
  std::printf("%s\n", m->toJson().dump().c_str());
  return 0;
}

}  // namespace

int imageCommandMain(int argc, char** argv) {
  CLI::App app{"kiln image: base images for sandboxes", "kiln image"};
  app.require_subcommand(1);
  std::string imagesDir = node::defaultDataDir() + "/images";
  app.add_option("--images-dir", imagesDir, "where images live (default <data dir>/images)");
  BuildOptions o;
  BuildFlags f;
  CLI::App* build = app.add_subcommand("build", "build NAME with debootstrap (minbase)");
  build->add_option("name", o.name, "image name")->required();
  build->add_option("--spec", f.specFile, "JSON spec: {suite, mirror, packages}");
  build->add_option("--suite", f.suite, "Debian suite (default bookworm)");
  build->add_option("--mirror", f.mirror, std::string("mirror (default ") + kDefaultMirror + ")");
  build->add_option("--package", f.packages, "extra package (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  build->add_option("--deb-cache", o.debCacheDir, "keep downloaded .debs here for later builds");
  CLI::App* list = app.add_subcommand("list", "list built images as JSON lines");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  o.imagesDir = imagesDir;
  if (build->parsed()) return runBuild(o, f);
  if (list->parsed()) {
    for (const ImageManifest& m : listImages(imagesDir))
      std::printf("%s\n", m.toJson().dump().c_str());
  }
  return 0;
}

}  // namespace kiln::sandbox::image
