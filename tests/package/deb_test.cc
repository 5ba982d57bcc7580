// The Debian package of `make package`, built by cpack from this build dir.
// - DebPackageTest.HoldsTheServiceAndRuns (in `make test`): the package's files, its Depends, and
//   its `kiln` binary, unpacked, runs.
// - DebPackageTest.InstallsIntoAFreshRootAndRunsAMockJob (`make test-package`, which sets
//   KILN_TEST_PACKAGE_INSTALL=1: its debootstrap of the dependencies takes two to three minutes
//   on a fresh machine): installed with dpkg into a fresh Debian root that holds only the
//   package's declared dependencies, then used as an admin would (tests/package/install_deb.sh):
//   `kiln --version`, the server started the way its systemd unit says, and a mock job through
//   it with the CLI set up as the install message says.
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "common/files.h"
#include "support/temp_dir.h"
#include "support/test_image.h"

namespace kiln::testing {
namespace {

constexpr const char* kDepsImage = "test-bookworm-kiln-deps";

std::string buildDir() {
  std::string binary = KILN_BINARY;
  return binary.substr(0, binary.rfind('/'));
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The package names of a Depends field: "libc6 (>= 2.34), git, a | b" -> libc6, git, a.
std::vector<std::string> dependencyNames(const std::string& depends) {
  std::vector<std::string> names;
  std::istringstream in(depends);
  for (std::string item; std::getline(in, item, ',');) {
    std::istringstream words(item);
    std::string name;
    if (words >> name) names.push_back(name);
  }
  return names;
}

// The installed packages that provide `names` (a virtual name such as libspdlog1.10-fmt9, which
// debootstrap cannot install, becomes its provider), from `dpkg-query -W -f` lines
// "ii |package|provided, provided (= version)": the build host has every library kiln links.
std::vector<std::string> providers(const std::vector<std::string>& names,
                                   const std::string& installed) {
  std::map<std::string, std::string> providerOf;
  std::istringstream lines(installed);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string status, package, provides;
    std::getline(fields, status, '|');
    std::getline(fields, package, '|');
    std::getline(fields, provides);
    if (status.rfind("ii", 0) != 0) continue;
    providerOf[package] = package;
    std::istringstream items(provides);
    for (std::string item; std::getline(items, item, ',');) {
      std::istringstream words(item);
      std::string name;
      if (words >> name) providerOf.emplace(name, package);
    }
  }
  std::vector<std::string> out;
  for (const auto& n : names) {
    auto it = providerOf.find(n);
    out.push_back(it == providerOf.end() ? n : it->second);
  }
  return out;
}

TEST(DebPackageTest, DependencyNames) {
  EXPECT_EQ(dependencyNames("libc6 (>= 2.34), git, libstdc++6 (>= 12), a | b\n"),
            (std::vector<std::string>{"libc6", "git", "libstdc++6", "a"}));
  EXPECT_TRUE(dependencyNames("").empty());
  const std::string installed =
      "ii |libspdlog1.10|libspdlog1.10-fmt9\nii |git|\n"
      "ii |libx|libx-virt (= 1.0), liby\nrc |gone|gone-virt\n";
  EXPECT_EQ(providers({"libspdlog1.10-fmt9", "git", "liby", "gone-virt", "unknown"}, installed),
            (std::vector<std::string>{"libspdlog1.10", "git", "libx", "gone-virt", "unknown"}));
}

// The package `make package` builds, written by cpack into dir; "" after recording a failure.
std::string buildPackage(const std::string& dir) {
  std::string out;
  EXPECT_EQ(shell("cpack --config " + shellQuote(buildDir() + "/CPackConfig.cmake") + " -B " +
                      shellQuote(dir),
                  &out),
            0)
      << out;
  std::string deb;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".deb") deb = e.path();
  }
  EXPECT_FALSE(deb.empty()) << out;
  return deb;
}

// A control field of the package (Depends, Version).
std::string controlField(const std::string& deb, const std::string& field) {
  std::string out;
  EXPECT_EQ(shell("dpkg-deb -f " + shellQuote(deb) + " " + field, &out), 0) << out;
  return trimmed(out);
}

