// --include / --exclude: POSIX extended regular expressions searched (not anchored) in a layer's
// node name and weight name. POSIX regexec is used rather than std::regex, whose libstdc++
// implementation recurses once per character and overflows the stack on long names.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::pipeline {

class NameFilter {
 public:
  // InvalidArgument naming the pattern when one does not compile.
  static StatusOr<NameFilter> Create(const std::vector<std::string>& include,
                                     const std::vector<std::string>& exclude);

  // "" when the layer is selected; else the skip reason "excluded" or "not_included".
  std::string Reject(const std::string& node_name, const std::string& weight_name) const;

 private:
  struct Compiled;
  static StatusOr<std::vector<std::shared_ptr<Compiled>>> CompileAll(
      const std::vector<std::string>& patterns);
  static bool AnyMatch(const std::vector<std::shared_ptr<Compiled>>& patterns,
                       const std::string& node_name, const std::string& weight_name);

  std::vector<std::shared_ptr<Compiled>> include_;
  std::vector<std::shared_ptr<Compiled>> exclude_;
};

}  // namespace kfc::pipeline
