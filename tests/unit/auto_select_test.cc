// SPDX-License-Identifier: Apache-2.0
// --allocation auto / --calibration-regularization auto (pipeline/auto_select.h): the row split,
// the candidate grid, the choice, and io::SplitNpyRows, which writes the two parts.
#include "kfc/pipeline/auto_select.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "kfc/io/file.h"
#include "kfc/io/npy.h"
#include "kfc/io/temp_dir.h"

namespace kfc::pipeline {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(SplitRowsTest, HoldsOutTheLastFifthAndAtLeastOneRow) {
  EXPECT_EQ(SplitRows(200).fit, 160);
  EXPECT_EQ(SplitRows(200).held, 40);
  EXPECT_EQ(SplitRows(2000).held, 400);
  EXPECT_EQ(SplitRows(10).fit, 8);
  EXPECT_EQ(SplitRows(10).held, 2);
  EXPECT_EQ(SplitRows(14).held, 2);  // rounds down
  for (int64_t rows = kAutoMinRows; rows < 100; ++rows) {
    const RowSplit s = SplitRows(rows);
    EXPECT_GE(s.held, 1) << rows;
    EXPECT_EQ(s.fit + s.held, rows) << rows;
    EXPECT_GT(s.fit, s.held) << rows;
  }
}

TEST(SplitRowsTest, TooFewRowsAreNotSplit) {
  for (int64_t rows : {0, 1, 5, 9}) {
    EXPECT_EQ(SplitRows(rows).held, 0) << rows;
    EXPECT_EQ(SplitRows(rows).fit, rows) << rows;
  }
}

TEST(AutoCandidatesTest, BothSearchedGivesTheGridInTieBreakOrder) {
  Options o;
  o.ratio = 0.25;
  const auto c = AutoCandidates(o, AutoSearch{true, true});
  ASSERT_EQ(c.size(), 2 * std::size(kAutoLambdas));
  // Most regularized first, size-weighted before uniform at each lambda.
  EXPECT_EQ(c[0].allocation, AllocationObjective::kSizeWeighted);
  EXPECT_EQ(c[0].regularization, kAutoLambdas[0]);
  EXPECT_EQ(c[1].allocation, AllocationObjective::kUniform);
  EXPECT_EQ(c[1].regularization, kAutoLambdas[0]);
  for (size_t i = 2; i < c.size(); ++i) {
    EXPECT_LE(c[i].regularization, c[i - 2].regularization);
  }
  EXPECT_TRUE(std::isnan(c[0].held_out_error));
}

TEST(AutoCandidatesTest, AnExplicitValueIsKept) {
  Options o;
  o.ratio = 0.25;
  o.allocation = AllocationObjective::kPerLayer;
  auto c = AutoCandidates(o, AutoSearch{false, true});
  ASSERT_EQ(c.size(), std::size(kAutoLambdas));
  for (const auto& x : c) EXPECT_EQ(x.allocation, AllocationObjective::kPerLayer);

  o.calibration_regularization = 0.5;
  c = AutoCandidates(o, AutoSearch{true, false});
  ASSERT_EQ(c.size(), 2u);
  for (const auto& x : c) EXPECT_EQ(x.regularization, 0.5);

  o.calibration_regularization.reset();
  c = AutoCandidates(o, AutoSearch{true, false});
  for (const auto& x : c) EXPECT_EQ(x.regularization, 10.0);  // the default
}

std::vector<AutoCandidate> WithErrors(std::initializer_list<double> errors) {
  std::vector<AutoCandidate> out;
  for (double e : errors) {
    AutoCandidate c;
    c.held_out_error = e;
    out.push_back(c);
  }
  return out;
}

TEST(PickCandidateTest, LowestErrorWins) {
  EXPECT_EQ(PickCandidate(WithErrors({0.5, 0.2, 0.3})), 1);
  EXPECT_EQ(PickCandidate(WithErrors({0.1, 0.2, 0.3})), 0);
  EXPECT_EQ(PickCandidate(WithErrors({0.4, 0.2, 0.1})), 2);
}

TEST(PickCandidateTest, TiesGoToTheEarlierCandidate) {
  EXPECT_EQ(PickCandidate(WithErrors({0.5, 0.2, 0.2})), 1);
  EXPECT_EQ(PickCandidate(WithErrors({0.2, 0.2})), 0);
}

TEST(PickCandidateTest, UnmeasuredCandidatesNeverWin) {
  EXPECT_EQ(PickCandidate(WithErrors({kNaN, 0.9})), 1);
  EXPECT_EQ(PickCandidate(WithErrors({std::numeric_limits<double>::infinity(), 0.9})), 1);
  EXPECT_EQ(PickCandidate(WithErrors({kNaN, kNaN})), -1);
  EXPECT_EQ(PickCandidate({}), -1);
}

TEST(WithCandidateTest, SetsBothValues) {
  Options o;
  o.ratio = 0.3;
  AutoCandidate c;
  c.allocation = AllocationObjective::kUniform;
  c.regularization = 0.01;
  const Options out = WithCandidate(o, c);
  EXPECT_EQ(out.allocation, AllocationObjective::kUniform);
  ASSERT_TRUE(out.calibration_regularization.has_value());
  EXPECT_EQ(*out.calibration_regularization, 0.01);
  EXPECT_EQ(out.ratio, 0.3);
  EXPECT_EQ(CandidateName(c), "uniform, lambda 0.01");
}

// A .npy of any dtype: header text and raw rows.
std::string Npy(const std::string& descr, const std::string& shape, const std::string& data) {
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST(SplitNpyRowsTest, SplitsFloatRowsAfterTheGivenRow) {
  auto tmp = io::TempDir::Create("kfc-auto-");
  ASSERT_TRUE(tmp.ok());
  const std::vector<float> v = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};  // 4 rows of 1 x 3
  ASSERT_TRUE(io::WriteNpy(tmp->Join("x.npy"), {4, 1, 3}, v).ok());
  auto rows = io::NpyRows(tmp->Join("x.npy"));
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*rows, 4);
  ASSERT_TRUE(io::SplitNpyRows(tmp->Join("x.npy"), 3, tmp->Join("a.npy"), tmp->Join("b.npy")).ok());
  auto a = io::NpyReader::Open(tmp->Join("a.npy"));
  auto b = io::NpyReader::Open(tmp->Join("b.npy"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->shape(), (std::vector<int64_t>{3, 1, 3}));
  EXPECT_EQ(b->shape(), (std::vector<int64_t>{1, 1, 3}));
  std::vector<float> got;
  ASSERT_TRUE(a->Read(100, &got).ok());
  EXPECT_EQ(got, std::vector<float>(v.begin(), v.begin() + 9));
  ASSERT_TRUE(b->Read(100, &got).ok());
  EXPECT_EQ(got, std::vector<float>(v.begin() + 9, v.end()));
}

TEST(SplitNpyRowsTest, KeepsAnyDtypeByteForByte) {
  auto tmp = io::TempDir::Create("kfc-auto-");
  ASSERT_TRUE(tmp.ok());
  std::string data;
  for (int i = 0; i < 5 * 2 * 8; ++i) data += static_cast<char>(i);  // 5 rows of 2 int64
  ASSERT_TRUE(io::WriteFileAtomic(tmp->Join("ids.npy"), Npy("<i8", "(5, 2)", data)).ok());
  ASSERT_TRUE(
      io::SplitNpyRows(tmp->Join("ids.npy"), 4, tmp->Join("a.npy"), tmp->Join("b.npy")).ok());
  auto a = io::ReadFile(tmp->Join("a.npy"), "a", 1 << 20, "1 MiB");
  auto b = io::ReadFile(tmp->Join("b.npy"), "b", 1 << 20, "1 MiB");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, Npy("<i8", "(4, 2)", data.substr(0, 64)));
  EXPECT_EQ(*b, Npy("<i8", "(1, 2)", data.substr(64)));
}

