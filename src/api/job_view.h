// The wire shapes of store records (docs/api.md): jobs, steps and SSE event frames. Pure
// functions.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "store/store.h"

namespace kiln::api {

nlohmann::json jobJson(const store::Job& job);
nlohmann::json stepJson(const store::Step& step);
// "id: <seq>\nevent: <type>\ndata: <payload>\n\n".
std::string sseFrame(const store::Event& event);

}  // namespace kiln::api
