// SPDX-License-Identifier: Apache-2.0
// Layer selection by name: --include / --exclude and --plan's `regex` entries. Patterns are POSIX
// extended regular expressions searched (not anchored) in a layer's node name and weight name.
// POSIX regexec is used rather than std::regex, whose libstdc++ implementation recurses once per
// character and overflows the stack on long names.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::pipeline {

class NamePattern {
 public:
  // InvalidArgument naming the pattern when it does not compile.
  static StatusOr<NamePattern> Compile(const std::string& pattern);

  // True when the pattern matches somewhere in either name.
  bool Matches(const std::string& node_name, const std::string& weight_name) const;

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;
};

class NameFilter {
 public:
  // InvalidArgument naming the pattern when one does not compile.
  static StatusOr<NameFilter> Create(const std::vector<std::string>& include,
                                     const std::vector<std::string>& exclude);

  // "" when the layer is selected; else the skip reason "excluded" or "not_included".
  std::string Reject(const std::string& node_name, const std::string& weight_name) const;

 private:
  std::vector<NamePattern> include_;
  std::vector<NamePattern> exclude_;
};

}  // namespace kfc::pipeline
