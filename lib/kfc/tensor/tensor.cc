// SPDX-License-Identifier: Apache-2.0
#include "kfc/tensor/tensor.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

namespace kfc::tensor {
namespace {

// Raw data in ONNX is little-endian; this machine is too (x86_64/arm64 Linux).
static_assert(sizeof(float) == 4, "float32 expected");

template <typename T>
void AppendRaw(const std::vector<T>& data, std::string* raw) {
  raw->resize(data.size() * sizeof(T));
  if (!data.empty()) std::memcpy(raw->data(), data.data(), raw->size());
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // Inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal half: normalize
    exp = 113;
    while ((mant & 0x400) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

float BFloat16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace

std::string DimsText(const google::protobuf::RepeatedField<int64_t>& dims) {
  std::string s = "[";
  for (int i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims.Get(i));
  return s + "]";
}

std::string DTypeName(int32_t t) {
  using TP = onnx::TensorProto;
  switch (t) {
    case TP::FLOAT:
      return "float32";
    case TP::DOUBLE:
      return "float64";
    case TP::FLOAT16:
      return "float16";
    case TP::BFLOAT16:
      return "bfloat16";
    case TP::INT8:
      return "int8";
    case TP::UINT8:
      return "uint8";
    case TP::INT16:
      return "int16";
    case TP::UINT16:
      return "uint16";
    case TP::INT32:
      return "int32";
    case TP::UINT32:
      return "uint32";
    case TP::INT64:
      return "int64";
    case TP::UINT64:
      return "uint64";
    case TP::BOOL:
      return "bool";
    case TP::STRING:
      return "string";
    case TP::COMPLEX64:
      return "complex64";
    case TP::COMPLEX128:
      return "complex128";
    default:
      return "dtype_" + std::to_string(t);
  }
}

int64_t DTypeSize(int32_t t) {
  using TP = onnx::TensorProto;
  switch (t) {
    case TP::BOOL:
    case TP::INT8:
    case TP::UINT8:
      return 1;
    case TP::FLOAT16:
    case TP::BFLOAT16:
    case TP::INT16:
    case TP::UINT16:
      return 2;
    case TP::FLOAT:
    case TP::INT32:
    case TP::UINT32:
      return 4;
    case TP::DOUBLE:
    case TP::INT64:
    case TP::UINT64:
    case TP::COMPLEX64:
      return 8;
    case TP::COMPLEX128:
      return 16;
    default:
      return 0;
  }
}

StatusOr<int64_t> NumElements(const google::protobuf::RepeatedField<int64_t>& dims,
                              const std::string& what) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument(what + ": negative dim in " + DimsText(dims));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      return InvalidArgument(what + ": dims " + DimsText(dims) + " overflow int64");
    }
    n *= d;
  }
  return n;
}

bool HasExternalData(const onnx::TensorProto& t) {
  return t.data_location() == onnx::TensorProto::EXTERNAL;
}

StatusOr<int64_t> ExpectedDataBytes(const onnx::TensorProto& t, const std::string& what) {
  KFC_ASSIGN_OR_RETURN(const int64_t n, NumElements(t.dims(), what));
  const int64_t elem = DTypeSize(t.data_type());
  if (elem == 0) {
    return InvalidArgument(what + ": dtype " + DTypeName(t.data_type()) +
                           " has no fixed element size");
  }
  if (n > std::numeric_limits<int64_t>::max() / elem) {
    return InvalidArgument(what + ": dims " + DimsText(t.dims()) + " of " +
                           DTypeName(t.data_type()) + " need more than 2^63 bytes");
  }
  return n * elem;
}

Status CheckInlineData(const onnx::TensorProto& t, const std::string& what) {
  using TP = onnx::TensorProto;
  if (HasExternalData(t) || t.data_type() == TP::STRING) {
    return NumElements(t.dims(), what).status();
  }
  if (t.has_raw_data()) {
    KFC_ASSIGN_OR_RETURN(const int64_t need, ExpectedDataBytes(t, what));
    const auto have = static_cast<int64_t>(t.raw_data().size());
    if (have == need) return Status::Ok();
    return DataLoss(what + ": raw_data has " + std::to_string(have) + " bytes, dims " +
                    DimsText(t.dims()) + " of " + DTypeName(t.data_type()) + " need " +
                    std::to_string(need));
  }
  KFC_ASSIGN_OR_RETURN(const int64_t n, NumElements(t.dims(), what));
  int64_t have = 0, per_element = 1;
  const char* field = "";
  switch (t.data_type()) {
    case TP::COMPLEX64:
      per_element = 2;
      [[fallthrough]];
    case TP::FLOAT:
      have = t.float_data_size(), field = "float_data";
      break;
    case TP::COMPLEX128:
      per_element = 2;
      [[fallthrough]];
    case TP::DOUBLE:
      have = t.double_data_size(), field = "double_data";
      break;
    case TP::INT64:
      have = t.int64_data_size(), field = "int64_data";
      break;
    case TP::UINT32:
    case TP::UINT64:
      have = t.uint64_data_size(), field = "uint64_data";
      break;
    default:  // int32 and the narrower types, float16 and bfloat16 as 16-bit patterns
      have = t.int32_data_size(), field = "int32_data";
      break;
  }
  if (have == 0 ||
      (n <= std::numeric_limits<int64_t>::max() / per_element && have == n * per_element)) {
    return Status::Ok();
  }
  return DataLoss(what + ": " + field + " has " + std::to_string(have) + " values, dims " +
                  DimsText(t.dims()) + " of " + DTypeName(t.data_type()) + " need " +
                  std::to_string(n) + (per_element == 2 ? " x 2" : ""));
}

int64_t StoredDataBytes(const onnx::TensorProto& t) {
  if (!t.raw_data().empty()) return static_cast<int64_t>(t.raw_data().size());
  const int64_t elem = DTypeSize(t.data_type());
  auto n = NumElements(t.dims(), "tensor");
  if (!n.ok()) return 0;
  if (elem > 0 && *n <= std::numeric_limits<int64_t>::max() / elem) return *n * elem;
  int64_t bytes = 0;
  for (const auto& s : t.string_data()) bytes += static_cast<int64_t>(s.size());
  return bytes;
}

StatusOr<std::vector<float>> DecodeFloat32(const onnx::TensorProto& t) {
  const std::string what = "initializer '" + t.name() + "'";
  if (t.data_type() != onnx::TensorProto::FLOAT) {
    return InvalidArgument(what + ": dtype " + DTypeName(t.data_type()) + ", expected float32");
  }
  if (HasExternalData(t)) return InvalidArgument(what + ": data is stored externally");
  KFC_ASSIGN_OR_RETURN(int64_t n, NumElements(t.dims(), what));
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (n > static_cast<int64_t>(raw.size() / sizeof(float)) ||
        static_cast<int64_t>(raw.size()) != n * static_cast<int64_t>(sizeof(float))) {
      return DataLoss(what + ": raw_data has " + std::to_string(raw.size()) + " bytes, dims " +
                      DimsText(t.dims()) + " need " + std::to_string(n) + " x 4");
    }
    std::vector<float> out(static_cast<size_t>(n));
    if (n > 0) std::memcpy(out.data(), raw.data(), raw.size());
    return out;
  }
  if (t.float_data_size() != n) {
    return DataLoss(what + ": float_data has " + std::to_string(t.float_data_size()) +
                    " values, dims " + DimsText(t.dims()) + " need " + std::to_string(n));
  }
  return std::vector<float>(t.float_data().begin(), t.float_data().end());
}

