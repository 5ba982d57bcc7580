// Identifiers and digests: random UUIDv4 strings, SHA-256 and HMAC-SHA256 hex, random tokens.
#pragma once
#include <string>
#include <string_view>

namespace kiln {

std::string newUuid();
std::string sha256Hex(std::string_view data);
// HMAC-SHA256 of `data` under `key`, hex.
std::string hmacSha256Hex(std::string_view key, std::string_view data);
// A URL-safe random secret of `bytes` random bytes, hex-encoded.
std::string randomToken(size_t bytes = 32);
// True if s looks like a UUID (8-4-4-4-12 hex).
bool isUuid(std::string_view s);

}  // namespace kiln
