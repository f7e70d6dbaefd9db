// SPDX-License-Identifier: Apache-2.0
#include "kfc/core/names.h"

namespace kfc {

std::string NameGenerator::Unique(const std::string& base) {
  std::string name = base;
  for (int i = 1; used_.count(name) > 0; ++i) name = base + "_" + std::to_string(i);
  used_.insert(name);
  return name;
}

}  // namespace kfc
