// SPDX-License-Identifier: Apache-2.0
// Helpers of the rewrite tests: op counts, initializer lookup, compressing at a fixed rank, and a
// one-MatMul model.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "kfc/pipeline/compress.h"
#include "onnx/onnx_pb.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc::testing {

inline std::map<std::string, int> OpCounts(const onnx::GraphProto& g) {
  std::map<std::string, int> counts;
  for (const auto& n : g.node()) ++counts[n.op_type()];
  return counts;
}

inline bool HasInitializer(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer()) {
    if (t.name() == name) return true;
  }
  return false;
}

// CompressModel at `rank` (and `min_params`); a failure fails the test and gives an empty result.
inline pipeline::Result Compress(const onnx::ModelProto& model, int64_t rank,
                                 int64_t min_params = 0) {
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = rank;
  options.min_params = min_params;
  auto result = pipeline::CompressModel(model, options);
  EXPECT_TRUE(result.ok()) << result.status().message();
  return result.ok() ? std::move(result).value() : pipeline::Result{};
}

// y = MatMul(x, W) with W [k, n] seeded (seed 7), node "proj".
inline onnx::ModelProto MatMulModel(const std::string& x_type, const std::string& y_type, int64_t k,
                                    int64_t n, int opset = 13) {
  auto model = ParseModelText("<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) +
                              "]>\nagraph (" + x_type + " x) => (" + y_type +
                              " y) {\n  y = MatMul(x, W)\n}");
  model.mutable_graph()->mutable_node(0)->set_name("proj");
  AddRandomInitializer(&model, "W", {k, n}, 7);
  return model;
}

}  // namespace kfc::testing
