// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/tensor/tensor: dtype names and sizes, element counts, decoding FLOAT tensors
// from raw_data and float_data, the errors for bad data, and the encoders.
#include "kfc/tensor/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tests/support/test_util.h"

namespace kfc::tensor {
namespace {

using TP = onnx::TensorProto;

google::protobuf::RepeatedField<int64_t> Dims(const std::vector<int64_t>& dims) {
  return google::protobuf::RepeatedField<int64_t>(dims.begin(), dims.end());
}

// A FLOAT tensor whose raw_data holds exactly `bytes` (not necessarily a whole number of floats).
TP RawFloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                  const std::string& bytes) {
  TP t;
  t.set_name(name);
  t.set_data_type(TP::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(bytes);
  return t;
}

// Bitwise comparison, so that NaN payloads and -0.0f count too.
bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// --- DTypeName / DTypeSize ---

TEST(TensorDTypeTest, NamesOfMainTypes) {
  EXPECT_EQ(DTypeName(TP::FLOAT), "float32");
  EXPECT_EQ(DTypeName(TP::DOUBLE), "float64");
  EXPECT_EQ(DTypeName(TP::FLOAT16), "float16");
  EXPECT_EQ(DTypeName(TP::BFLOAT16), "bfloat16");
  EXPECT_EQ(DTypeName(TP::INT8), "int8");
  EXPECT_EQ(DTypeName(TP::UINT8), "uint8");
  EXPECT_EQ(DTypeName(TP::INT32), "int32");
  EXPECT_EQ(DTypeName(TP::INT64), "int64");
  EXPECT_EQ(DTypeName(TP::BOOL), "bool");
  EXPECT_EQ(DTypeName(TP::STRING), "string");
  EXPECT_EQ(DTypeName(TP::COMPLEX64), "complex64");
}

TEST(TensorDTypeTest, UnknownCodesAreNamedByNumber) {
  EXPECT_EQ(DTypeName(TP::UNDEFINED), "dtype_0");
  EXPECT_EQ(DTypeName(99), "dtype_99");
  EXPECT_EQ(DTypeName(-3), "dtype_-3");
}

TEST(TensorDTypeTest, SizesOfMainTypes) {
  EXPECT_EQ(DTypeSize(TP::FLOAT), 4);
  EXPECT_EQ(DTypeSize(TP::DOUBLE), 8);
  EXPECT_EQ(DTypeSize(TP::FLOAT16), 2);
  EXPECT_EQ(DTypeSize(TP::BFLOAT16), 2);
  EXPECT_EQ(DTypeSize(TP::INT8), 1);
  EXPECT_EQ(DTypeSize(TP::UINT8), 1);
  EXPECT_EQ(DTypeSize(TP::BOOL), 1);
  EXPECT_EQ(DTypeSize(TP::INT16), 2);
  EXPECT_EQ(DTypeSize(TP::INT32), 4);
  EXPECT_EQ(DTypeSize(TP::INT64), 8);
  EXPECT_EQ(DTypeSize(TP::UINT64), 8);
  EXPECT_EQ(DTypeSize(TP::COMPLEX64), 8);
  EXPECT_EQ(DTypeSize(TP::COMPLEX128), 16);
}

TEST(TensorDTypeTest, VariableAndUnknownTypesHaveSizeZero) {
  EXPECT_EQ(DTypeSize(TP::STRING), 0);
  EXPECT_EQ(DTypeSize(TP::UNDEFINED), 0);
  EXPECT_EQ(DTypeSize(99), 0);
}

// --- NumElements ---

TEST(TensorNumElementsTest, ProductOfDims) {
  auto n = NumElements(Dims({2, 3, 4}), "t");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, 24);
}

TEST(TensorNumElementsTest, ScalarHasOneElementAndZeroDimHasNone) {
  auto scalar = NumElements(Dims({}), "t");
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(*scalar, 1);
  auto empty = NumElements(Dims({5, 0, 7}), "t");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, 0);
}

TEST(TensorNumElementsTest, NegativeDimIsInvalidArgumentNamingTheObject) {
  auto n = NumElements(Dims({3, -1}), "initializer 'W'");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(n.status().message().find("initializer 'W'"), std::string::npos)
      << n.status().message();
  EXPECT_NE(n.status().message().find("negative dim"), std::string::npos);
  EXPECT_NE(n.status().message().find("[3, -1]"), std::string::npos) << n.status().message();
}

