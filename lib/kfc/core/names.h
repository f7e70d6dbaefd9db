// SPDX-License-Identifier: Apache-2.0
// Deterministic unique names for tensors and nodes added to a graph.
#pragma once

#include <string>
#include <unordered_set>

namespace kfc {

class NameGenerator {
 public:
  NameGenerator() = default;
  explicit NameGenerator(std::unordered_set<std::string> used) : used_(std::move(used)) {}

  void Reserve(const std::string& name) { used_.insert(name); }
  bool IsUsed(const std::string& name) const { return used_.count(name) > 0; }

  // Returns `base` if unused, else the first unused of base_1, base_2, ...; the result is
  // reserved. Deterministic: depends only on the reserved names and the call order.
  std::string Unique(const std::string& base);

 private:
  std::unordered_set<std::string> used_;
};

}  // namespace kfc
