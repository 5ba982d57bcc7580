// The SSE event stream of one job (GET /api/v1/jobs/{id}/stream): replays stored events after
// a sequence number, then follows new ones (bus wake-ups plus a slow store poll) until the
// job's `done` event. Runs on the connection's strand; holds no thread while waiting.
#pragma once
#include <chrono>

#include "api/reply.h"
#include "api/router.h"

namespace kiln::api {

// A write to a client (an answer, an SSE event) that makes no progress for this long ends the
// connection: a client that stopped reading holds no buffers.
inline constexpr auto kWriteTimeout = std::chrono::seconds(30);

// Writes the SSE response head and events to `stream` until the stream ends. The caller closes
// the connection afterwards.
Task<void> runSseStream(beast::tcp_stream& stream, ServerEnv& env, const SseRequest& sse,
                        unsigned httpVersion);

}  // namespace kiln::api
