// Whether this build contains the node (composition root) implementation. Temporary: src/node
// lands after src/cli, and until then `kiln serve` and the embedded server report
// kNodeMissingMessage instead of failing to link. Remove once src/node/node.cc is in.
#pragma once

#if __has_include("node/node.cc")
#define KILN_CLI_HAS_NODE 1
#else
#define KILN_CLI_HAS_NODE 0
#endif

namespace kiln::cli {
inline constexpr const char* kNodeMissingMessage =
    "the kiln node is not implemented in this build (src/node missing)";
}  // namespace kiln::cli
