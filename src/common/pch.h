// Precompiled header for the heavy third-party includes every module uses.
#pragma once
#include "common/asio.h"
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
