// SPDX-License-Identifier: Apache-2.0
// Unit tests for factorizing from R made in W's own memory (RearrangeFloatInPlace then
// FactorizeRearranged): the same R as the copying rearrangement, and the same factors and error,
// to the bit, as Factorize of W, on both SVD paths and on both sides of the error threshold.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kfc/kron/factorize.h"
#include "kfc/kron/rearrange.h"

namespace kfc::kron {
namespace {

std::vector<float> Uniform(int64_t size, uint64_t seed) {
  std::vector<float> w(static_cast<size_t>(size));
  uint64_t state = seed;
  for (float& x : w) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    x = static_cast<float>(static_cast<double>(state >> 40) * 0x1.0p-24 - 0.5);
  }
  return w;
}

// W = sum_{t < terms} A_t (x) B_t (decaying) + noise: a low error at a rank >= terms.
std::vector<float> NearlyKronecker(const KronShape& sh, int64_t terms, double noise,
                                   uint64_t seed) {
  std::vector<float> w = Uniform(sh.K() * sh.N(), seed);
  for (float& x : w) x = static_cast<float>(noise * x);
  for (int64_t t = 0; t < terms; ++t) {
    const std::vector<float> a = Uniform(sh.k1 * sh.n1, seed + 10 + t),
                             b = Uniform(sh.k2 * sh.n2, seed + 50 + t);
    const double scale = std::pow(0.7, static_cast<double>(t));
    for (int64_t i1 = 0; i1 < sh.k1; ++i1)
      for (int64_t i2 = 0; i2 < sh.k2; ++i2)
        for (int64_t j1 = 0; j1 < sh.n1; ++j1)
          for (int64_t j2 = 0; j2 < sh.n2; ++j2) {
            w[static_cast<size_t>((i1 * sh.k2 + i2) * sh.N() + j1 * sh.n2 + j2)] +=
                static_cast<float>(scale * a[static_cast<size_t>(i1 * sh.n1 + j1)] *
                                   b[static_cast<size_t>(i2 * sh.n2 + j2)]);
          }
  }
  return w;
}

bool SameBits(const std::vector<double>& x, const std::vector<double>& y) {
  return x.size() == y.size() &&
         (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
}

TEST(KronRearrangedTest, InPlaceGivesTheSameMatrixAsTheCopy) {
  for (const KronShape sh : {KronShape{4, 6, 5, 3}, KronShape{1, 7, 3, 2}, KronShape{3, 1, 1, 5},
                             KronShape{8, 8, 8, 8}}) {
    const std::vector<float> w = Uniform(sh.K() * sh.N(), 3);
    std::vector<float> copy(w.size()), in_place = w;
    ASSERT_TRUE(RearrangeFloatTo(w.data(), sh.K(), sh.N(), sh, copy.data()).ok());
    ASSERT_TRUE(RearrangeFloatInPlace(in_place.data(), sh.K(), sh.N(), sh).ok());
    EXPECT_EQ(std::memcmp(copy.data(), in_place.data(), w.size() * sizeof(float)), 0)
        << ShapeString(sh);
  }
  std::vector<float> w(12);
  EXPECT_FALSE(RearrangeFloatInPlace(w.data(), 3, 4, KronShape{2, 2, 2, 2}).ok());
  EXPECT_FALSE(RearrangeFloatInPlace(nullptr, 4, 4, KronShape{2, 2, 2, 2}).ok());
}

// BlockRearranger: W's blocks of k2 rows, given one at a time, make the same R as the copying
// rearrangement, and the norm summed on the way is CheckedFrobeniusNorm's to the bit (blocks of
// k2 * N elements, some not a multiple of the 8 interleaved sums; runs of n2 = 16 and 24 floats
// take the one-pass vector kernel where the CPU has AVX2); a NaN or infinity gives its error,
// naming the same first element of W.
StatusOr<double> RearrangeByBlocks(const std::vector<float>& w, const KronShape& sh,
                                   std::vector<float>* r) {
  r->assign(w.size(), 0.0f);
  BlockRearranger rearranger(sh.K(), sh.N(), sh, r->data());
  EXPECT_EQ(rearranger.block_rows(), sh.k2);
  for (int64_t i1 = 0; i1 < sh.k1; ++i1) {
    EXPECT_FALSE(rearranger.done());
    KFC_RETURN_IF_ERROR(rearranger.Add(w.data() + i1 * sh.k2 * sh.N()));
  }
  EXPECT_TRUE(rearranger.done());
  EXPECT_FALSE(rearranger.Add(w.data()).ok());  // past the last block
  return rearranger.norm();
}

TEST(KronRearrangedTest, BlocksGiveTheMatrixNormAndErrorOfCheckedFrobeniusNorm) {
  for (const KronShape sh : {KronShape{4, 6, 5, 3}, KronShape{1, 7, 3, 2}, KronShape{3, 1, 1, 5},
                             KronShape{8, 8, 8, 8}, KronShape{5, 3, 7, 1}, KronShape{3, 5, 7, 16},
                             KronShape{6, 4, 1, 24}, KronShape{2, 1, 3, 32}}) {
    const std::vector<float> w = Uniform(sh.K() * sh.N(), 5);
    const StatusOr<double> expected = CheckedFrobeniusNorm(w.data(), sh.K(), sh.N());
    ASSERT_TRUE(expected.ok());
    std::vector<float> copy(w.size()), blocks;
    ASSERT_TRUE(RearrangeFloatTo(w.data(), sh.K(), sh.N(), sh, copy.data()).ok());
    const StatusOr<double> norm = RearrangeByBlocks(w, sh, &blocks);
    ASSERT_TRUE(norm.ok()) << norm.status().message();
    EXPECT_EQ(std::memcmp(&*norm, &*expected, sizeof(double)), 0) << ShapeString(sh);
    EXPECT_EQ(std::memcmp(copy.data(), blocks.data(), w.size() * sizeof(float)), 0)
        << ShapeString(sh);
  }
  for (const KronShape sh : {KronShape{4, 6, 5, 3}, KronShape{3, 5, 7, 16}}) {
    for (const int64_t at : {int64_t{0}, int64_t{7}, int64_t{200}, sh.K() * sh.N() - 1}) {
      for (const float bad : {std::nanf(""), -INFINITY}) {
        std::vector<float> w = Uniform(sh.K() * sh.N(), 6), r;
        w[static_cast<size_t>(sh.K() * sh.N() - 1)] = INFINITY;  // a later one is not named
        w[static_cast<size_t>(at)] = bad;
        const StatusOr<double> expected = CheckedFrobeniusNorm(w.data(), sh.K(), sh.N());
        const StatusOr<double> got = RearrangeByBlocks(w, sh, &r);
        ASSERT_FALSE(expected.ok());
        ASSERT_FALSE(got.ok());
        EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
        EXPECT_EQ(got.status().message(), expected.status().message());
        EXPECT_NE(got.status().message().find("row " + std::to_string(at / sh.N()) + ", column " +
                                              std::to_string(at % sh.N())),
                  std::string::npos)
            << got.status().message();
      }
    }
  }
}

// Randomized path above and below kIdentityMinRelativeError (where the error is measured from
// the factors, reading R in W's order), and the exact path.
TEST(KronRearrangedTest, FactorsAndErrorsMatchFactorizeBitForBit) {
  struct Case {
    KronShape shape;
    int64_t terms, rank;
    double noise;
    SvdMethod method;
  };
  const Case cases[] = {
      {KronShape{24, 32, 32, 24}, 30, 8, 1.0, SvdMethod::kRandomized},  // error near 1
      {KronShape{24, 32, 32, 24}, 8, 8, 1e-5, SvdMethod::kRandomized},  // error below 1e-2
      {KronShape{8, 6, 4, 10}, 30, 5, 0.1, SvdMethod::kExact},
  };
  for (const Case& c : cases) {
    const KronShape& sh = c.shape;
    SCOPED_TRACE(ShapeString(sh) + " rank " + std::to_string(c.rank));
    std::vector<float> w = NearlyKronecker(sh, c.terms, c.noise, 17);
    const StatusOr<double> norm = CheckedFrobeniusNorm(w.data(), sh.K(), sh.N());
    ASSERT_TRUE(norm.ok());
    FactorizeOptions options;
    options.frobenius_norm = *norm;
    const StatusOr<KronFactors> from_w = Factorize(w.data(), sh.K(), sh.N(), sh, c.rank, options);
    ASSERT_TRUE(from_w.ok()) << from_w.status().message();
    EXPECT_EQ(from_w->method, c.method);
    ASSERT_TRUE(RearrangeFloatInPlace(w.data(), sh.K(), sh.N(), sh).ok());
    const StatusOr<KronFactors> from_r =
        FactorizeRearranged(w.data(), sh.K(), sh.N(), sh, c.rank, options);
    ASSERT_TRUE(from_r.ok()) << from_r.status().message();
    EXPECT_TRUE(SameBits(from_w->a, from_r->a));
    EXPECT_TRUE(SameBits(from_w->b, from_r->b));
    EXPECT_TRUE(SameBits(from_w->singular_values, from_r->singular_values));
    EXPECT_EQ(std::memcmp(&from_w->relative_error, &from_r->relative_error, sizeof(double)), 0)
        << from_w->relative_error << " vs " << from_r->relative_error;
    if (c.noise < 1e-3) {
      EXPECT_LT(from_r->relative_error, kIdentityMinRelativeError);
    } else if (c.noise >= 1.0) {
      EXPECT_GT(from_r->relative_error, kIdentityMinRelativeError);
    }
  }
}

TEST(KronRearrangedTest, RequiresTheNorm) {
  const KronShape sh{24, 32, 32, 24};
  const std::vector<float> r = Uniform(sh.K() * sh.N(), 5);
  EXPECT_FALSE(FactorizeRearranged(r.data(), sh.K(), sh.N(), sh, 8, {}).ok());
  FactorizeOptions options;
  options.frobenius_norm = 1.0;
  EXPECT_FALSE(FactorizeRearranged(nullptr, sh.K(), sh.N(), sh, 8, options).ok());
  EXPECT_FALSE(FactorizeRearranged(r.data(), sh.K(), sh.N(), sh, 0, options).ok());
}

}  // namespace
}  // namespace kfc::kron
