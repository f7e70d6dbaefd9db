// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/weights.h"

#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <type_traits>

#include "kfc/tensor/tensor.h"

namespace kfc::pipeline {
namespace {

template <typename T>
StatusOr<std::vector<T>> ReadMatrix(const Weights& weights, const match::LayerCandidate& c) {
  const onnx::TensorProto* t = WeightSource(weights.model, c);
  if (t == nullptr) return Internal("weight '" + c.weight_name + "' disappeared");
  onnx::TensorProto read;  // an external tensor as if stored inline
  if (tensor::HasExternalData(*t)) {
    if (weights.reader == nullptr) {
      return FailedPrecondition("weight '" + c.weight_name + "' is external");
    }
    if constexpr (std::is_same_v<T, float>) {
      // float32 (the common case): read straight into the matrix, without a buffer of the bytes
      // next to it (the same bytes DecodeToFloat copies on a little-endian host). Locate has
      // checked the length against dims and dtype.
      if (t->data_type() == onnx::TensorProto::FLOAT && !c.trans_b && c.k * c.n > 0) {
        std::vector<float> stored(static_cast<size_t>(c.k * c.n));
        KFC_RETURN_IF_ERROR(weights.reader->ReadInto(*t, "weight '" + c.weight_name + "'",
                                                     reinterpret_cast<char*>(stored.data()),
                                                     stored.size() * sizeof(float)));
        return stored;
      }
    }
    read.set_name(t->name());
    read.set_data_type(t->data_type());
    *read.mutable_dims() = t->dims();
    KFC_ASSIGN_OR_RETURN(*read.mutable_raw_data(),
                         weights.reader->Read(*t, "weight '" + c.weight_name + "'"));
    t = &read;
  }
  std::vector<T> stored;
  if constexpr (std::is_same_v<T, double>) {
    KFC_ASSIGN_OR_RETURN(stored, tensor::DecodeToDouble(*t));
  } else {
    KFC_ASSIGN_OR_RETURN(stored, tensor::DecodeToFloat(*t));
  }
  if (!c.trans_b) return stored;
  return tensor::Transpose(stored, c.n, c.k);
}

}  // namespace

const onnx::TensorProto* WeightSource(const onnx::ModelProto& model,
                                      const match::LayerCandidate& c) {
  const onnx::TensorProto* t = match::WeightTensor(model, c.scope, c.weight);
  // A candidate from another model (or an edited one) must not read some other tensor.
  if (t == nullptr || (c.weight.kind == match::WeightRef::Kind::kInitializer &&
                       t->name() != c.weight_tensor_name)) {
    return nullptr;
  }
  return t;
}

bool Weights::Readable(const match::LayerCandidate& c) const {
  return WeightSource(model, c) != nullptr && (reader != nullptr || !c.weight.external);
}

StatusOr<std::vector<float>> Weights::Matrix(const match::LayerCandidate& c) const {
  return ReadMatrix<float>(*this, c);
}

StatusOr<std::vector<double>> Weights::Matrix64(const match::LayerCandidate& c) const {
  return ReadMatrix<double>(*this, c);
}

Status Weights::MatrixBlocks(const match::LayerCandidate& c, int64_t rows,
                             const std::function<Status(const float* block)>& sink) const {
  if (rows < 1) return Internal("weight '" + c.weight_name + "': blocks of no rows");
  const onnx::TensorProto* t = WeightSource(model, c);
  const auto block = static_cast<size_t>(rows * c.n);
  const auto total = static_cast<size_t>(c.k * c.n);
  // A float32 weight stored as [K, N] goes over block by block and is never copied whole: from
  // its external data straight from a mapping of the file (MapInChunks; a block-sized buffer
  // where the file cannot be mapped); inline, straight from the tensor (through a block-sized
  // buffer for raw bytes, which need not be aligned). Anything else is read whole first.
  const bool blockable = t != nullptr && t->data_type() == onnx::TensorProto::FLOAT && !c.trans_b &&
                         block > 0 && c.k % rows == 0;
  const bool external = blockable && tensor::HasExternalData(*t);
  if (blockable && !external && static_cast<size_t>(t->float_data_size()) == total) {
    for (size_t at = 0; at < total; at += block) {
      KFC_RETURN_IF_ERROR(sink(t->float_data().data() + at));
    }
    return Status::Ok();
  }
  if (external && reader != nullptr) {
    return reader->MapInChunks(
        *t, "weight '" + c.weight_name + "'", block * sizeof(float), alignof(float),
        [&](const char* data, size_t size) -> Status {
          if (size != block * sizeof(float)) {  // Locate checked the length against dims
            return Internal("weight '" + c.weight_name + "': a short block of external data");
          }
          return sink(reinterpret_cast<const float*>(data));
        });
  }
  if (blockable && !external && t->raw_data().size() == total * sizeof(float)) {
    std::unique_ptr<float[]> buffer;  // uninitialized: each block is filled before it is used
    try {
      buffer.reset(new float[block]);
    } catch (const std::bad_alloc&) {
      return Internal("cannot allocate a block of weight '" + c.weight_name + "'");
    }
    for (size_t at = 0; at < total; at += block) {
      std::memcpy(buffer.get(), t->raw_data().data() + at * sizeof(float), block * sizeof(float));
      KFC_RETURN_IF_ERROR(sink(buffer.get()));
    }
    return Status::Ok();
  }
  KFC_ASSIGN_OR_RETURN(const std::vector<float> w, Matrix(c));
  for (size_t at = 0; block > 0 && at + block <= w.size(); at += block) {
    KFC_RETURN_IF_ERROR(sink(w.data() + at));
  }
  return Status::Ok();
}

}  // namespace kfc::pipeline