bool DecodableAsFloat(int32_t t) {
  using TP = onnx::TensorProto;
  return t == TP::FLOAT || t == TP::FLOAT16 || t == TP::BFLOAT16 || t == TP::DOUBLE;
}

namespace {

// DecodeToFloat and DecodeToDouble: T is float or double. float16 and bfloat16 widen to float32
// exactly, then to T; float64 converts to T directly (rounding to nearest for float32).
template <typename T>
StatusOr<std::vector<T>> DecodeAs(const onnx::TensorProto& t) {
  using TP = onnx::TensorProto;
  if (t.data_type() == TP::FLOAT) {
    KFC_ASSIGN_OR_RETURN(std::vector<float> f, DecodeFloat32(t));
    if constexpr (std::is_same_v<T, float>) {
      return f;
    } else {
      return std::vector<T>(f.begin(), f.end());
    }
  }
  const std::string what = "tensor '" + t.name() + "'";
  if (!DecodableAsFloat(t.data_type())) {
    return InvalidArgument(what + ": dtype " + DTypeName(t.data_type()) +
                           " cannot be read as float");
  }
  if (HasExternalData(t)) return InvalidArgument(what + ": data is stored externally");
  KFC_ASSIGN_OR_RETURN(int64_t n, NumElements(t.dims(), what));
  const int64_t size = DTypeSize(t.data_type());
  auto half = [&](uint16_t h) {
    return static_cast<T>(t.data_type() == TP::FLOAT16 ? HalfToFloat(h) : BFloat16ToFloat(h));
  };
  std::vector<T> out;
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (n > static_cast<int64_t>(raw.size()) / size ||
        static_cast<int64_t>(raw.size()) != n * size) {
      return DataLoss(what + ": raw_data has " + std::to_string(raw.size()) + " bytes, dims " +
                      DimsText(t.dims()) + " need " + std::to_string(n) + " x " +
                      std::to_string(size));
    }
    out.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const char* p = raw.data() + i * size;
      if (t.data_type() == TP::DOUBLE) {
        double d;
        std::memcpy(&d, p, sizeof(d));
        out[i] = static_cast<T>(d);
      } else {
        uint16_t h;
        std::memcpy(&h, p, sizeof(h));
        out[i] = half(h);
      }
    }
    return out;
  }
  const int64_t have = t.data_type() == TP::DOUBLE ? t.double_data_size() : t.int32_data_size();
  if (have != n) {
    return DataLoss(what + ": typed data has " + std::to_string(have) + " values, dims " +
                    DimsText(t.dims()) + " need " + std::to_string(n));
  }
  out.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (t.data_type() == TP::DOUBLE) {
      out[i] = static_cast<T>(t.double_data(static_cast<int>(i)));
    } else {
      out[i] = half(static_cast<uint16_t>(t.int32_data(static_cast<int>(i))));
    }
  }
  return out;
}

}  // namespace