TEST(TensorNumElementsTest, OverflowIsInvalidArgument) {
  const int64_t big = int64_t{1} << 32;
  auto n = NumElements(Dims({big, big}), "initializer 'huge'");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(n.status().message().find("initializer 'huge'"), std::string::npos);
  EXPECT_NE(n.status().message().find("overflow int64"), std::string::npos) << n.status().message();
}

TEST(TensorNumElementsTest, LargestProductsThatFitAreExact) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  auto just_fits = NumElements(Dims({int64_t{1} << 31, int64_t{1} << 31}), "t");
  ASSERT_TRUE(just_fits.ok());
  EXPECT_EQ(*just_fits, int64_t{1} << 62);
  auto max_dim = NumElements(Dims({max, 1}), "t");
  ASSERT_TRUE(max_dim.ok());
  EXPECT_EQ(*max_dim, max);
  EXPECT_FALSE(NumElements(Dims({max, 2}), "t").ok());
  // 2^62 * 2 = 2^63 is one past the maximum.
  EXPECT_FALSE(NumElements(Dims({int64_t{1} << 62, 2}), "t").ok());
}

// --- DecodeFloat32 ---

TEST(TensorDecodeTest, FromRawData) {
  const std::vector<float> values = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f};
  std::string raw(values.size() * sizeof(float), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  auto decoded = DecodeFloat32(RawFloatTensor("W", {2, 3}, raw));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, values);
}

TEST(TensorDecodeTest, RawDataIsLittleEndian) {
  // 1.0f = 0x3f800000, -2.0f = 0xc0000000, stored least significant byte first.
  const std::string raw("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  auto decoded = DecodeFloat32(RawFloatTensor("W", {2}, raw));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, (std::vector<float>{1.0f, -2.0f}));
}

TEST(TensorDecodeTest, FromFloatData) {
  TP t;
  t.set_name("W");
  t.set_data_type(TP::FLOAT);
  t.add_dims(3);
  t.add_dims(2);
  const std::vector<float> values = testing::RandomVector(6, 11);
  for (float v : values) t.add_float_data(v);
  auto decoded = DecodeFloat32(t);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, values);
}

TEST(TensorDecodeTest, ScalarAndEmptyTensors) {
  TP scalar;
  scalar.set_name("s");
  scalar.set_data_type(TP::FLOAT);
  scalar.add_float_data(4.5f);
  auto s = DecodeFloat32(scalar);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(*s, std::vector<float>{4.5f});

  auto empty = DecodeFloat32(RawFloatTensor("e", {0, 8}, ""));
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_TRUE(empty->empty());
}

TEST(TensorDecodeTest, RawDataTooShortIsDataLossNamingInitializerAndBytes) {
  auto decoded = DecodeFloat32(RawFloatTensor("W", {4, 4}, std::string(12, '\0')));
  ASSERT_FALSE(decoded.ok());
  const std::string& m = decoded.status().message();
  EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(m.find("initializer 'W'"), std::string::npos) << m;
  EXPECT_NE(m.find("raw_data has 12 bytes"), std::string::npos) << m;
  EXPECT_NE(m.find("[4, 4]"), std::string::npos) << m;
  // 16 elements of 4 bytes are needed.
  EXPECT_NE(m.find("16 x 4"), std::string::npos) << m;
}

TEST(TensorDecodeTest, RawDataTooLongIsDataLoss) {
  auto decoded = DecodeFloat32(RawFloatTensor("bias", {2}, std::string(12, '\0')));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(decoded.status().message().find("initializer 'bias'"), std::string::npos);
  EXPECT_NE(decoded.status().message().find("12 bytes"), std::string::npos)
      << decoded.status().message();
}

TEST(TensorDecodeTest, RawDataNotAMultipleOfFourIsDataLoss) {
  auto decoded = DecodeFloat32(RawFloatTensor("W", {2}, std::string(9, '\0')));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(decoded.status().message().find("9 bytes"), std::string::npos)
      << decoded.status().message();
}

