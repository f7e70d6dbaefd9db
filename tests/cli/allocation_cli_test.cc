// SPDX-License-Identifier: Apache-2.0
// --allocation (docs/allocation.md): its values, its usage errors (exit 2, nothing written), and
// that the default is byte-identical to giving size-weighted explicitly.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/test_util.h"

namespace kfc {
namespace {

using testing::ProcessResult;
using testing::TempDir;

const std::string kFashion = std::string(KFC_SOURCE_DIR) + "/testdata/fashion_mlp.onnx";

using testing::Cli;

using testing::ReadFile;

TEST(CliAllocationTest, UsageErrorsExitTwoAndWriteNothing) {
  TempDir dir;
  const std::string out = dir.File("out.onnx");
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{kFashion, "--ratio", "0.1", "--allocation", "bogus", "-o", out},
       "--allocation must be auto, size-weighted, per-layer, uniform or sensitivity, got 'bogus'"},
      {{kFashion, "--ratio", "0.1", "--calibration-regularization", "auto", "-o", out},
       "--calibration-regularization needs --calibration DIR or --calibration-data"},
      {{kFashion, "-r", "4", "--allocation", "auto", "-o", out}, "--allocation needs --ratio"},
      {{kFashion, "--ratio", "0.1", "--allocation", "", "-o", out}, "--allocation"},
      {{kFashion, "-r", "4", "--allocation", "uniform", "-o", out}, "--allocation needs --ratio"},
      {{kFashion, "--max-error", "0.1", "--allocation", "per-layer", "-o", out},
       "--allocation needs --ratio"},
      {{kFashion, "--ratio", "0.1", "--allocation", "sensitivity", "-o", out},
       "--allocation sensitivity needs --calibration-data"},
      {{kFashion, "--ratio", "0.1", "--allocation", "sensitivity", "--calibration", dir.path(),
        "-o", out},
       "--allocation sensitivity needs --calibration-data"},
  };
  for (const auto& [args, needle] : cases) {
    const ProcessResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
  EXPECT_TRUE(dir.List().empty());
}

TEST(CliAllocationTest, DefaultIsSizeWeightedAndTheOthersDiffer) {
  TempDir dir;
  auto run = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = {kFashion, "--ratio", "0.1", "-o", dir.File(name + ".onnx"),
                                     "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    const ProcessResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ReadFile(dir.File(name + ".onnx"));
  };
  const std::string plain = run("plain", {});
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(run("sw", {"--allocation", "size-weighted"}), plain);
  // Weight-only, auto is size-weighted (the search needs --calibration-data): the same bytes.
  EXPECT_EQ(run("auto", {"--allocation", "auto"}), plain);
  EXPECT_NE(run("pl", {"--allocation", "per-layer"}), plain);
  EXPECT_NE(run("un", {"--allocation", "uniform"}), plain);
}

TEST(CliAllocationTest, UniformGivesEveryLayerTheSameFraction) {
  TempDir dir;
  const std::string report = dir.File("r.json");
  const ProcessResult r = Cli({kFashion, "--ratio", "0.1", "--allocation", "uniform", "--shape",
                               "low-rank", "--dry-run", "--report", report, "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string json = ReadFile(report);
  // fc1 784x512 and fc2 512x256 (53248 parameters allowed): the largest common fraction that
  // fits, 0.1001, gives ranks 31 (40176 <= 0.1001 * 401408) and 17 (13056 <= 0.1001 * 131072),
  // 53232 in all; size-weighted spends differently.
  EXPECT_NE(json.find("\"rank\": 31"), std::string::npos) << json;
  EXPECT_NE(json.find("\"rank\": 17"), std::string::npos) << json;
}

}  // namespace
}  // namespace kfc
