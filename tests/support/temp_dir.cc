#include "support/temp_dir.h"

#include <stdio.h>
#include <stdlib.h>

#include <stdexcept>

namespace kiln::testing {

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kiln-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string shellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

int shell(const std::string& cmd, std::string* out) {
  FILE* p = popen(("bash -c " + shellQuote(cmd) + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    if (out) out->append(buf, n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void makeSampleRepo(const std::string& dir) {
  std::string out;
  int rc = shell("set -e; mkdir -p '" + dir + "' && cd '" + dir +
                     "' && git init -q -b main . && "
                     "printf 'test:\\n\\t./test.sh\\n' > Makefile && "
                     "printf '#!/bin/sh\\necho tests passed\\n' > test.sh && chmod +x test.sh && "
                     "printf 'def hello():\\n    return \"hello\"\\n' > hello.py && "
                     "printf '# sample\\n' > README.md && git add -A && "
                     "git -c user.name=t -c user.email=t@t commit -qm 'initial commit'",
                 &out);
  if (rc != 0) throw std::runtime_error("makeSampleRepo: " + out);
}

}  // namespace kiln::testing
