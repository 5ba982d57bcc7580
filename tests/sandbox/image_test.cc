// Base images: the spec and name rules, a real debootstrap build through `kiln image build`,
// and real sandboxes running on the image instead of the host's system dirs.
//
// debootstrap takes one to two minutes here, so the tests share one image, built once into a
// cache dir and reused by later tests and later runs while its spec is unchanged
// (tests/support/test_image.h).
#include "sandbox/image/image.h"

#include <sys/mount.h>

#include "egress_upstream.h"
#include "nobody_kiln.h"
#include "sandbox_fixture.h"
#include "support/temp_dir.h"
#include "support/test_image.h"

namespace kiln::sandbox::testing {
namespace {

using image::ImageSpec;
using image::resolveImageRootfs;
using image::validImageName;

constexpr const char* kImageName = "test-bookworm-jq";

TEST(ImageSpecTest, ParsesAndValidates) {
  auto spec = ImageSpec::fromJson(R"({"suite":"trixie","packages":["git","python3-minimal"]})");
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  EXPECT_EQ(spec->suite, "trixie");
  EXPECT_EQ(spec->mirror, image::kDefaultMirror);
  EXPECT_EQ(spec->packages, (std::vector<std::string>{"git", "python3-minimal"}));
  EXPECT_TRUE(ImageSpec::fromJson("{}").isOk());
  for (const char* bad : {"[]", "not json", R"({"suite":"Bookworm"})", R"({"suit":"bookworm"})",
                          R"({"packages":["ok","--force-yes"]})", R"({"packages":"git"})",
                          R"({"mirror":"file:///etc"})", R"({"packages":["a,b"]})"}) {
    EXPECT_EQ(ImageSpec::fromJson(bad).status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(validImageName("py3.11-dev_x"));
  for (const char* bad : {"", "-x", "Upper", "a/b", "..", ".hidden", "a b"}) {
    EXPECT_FALSE(validImageName(bad)) << bad;
  }
}

TEST(ImageSpecTest, ResolvesNamesAndPaths) {
  std::string dir = tempDir("img");
  std::filesystem::create_directories(dir + "/good/rootfs/usr");
  std::filesystem::create_directories(dir + "/good/rootfs/etc");
  std::filesystem::create_directories(dir + "/bare/rootfs/usr");
  auto byName = resolveImageRootfs(dir, "good");
  ASSERT_TRUE(byName.isOk()) << byName.status().toString();
  EXPECT_EQ(*byName, dir + "/good/rootfs");
  EXPECT_EQ(resolveImageRootfs("", dir + "/good").value(), dir + "/good/rootfs");
  EXPECT_EQ(resolveImageRootfs("", dir + "/good/rootfs").value(), dir + "/good/rootfs");
  EXPECT_EQ(resolveImageRootfs(dir, "missing").status().code(), Code::kNotFound);
  EXPECT_EQ(resolveImageRootfs(dir, "bare").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(resolveImageRootfs(dir, "good/../bare").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(resolveImageRootfs(dir, "../etc").status().code(), Code::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

// The shared image, built by the real CLI on first use. Returns the images dir, or "" after
// recording a failure.
std::string sharedImage() {
  auto images = kiln::testing::cachedTestImage(kImageName, {"jq"});
  EXPECT_TRUE(images.isOk()) << images.status().toString();
  return images.isOk() ? *images : "";
}

class ImageSandboxTest : public NsSandboxTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "images need root (debootstrap, namespaces)";
    images_ = sharedImage();
    ASSERT_FALSE(images_.empty());
    state_ = tempDir("st");
    auto backend = newNamespaceBackend({state_, KILN_BINARY, nullptr, images_});
    ASSERT_TRUE(backend.isOk()) << backend.status().toString();
    backend_ = std::move(backend).value();
  }
  std::string rootfs() const { return images_ + "/" + kImageName + "/rootfs"; }

  std::string images_;
};

TEST_F(ImageSandboxTest, BuildWroteAManifestAndTheExtraPackages) {
  std::string out;
  ASSERT_EQ(kiln::testing::shell(
                std::string(KILN_BINARY) + " image --images-dir " + images_ + " list", &out),
            0);
  auto line = out.find(std::string("\"name\":\"") + kImageName + "\"");
  ASSERT_NE(line, std::string::npos) << out;
  EXPECT_NE(out.find("\"packages\":[\"jq\"]"), std::string::npos) << out;
  EXPECT_NE(out.find("\"suite\":\"bookworm\""), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(rootfs() + "/usr/bin/jq"));
  EXPECT_NE(readText(rootfs() + "/var/lib/dpkg/status").find("Package: jq\n"), std::string::npos);
  // No half-built leftovers next to it.
  for (const auto& e : std::filesystem::directory_iterator(images_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".build-", 0), std::string::npos) << e.path();
  }
}

TEST_F(ImageSandboxTest, CommandsRunOnTheImageNotTheHost) {
  Sandbox* sb = create({.image = kImageName});
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "cat /etc/debian_version"), readText(rootfs() + "/etc/debian_version"));
  EXPECT_EQ(run(sb, "dpkg-query -W -f='${Status}' jq"), "install ok installed");
  EXPECT_EQ(run(sb, "echo '{\"a\":41}' | jq .a+1"), "42\n");
  // cmake is on the host (a build dependency of kiln), never in a minbase image.
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/cmake"));
  EXPECT_EQ(run(sb, "test -e /usr/bin/cmake && echo HOST || echo IMAGE"), "IMAGE\n");
  EXPECT_EQ(run(sb, "id -u; pwd; echo $HOME"), "1000\n/workspace\n/home/agent\n");
  // The runtime contract works as ever (files through the runtime, not a shell).
  auto w = call(sb, "/files/write", {{"path", "note.txt"}, {"content", "on the image\n"}});
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  EXPECT_EQ(run(sb, "cat /workspace/note.txt"), "on the image\n");
}

// With a user namespace as root, the sandbox's root (a mapped id) cannot enter kiln's 0700 dirs:
// the image comes in as a detached mount. Here the state dir sits under a 0700 dir as a node's
// does (<data-dir>/sandboxes).
TEST_F(ImageSandboxTest, ImagesWorkWithAUserNamespaceAsRoot) {
  const std::string closed = tempDir("closed");
  dirs_.push_back(closed);
  ASSERT_EQ(chmod(closed.c_str(), 0700), 0);
  // The shared images, seen under the closed dir as a node's <data-dir>/images are.
  const std::string images = closed + "/images";
  std::filesystem::create_directory(images);
  ASSERT_EQ(mount(images_.c_str(), images.c_str(), nullptr, MS_BIND, nullptr), 0);
  struct Unmount {  // before the fixture removes `closed`, which would reach through the bind
    std::string dir;
    ~Unmount() { umount2(dir.c_str(), MNT_DETACH); }
  } unmount{images};
  auto backend = newNamespaceBackend({closed + "/sandboxes", KILN_BINARY, nullptr, images, true});
  ASSERT_TRUE(backend.isOk()) << backend.status().toString();
  backend_ = std::move(backend).value();
  Sandbox* sb = create({.image = kImageName});
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "cat /etc/debian_version"), readText(rootfs() + "/etc/debian_version"));
  EXPECT_EQ(run(sb, "echo '{\"a\":41}' | jq .a+1"), "42\n");
  const std::string map = run(sb, "cat /proc/self/uid_map");
  EXPECT_NE(map.find("65536"), std::string::npos) << map;
  EXPECT_EQ(run(sb, "id -u"), "1000\n");
}

// Rootless mode (kiln run by nobody) on an image: the image's files, owned by host root, are
// nobody's inside; commands run as the agent, kiln's one mapped id.
TEST_F(ImageSandboxTest, ImagesWorkInRootlessMode) {
  if (std::string why = NobodyKiln::unavailable(); !why.empty()) GTEST_SKIP() << why;
  NobodyKiln nobody;
  ASSERT_TRUE(nobody.ok());
  std::string out;
  int rc = nobody.sandboxExec("--images-dir " + images_ + " --image " + kImageName,
                              "id -u; cat /etc/debian_version; echo '{\"a\":41}' | jq .a+1", &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("1000\n" + readText(rootfs() + "/etc/debian_version") + "42\n"),
            std::string::npos)
      << out;
}

TEST_F(ImageSandboxTest, WritesNeverReachTheImage) {
  SandboxSpec spec;
  spec.image = rootfs();  // by path this time
  spec.rootInside = true;
  Sandbox* sb = create(spec);
  ASSERT_NE(sb, nullptr);
  const std::string probe = "kiln-image-probe-" + std::to_string(getpid());
  EXPECT_EQ(run(sb, "touch /usr/" + probe + " /etc/" + probe + " /var/" + probe +
                        " && rm /usr/bin/jq && echo done"),
            "done\n");
  for (const char* dir : {"/usr/", "/etc/", "/var/"}) {
    EXPECT_FALSE(std::filesystem::exists(rootfs() + dir + probe)) << dir;
  }
  EXPECT_TRUE(std::filesystem::exists(rootfs() + "/usr/bin/jq"));
  // When the runtime needs the host's loader and libraries (no static kiln-runtime), they are
  // mounted for it read-only; commands cannot add to them either way.
  EXPECT_EQ(run(sb, "touch /run/kiln-host/lib/x 2>/dev/null && echo wrote || echo refused"),
            "refused\n");
}

TEST_F(ImageSandboxTest, UnknownImageFailsCreationCleanly) {
  int mounts = countMounts();
  SandboxSpec spec;
  spec.id = uniqueId("noimg");
  spec.workspaceDir = newWorkspace();
  spec.image = "no-such-image";
  auto sb = backend_->create(spec);
  EXPECT_EQ(sb.status().code(), Code::kNotFound) << sb.status().toString();
  EXPECT_FALSE(std::filesystem::exists(state_ + "/" + spec.id));
  EXPECT_EQ(countMounts(), mounts);
}

TEST_F(ImageSandboxTest, DestroyLeavesNoMounts) {
  int mounts = countMounts();
  Sandbox* sb = create({.image = kImageName});
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "echo up"), "up\n");
  ASSERT_TRUE(sb->destroy().isOk());
  EXPECT_EQ(countMounts(), mounts);
}

