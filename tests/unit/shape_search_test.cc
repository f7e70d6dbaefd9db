// SPDX-License-Identifier: Apache-2.0
// Shape search: planted shapes are found, pruning never loses the best shape, the bounds hold,
// and error targets give the fewest parameters.
#include "kfc/kron/shape_search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>

namespace kfc::kron {
namespace {

std::vector<float> Gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// W = sum_t A_t (x) B_t for random factors of `shape`, built from the primer's index formula.
std::vector<float> Planted(const KronShape& s, int64_t rank, uint32_t seed) {
  const auto a = Gaussian(rank * s.k1 * s.n1, seed), b = Gaussian(rank * s.k2 * s.n2, seed + 1);
  std::vector<float> w(static_cast<size_t>(s.K() * s.N()), 0.0f);
  for (int64_t t = 0; t < rank; ++t)
    for (int64_t i1 = 0; i1 < s.k1; ++i1)
      for (int64_t j1 = 0; j1 < s.n1; ++j1)
        for (int64_t i2 = 0; i2 < s.k2; ++i2)
          for (int64_t j2 = 0; j2 < s.n2; ++j2)
            w[(i1 * s.k2 + i2) * s.N() + j1 * s.n2 + j2] +=
                a[(t * s.k1 + i1) * s.n1 + j1] * b[(t * s.k2 + i2) * s.n2 + j2];
  return w;
}

// Optimal error of `shape` at `rank` from the exact full spectrum.
double OptimalError(const std::vector<float>& w, int64_t K, int64_t N, const KronShape& shape,
                    int64_t rank) {
  double norm = 0.0;
  auto s = SingularValues(w.data(), K, N, shape, &norm);
  EXPECT_TRUE(s.ok());
  return SpectrumError(*s, rank, norm);
}

// The pruned and the exhaustive search (randomized work forced) into *pruned and *full; their
// picks must agree.
void SearchBothWays(const std::vector<float>& w, int64_t K, int64_t N, const SearchBudget& budget,
                    const std::string& label, ShapeSearchResult* pruned, ShapeSearchResult* full) {
  SearchOptions options;
  options.svd.method = SvdMethod::kRandomized;
  auto a = SearchShape(w.data(), K, N, budget, options);
  options.prune = false;
  auto b = SearchShape(w.data(), K, N, budget, options);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a->found && b->found);
  EXPECT_EQ(a->shape, b->shape) << label;
  EXPECT_EQ(a->rank, b->rank) << label;
  EXPECT_DOUBLE_EQ(a->error, b->error) << label;
  *pruned = *std::move(a);
  *full = *std::move(b);
}

TEST(ShapeSearchTest, FindsPlantedShapeUnderItsParameterBudget) {
  for (const KronShape planted :
       {KronShape{4, 6, 6, 6}, KronShape{2, 12, 12, 3}, KronShape{8, 3, 3, 12}}) {
    const auto w = Planted(planted, 2, 11);
    SearchBudget budget;
    budget.max_params = 2 * planted.ParamsPerTerm();
    auto r = SearchShape(w.data(), planted.K(), planted.N(), budget);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_TRUE(r->found);
    EXPECT_EQ(r->shape, planted);
    EXPECT_EQ(r->rank, 2);
    EXPECT_LT(r->error, 1e-5);
    EXPECT_LE(r->params, budget.max_params);
  }
}

TEST(ShapeSearchTest, FindsPlantedShapeForAnErrorTarget) {
  const KronShape planted{4, 8, 8, 4};
  const auto w = Planted(planted, 3, 5);
  SearchBudget budget;
  budget.max_error = 1e-4;
  auto r = SearchShape(w.data(), planted.K(), planted.N(), budget);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_TRUE(r->found);
  EXPECT_EQ(r->shape, planted);
  EXPECT_EQ(r->rank, 3);
  EXPECT_LE(r->error, 1e-4);
  // No candidate meeting the target is cheaper.
  for (const auto& c : r->candidates) {
    if (c.meets_target) {
      EXPECT_GE(c.params, r->params) << c.shape.k1 << "x" << c.shape.n1;
      EXPECT_LE(c.error, 1e-4);
    }
  }
}

TEST(ShapeSearchTest, ErrorTargetThatNothingMeetsIsNotFound) {
  const auto w = Gaussian(32 * 32, 3);
  SearchBudget budget;
  budget.max_error = 1e-6;  // a random matrix needs (nearly) full rank: never profitable
  auto r = SearchShape(w.data(), 32, 32, budget);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->found);
}

