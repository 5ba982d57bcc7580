// The web dashboard's files (web/src, bundled by web/build.mjs at build time), compiled into the
// binary so one `kiln` binary serves its own UI. Immutable static data; thread-safe.
#pragma once
#include <span>
#include <string_view>

namespace kiln::api {

struct WebAsset {
  std::string_view name;         // "index.html", or a content-hashed name like "app-X1Y2.js"
  std::string_view contentType;  // with charset for text
  std::string_view etag;         // quoted strong validator of `body`
  std::string_view body;
  std::string_view gzipBody;  // `body` gzipped; empty when compression does not pay
  bool immutable;             // the name changes whenever the bytes do
};

// Every asset; the generated build/web/web_assets.cc defines it.
std::span<const WebAsset> webAssets();

}  // namespace kiln::api