TEST(SplitNpyRowsTest, BadFilesAreOneLineErrors) {
  auto tmp = io::TempDir::Create("kfc-auto-");
  ASSERT_TRUE(tmp.ok());
  ASSERT_TRUE(io::WriteFileAtomic(tmp->Join("short.npy"), Npy("<f4", "(3, 2)", "abc")).ok());
  Status s = io::SplitNpyRows(tmp->Join("short.npy"), 1, tmp->Join("a"), tmp->Join("b"));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("short.npy"), std::string::npos) << s.message();
  ASSERT_TRUE(io::WriteFileAtomic(tmp->Join("scalar.npy"), Npy("<f4", "()", "abcd")).ok());
  EXPECT_FALSE(io::NpyRows(tmp->Join("scalar.npy")).ok());
  ASSERT_TRUE(io::WriteFileAtomic(tmp->Join("text.npy"), "not numpy").ok());
  EXPECT_FALSE(io::NpyRows(tmp->Join("text.npy")).ok());
  ASSERT_TRUE(io::WriteFileAtomic(tmp->Join("x.npy"), Npy("<f4", "(2,)", "abcdefgh")).ok());
  EXPECT_FALSE(io::SplitNpyRows(tmp->Join("x.npy"), 3, tmp->Join("a"), tmp->Join("b")).ok());
  EXPECT_TRUE(io::SplitNpyRows(tmp->Join("x.npy"), 2, tmp->Join("a"), tmp->Join("b")).ok());
}

}  // namespace
}  // namespace kfc::pipeline