TEST(DebPackageTest, HoldsTheServiceAndRuns) {
  TempDir tmp;
  const std::string deb = buildPackage(tmp.file("pkg"));
  ASSERT_FALSE(deb.empty());
  std::string contents;
  ASSERT_EQ(shell("dpkg-deb -c " + shellQuote(deb), &contents), 0) << contents;
  for (const char* file : {"./usr/bin/kiln", "./usr/bin/kiln-runtime",
                           "./lib/systemd/system/kiln.service", "./etc/default/kiln"}) {
    EXPECT_NE(contents.find(std::string(file) + "\n"), std::string::npos) << file << contents;
  }
  const std::string depends = controlField(deb, "Depends");
  for (const char* dep : {"git", "libsqlite3-0", "libseccomp2", "libcurl4"}) {
    EXPECT_NE(depends.find(dep), std::string::npos) << depends;
  }
  std::string conffiles;
  ASSERT_EQ(shell("dpkg-deb --ctrl-tarfile " + shellQuote(deb) + " | tar -xO ./conffiles",
                  &conffiles),
            0)
      << conffiles;
  EXPECT_EQ(trimmed(conffiles), "/etc/default/kiln");
  // The packaged (stripped) binary, unpacked, runs and reports the package's version.
  std::string out;
  ASSERT_EQ(shell("dpkg-deb -x " + shellQuote(deb) + " " + shellQuote(tmp.file("root")), &out), 0)
      << out;
  ASSERT_EQ(shell(shellQuote(tmp.file("root/usr/bin/kiln")) + " --version", &out), 0) << out;
  EXPECT_EQ(trimmed(out), "kiln " + controlField(deb, "Version"));
}

TEST(DebPackageTest, InstallsIntoAFreshRootAndRunsAMockJob) {
  const char* enabled = getenv("KILN_TEST_PACKAGE_INSTALL");
  if (!enabled || std::string(enabled) != "1") {
    GTEST_SKIP() << "debootstraps a Debian root (minutes): run by `make test-package`";
  }
  if (geteuid() != 0) GTEST_SKIP() << "installing a package into a root filesystem needs root";
  TempDir tmp;
  const std::string deb = buildPackage(tmp.file("pkg"));
  ASSERT_FALSE(deb.empty());
  const std::string depends = controlField(deb, "Depends");
  const std::string version = controlField(deb, "Version");
  std::string out;

  // A root with the dependencies and nothing of kiln: dpkg refuses the package if one is missing.
  std::string installed;
  ASSERT_EQ(shell("dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\\n'", &installed),
            0)
      << installed;
  auto images = cachedTestImage(kDepsImage, providers(dependencyNames(depends), installed));
  ASSERT_TRUE(images.isOk()) << images.status().toString();
  const std::string rootfs = *images + "/" + kDepsImage + "/rootfs";
  const std::string work = tmp.file("work");
  int rc = shell("unshare --mount --net " + shellQuote(KILN_SOURCE_DIR) +
                     "/tests/package/install_deb.sh " + shellQuote(rootfs) + " " + shellQuote(deb) +
                     " " + shellQuote(work),
                 &out);
  const std::string install = readFile(work + "/install.out").valueOr("");
  const std::string run = readFile(work + "/run.out").valueOr("");
  EXPECT_EQ(trimmed(readFile(work + "/version.out").valueOr("")), "kiln " + trimmed(version));
  // The install message: where the server will listen and where its token is.
  EXPECT_NE(install.find("URL:          http://127.0.0.1:8080\n"), std::string::npos) << install;
  EXPECT_NE(install.find("admin token:  /var/lib/kiln/admin.token"), std::string::npos) << install;
  EXPECT_EQ(trimmed(readFile(work + "/token.out").valueOr("")),
            "-rw------- /var/lib/kiln/admin.token");
  ASSERT_EQ(rc, 0) << out << "\n--- install:\n" << install << "\n--- run:\n" << run;
  // The mock agent's work, committed and shown as the job's diff.
  EXPECT_NE(run.find("AGENT_TASK.md"), std::string::npos) << run;
  EXPECT_NE(run.find("Add a farewell function"), std::string::npos) << run;
}

}  // namespace
}  // namespace kiln::testing