// With randomized work forced, the cheap sketches bound and prune; the pick must equal the
// exhaustive search's, and the bounds must enclose the exact optimal error.
TEST(ShapeSearchTest, PruningNeverLosesTheBestAndBoundsHold) {
  const int64_t K = 96, N = 128;
  for (uint32_t seed : {1u, 2u, 3u}) {
    // Low-rank plus a Kronecker component plus noise: different shapes win for different seeds.
    auto w = Planted({8, 16, 12, 8}, 3, seed);
    const auto noise = Gaussian(K * N, seed + 100);
    const auto lr_a = Gaussian(K * 2, seed + 200), lr_b = Gaussian(2 * N, seed + 300);
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < N; ++j)
        w[i * N + j] +=
            0.3f * noise[i * N + j] +
            (seed % 2 ? 2.0f : 0.0f) * (lr_a[i * 2] * lr_b[j] + lr_a[i * 2 + 1] * lr_b[N + j]);
    SearchBudget budget;
    budget.max_params = 4 * (16 + 16 * 8 * 8 / 16) + 600;
    ShapeSearchResult pruned, full;
    SearchBothWays(w, K, N, budget, "seed " + std::to_string(seed), &pruned, &full);
    if (HasFatalFailure()) return;
    const ShapeSearchResult* const a = &pruned;
    // Each bound where it is known (a shape ruled out by another's bounds has no upper one).
    for (const auto& c : a->candidates) {
      if (c.rank < 1) continue;
      const double opt = OptimalError(w, K, N, c.shape, c.rank);
      if (c.error_lower >= 0) {
        EXPECT_LE(c.error_lower, opt * (1 + 1e-9) + 1e-12) << c.shape.k1 << "x" << c.shape.n1;
      }
      if (c.error_upper >= 0) {
        EXPECT_GE(c.error_upper, opt * (1 - 1e-9) - 1e-12) << c.shape.k1 << "x" << c.shape.n1;
      }
      if (c.evaluated) {
        EXPECT_GE(c.error, opt * (1 - 1e-9) - 1e-12);
      }
    }
  }
}

// Trained-like weights (a power-law low-rank product plus noise, as in the benchmark) leave the
// low-rank shape and its neighbours (2x1, 1x2, ...) within a few percent of each other: the case
// the Schur-complement bounds and the sharpened probes decide. Pruned and exhaustive searches must
// agree, and every bound must hold.
TEST(ShapeSearchTest, NearTiedShapesPickWhatExhaustiveSearchPicks) {
  const int64_t K = 96, N = 128, h = 24;
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto g1 = Gaussian(K * h, seed), g2 = Gaussian(h * N, seed + 50);
    const auto noise = Gaussian(K * N, seed + 100);
    std::vector<float> w(static_cast<size_t>(K * N), 0.0f);
    for (int64_t i = 0; i < K; ++i)
      for (int64_t t = 0; t < h; ++t)
        for (int64_t j = 0; j < N; ++j)
          w[i * N + j] += g1[i * h + t] / static_cast<float>(t + 1) * g2[t * N + j];
    for (size_t k = 0; k < w.size(); ++k) w[k] += 0.3f * noise[k];
    for (int64_t rank : {2, 4, 6}) {
      SearchBudget budget;
      budget.max_params = rank * (K + N);  // the low-rank shape at `rank`
      ShapeSearchResult pruned, full;
      SearchBothWays(w, K, N, budget,
                     "seed " + std::to_string(seed) + " rank " + std::to_string(rank), &pruned,
                     &full);
      if (HasFatalFailure()) return;
      EXPECT_LT(pruned.full_evaluations, full.full_evaluations);
      for (const auto& c : pruned.candidates) {
        if (c.rank < 1 || c.error_lower < 0) continue;
        EXPECT_LE(c.error_lower, OptimalError(w, K, N, c.shape, c.rank) * (1 + 1e-9) + 1e-12)
            << c.shape.k1 << "x" << c.shape.n1 << " seed " << seed << " rank " << rank;
      }
    }
  }
}

