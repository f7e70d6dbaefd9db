// SPDX-License-Identifier: Apache-2.0
// --ratio: spreading a parameter budget across layers.
//
// Each group (one weight; layers sharing a weight form one group) offers options: a parameter
// count and a cost. The pipeline uses cost = K*N * e^2, with e the option's relative Frobenius
// error, so the total cost is the sum over weight elements of the squared relative error: a
// large layer's error weighs in proportion to its size, and no layer's error hides behind another
// layer's larger scale (errors are relative). Every group also offers its dense form (K*N
// parameters, cost 0).
//
// Allocate minimizes the total cost subject to total parameters <= budget:
//  1. every group starts at its cheapest option (fewest parameters);
//  2. greedy on each group's lower convex hull of (params, cost), taking the step with the largest
//     cost reduction per parameter while it fits (this is the Lagrangian solution at the budget);
//     when a group's next hull point does not fit (often its dense form, whose cost 0 can hide
//     every rank above some r from the hull), the group goes on along the hull of its options
//     that still fit;
//  3. the parameters left over go, one step at a time, to the fitting option with the largest cost
//     reduction (options off the hull included).
// Ties go to the lower group index, then to the lower option index, so results are deterministic.
// AllocateUniform (below) is the other allocation --ratio offers: the same fraction per group.
// No ONNX headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kfc::pipeline {

struct AllocOption {
  int64_t params = 0;
  double cost = 0.0;
};

struct AllocGroup {
  std::vector<AllocOption> options;  // at least one
};

struct Allocation {
  std::vector<size_t> choice;  // per group, an index into its options
  int64_t params = 0;          // total parameters of the choice
  double cost = 0.0;           // total cost of the choice
  bool met = false;            // params <= budget (false: even the cheapest options exceed it)
};

// Indices of `options` on their lower convex hull in the (params, cost) plane, by params
// ascending, from the fewest parameters (least cost among those) to the least cost: the options
// step 2 of Allocate moves along.
std::vector<size_t> LowerConvexHull(const std::vector<AllocOption>& options);

// Groups with no options are an error of the caller (asserted).
Allocation Allocate(const std::vector<AllocGroup>& groups, int64_t budget);

// The same fraction f of every group's size (sizes[g] > 0, e.g. its dense K*N parameters): each
// group takes its least-cost option with params <= f * sizes[g] (ties: fewer parameters, then the
// lower index), or its fewest-parameter option when none fits; f is the largest (by bisection to
// 1e-9) whose total fits the budget. Costs only rank a group's options against each other. met is
// false when even f = 0 does not fit (every group at its fewest-parameter option).
Allocation AllocateUniform(const std::vector<AllocGroup>& groups, const std::vector<int64_t>& sizes,
                           int64_t budget);

}  // namespace kfc::pipeline
