// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/name_filter.h"

#include <re2/re2.h>

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

// Whether any pattern matches; marks every pattern that does in `hit`.
bool AnyMatch(const std::vector<NamePattern>& patterns, const std::string& node_name,
              const std::string& weight_name, std::vector<bool>* hit) {
  bool any = false;
  for (size_t i = 0; i < patterns.size(); ++i) {
    if (patterns[i].Matches(node_name, weight_name)) {
      (*hit)[i] = true;
      any = true;
    }
  }
  return any;
}

}  // namespace

struct NamePattern::Compiled {
  explicit Compiled(const std::string& pattern, const RE2::Options& options)
      : re(pattern, options) {}
  RE2 re;
};

StatusOr<NamePattern> NamePattern::Compile(const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_encoding(RE2::Options::EncodingLatin1);  // bytes: any name can be matched
  options.set_max_mem(kMaxPatternMemory);
  auto c = std::make_shared<Compiled>(pattern, options);
  if (!c->re.ok()) {
    return InvalidArgument("regex '" + pattern + "': " + c->re.error() +
                           " (RE2 syntax: no backreferences)");
  }
  NamePattern p;
  p.compiled_ = std::move(c);
  return p;
}

bool NamePattern::Matches(const std::string& node_name, const std::string& weight_name) const {
  return RE2::PartialMatch(node_name, compiled_->re) ||
         RE2::PartialMatch(weight_name, compiled_->re);
}

const std::string& NamePattern::text() const { return compiled_->re.pattern(); }

StatusOr<NameFilter> NameFilter::Create(const std::vector<std::string>& include,
                                        const std::vector<std::string>& exclude) {
  NameFilter f;
  KFC_ASSIGN_OR_RETURN(f.include_, CompileAll(include));
  KFC_ASSIGN_OR_RETURN(f.exclude_, CompileAll(exclude));
  f.include_hit_ = std::make_shared<std::vector<bool>>(f.include_.size(), false);
  f.exclude_hit_ = std::make_shared<std::vector<bool>>(f.exclude_.size(), false);
  return f;
}

std::string NameFilter::Reject(const std::string& node_name, const std::string& weight_name) const {
  // Every pattern is tried (not only until one matches) so that Unmatched is exact.
  const bool included = AnyMatch(include_, node_name, weight_name, include_hit_.get());
  const bool excluded = AnyMatch(exclude_, node_name, weight_name, exclude_hit_.get());
  if (!include_.empty() && !included) return "not_included";
  if (excluded) return "excluded";
  return "";
}

std::vector<std::string> NameFilter::Unmatched() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < include_.size(); ++i) {
    if (!(*include_hit_)[i]) out.push_back("--include '" + include_[i].text() + "'");
  }
  for (size_t i = 0; i < exclude_.size(); ++i) {
    if (!(*exclude_hit_)[i]) out.push_back("--exclude '" + exclude_[i].text() + "'");
  }
  return out;
}

}  // namespace kfc::pipeline
