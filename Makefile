# kiln — two commands: `make demo` and `make test`. Each installs what it needs first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
DEBS := g++ cmake ninja-build pkg-config git make python3 libboost-dev libcurl4-openssl-dev \
        libssl-dev nlohmann-json3-dev libsqlite3-dev libpq-dev libseccomp-dev libcli11-dev \
        libspdlog-dev libfmt-dev libgtest-dev bubblewrap iproute2 procps e2fsprogs debootstrap \
        chromium postgresql kubernetes-client python3-yaml runsc clang
# Secrets at rest (crypto_secretbox, src/secrets/secret_box.h); openssl makes the test HTTPS
# servers' certificates (tests/integration/secrets_test.cc).
DEBS += libsodium-dev openssl
# Build speed (ccache, mold) and `make package` (dpkg-shlibdeps).
DEBS += ccache mold dpkg-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The real agent CLIs the tests run in sandboxes (tests/integration/real_cli_test.cc), pinned.
# Claude Code 2.1.197 is the newest release that still runs on Debian 12's Node 18 (later ones
# ask for Node 22); Codex and claude-code-acp need Node 16 and 18.
AGENT_CLIS := @anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0 \
              @zed-industries/claude-code-acp@0.16.2 \
              @modelcontextprotocol/server-filesystem@2026.8.31
AGENT_CLI_DIR := $(BUILD_DIR)/agent-clis

.PHONY: all deps build test test-package fuzz demo package bench clean format agent-clis

all: build

# Installs only the packages that are missing, after an `apt-get update`. Node.js and npm (the web
# dashboard's build, tests/web) come from Debian unless a node is already on the PATH. Any kubectl
# does for kubernetes-client (another kubectl package would conflict with it).
deps:
	@missing=$$(for p in $(DEBS); do \
	  if [ $$p = kubernetes-client ] && command -v kubectl >/dev/null; then continue; fi; \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	  grep -q 'install ok installed' || echo $$p; done); \
	command -v node >/dev/null && command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD_DIR)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Installs AGENT_CLIS (the agent CLIs, and MCP servers jobs may start) from npm into
# $(AGENT_CLI_DIR) (never globally), once per pinned list;
# Node and npm come from Debian when missing.
agent-clis: $(AGENT_CLI_DIR)/.installed
$(AGENT_CLI_DIR)/.installed: Makefile
	@command -v npm >/dev/null || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
	  nodejs npm; }
	rm -rf $(AGENT_CLI_DIR) && mkdir -p $(AGENT_CLI_DIR)
	@cd $(AGENT_CLI_DIR) && echo '{"private": true}' > package.json && \
	  if npm install --no-audit --no-fund --loglevel=error $(AGENT_CLIS); then touch .installed; \
	  else rm -rf node_modules; echo "agent-clis: npm install failed: the real agent CLI and MCP tests \
	  (RealCliTest) will be skipped" >&2; fi

# Serial on purpose: the sandbox leak tests count host-wide mounts, cgroups and processes.
test: build agent-clis
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600

# Each libFuzzer target (tests/fuzz/, built with clang) for FUZZ_SECONDS; `make test` runs each
# for a few seconds.
FUZZ_SECONDS ?= 60
fuzz: build
	@for t in http_request job_request resume_id stream_json; do \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  log=$(BUILD_DIR)/fuzz/$$t.log; \
	  if tests/fuzz/run.sh $(BUILD_DIR)/fuzz $$t $(FUZZ_SECONDS) >$$log 2>&1; then tail -n 3 $$log; \
	  else tail -n 60 $$log; echo "fuzz $$t failed: the input is in $(BUILD_DIR)/fuzz/artifacts"; \
	  exit 1; fi; \
	done


# The .deb installed into a fresh Debian root (debootstrap of its dependencies: minutes on a
# fresh machine), and a mock job run from it; `make test` checks the package without installing.
test-package: build
	KILN_TEST_PACKAGE_INSTALL=1 $(BUILD_DIR)/kiln_tests --gtest_filter='DebPackageTest.*'

# Builds only what the demo runs; `make build` and `make test` build the tests and benches too.
demo:
	@echo "== make demo: installing missing packages, building kiln and kiln-runtime (the first time 3 to 6 min on 2 cores; seconds after), then running a mock agent on a sample repo"
	@$(MAKE) --no-print-directory deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) --target kiln kiln-runtime
	./scripts/demo.sh $(BUILD_DIR)/kiln

# A Debian package of kiln, kiln-runtime, the systemd unit and /etc/default/kiln.
package: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) --target kiln kiln-runtime
	cd $(BUILD_DIR) && cpack --config CPackConfig.cmake
	@echo "== built: $$(ls $(BUILD_DIR)/kiln_*.deb); install: sudo apt install ./$$(ls $(BUILD_DIR)/kiln_*.deb)"

bench: build
	@for b in $(BUILD_DIR)/bench/*; do echo "== $$b"; $$b || exit 1; done

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'bench/*.cc')

clean:
	rm -rf $(BUILD_DIR)
