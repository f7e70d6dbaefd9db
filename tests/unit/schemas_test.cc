// SPDX-License-Identifier: Apache-2.0
#include "kfc/check/schemas.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace kfc::check {
namespace {

// The tool builds the registry on a thread of its own (tool/startup.h) while the run's first
// checks may already look schemas up: every lookup must find the full registry.
TEST(LoadSchemasTest, LookupsWhileTheRegistryLoadsFindEverySchema) {
  std::atomic<int> found{0};
  std::vector<std::thread> threads;
  threads.emplace_back(LoadSchemas);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&found] {
      const SchemaVerdict matmul = LookUp("MatMul", "", 13);
      const SchemaVerdict gemm = LookUp("Gemm", "ai.onnx", 13);
      if (matmul.schema != nullptr && matmul.reason.empty() && gemm.schema != nullptr) ++found;
    });
  }
  threads.emplace_back(LoadSchemas);
  for (auto& t : threads) t.join();
  EXPECT_EQ(found.load(), 3);
  EXPECT_GE(LibraryOpset(""), 13);
  EXPECT_EQ(LookUp("MatMul", "", 13).schema->since_version(), 13);
}

}  // namespace
}  // namespace kfc::check
