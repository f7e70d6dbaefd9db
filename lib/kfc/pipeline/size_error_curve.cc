#include "kfc/pipeline/size_error_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kfc::pipeline {
namespace {

struct Step {
  double dp = 0, dc = 0;  // params added, cost change (<= 0)
  size_t group = 0;
};

double Judged(const report::LayerReport& l) {
  return l.calibrated() && l.data_relative_error() >= 0 ? l.data_relative_error()
                                                        : l.relative_error();
}

bool OwnsFactors(const report::LayerReport& l) {
  return l.compressed() && l.shares_factors_with().empty();
}

}  // namespace

std::vector<report::CurvePoint> SizeErrorPoints(const CurveInput& in, size_t max_points) {
  std::vector<report::CurvePoint> points;
  if (in.groups.empty() || !(in.total_weight > 0)) return points;
  double params = in.fixed_params, cost = in.fixed_cost;
  std::vector<Step> steps;
  for (size_t g = 0; g < in.groups.size(); ++g) {
    const std::vector<AllocOption>& o = in.groups[g].options;
    const std::vector<size_t> hull = LowerConvexHull(o);
    params += static_cast<double>(o[hull.front()].params);
    cost += o[hull.front()].cost;
    for (size_t h = 1; h < hull.size(); ++h) {
      const AllocOption& a = o[hull[h - 1]];
      const AllocOption& b = o[hull[h]];
      steps.push_back({static_cast<double>(b.params - a.params), b.cost - a.cost, g});
    }
  }
  // Largest cost reduction per parameter first; within a group the hull's slopes already rise, so
  // a stable sort keeps each group's steps in order.
  std::stable_sort(steps.begin(), steps.end(),
                   [](const Step& a, const Step& b) { return a.dc * b.dp < b.dc * a.dp; });
  auto add = [&](double p, double c) {
    report::CurvePoint pt;
    pt.set_params(p);
    // At 10 significant digits, as the report's other errors: sums of many doubles should not
    // make the last digits machine-dependent.
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9e", std::sqrt(std::max(c, 0.0) / in.total_weight));
    pt.set_error(std::strtod(buf, nullptr));
    points.push_back(pt);
  };
  add(params, cost);
  for (const Step& s : steps) {
    params += s.dp;
    cost += s.dc;
    add(params, cost);
  }
  if (max_points >= 2 && points.size() > max_points) {
    std::vector<report::CurvePoint> thin;
    const double n = static_cast<double>(points.size() - 1);
    for (size_t i = 0; i < max_points; ++i) {
      const auto at = static_cast<size_t>(
          std::llround(n * static_cast<double>(i) / static_cast<double>(max_points - 1)));
      thin.push_back(points[at]);
    }
    points = std::move(thin);
  }
  return points;
}

double CompressedCost(const report::Report& r, const char* except) {
  double cost = 0;
  for (const auto& l : r.layers()) {
    if (!OwnsFactors(l) || l.decided_by() == except) continue;
    const double e = Judged(l);
    cost += l.k() * l.n() * e * e;
  }
  return cost;
}

CurveInput CurveFromSpectra(const report::Report& r) {
  CurveInput in;
  in.total_weight = r.totals().compressible_params_before();
  double grouped_params = 0;
  for (const auto& l : r.layers()) {
    if (!OwnsFactors(l)) continue;
    const double e = Judged(l);
    const auto& v = l.spectrum().values();
    const int64_t per_term = static_cast<int64_t>(l.k1() * l.n1() + l.k2() * l.n2());
    const int64_t dense = static_cast<int64_t>(l.k() * l.n());
    const int64_t rank = static_cast<int64_t>(l.rank());
    if (v.empty() || l.calibrated() || per_term <= 0 || rank < 1 ||
        rank > static_cast<int64_t>(v.size())) {
      in.fixed_cost += l.k() * l.n() * e * e;
      continue;
    }
    grouped_params += l.params_after();
    AllocGroup g;
    const double weight = static_cast<double>(dense);
    for (int64_t r2 = 1; r2 <= static_cast<int64_t>(v.size()) && r2 * per_term < dense; ++r2) {
      // The error at r2 from the error at the chosen rank and the values between the two ranks.
      double e2 = e * e;
      for (int64_t t = std::min(r2, rank); t < std::max(r2, rank); ++t) {
        const double s = v[static_cast<int>(t)];
        e2 += r2 < rank ? s * s : -s * s;
      }
      g.options.push_back({r2 * per_term, weight * std::max(e2, 0.0)});
    }
    g.options.push_back({dense, 0.0});
    in.groups.push_back(std::move(g));
  }
  in.fixed_params = r.totals().compressible_params_after() - grouped_params;
  return in;
}

void SetSizeErrorCurve(const CurveInput& input, const char* basis, report::Report* r) {
  std::vector<report::CurvePoint> points = SizeErrorPoints(input);
  if (points.empty()) return;
  report::SizeErrorCurve* c = r->mutable_size_error_curve();
  c->set_basis(basis);
  for (auto& p : points) *c->add_points() = std::move(p);
  c->set_params_dense(r->totals().compressible_params_before());
  c->mutable_chosen()->set_params(r->totals().compressible_params_after());
  const double w = input.total_weight;
  c->mutable_chosen()->set_error(w > 0 ? std::sqrt(CompressedCost(*r) / w) : 0.0);
}

}  // namespace kfc::pipeline
