// SPDX-License-Identifier: Apache-2.0
// Unit tests for the encoders in kfc/tensor/tensor: float32 -> float16 / bfloat16 rounding (to
// nearest even, as ONNX Cast does), EncodeFromFloat per dtype, and RoundToDType.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kfc/tensor/tensor.h"

namespace kfc::tensor {
namespace {

using TP = onnx::TensorProto;

float Bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof(f));
  return f;
}

TEST(HalfEncodeTest, RoundsToNearestEven) {
  EXPECT_EQ(FloatToHalfBits(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalfBits(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalfBits(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalfBits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie: to even
  EXPECT_EQ(FloatToHalfBits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie: to even (up)
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  EXPECT_EQ(FloatToHalfBits(2047.5f), 0x67FF + 1) << "mantissa carry bumps the exponent";
}

TEST(HalfEncodeTest, OverflowSubnormalsAndSpecials) {
  EXPECT_EQ(FloatToHalfBits(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalfBits(65519.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7C00);
  EXPECT_EQ(FloatToHalfBits(-1e10f), 0xFC00);
  EXPECT_EQ(FloatToHalfBits(std::numeric_limits<float>::infinity()), 0x7C00);
  const uint16_t nan = FloatToHalfBits(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x3FF, 0);
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -25)), 0x0000);      // tie between 0 and 1: even
  EXPECT_EQ(FloatToHalfBits(3 * std::ldexp(1.0f, -25)), 0x0002);  // tie between 1 and 2: even
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -14)), 0x0400);      // smallest normal
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1023.75f, -24)), 0x0400) << "subnormal rounds up to normal";
}

TEST(HalfEncodeTest, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0) continue;  // NaN payloads
    TP t;
    t.set_name("h");
    t.set_data_type(TP::FLOAT16);
    t.add_dims(1);
    t.add_int32_data(static_cast<int32_t>(h));
    auto f = DecodeToFloat(t);
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(FloatToHalfBits((*f)[0]), h) << std::hex << h;
  }
}

TEST(BFloat16EncodeTest, RoundsToNearestEven) {
  EXPECT_EQ(FloatToBFloat16Bits(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBFloat16Bits(1.0f + std::ldexp(1.0f, -8)), 0x3F80);      // tie: to even
  EXPECT_EQ(FloatToBFloat16Bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);  // tie: to even (up)
  EXPECT_EQ(FloatToBFloat16Bits(Bits(0x3F80C000)), 0x3F81);
  EXPECT_EQ(FloatToBFloat16Bits(-3.0f), 0xC040);
  EXPECT_EQ(FloatToBFloat16Bits(std::numeric_limits<float>::max()), 0x7F80) << "rounds to Inf";
  const uint16_t nan = FloatToBFloat16Bits(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7F80, 0x7F80);
  EXPECT_NE(nan & 0x7F, 0);
}

TEST(EncodeFromFloatTest, EachDtypeDecodesBack) {
  const std::vector<float> data = {1.0f, -0.5f, 3.140625f, 1e-3f, 0.0f, 100.0f};
  for (int32_t dtype : {TP::FLOAT, TP::DOUBLE, TP::FLOAT16, TP::BFLOAT16}) {
    const TP t = EncodeFromFloat("w", dtype, {2, 3}, data);
    EXPECT_EQ(t.name(), "w");
    EXPECT_EQ(t.data_type(), dtype);
    ASSERT_EQ(t.dims_size(), 2);
    EXPECT_EQ(t.raw_data().size(), data.size() * static_cast<size_t>(DTypeSize(dtype)));
    auto back = DecodeToFloat(t);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(*back, RoundToDType(dtype, data)) << DTypeName(dtype);
  }
}

TEST(EncodeFromFloatTest, RoundToDTypeRounds) {
  const std::vector<float> data = {1.0f + std::ldexp(1.0f, -12), 0.1f};
  EXPECT_EQ(RoundToDType(TP::FLOAT, data), data);
  EXPECT_EQ(RoundToDType(TP::DOUBLE, data), data);
  EXPECT_EQ(RoundToDType(TP::FLOAT16, data)[0], 1.0f);
  EXPECT_NEAR(RoundToDType(TP::FLOAT16, data)[1], 0.1f, 1e-4f);
  EXPECT_NE(RoundToDType(TP::FLOAT16, data)[1], 0.1f);
  EXPECT_EQ(RoundToDType(TP::BFLOAT16, data)[0], 1.0f);
  EXPECT_NEAR(RoundToDType(TP::BFLOAT16, data)[1], 0.1f, 1e-3f);
}

TEST(EncodeFromDoubleTest, Float64KeepsEveryBitAndTheOthersMatchEncodeFromFloat) {
  const std::vector<double> data = {0.1 + 1e-12, -1.0 / 3.0, 1e-300, 0.0, 65504.0, 1.0};
  const TP t = EncodeFromDouble("w", TP::DOUBLE, {3, 2}, data);
  EXPECT_EQ(t.name(), "w");
  EXPECT_EQ(t.data_type(), TP::DOUBLE);
  ASSERT_EQ(t.raw_data().size(), data.size() * sizeof(double));
  EXPECT_EQ(std::memcmp(t.raw_data().data(), data.data(), t.raw_data().size()), 0);
  EXPECT_EQ(RoundToDType(TP::DOUBLE, data), data);

  const std::vector<float> as_float(data.begin(), data.end());
  for (int32_t dtype : {TP::FLOAT, TP::FLOAT16, TP::BFLOAT16}) {
    const TP d = EncodeFromDouble("w", dtype, {3, 2}, data);
    EXPECT_EQ(d.SerializeAsString(),
              EncodeFromFloat("w", dtype, {3, 2}, as_float).SerializeAsString())
        << DTypeName(dtype);
    const std::vector<float> rounded = RoundToDType(dtype, as_float);
    EXPECT_EQ(RoundToDType(dtype, data), std::vector<double>(rounded.begin(), rounded.end()))
        << DTypeName(dtype);
  }
  EXPECT_NE(RoundToDType(TP::FLOAT, data)[0], data[0]);
}

}  // namespace
}  // namespace kfc::tensor
