// ShellSession: the sandbox's persistent shell for the "session" shell mode. One bash process,
// started at the first call, whose cwd, variables, functions and sourced files carry over from
// call to call. Each call's command goes into a file the shell sources with stdin from
// /dev/null; its end, exit code, cwd and exported variables come back on a pipe of their own
// (the shell's fd 3, closed for the command) behind a per-call random nonce, so nothing a
// command prints can end or fake the end of a call. A call that times out has the processes it
// started interrupted (SIGINT, then SIGKILL of them and their process groups); if the shell
// itself does not come back (a builtin loop), the shell is killed and the next call starts a new
// one from the last recorded state. Thread-safe: one call at a time, a concurrent one is refused.
#pragma once
#include <sys/types.h>

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "runtime/process_table.h"

namespace kiln::runtime {

class ShellSession {
 public:
  // `shell`: the bash to run (the session needs bash: sh has no compgen or ${!name}).
  ShellSession(ProcessTable& table, std::string shell);
  ~ShellSession();

  struct Call {
    std::string cmd;
    std::vector<std::string> env;  // "K=V": what a fresh command would get (the base)
    std::string cwd;               // where a new shell starts unless `restore` says otherwise
    // {cwd, env: {K: V | null}}: the state a new shell starts from (a resumed job's), null for
    // none. Ignored while the shell lives.
    nlohmann::json restore;
    int timeoutMs = 0;  // 0 = none
    int peerFd = -1;    // as SpawnRequest::peerFd
  };
  struct Outcome {
    SpawnOutcome spawn;  // exitCode (the command's, or the shell's when it ended), timedOut, ...
    // After the call: {cwd, env: {K: V | null}} with env the exported variables that differ
    // from the base (null: unset), null when the shell did not report back.
    nlohmann::json state;
    bool started = false;  // a new shell was started for this call
    bool ended = false;    // the shell is gone (exit, killed): the next call starts a new one
  };
  Result<Outcome> run(const Call& call, const OutputFn& onOutput);

 private:
  struct Shell;
  Status start(const Call& call);
  void stop();

  ProcessTable& table_;
  std::string shellPath_;
  std::mutex mu_;                 // held for a whole call
  std::unique_ptr<Shell> shell_;  // GUARDED_BY(mu_)
};

// The state a shell reports (NUL-separated: nonce, exit code, cwd, K=V..., then an empty field)
// as {cwd, env} relative to `base`; nullopt when `report` is not a whole report for `nonce`.
// Exposed for tests.
struct ShellReport {
  int exitCode = 0;
  nlohmann::json state;
};
std::optional<ShellReport> parseShellReport(std::string_view report, std::string_view nonce,
                                            const std::vector<std::string>& base);

}  // namespace kiln::runtime