TEST_F(ImageSandboxTest, AllowlistEgressWorksOnAnImage) {
  TestUpstream http(TestUpstream::Mode::kHttp, "0.0.0.0");
  const std::string host = "127.0.0.2:" + std::to_string(http.port());
  SandboxSpec spec;
  spec.image = kImageName;
  spec.network = "allowlist";
  spec.allowHosts = {host};
  Sandbox* sb = create(spec);
  ASSERT_NE(sb, nullptr);
  // No python or curl in minbase: bash's /dev/tcp speaks to the proxy port directly.
  std::string out = run(sb, "bash -c 'exec 3<>/dev/tcp/127.0.0.1/3128; printf \"GET http://" +
                                host + "/img HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'");
  EXPECT_NE(out.find("hello /img"), std::string::npos) << out;
}

TEST_F(ImageSandboxTest, CliImageFlag) {
  std::string out;
  std::string state = tempDir("cli");
  dirs_.push_back(state);
  int rc = kiln::testing::shell(std::string(KILN_BINARY) + " sandbox exec --state-dir " + state +
                                    " --images-dir " + images_ + " --image " + kImageName +
                                    " -- cat /etc/debian_version",
                                &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, readText(rootfs() + "/etc/debian_version"));
}

TEST(ImageBuildTest, FailedBuildLeavesNothingBehind) {
  if (geteuid() != 0) GTEST_SKIP() << "debootstrap needs root";
  std::string dir = tempDir("imgfail");
  std::string out;
  // A suite the archive does not have: debootstrap fails after fetching the Release file.
  int rc = kiln::testing::shell(std::string(KILN_BINARY) + " image --images-dir " + dir +
                                    " build broken --suite no-such-suite",
                                &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("debootstrap failed"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::is_empty(dir)) << out;
  rc = kiln::testing::shell(
      std::string(KILN_BINARY) + " image --images-dir " + dir + " build Bad/Name", &out);
  EXPECT_NE(rc, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln::sandbox::testing
