// SPDX-License-Identifier: Apache-2.0
// pipeline::Options for the tests' small layers.
#pragma once

#include "kfc/pipeline/compress.h"

namespace kfc::testing {

// The library's defaults, except that "slower than dense" is judged by MACs alone
// (node_cost_macs 0): at the default node cost (kron::kNodeCostMacs) the tests' layers of a few
// hundred MACs per row would all stay dense or take the low-rank form, and the tests check the
// rewriting, budgets and reports of every shape. tests/rewrite/never_slower_test.cc covers the
// default node cost.
inline pipeline::Options ToyOptions() {
  pipeline::Options options;
  options.node_cost_macs = 0;
  return options;
}

}  // namespace kfc::testing