// Where a shape's sketch captures its whole spectrum, the bounds are tight and shapes that cannot
// win get no full work.
TEST(ShapeSearchTest, PruningSkipsShapesThatCannotWin) {
  const KronShape planted{8, 16, 12, 8};
  const auto w = Planted(planted, 2, 21);
  SearchBudget budget;
  budget.max_params = 2 * planted.ParamsPerTerm();
  SearchOptions pruned;
  pruned.svd.method = SvdMethod::kRandomized;
  SearchOptions full = pruned;
  full.prune = false;
  auto a = SearchShape(w.data(), 96, 128, budget, pruned);
  auto b = SearchShape(w.data(), 96, 128, budget, full);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->shape, planted);
  EXPECT_EQ(b->shape, planted);
  EXPECT_LT(a->full_evaluations, b->full_evaluations / 2)
      << a->full_evaluations << " of " << b->full_evaluations;
}

TEST(ShapeSearchTest, LowRankShapeIsAlwaysEvaluated) {
  const auto w = Planted({4, 4, 4, 4}, 2, 9);
  SearchBudget budget;
  budget.max_params = 2 * 32;
  auto r = SearchShape(w.data(), 16, 16, budget);
  ASSERT_TRUE(r.ok());
  bool seen = false;
  for (const auto& c : r->candidates) {
    if (c.shape == LowRankShape(16, 16)) {
      seen = true;
      EXPECT_TRUE(c.evaluated);
      EXPECT_EQ(c.rank, 2);  // 2 * (16 + 16) = 64 parameters
    }
  }
  EXPECT_TRUE(seen);
}

TEST(ShapeSearchTest, BadInputGivesErrors) {
  const auto w = Gaussian(16, 1);
  SearchBudget none;
  EXPECT_EQ(SearchShape(w.data(), 4, 4, none).status().code(), StatusCode::kInvalidArgument);
  SearchBudget both;
  both.max_params = 10;
  both.max_error = 0.1;
  EXPECT_EQ(SearchShape(w.data(), 4, 4, both).status().code(), StatusCode::kInvalidArgument);
  SearchBudget ok;
  ok.max_params = 10;
  EXPECT_EQ(SearchShape(nullptr, 4, 4, ok).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SearchShape(w.data(), 0, 4, ok).status().code(), StatusCode::kInvalidArgument);
  auto bad = w;
  bad[5] = std::nanf("");
  auto r = SearchShape(bad.data(), 4, 4, ok);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("NaN at row 1, column 1"), std::string::npos);
  // 1 x N: only the trivial shapes and none else -> nothing found, no crash.
  auto one = SearchShape(w.data(), 1, 1, ok);
  ASSERT_TRUE(one.ok());
  EXPECT_FALSE(one->found);
}

TEST(ShapeSearchTest, DeterministicBits) {
  const auto w = Gaussian(64 * 96, 4);
  SearchBudget budget;
  budget.max_params = 800;
  SearchOptions o;
  o.svd.method = SvdMethod::kRandomized;
  auto a = SearchShape(w.data(), 64, 96, budget, o), b = SearchShape(w.data(), 64, 96, budget, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->shape, b->shape);
  EXPECT_EQ(std::memcmp(&a->error, &b->error, sizeof(double)), 0);
}

}  // namespace
}  // namespace kfc::kron