StatusOr<std::vector<float>> DecodeToFloat(const onnx::TensorProto& t) {
  return DecodeAs<float>(t);
}

StatusOr<std::vector<double>> DecodeToDouble(const onnx::TensorProto& t) {
  return DecodeAs<double>(t);
}

onnx::TensorProto EncodeFloat32(const std::string& name, const std::vector<int64_t>& dims,
                                const std::vector<float>& data) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  AppendRaw(data, t.mutable_raw_data());
  return t;
}

onnx::TensorProto EncodeInt64(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& data) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : dims) t.add_dims(d);
  AppendRaw(data, t.mutable_raw_data());
  return t;
}

uint16_t FloatToHalfBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return sign | 0x7E00 | ((abs >> 13) & 0x3FF);  // NaN, kept quiet
  if (abs >= 0x477FF000u) return sign | 0x7C00;  // >= 65520 rounds to Inf (and Inf itself)
  if (abs < 0x38800000u) {
    // Below 2^-14, the smallest normal half: a multiple of 2^-24. Scaling by 2^24 is exact, and
    // nearbyint rounds half to even in the default rounding mode. 0x400 is the smallest normal.
    float v;
    std::memcpy(&v, &abs, sizeof(v));
    return sign | static_cast<uint16_t>(std::nearbyint(v * 16777216.0f));
  }
  const uint32_t mant = abs & 0x7FFFFFu;
  uint32_t h = (((abs >> 23) - 112) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry correctly bumps the exponent
  return sign | static_cast<uint16_t>(h);
}

uint16_t FloatToBFloat16Bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

onnx::TensorProto EncodeFromFloat(const std::string& name, int32_t dtype,
                                  const std::vector<int64_t>& dims,
                                  const std::vector<float>& data) {
  using TP = onnx::TensorProto;
  if (dtype == TP::FLOAT) return EncodeFloat32(name, dims, data);
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(dtype);
  for (int64_t d : dims) t.add_dims(d);
  if (dtype == TP::DOUBLE) {
    return EncodeFromDouble(name, dtype, dims, std::vector<double>(data.begin(), data.end()));
  }
  assert(dtype == TP::FLOAT16 || dtype == TP::BFLOAT16);
  std::vector<uint16_t> bits(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    bits[i] = dtype == TP::FLOAT16 ? FloatToHalfBits(data[i]) : FloatToBFloat16Bits(data[i]);
  }
  AppendRaw(bits, t.mutable_raw_data());
  return t;
}

onnx::TensorProto EncodeFromDouble(const std::string& name, int32_t dtype,
                                   const std::vector<int64_t>& dims,
                                   const std::vector<double>& data) {
  if (dtype != onnx::TensorProto::DOUBLE) {
    return EncodeFromFloat(name, dtype, dims, std::vector<float>(data.begin(), data.end()));
  }
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(dtype);
  for (int64_t d : dims) t.add_dims(d);
  AppendRaw(data, t.mutable_raw_data());
  return t;
}

