// SPDX-License-Identifier: Apache-2.0
// The whitening cache of kron::Whiten: a cached whitening has the bits of a fresh one, for every
// shape of a layer in any order, and a different split, lambda, weight or statistics is never
// served another's.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kfc/kron/weighted.h"

namespace kfc::kron {
namespace {

constexpr int64_t kK = 12, kN = 8;

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = g(rng);
  return v;
}

// Statistics of correlated rows (x = z M), from an accumulator: a nonzero id, so cached.
InputStats CachedStats(uint32_t seed) {
  const int64_t rows = 40;
  const std::vector<float> z = Random(rows * kK, seed), m = Random(kK * kK, seed + 1);
  std::vector<float> x(static_cast<size_t>(rows * kK), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < kK; ++i)
      for (int64_t j = 0; j < kK; ++j) x[r * kK + j] += z[r * kK + i] * m[i * kK + j];
  StatsAccumulator acc(kK);
  EXPECT_TRUE(acc.Add(x.data(), rows).ok());
  auto st = acc.Finish();
  EXPECT_TRUE(st.ok());
  EXPECT_NE(st->id, 0u);
  return *st;
}

template <typename T>
bool SameBits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Whitens with the cache (stats as given) and afresh (a copy with id 0); both must agree bit for
// bit. Returns the cached one.
Whitened CheckedWhiten(const std::vector<float>& w, const KronShape& shape, const InputStats& st) {
  InputStats fresh_stats = st;
  fresh_stats.id = 0;
  auto cached = Whiten(w.data(), kK, kN, shape, st);
  auto fresh = Whiten(w.data(), kK, kN, shape, fresh_stats);
  EXPECT_TRUE(cached.ok() && fresh.ok());
  const std::string what = "shape " + std::to_string(shape.k1) + "x" + std::to_string(shape.n1) +
                           " (x) " + std::to_string(shape.k2) + "x" + std::to_string(shape.n2) +
                           ", lambda " + std::to_string(st.lambda);
  EXPECT_TRUE(SameBits(cached->w, fresh->w)) << what;
  EXPECT_TRUE(SameBits(*cached->factors->l1, *fresh->factors->l1)) << what;
  EXPECT_TRUE(SameBits(*cached->factors->l2, *fresh->factors->l2)) << what;
  EXPECT_TRUE(SameBits(cached->beta, fresh->beta)) << what;
  EXPECT_TRUE(SameBits(cached->energy, fresh->energy)) << what;
  EXPECT_EQ(cached->exact, fresh->exact) << what;
  return *cached;
}

TEST(WhitenCacheTest, EveryShapeOfALayerGetsTheBitsOfAFreshWhitening) {
  ReleaseWhiteningCache();
  const InputStats st = CachedStats(1);
  const std::vector<float> w = Random(kK * kN, 3);
  // Splits revisited after others (hits), low-rank (exact) and Kronecker-factored (beta) ones,
  // and shapes sharing a split with different n1.
  const std::vector<KronShape> shapes = {{3, 2, 4, 4},  {1, 1, 12, 8}, {4, 2, 3, 4},  {3, 4, 4, 2},
                                         {12, 8, 1, 1}, {2, 8, 6, 1},  {1, 1, 12, 8}, {3, 2, 4, 4},
                                         {6, 4, 2, 2},  {4, 1, 3, 8}};
  for (const auto& shape : shapes) CheckedWhiten(w, shape, st);
  // A different weight with the same statistics: its own energy, not the cached one.
  const std::vector<float> w2 = Random(kK * kN, 4);
  const Whitened a = CheckedWhiten(w, {3, 2, 4, 4}, st);
  const Whitened b = CheckedWhiten(w2, {3, 2, 4, 4}, st);
  EXPECT_NE(a.energy, b.energy);
}

TEST(WhitenCacheTest, SplitLambdaAndStatisticsAreKeysOfTheCache) {
  ReleaseWhiteningCache();
  InputStats st = CachedStats(5);
  const std::vector<float> w = Random(kK * kN, 6);
  const Whitened by3 = CheckedWhiten(w, {3, 2, 4, 4}, st);
  const Whitened by4 = CheckedWhiten(w, {4, 2, 3, 4}, st);
  EXPECT_FALSE(SameBits(by3.w, by4.w));  // another split: other factors
  EXPECT_NE(by3.beta, by4.beta);

  st.lambda = 0.1;  // same id, another lambda: C_reg and every factor change
  const Whitened small = CheckedWhiten(w, {3, 2, 4, 4}, st);
  EXPECT_FALSE(SameBits(small.w, by3.w));
  EXPECT_NE(small.energy, by3.energy);
  st.lambda = kCalibrationRegularization;  // and back
  EXPECT_TRUE(SameBits(CheckedWhiten(w, {3, 2, 4, 4}, st).w, by3.w));

  const InputStats other = CachedStats(7);  // other statistics, other id
  ASSERT_NE(other.id, st.id);
  EXPECT_FALSE(SameBits(CheckedWhiten(w, {3, 2, 4, 4}, other).w, by3.w));
  EXPECT_TRUE(SameBits(CheckedWhiten(w, {3, 2, 4, 4}, st).w, by3.w));
}

TEST(WhitenCacheTest, CalibratedFactorsAreTheSameWithAndWithoutTheCache) {
  ReleaseWhiteningCache();
  const InputStats st = CachedStats(9);
  InputStats fresh_stats = st;
  fresh_stats.id = 0;
  const std::vector<float> w = Random(kK * kN, 10);
  for (const KronShape& shape : {KronShape{3, 2, 4, 4}, KronShape{2, 8, 6, 1}}) {
    for (int64_t rank : {1, 2}) {
      auto cached = FactorizeWeighted(w.data(), kK, kN, shape, rank, st);
      auto fresh = FactorizeWeighted(w.data(), kK, kN, shape, rank, fresh_stats);
      ASSERT_TRUE(cached.ok()) << cached.status().message();
      ASSERT_TRUE(fresh.ok()) << fresh.status().message();
      EXPECT_GT(cached->als_iterations, 0);  // ALS ran, on the cached C_reg
      EXPECT_TRUE(SameBits(cached->factors.a, fresh->factors.a));
      EXPECT_TRUE(SameBits(cached->factors.b, fresh->factors.b));
      EXPECT_TRUE(SameBits(cached->bias_correction, fresh->bias_correction));
      EXPECT_TRUE(SameBits(cached->data_error, fresh->data_error));
    }
  }
}

}  // namespace
}  // namespace kfc::kron
