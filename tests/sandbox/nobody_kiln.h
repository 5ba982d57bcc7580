// kiln run by an unprivileged user (`nobody`, switched to with setpriv), for rootless-mode
// tests: the binaries are copied into a temp dir of nobody's, since the build dir may sit under
// /root. Needs root to set up; see unavailable().
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace kiln::sandbox::testing {

class NobodyKiln {
 public:
  // Why rootless tests cannot run here (the caller skips), or empty.
  static std::string unavailable() {
    if (geteuid() != 0) return "needs root (to run kiln as nobody)";
    std::ifstream in("/proc/sys/user/max_user_namespaces");
    long n = 0;
    if (!(in >> n) || n == 0) return "user namespaces are disabled on this host";
    if (access("/usr/bin/setpriv", X_OK) != 0) return "setpriv (util-linux) missing";
    return "";
  }

  NobodyKiln() {
    char tmpl[] = "/tmp/krootless-XXXXXX";
    if (!mkdtemp(tmpl)) return;
    dir_ = tmpl;
    const std::string bin = KILN_BINARY;
    const std::string runtime = bin.substr(0, bin.rfind('/') + 1) + "kiln-runtime";
    std::filesystem::copy_file(bin, dir_ + "/kiln");
    if (std::filesystem::exists(runtime))
      std::filesystem::copy_file(runtime, dir_ + "/kiln-runtime");
    ok_ = kiln::testing::shell("chown -R nobody:nogroup " + dir_) == 0;
  }
  ~NobodyKiln() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  NobodyKiln(const NobodyKiln&) = delete;
  NobodyKiln& operator=(const NobodyKiln&) = delete;

  bool ok() const { return ok_; }
  const std::string& dir() const { return dir_; }

  // `cmd` (a shell line) run as nobody in dir(), with HOME=dir(); stdout+stderr in *out.
  int shell(const std::string& cmd, std::string* out) const {
    return kiln::testing::shell("cd " + dir_ + " && setpriv --reuid=nobody --regid=nogroup " +
                                    "--clear-groups env HOME=" + dir_ + " " + cmd,
                                out);
  }
  // `kiln sandbox exec [flags] -- sh -c script` as nobody.
  int sandboxExec(const std::string& flags, const std::string& script, std::string* out) const {
    return shell("./kiln sandbox exec --state-dir " + dir_ + "/state " + flags + " -- sh -c " +
                     kiln::testing::shellQuote(script),
                 out);
  }

 private:
  std::string dir_;
  bool ok_ = false;
};

}  // namespace kiln::sandbox::testing