TEST(TensorDecodeTest, HugeDimsWithShortRawDataIsAnErrorNotAnAllocation) {
  // 2^61 elements would need 2^63 bytes (which does not fit int64); must be rejected cleanly.
  auto decoded = DecodeFloat32(RawFloatTensor("W", {int64_t{1} << 61}, std::string(8, '\0')));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
}

TEST(TensorDecodeTest, FloatDataCountMismatchIsDataLoss) {
  TP t;
  t.set_name("W2");
  t.set_data_type(TP::FLOAT);
  t.add_dims(2);
  t.add_dims(2);
  for (float v : {1.0f, 2.0f, 3.0f}) t.add_float_data(v);
  auto decoded = DecodeFloat32(t);
  ASSERT_FALSE(decoded.ok());
  const std::string& m = decoded.status().message();
  EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(m.find("initializer 'W2'"), std::string::npos) << m;
  EXPECT_NE(m.find("float_data has 3 values"), std::string::npos) << m;
  EXPECT_NE(m.find("[2, 2] need 4"), std::string::npos) << m;
}

TEST(TensorDecodeTest, FloatDataWithExtraValuesIsDataLoss) {
  TP t;
  t.set_name("b");
  t.set_data_type(TP::FLOAT);
  t.add_dims(2);
  for (float v : {1.0f, 2.0f, 3.0f}) t.add_float_data(v);
  auto decoded = DecodeFloat32(t);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(decoded.status().message().find("float_data has 3 values, dims [2] need 2"),
            std::string::npos)
      << decoded.status().message();
}

TEST(TensorDecodeTest, NoDataAtAllIsDataLoss) {
  TP t;
  t.set_name("W");
  t.set_data_type(TP::FLOAT);
  t.add_dims(3);
  auto decoded = DecodeFloat32(t);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kDataLoss);
}

TEST(TensorDecodeTest, WrongDtypeIsInvalidArgument) {
  TP t = EncodeInt64("shape", {2}, {3, 4});
  auto decoded = DecodeFloat32(t);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = decoded.status().message();
  EXPECT_NE(m.find("initializer 'shape'"), std::string::npos) << m;
  EXPECT_NE(m.find("dtype int64"), std::string::npos) << m;
  EXPECT_NE(m.find("expected float32"), std::string::npos) << m;

  TP half;
  half.set_name("h");
  half.set_data_type(TP::FLOAT16);
  half.add_dims(1);
  half.set_raw_data(std::string(2, '\0'));
  auto h = DecodeFloat32(half);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("dtype float16"), std::string::npos) << h.status().message();
}

TEST(TensorDecodeTest, ExternalDataIsRejected) {
  TP t;
  t.set_name("Wext");
  t.set_data_type(TP::FLOAT);
  t.add_dims(4);
  t.set_data_location(TP::EXTERNAL);
  auto* location = t.add_external_data();
  location->set_key("location");
  location->set_value("weights.bin");
  ASSERT_TRUE(HasExternalData(t));
  auto decoded = DecodeFloat32(t);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(decoded.status().message().find("initializer 'Wext'"), std::string::npos);
  EXPECT_NE(decoded.status().message().find("stored externally"), std::string::npos)
      << decoded.status().message();
}

TEST(TensorDecodeTest, NegativeDimIsRejected) {
  auto decoded = DecodeFloat32(RawFloatTensor("W", {-2, 2}, std::string(16, '\0')));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(decoded.status().message().find("initializer 'W'"), std::string::npos);
}

// --- Encoders ---

TEST(TensorEncodeTest, Float32RoundTripIsBitExact) {
  std::vector<float> values = testing::RandomVector(12, 3);
  values[0] = -0.0f;
  values[1] = std::numeric_limits<float>::infinity();
  values[2] = std::numeric_limits<float>::denorm_min();
  values[3] = std::numeric_limits<float>::quiet_NaN();
  TP t = EncodeFloat32("A", {3, 4}, values);
  EXPECT_EQ(t.name(), "A");
  EXPECT_EQ(t.data_type(), TP::FLOAT);
  ASSERT_EQ(t.dims_size(), 2);
  EXPECT_EQ(t.dims(0), 3);
  EXPECT_EQ(t.dims(1), 4);
  EXPECT_EQ(t.raw_data().size(), 48u);
  EXPECT_EQ(t.float_data_size(), 0);
  EXPECT_FALSE(HasExternalData(t));
  auto decoded = DecodeFloat32(t);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_TRUE(SameBits(*decoded, values));
  EXPECT_TRUE(std::signbit((*decoded)[0]));
  EXPECT_TRUE(std::isnan((*decoded)[3]));
}