std::vector<float> RoundToDType(int32_t dtype, std::vector<float> data) {
  if (dtype == onnx::TensorProto::FLOAT16) {
    for (float& v : data) v = HalfToFloat(FloatToHalfBits(v));
  } else if (dtype == onnx::TensorProto::BFLOAT16) {
    for (float& v : data) v = BFloat16ToFloat(FloatToBFloat16Bits(v));
  }
  return data;
}

void CopyWithoutBulkData(const google::protobuf::Message& from, google::protobuf::Message* to,
                         int64_t max_inline_bytes) {
  using google::protobuf::FieldDescriptor;
  using google::protobuf::Reflection;
  const Reflection* rf = from.GetReflection();
  const Reflection* rt = to->GetReflection();
  const bool is_tensor = from.GetDescriptor() == onnx::TensorProto::descriptor();
  const bool external = is_tensor && HasExternalData(static_cast<const onnx::TensorProto&>(from));
  std::vector<const FieldDescriptor*> fields;
  rf->ListFields(from, &fields);
  for (const FieldDescriptor* f : fields) {
    const bool repeated = f->is_repeated();
    const int n = repeated ? rf->FieldSize(from, f) : 1;
    if (external && (f->number() == onnx::TensorProto::kDataLocationFieldNumber ||
                     f->number() == onnx::TensorProto::kExternalDataFieldNumber)) {
      continue;
    }
    if (is_tensor && f->number() == onnx::TensorProto::kRawDataFieldNumber) {
      const auto& t = static_cast<const onnx::TensorProto&>(from);
      const auto size = static_cast<int64_t>(t.raw_data().size());
      const int64_t elem = std::max<int64_t>(tensor::DTypeSize(t.data_type()), 1);
      rt->SetString(to, f, size > max_inline_bytes ? t.raw_data().substr(0, elem) : t.raw_data());
      continue;
    }
    switch (f->cpp_type()) {
#define KFC_COPY_FIELD(CPPTYPE, Type)                                        \
  case FieldDescriptor::CPPTYPE:                                             \
    for (int i = 0; i < n; ++i) {                                            \
      if (repeated) rt->Add##Type(to, f, rf->GetRepeated##Type(from, f, i)); \
      if (!repeated) rt->Set##Type(to, f, rf->Get##Type(from, f));           \
    }                                                                        \
    break;
      KFC_COPY_FIELD(CPPTYPE_INT32, Int32)
      KFC_COPY_FIELD(CPPTYPE_INT64, Int64)
      KFC_COPY_FIELD(CPPTYPE_UINT32, UInt32)
      KFC_COPY_FIELD(CPPTYPE_UINT64, UInt64)
      KFC_COPY_FIELD(CPPTYPE_DOUBLE, Double)
      KFC_COPY_FIELD(CPPTYPE_FLOAT, Float)
      KFC_COPY_FIELD(CPPTYPE_BOOL, Bool)
      KFC_COPY_FIELD(CPPTYPE_ENUM, EnumValue)
      KFC_COPY_FIELD(CPPTYPE_STRING, String)
#undef KFC_COPY_FIELD
      case FieldDescriptor::CPPTYPE_MESSAGE:
        for (int i = 0; i < n; ++i) {
          if (repeated)
            CopyWithoutBulkData(rf->GetRepeatedMessage(from, f, i), rt->AddMessage(to, f),
                                max_inline_bytes);
          if (!repeated)
            CopyWithoutBulkData(rf->GetMessage(from, f), rt->MutableMessage(to, f),
                                max_inline_bytes);
        }
        break;
    }
  }
  if (external) {
    // One element in place of the file's bytes: what the data would look like inline.
    const int64_t elem =
        std::max<int64_t>(DTypeSize(static_cast<const onnx::TensorProto&>(from).data_type()), 1);
    static_cast<onnx::TensorProto*>(to)->set_raw_data(std::string(static_cast<size_t>(elem), '\0'));
  }
  rt->MutableUnknownFields(to)->MergeFrom(rf->GetUnknownFields(from));
}

std::vector<double> RoundToDType(int32_t dtype, std::vector<double> data) {
  if (dtype == onnx::TensorProto::DOUBLE) return data;
  const std::vector<float> rounded =
      RoundToDType(dtype, std::vector<float>(data.begin(), data.end()));
  return std::vector<double>(rounded.begin(), rounded.end());
}

}  // namespace kfc::tensor
