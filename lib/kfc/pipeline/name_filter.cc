// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/name_filter.h"

#include <regex.h>

namespace kfc::pipeline {
namespace {

StatusOr<std::vector<NamePattern>> CompileAll(const std::vector<std::string>& patterns) {
  std::vector<NamePattern> out;
  for (const auto& p : patterns) {
    KFC_ASSIGN_OR_RETURN(NamePattern compiled, NamePattern::Compile(p));
    out.push_back(std::move(compiled));
  }
  return out;
}

bool AnyMatch(const std::vector<NamePattern>& patterns, const std::string& node_name,
              const std::string& weight_name) {
  for (const auto& p : patterns) {
    if (p.Matches(node_name, weight_name)) return true;
  }
  return false;
}

}  // namespace

struct NamePattern::Compiled {
  regex_t re{};
  bool ok = false;
  ~Compiled() {
    if (ok) regfree(&re);
  }
};

StatusOr<NamePattern> NamePattern::Compile(const std::string& pattern) {
  auto c = std::make_shared<Compiled>();
  const int rc = regcomp(&c->re, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char buf[256];
    regerror(rc, &c->re, buf, sizeof(buf));
    return InvalidArgument("regex '" + pattern + "': " + buf);
  }
  c->ok = true;
  NamePattern p;
  p.compiled_ = std::move(c);
  return p;
}

bool NamePattern::Matches(const std::string& node_name, const std::string& weight_name) const {
  return regexec(&compiled_->re, node_name.c_str(), 0, nullptr, 0) == 0 ||
         regexec(&compiled_->re, weight_name.c_str(), 0, nullptr, 0) == 0;
}

StatusOr<NameFilter> NameFilter::Create(const std::vector<std::string>& include,
                                        const std::vector<std::string>& exclude) {
  NameFilter f;
  KFC_ASSIGN_OR_RETURN(f.include_, CompileAll(include));
  KFC_ASSIGN_OR_RETURN(f.exclude_, CompileAll(exclude));
  return f;
}

std::string NameFilter::Reject(const std::string& node_name, const std::string& weight_name) const {
  if (!include_.empty() && !AnyMatch(include_, node_name, weight_name)) return "not_included";
  if (AnyMatch(exclude_, node_name, weight_name)) return "excluded";
  return "";
}

}  // namespace kfc::pipeline