TEST(TensorEncodeTest, Float32RawBytesAreLittleEndian) {
  TP t = EncodeFloat32("one", {1}, {1.0f});
  EXPECT_EQ(t.raw_data(), std::string("\x00\x00\x80\x3f", 4));
}

TEST(TensorEncodeTest, Float32ScalarAndEmpty) {
  TP scalar = EncodeFloat32("beta", {}, {0.5f});
  EXPECT_EQ(scalar.dims_size(), 0);
  auto s = DecodeFloat32(scalar);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, std::vector<float>{0.5f});

  TP empty = EncodeFloat32("e", {0}, {});
  EXPECT_TRUE(empty.raw_data().empty());
  auto e = DecodeFloat32(empty);
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_TRUE(e->empty());
}

TEST(TensorEncodeTest, Int64RoundTrip) {
  const std::vector<int64_t> values = {-1, 0, 7, std::numeric_limits<int64_t>::max(),
                                       std::numeric_limits<int64_t>::min()};
  TP t = EncodeInt64("shape", {5}, values);
  EXPECT_EQ(t.name(), "shape");
  EXPECT_EQ(t.data_type(), TP::INT64);
  ASSERT_EQ(t.dims_size(), 1);
  EXPECT_EQ(t.dims(0), 5);
  EXPECT_EQ(t.int64_data_size(), 0);
  ASSERT_EQ(t.raw_data().size(), values.size() * 8);
  std::vector<int64_t> back(values.size());
  std::memcpy(back.data(), t.raw_data().data(), t.raw_data().size());
  EXPECT_EQ(back, values);
  // Little-endian: -1 then 0 starts with eight 0xff bytes and eight zero bytes.
  EXPECT_EQ(t.raw_data().substr(0, 16), std::string(8, '\xff') + std::string(8, '\0'));
}

// --- StoredDataBytes ---

TEST(TensorStoredBytesTest, RawDataCountsItsLength) {
  EXPECT_EQ(StoredDataBytes(EncodeFloat32("a", {2, 3}, std::vector<float>(6, 1.0f))), 24);
  EXPECT_EQ(StoredDataBytes(EncodeInt64("s", {3}, {1, 2, 3})), 24);
  // raw_data is counted as stored even when it disagrees with the dims.
  EXPECT_EQ(StoredDataBytes(RawFloatTensor("w", {100}, std::string(10, '\0'))), 10);
}

TEST(TensorStoredBytesTest, TypedFieldsCountDimsTimesElementSize) {
  TP t;
  t.set_data_type(TP::FLOAT);
  t.add_dims(2);
  t.add_dims(5);
  for (float v : testing::RandomVector(10, 1)) t.add_float_data(v);
  EXPECT_EQ(StoredDataBytes(t), 40);

  TP d;
  d.set_data_type(TP::DOUBLE);
  d.add_dims(3);
  for (double v : {1.0, 2.0, 3.0}) d.add_double_data(v);
  EXPECT_EQ(StoredDataBytes(d), 24);
}

TEST(TensorStoredBytesTest, ExternalDataCountsTheImpliedLength) {
  TP t;
  t.set_data_type(TP::FLOAT16);
  t.add_dims(64);
  t.add_dims(32);
  t.set_data_location(TP::EXTERNAL);
  EXPECT_EQ(StoredDataBytes(t), 64 * 32 * 2);
}

TEST(TensorStoredBytesTest, StringsCountTheirCharacters) {
  TP t;
  t.set_data_type(TP::STRING);
  t.add_dims(2);
  t.add_string_data("abc");
  t.add_string_data("de");
  EXPECT_EQ(StoredDataBytes(t), 5);
}

TEST(TensorStoredBytesTest, BadDimsCountZero) {
  TP t;
  t.set_data_type(TP::FLOAT);
  t.add_dims(-4);
  EXPECT_EQ(StoredDataBytes(t), 0);
}

