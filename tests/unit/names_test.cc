// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/core/names: deterministic unique names around reserved ones.
#include "kfc/core/names.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kfc {
namespace {

TEST(NameGeneratorTest, UnusedBaseIsReturnedAsIs) {
  NameGenerator names;
  EXPECT_FALSE(names.IsUsed("fc1/kfc_x"));
  EXPECT_EQ(names.Unique("fc1/kfc_x"), "fc1/kfc_x");
  EXPECT_TRUE(names.IsUsed("fc1/kfc_x")) << "the result must be reserved";
}

TEST(NameGeneratorTest, RepeatedBaseGetsNumberedSuffixes) {
  NameGenerator names;
  EXPECT_EQ(names.Unique("t"), "t");
  EXPECT_EQ(names.Unique("t"), "t_1");
  EXPECT_EQ(names.Unique("t"), "t_2");
  EXPECT_EQ(names.Unique("t"), "t_3");
  EXPECT_EQ(names.Unique("u"), "u");
}

TEST(NameGeneratorTest, ReservedNamesAreAvoided) {
  NameGenerator names;
  names.Reserve("W");
  EXPECT_TRUE(names.IsUsed("W"));
  EXPECT_EQ(names.Unique("W"), "W_1");
}

TEST(NameGeneratorTest, ReservedSuffixedNamesAreSkipped) {
  NameGenerator names;
  names.Reserve("x");
  names.Reserve("x_1");
  names.Reserve("x_3");
  EXPECT_EQ(names.Unique("x"), "x_2");
  EXPECT_EQ(names.Unique("x"), "x_4");
  // A reserved suffixed name does not block the base itself.
  names.Reserve("y_1");
  EXPECT_EQ(names.Unique("y"), "y");
  EXPECT_EQ(names.Unique("y"), "y_2");
}

TEST(NameGeneratorTest, ConstructorReservesTheGivenSet) {
  NameGenerator names({"input", "output", "input_1"});
  EXPECT_TRUE(names.IsUsed("input"));
  EXPECT_TRUE(names.IsUsed("output"));
  EXPECT_FALSE(names.IsUsed("input_2"));
  EXPECT_EQ(names.Unique("input"), "input_2");
  EXPECT_EQ(names.Unique("output"), "output_1");
}

TEST(NameGeneratorTest, GeneratedNamesCanBeBasesToo) {
  NameGenerator names;
  EXPECT_EQ(names.Unique("a"), "a");
  EXPECT_EQ(names.Unique("a"), "a_1");
  EXPECT_EQ(names.Unique("a_1"), "a_1_1");
  EXPECT_EQ(names.Unique("a"), "a_2");
}

TEST(NameGeneratorTest, ReserveIsIdempotent) {
  NameGenerator names;
  names.Reserve("n");
  names.Reserve("n");
  EXPECT_EQ(names.Unique("n"), "n_1");
  EXPECT_EQ(names.Unique("n"), "n_2");
}

TEST(NameGeneratorTest, DeterministicForTheSameReservationsAndCalls) {
  auto run = [] {
    NameGenerator names({"fc/kfc_x", "fc.kfc_a", "fc.kfc_a_1"});
    std::vector<std::string> out;
    for (const char* base : {"fc/kfc_x", "fc.kfc_a", "fc/kfc_x", "fc.kfc_b", "fc.kfc_a"}) {
      out.push_back(names.Unique(base));
    }
    return out;
  };
  const std::vector<std::string> expected = {"fc/kfc_x_1", "fc.kfc_a_2", "fc/kfc_x_2", "fc.kfc_b",
                                             "fc.kfc_a_3"};
  EXPECT_EQ(run(), expected);
  EXPECT_EQ(run(), expected);
}

TEST(NameGeneratorTest, ResultsAreAllDistinct) {
  NameGenerator names({"v_5", "v_10"});
  std::vector<std::string> seen;
  for (int i = 0; i < 20; ++i) seen.push_back(names.Unique("v"));
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_NE(seen[i], "v_5");
    EXPECT_NE(seen[i], "v_10");
    for (size_t j = i + 1; j < seen.size(); ++j) EXPECT_NE(seen[i], seen[j]);
  }
  EXPECT_EQ(seen.front(), "v");
  EXPECT_EQ(seen.back(), "v_21");  // 19 suffixes from 1..21 with 5 and 10 skipped
}

}  // namespace
}  // namespace kfc
