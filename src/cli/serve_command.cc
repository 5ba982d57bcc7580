// `kiln serve`: run a Node in the foreground until SIGINT/SIGTERM.
#include <unistd.h>

#include <iostream>
#include <mutex>

#include "cli/commands.h"
#include "cli/signal_watcher.h"
#include "node/node.h"

namespace kiln::cli {

int serveCommand(const ServeFlags& flags, const ClientFlags& client) {
  ServeFlags merged = flags;
  // The global --data-dir is the one `kiln serve` uses too.
  if (merged.dataDir.empty()) merged.dataDir = client.dataDir;
  auto opts = resolveServeOptions(merged, processEnv());
  if (!opts) return fail(opts.status().message());
  if (Status st = node::resolveDefaults(*opts); !st) return fail(st.message());
  std::unique_ptr<node::Node> node;
  std::mutex mu;
  bool stopRequested = false;  // GUARDED_BY(mu): a signal that came before `node` was set
  // Before Node::start so that no node thread ever takes SIGINT/SIGTERM itself.
  SignalWatcher signals([&](int, int count) {
    if (count > 1) _exit(130);
    std::cerr << "kiln: shutting down\n";
    std::lock_guard lock(mu);
    stopRequested = true;
    if (node) node->shutdown();
  });
  auto started = node::Node::start(*opts);
  if (!started) return fail("serve: " + started.status().message());
  {
    std::lock_guard lock(mu);
    node = std::move(started).value();
    if (stopRequested) node->shutdown();
  }
  std::cout << "kiln serving on " << node->url() << "\n"
            << "  data dir:    " << opts->dataDir << "\n"
            << "  admin token: " << opts->dataDir << "/admin.token\n"
            << std::flush;
  node->wait();
  std::lock_guard lock(mu);
  node.reset();
  return kExitOk;
}

}  // namespace kiln::cli
