#include "kfc/pipeline/name_filter.h"

#include <regex.h>

namespace kfc::pipeline {

struct NameFilter::Compiled {
  regex_t re{};
  bool ok = false;
  ~Compiled() {
    if (ok) regfree(&re);
  }
};

StatusOr<std::vector<std::shared_ptr<NameFilter::Compiled>>> NameFilter::CompileAll(
    const std::vector<std::string>& patterns) {
  std::vector<std::shared_ptr<Compiled>> out;
  for (const auto& p : patterns) {
    auto c = std::make_shared<Compiled>();
    const int rc = regcomp(&c->re, p.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char buf[256];
      regerror(rc, &c->re, buf, sizeof(buf));
      return InvalidArgument("regex '" + p + "': " + buf);
    }
    c->ok = true;
    out.push_back(std::move(c));
  }
  return out;
}

StatusOr<NameFilter> NameFilter::Create(const std::vector<std::string>& include,
                                        const std::vector<std::string>& exclude) {
  NameFilter f;
  KFC_ASSIGN_OR_RETURN(f.include_, CompileAll(include));
  KFC_ASSIGN_OR_RETURN(f.exclude_, CompileAll(exclude));
  return f;
}

bool NameFilter::AnyMatch(const std::vector<std::shared_ptr<Compiled>>& patterns,
                          const std::string& node_name, const std::string& weight_name) {
  for (const auto& p : patterns) {
    if (regexec(&p->re, node_name.c_str(), 0, nullptr, 0) == 0 ||
        regexec(&p->re, weight_name.c_str(), 0, nullptr, 0) == 0) {
      return true;
    }
  }
  return false;
}

std::string NameFilter::Reject(const std::string& node_name, const std::string& weight_name) const {
  if (!include_.empty() && !AnyMatch(include_, node_name, weight_name)) return "not_included";
  if (AnyMatch(exclude_, node_name, weight_name)) return "excluded";
  return "";
}

}  // namespace kfc::pipeline
