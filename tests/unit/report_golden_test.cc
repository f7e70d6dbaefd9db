// SPDX-License-Identifier: Apache-2.0
// Golden report test: the text and JSON reports for testdata/digits_mlp.onnx at rank 4 (default
// options) must match testdata/golden/digits_r4.txt and digits_r4.json byte for byte.
//
// After an intended change to the report, regenerate the golden files and review the diff:
//   KFC_UPDATE_GOLDEN=1 ./build/tests/kfc_unit_tests --gtest_filter='ReportGoldenTest.*'
// With KFC_UPDATE_GOLDEN=1 the test rewrites the files instead of comparing (and still passes);
// any other value, or none, compares. The goldens hold no timings and no absolute paths: the report
// carries the input and output paths exactly as set below, both relative.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "kfc/io/file.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/report/render.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

namespace fs = std::filesystem;

const char kGoldenDir[] = KFC_SOURCE_DIR "/testdata/golden";

bool UpdateGolden() {
  const char* v = std::getenv("KFC_UPDATE_GOLDEN");
  return v != nullptr && std::string(v) == "1";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "" when equal, else where the first difference is, for a readable failure.
std::string FirstDifference(const std::string& expected, const std::string& actual) {
  if (expected == actual) return "";
  size_t line = 1, start = 0, i = 0;
  for (; i < expected.size() && i < actual.size() && expected[i] == actual[i]; ++i) {
    if (expected[i] == '\n') {
      ++line;
      start = i + 1;
    }
  }
  auto line_at = [&](const std::string& s) {
    const size_t end = s.find('\n', start);
    return start >= s.size() ? std::string("<end of file>") : s.substr(start, end - start);
  };
  return "first difference at line " + std::to_string(line) + ", byte " + std::to_string(i) +
         "\n  golden: " + line_at(expected) + "\n  actual: " + line_at(actual) +
         "\n(sizes: golden " + std::to_string(expected.size()) + ", actual " +
         std::to_string(actual.size()) + " bytes)";
}

// Compares `actual` with the golden file `name`, or rewrites it under KFC_UPDATE_GOLDEN=1.
::testing::AssertionResult MatchesGolden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(kGoldenDir) + "/" + name;
  if (UpdateGolden()) {
    fs::create_directories(kGoldenDir);
    Status s = io::WriteFileAtomic(path, actual);
    if (!s.ok()) return ::testing::AssertionFailure() << s.message();
    std::cout << "updated golden file " << path << "\n";
    return ::testing::AssertionSuccess();
  }
  if (!fs::exists(path)) {
    return ::testing::AssertionFailure()
           << path << " is missing; generate it with KFC_UPDATE_GOLDEN=1";
  }
  const std::string diff = FirstDifference(ReadFile(path), actual);
  if (diff.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << name << " differs from the golden file " << path << ": " << diff
         << "\nIf the change is intended, rerun with KFC_UPDATE_GOLDEN=1 and review the diff.";
}

class ReportGoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = io::LoadModel(KFC_SOURCE_DIR "/testdata/digits_mlp.onnx");
    ASSERT_TRUE(model.ok()) << model.status().message();
    pipeline::Options options = kfc::testing::ToyOptions();
    options.rank = 4;
    auto result = pipeline::CompressModel(*model, options);
    ASSERT_TRUE(result.ok()) << result.status().message();
    report_ = new report::Report(std::move(result).value().report);
    report_->set_input("testdata/digits_mlp.onnx");
    report_->set_output("digits_mlp.kfc.onnx");
  }
  static void TearDownTestSuite() {
    delete report_;
    report_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(report_, nullptr) << "compression failed in SetUpTestSuite"; }

  static report::Report* report_;
};

report::Report* ReportGoldenTest::report_ = nullptr;

TEST_F(ReportGoldenTest, TextMatchesGolden) {
  EXPECT_TRUE(MatchesGolden("digits_r4.txt", report::RenderText(*report_)));
}

TEST_F(ReportGoldenTest, JsonMatchesGolden) {
  auto json = report::RenderJson(*report_);
  ASSERT_TRUE(json.ok()) << json.status().message();
  EXPECT_TRUE(MatchesGolden("digits_r4.json", *json));
}

TEST_F(ReportGoldenTest, RenderingIsRepeatable) {
  EXPECT_EQ(report::RenderText(*report_), report::RenderText(*report_));
  auto a = report::RenderJson(*report_);
  auto b = report::RenderJson(*report_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST_F(ReportGoldenTest, CompressingAgainGivesTheSameReport) {
  auto model = io::LoadModel(KFC_SOURCE_DIR "/testdata/digits_mlp.onnx");
  ASSERT_TRUE(model.ok());
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 4;
  auto again = pipeline::CompressModel(*model, options);
  ASSERT_TRUE(again.ok()) << again.status().message();
  report::Report r = std::move(again).value().report;
  r.set_input(report_->input());
  r.set_output(report_->output());
  EXPECT_EQ(report::RenderText(r), report::RenderText(*report_));
}

TEST_F(ReportGoldenTest, ReportHasNoAbsolutePathsOrTimings) {
  auto json = report::RenderJson(*report_);
  ASSERT_TRUE(json.ok());
  for (const std::string& rendered : {report::RenderText(*report_), *json}) {
    EXPECT_EQ(rendered.find(KFC_SOURCE_DIR), std::string::npos);
    EXPECT_EQ(rendered.find(fs::temp_directory_path().string()), std::string::npos);
    EXPECT_EQ(rendered.find("\"/"), std::string::npos) << "an absolute path in a JSON string";
    EXPECT_EQ(rendered.find(": /"), std::string::npos) << "an absolute path in the text header";
    EXPECT_EQ(rendered.find("time"), std::string::npos);
    EXPECT_EQ(rendered.find("seconds"), std::string::npos);
  }
}

// The comparison must be able to fail: a golden file with one byte changed is reported.
TEST(ReportGoldenCompareTest, OneChangedByteIsADifference) {
  const std::string golden = "line one\nrank 4, shape default\n";
  std::string changed = golden;
  changed[14] = '5';
  const std::string diff = FirstDifference(golden, changed);
  EXPECT_NE(diff.find("line 2"), std::string::npos) << diff;
  EXPECT_NE(diff.find("golden: rank 4"), std::string::npos) << diff;
  EXPECT_NE(diff.find("actual: rank 5"), std::string::npos) << diff;
  EXPECT_NE(FirstDifference(golden, golden + "\n"), "");
  EXPECT_NE(FirstDifference(golden, golden.substr(1)), "");
  EXPECT_EQ(FirstDifference(golden, golden), "");
}

}  // namespace
}  // namespace kfc
