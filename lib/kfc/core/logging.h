// SPDX-License-Identifier: Apache-2.0
// The library's one named spdlog logger ("kfc"). The library never adds sinks: the tool (or a
// test) decides where logs go by adding sinks to this logger.
#pragma once

#include <spdlog/spdlog.h>

namespace kfc {

inline constexpr const char* kLoggerName = "kfc";

// Returns the "kfc" logger, registering one without sinks on first use.
spdlog::logger& Logger();

}  // namespace kfc
