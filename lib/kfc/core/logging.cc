// SPDX-License-Identifier: Apache-2.0
#include "kfc/core/logging.h"

#include <memory>
#include <mutex>

namespace kfc {

spdlog::logger& Logger() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!spdlog::get(kLoggerName)) {
      auto logger = std::make_shared<spdlog::logger>(kLoggerName);
      logger->set_level(spdlog::level::info);
      spdlog::register_logger(logger);
    }
  });
  return *spdlog::get(kLoggerName);
}

}  // namespace kfc