TEST(TransposeTest, SwapsRowsAndColumns) {
  // 2 x 3 -> 3 x 2
  const std::vector<float> m = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(Transpose(m, 2, 3), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(Transpose(Transpose(m, 2, 3), 3, 2), m);
}

TEST(DecodeToFloatTest, Float16BFloat16AndDoubleConvertLikeCast) {
  onnx::TensorProto h;
  h.set_name("h");
  h.set_data_type(onnx::TensorProto::FLOAT16);
  h.add_dims(5);
  // 1.0, -2.0, 65504 (max half), smallest subnormal 2^-24, +Inf
  for (int bits : {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00}) h.add_int32_data(bits);
  auto v = DecodeToFloat(h);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ((*v)[0], 1.0f);
  EXPECT_EQ((*v)[1], -2.0f);
  EXPECT_EQ((*v)[2], 65504.0f);
  EXPECT_EQ((*v)[3], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf((*v)[4]));

  onnx::TensorProto b;
  b.set_name("b");
  b.set_data_type(onnx::TensorProto::BFLOAT16);
  b.add_dims(2);
  const uint16_t raw[2] = {0x3F80, 0xC040};  // 1.0, -3.0
  b.set_raw_data(std::string(reinterpret_cast<const char*>(raw), sizeof(raw)));
  v = DecodeToFloat(b);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (std::vector<float>{1.0f, -3.0f}));

  onnx::TensorProto d;
  d.set_name("d");
  d.set_data_type(onnx::TensorProto::DOUBLE);
  d.add_dims(2);
  d.add_double_data(0.1);
  d.add_double_data(-1e300);
  v = DecodeToFloat(d);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)[0], 0.1f);
  EXPECT_TRUE(std::isinf((*v)[1]));

  d.add_dims(3);  // dims now [2, 3]: 6 values needed, 2 present
  EXPECT_EQ(DecodeToFloat(d).status().code(), StatusCode::kDataLoss);
  onnx::TensorProto i;
  i.set_data_type(onnx::TensorProto::INT8);
  EXPECT_EQ(DecodeToFloat(i).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(DecodableAsFloat(onnx::TensorProto::BFLOAT16));
  EXPECT_FALSE(DecodableAsFloat(onnx::TensorProto::INT8));
}

TEST(DecodeToDoubleTest, Float64IsReadAsItIsAndTheOthersWidenExactly) {
  // 0.1 + 1e-12 has no float32 neighbour closer than about 1.5e-9: DecodeToFloat would lose it.
  const double fine[3] = {0.1 + 1e-12, -1e300, 5e-324};
  onnx::TensorProto d;
  d.set_name("d");
  d.set_data_type(onnx::TensorProto::DOUBLE);
  d.add_dims(3);
  d.set_raw_data(std::string(reinterpret_cast<const char*>(fine), sizeof(fine)));
  auto v = DecodeToDouble(d);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(*v, (std::vector<double>{fine[0], fine[1], fine[2]}));
  d.clear_raw_data();
  for (double x : fine) d.add_double_data(x);
  v = DecodeToDouble(d);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(*v, (std::vector<double>{fine[0], fine[1], fine[2]}));
  d.add_dims(2);  // dims now [3, 2]: 6 values needed, 3 present
  EXPECT_EQ(DecodeToDouble(d).status().code(), StatusCode::kDataLoss);

  onnx::TensorProto f = EncodeFloat32("f", {2}, {0.1f, -3.5f});
  v = DecodeToDouble(f);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (std::vector<double>{0.1f, -3.5f}));

  onnx::TensorProto h;
  h.set_name("h");
  h.set_data_type(onnx::TensorProto::FLOAT16);
  h.add_dims(2);
  for (int bits : {0x3555, 0x0001}) h.add_int32_data(bits);  // 0.333251953125, 2^-24
  v = DecodeToDouble(h);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (std::vector<double>{0.333251953125, std::ldexp(1.0, -24)}));

  onnx::TensorProto i;
  i.set_data_type(onnx::TensorProto::INT64);
  EXPECT_EQ(DecodeToDouble(i).status().code(), StatusCode::kInvalidArgument);
}

TEST(TransposeTest, WorksOnDoubles) {
  const std::vector<double> m = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(Transpose(m, 3, 2), (std::vector<double>{1, 3, 5, 2, 4, 6}));
}

}  // namespace
}  // namespace kfc::tensor
