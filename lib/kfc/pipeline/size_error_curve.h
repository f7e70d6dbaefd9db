// The model-level size-error curve of the HTML report (report::SizeErrorCurve).
//
// Each compressible weight is a group of options (params, cost) as in allocate.h, cost = K*N*e^2
// with e the option's relative error, its dense form (K*N, 0) included. The curve is the sum of
// the groups' lower convex hulls, walked from every group's fewest-parameter option by the largest
// cost reduction per parameter first: the Lagrangian path --ratio's allocation follows. A point's
// error is sqrt(total cost / total weight), the size-weighted RMS relative error; parameters and
// costs that no option changes (weights pinned by a plan, or left dense) are added as constants.
// No ONNX headers.
#pragma once

#include <cstddef>
#include <vector>

#include "kfc/pipeline/allocate.h"
#include "kfc_report.pb.h"

namespace kfc::pipeline {

struct CurveInput {
  std::vector<AllocGroup> groups;  // each with at least one option
  double fixed_params = 0;         // parameters outside the groups
  double fixed_cost = 0;           // their cost (sum K*N*e^2)
  double total_weight = 0;         // sum of K*N over all compressible weights (> 0)
};

// The curve's points by increasing params, at most max_points of them (evenly thinned, both ends
// kept). Empty when there are no groups or total_weight is not positive.
std::vector<report::CurvePoint> SizeErrorPoints(const CurveInput& input, size_t max_points = 256);

// Outside --ratio: the groups from the report's layers, each compressed layer with a spectrum
// (and no shared factors) offering every profitable rank at its chosen shape with the errors its
// singular values give; the other compressed layers and the dense weights are constants.
CurveInput CurveFromSpectra(const report::Report& report);

// Fills report->size_error_curve from `input` with `basis` ("ratio_allocation" or
// "chosen_shapes"); its chosen point is this run's (totals.compressible_params_after and the
// error of the compressed layers). Nothing when there are no points.
void SetSizeErrorCurve(const CurveInput& input, const char* basis, report::Report* report);

// Sum of K*N*e^2 over the compressed layers that own their factors (e: the judged error) whose
// decided_by is not `except` ("" for none).
double CompressedCost(const report::Report& report, const char* except = "");

}  // namespace kfc::pipeline
