// SPDX-License-Identifier: Apache-2.0
// Tensor data: element types, decoding an ONNX TensorProto to a row-major matrix and encoding one
// back. Knows nothing about graphs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "onnx/onnx_pb.h"

namespace kfc::tensor {

// "float32", "float16", "bfloat16", "float64", "int64", ... or "dtype_<n>" for unknown codes.
std::string DTypeName(int32_t onnx_elem_type);

// Bytes per element for fixed-size types; 0 for strings and unknown types.
int64_t DTypeSize(int32_t onnx_elem_type);

// "[4, 4]": dims as error messages print them.
std::string DimsText(const google::protobuf::RepeatedField<int64_t>& dims);

// Product of dims. InvalidArgument naming `what` on a negative dim or int64 overflow.
StatusOr<int64_t> NumElements(const google::protobuf::RepeatedField<int64_t>& dims,
                              const std::string& what);

bool HasExternalData(const onnx::TensorProto& t);

// Bytes the tensor's data must occupy: product of dims x DTypeSize. InvalidArgument naming `what`
// on a negative dim, a product (elements or bytes) that overflows int64, or a dtype without a
// fixed size (string, unknown codes).
StatusOr<int64_t> ExpectedDataBytes(const onnx::TensorProto& t, const std::string& what);

// Checks that inline data agrees with the dims: raw_data holds ExpectedDataBytes bytes, or the
// typed field of the dtype (float_data, int32_data, ...) holds one value per element (two for
// complex types). A tensor without inline data passes (the checker judges a missing field).
// DataLoss naming `what`: "initializer 'W': raw_data has 12 bytes, dims [4, 4] of float32 need 64".
Status CheckInlineData(const onnx::TensorProto& t, const std::string& what);

// Bytes the tensor's data occupies when stored (raw or typed fields), for reports. Tensors whose
// data lives in external files count the length their dims and dtype imply.
int64_t StoredDataBytes(const onnx::TensorProto& t);

// Elements of `t` as float32, row-major in the order of t.dims(). `t` must be FLOAT with inline
// data (raw_data or float_data). DataLoss when the data size disagrees with the dims:
// "initializer 'W': raw_data has 12 bytes, dims [4, 4] need 16 x 4".
StatusOr<std::vector<float>> DecodeFloat32(const onnx::TensorProto& t);

// The cols x rows transpose of a rows x cols row-major matrix (Gemm transB=1 stores W as [N, K]).
template <typename T>
std::vector<T> Transpose(const std::vector<T>& m, int64_t rows, int64_t cols) {
  std::vector<T> t(m.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = m[i * cols + j];
  return t;
}

// Element types DecodeToFloat and DecodeToDouble read: float32, float16, bfloat16, float64.
bool DecodableAsFloat(int32_t onnx_elem_type);

// Elements of `t` converted to float32 the way ONNX Cast(to=FLOAT) converts them (exact for
// float16 and bfloat16; float64 rounds to nearest), row-major in the order of t.dims(). Inline
// data only (raw_data or the typed field: float_data, int32_data holding 16-bit patterns,
// double_data). DataLoss when the data size disagrees with the dims.
StatusOr<std::vector<float>> DecodeToFloat(const onnx::TensorProto& t);
// The same as float64, exact for every one of those types (a float64 tensor is read as it is).
StatusOr<std::vector<double>> DecodeToDouble(const onnx::TensorProto& t);

// A FLOAT tensor named `name` with `dims`, data stored little-endian in raw_data.
onnx::TensorProto EncodeFloat32(const std::string& name, const std::vector<int64_t>& dims,
                                const std::vector<float>& data);

// An INT64 tensor (used for Reshape shapes), data in raw_data.
onnx::TensorProto EncodeInt64(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& data);

// float32 -> IEEE half bits and -> bfloat16 bits, rounding to nearest even the way ONNX
// Cast(to=FLOAT16 / BFLOAT16) does: too large for the type gives +-Inf, NaN stays NaN (quiet).
uint16_t FloatToHalfBits(float f);
uint16_t FloatToBFloat16Bits(float f);

// A tensor of `dtype` (float32, float64, float16 or bfloat16) holding `data` converted the way
// Cast(to=dtype) converts float32 (exact for float64), little-endian in raw_data. Any other dtype
// is a programmer error (asserts).
onnx::TensorProto EncodeFromFloat(const std::string& name, int32_t dtype,
                                  const std::vector<int64_t>& dims, const std::vector<float>& data);
// The same from float64 data: float64 keeps every value as it is; the other dtypes round it to
// float32 first (to nearest), then convert that as EncodeFromFloat does. The two steps give what
// EncodeFromFloat gives for data computed in float32 (float16 and bfloat16 factors are: their
// weights are factorized in float32).
onnx::TensorProto EncodeFromDouble(const std::string& name, int32_t dtype,
                                   const std::vector<int64_t>& dims,
                                   const std::vector<double>& data);

// Each value rounded to the nearest one `dtype` can hold, as float32 again: what EncodeFromFloat
// then DecodeToFloat gives. Identity for float32 and float64 (float64 holds every float32).
std::vector<float> RoundToDType(int32_t dtype, std::vector<float> data);
// The same for float64 data: what EncodeFromDouble then DecodeToDouble gives. Identity for
// float64; float32 rounds to nearest; float16 and bfloat16 round through float32.
std::vector<double> RoundToDType(int32_t dtype, std::vector<double> data);

// Tensors up to this many bytes are what the ONNX checker and shape inference read whole (Reshape
// shapes, axes and the like); the copies they run on keep larger ones by dims only.
inline constexpr int64_t kReadWholeBytes = 64 * 1024;

// Copies the fields of `from` into the empty `to`, recursing into messages, without ever copying
// bulk tensor data: a TensorProto whose raw_data exceeds `max_inline_bytes`, or whose data is
// external (data_location and external_data are dropped), gets one zero-or-first element in
// raw_data, dims and dtype unchanged. What a checker or shape inference needs of a large model.
void CopyWithoutBulkData(const google::protobuf::Message& from, google::protobuf::Message* to,
                         int64_t max_inline_bytes);

}  // namespace kfc::tensor
