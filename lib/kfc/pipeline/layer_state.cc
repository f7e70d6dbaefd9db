// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/layer_state.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "kfc/pipeline/calibration.h"

namespace kfc::pipeline {

Decision SkipDecision(const std::string& reason, const std::string& detail) {
  Decision d;
  d.skip_reason = reason;
  d.skip_detail = detail;
  return d;
}

void LayerState::SkipNonFinite(const std::string& why) {
  considered = false;
  directed = false;
  dir = Directive{};
  dec = Decision{};
  check_in_factorize = false;
  stats.reset();
  stats_parked = ParkedStats{};
  calibrated = false;
  calibration_note.clear();
  shaped = false;
  Skip("non_finite_weight", why);
}

const kron::InputStats* StatsOf(const LayerState& s) {
  return s.stats && !s.stats->factored() ? &*s.stats : nullptr;
}

bool Calibrated(const LayerState& s, const kron::KronShape& shape) {
  return s.stats && (!s.stats->factored() || s.stats->kf_k1 == shape.k1);
}

bool Profitable(const Options& o, const match::LayerCandidate& c, const Decision& d) {
  return !o.skip_unprofitable || d.rank * d.shape.ParamsPerTerm() < c.k * c.n;
}

std::string WeightKey(const LayerState& s) {
  const match::LayerCandidate& c = *s.c;
  return c.source_value + "|" + (c.trans_b ? "t" : "n") +
         (s.stats ? "|calibrated:" + c.input_name + (ColumnSamples(c) ? "|columns" : "") : "");
}

rewrite::FactorIdentity IdentityOf(const LayerState& s, const kron::KronShape& shape,
                                   int64_t rank) {
  return rewrite::FactorIdentity::Of(*s.c, WeightKey(s), shape, rank);
}

double RoundSignificant(double v) {
  if (v == 0.0 || !std::isfinite(v)) return v;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9e", v);
  return std::strtod(buf, nullptr);
}

std::string ShapeText(const kron::KronShape& s) {
  return std::to_string(s.k1) + "x" + std::to_string(s.n1) + " (x) " + std::to_string(s.k2) + "x" +
         std::to_string(s.n2);
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

}  // namespace kfc::pipeline
