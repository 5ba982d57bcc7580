// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with its contents at scope exit.
#pragma once
#include <filesystem>
#include <string>

namespace kiln::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs a shell command (bash -c), returns its exit code; output goes to `out` if given.
int shell(const std::string& cmd, std::string* out = nullptr);
// s as one single-quoted shell word.
std::string shellQuote(const std::string& s);

// Creates a small git repository with one commit at `dir`: a Makefile with a `test` target that
// runs ./test.sh, a hello.py and a README.
void makeSampleRepo(const std::string& dir);

}  // namespace kiln::testing
