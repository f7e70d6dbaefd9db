// SPDX-License-Identifier: Apache-2.0
#include "kfc/rewrite/factor_encoding.h"

#include <cstring>
#include <utility>
#include <vector>

#include "kfc/kron/shapes.h"
#include "kfc/tensor/tensor.h"

namespace kfc::rewrite {
namespace {

using kron::ContractionOrder;
using kron::KronFactors;

// The two stacked factor matrices for `order`, as (first-MatMul constant, second-MatMul constant)
// with their dims; see the picture in the header for the index maps. In double, like the factors:
// alpha * A_t of float32 values is exact there, so rounding it once when encoding gives the float32
// product, and float64 factors pass through unrounded.
struct StackedFactors {
  std::vector<double> first, second;
  std::vector<int64_t> first_dims, second_dims;
};

StackedFactors Stack(const KronFactors& f, double alpha, ContractionOrder order) {
  const int64_t k1 = f.shape.k1, n1 = f.shape.n1, k2 = f.shape.k2, n2 = f.shape.n2, r = f.rank;
  auto a = [&](int64_t t, int64_t i1, int64_t j1) { return f.a[(t * k1 + i1) * n1 + j1]; };
  auto b = [&](int64_t t, int64_t i2, int64_t j2) { return f.b[(t * k2 + i2) * n2 + j2]; };
  StackedFactors s;
  if (order == ContractionOrder::kBFirst) {
    s.first_dims = {k2, r * n2};  // Bcat
    s.first.resize(static_cast<size_t>(k2 * r * n2));
    for (int64_t i2 = 0; i2 < k2; ++i2)
      for (int64_t t = 0; t < r; ++t)
        for (int64_t j2 = 0; j2 < n2; ++j2) s.first[(i2 * r + t) * n2 + j2] = b(t, i2, j2);
    s.second_dims = {n1, k1 * r};  // Acat
    s.second.resize(static_cast<size_t>(n1 * k1 * r));
    for (int64_t j1 = 0; j1 < n1; ++j1)
      for (int64_t i1 = 0; i1 < k1; ++i1)
        for (int64_t t = 0; t < r; ++t) s.second[(j1 * k1 + i1) * r + t] = alpha * a(t, i1, j1);
  } else {
    s.first_dims = {n1 * r, k1};  // Acat
    s.first.resize(static_cast<size_t>(n1 * r * k1));
    for (int64_t j1 = 0; j1 < n1; ++j1)
      for (int64_t t = 0; t < r; ++t)
        for (int64_t i1 = 0; i1 < k1; ++i1) s.first[(j1 * r + t) * k1 + i1] = alpha * a(t, i1, j1);
    s.second_dims = {r * k2, n2};  // Bstack
    s.second.resize(static_cast<size_t>(r * k2 * n2));
    for (int64_t t = 0; t < r; ++t)
      for (int64_t i2 = 0; i2 < k2; ++i2)
        for (int64_t j2 = 0; j2 < n2; ++j2) s.second[(t * k2 + i2) * n2 + j2] = b(t, i2, j2);
  }
  return s;
}

// A low-rank shape's W ~ U V (U: K x r, V: r x N) in either orientation; alpha goes where the A
// factors go. Row form: (U, V); W X form: (U^T, V^T), both multiplying from the left.
//   K x 1 (x) 1 x N:  U[i, t] = alpha*A_t[i, 0], V[t, j] = B_t[0, j]
//   1 x N (x) K x 1:  U[i, t] = B_t[i, 0],       V[t, j] = alpha*A_t[0, j]
StackedFactors StackLowRank(const KronFactors& f, double alpha, bool weight_first) {
  const int64_t K = f.shape.K(), N = f.shape.N(), r = f.rank;
  const bool a_is_u = f.shape.n1 == 1;  // K x 1 (x) 1 x N
  const double u_scale = a_is_u ? alpha : 1.0, v_scale = a_is_u ? 1.0 : alpha;
  const std::vector<double>& u_src = a_is_u ? f.a : f.b;  // [t][i], t < r, i < K
  const std::vector<double>& v_src = a_is_u ? f.b : f.a;  // [t][j], t < r, j < N
  StackedFactors s;
  s.first.resize(static_cast<size_t>(K * r));
  s.second.resize(static_cast<size_t>(r * N));
  for (int64_t t = 0; t < r; ++t) {
    for (int64_t i = 0; i < K; ++i) {
      s.first[weight_first ? t * K + i : i * r + t] = u_scale * u_src[t * K + i];
    }
    for (int64_t j = 0; j < N; ++j) {
      s.second[weight_first ? j * r + t : t * N + j] = v_scale * v_src[t * N + j];
    }
  }
  s.first_dims = weight_first ? std::vector<int64_t>{r, K} : std::vector<int64_t>{K, r};
  s.second_dims = weight_first ? std::vector<int64_t>{N, r} : std::vector<int64_t>{r, N};
  return s;
}

}  // namespace

bool EmitsLowRank(const match::LayerCandidate& layer, const kron::KronShape& shape) {
  return kron::IsLowRankShape(shape, layer.k, layer.n);
}

StatusOr<StackedInitializers> EncodeFactors(const match::LayerCandidate& layer,
                                            const kron::KronFactors& f, ContractionOrder order) {
  if (f.shape.K() != layer.k || f.shape.N() != layer.n) {
    return InvalidArgument("layer '" + layer.node_name + "': factor shape does not match " +
                           std::to_string(layer.k) + " x " + std::to_string(layer.n));
  }
  if (EmitsLowRank(layer, f.shape)) {
    StackedFactors s = StackLowRank(f, FoldedAlpha(layer), layer.weight_first);
    StackedInitializers out;
    out.first = tensor::EncodeFromDouble("", layer.dtype, s.first_dims, s.first);
    out.second = tensor::EncodeFromDouble("", layer.dtype, s.second_dims, s.second);
    return out;
  }
  StackedFactors s = Stack(f, FoldedAlpha(layer), order);
  if (layer.weight_first) {
    // The B stack multiplies from the left too: it goes in transposed.
    const bool b_first = order == ContractionOrder::kBFirst;
    std::vector<double>& bs = b_first ? s.first : s.second;
    std::vector<int64_t>& dims = b_first ? s.first_dims : s.second_dims;
    bs = tensor::Transpose(bs, dims[0], dims[1]);
    std::swap(dims[0], dims[1]);
  }
  StackedInitializers out;
  out.first = tensor::EncodeFromDouble("", layer.dtype, s.first_dims, s.first);
  s.first = {};
  out.second = tensor::EncodeFromDouble("", layer.dtype, s.second_dims, s.second);
  return out;
}

FactorIdentity FactorIdentity::Of(const match::LayerCandidate& layer, std::string weight,
                                  const kron::KronShape& shape, int64_t rank) {
  FactorIdentity id;
  id.weight = std::move(weight);
  id.shape = shape;
  id.rank = rank;
  id.in_double = layer.dtype == onnx::TensorProto::DOUBLE;
  id.order = kron::CheaperOrder(shape, rank);
  id.alpha = FoldedAlpha(layer);
  id.dtype = layer.dtype;
  id.weight_first = layer.weight_first;
  return id;
}

std::string FactorIdentity::FactorsKey() const {
  return weight + "|" + std::to_string(shape.k1) + "x" + std::to_string(shape.n1) + "|" +
         std::to_string(rank) + (in_double ? "|float64" : "");
}

std::string FactorIdentity::EncodingKey() const {
  // The alpha goes in by its bits: any two different floats give different constants (6d5d1bc).
  uint32_t alpha_bits = 0;
  std::memcpy(&alpha_bits, &alpha, sizeof alpha_bits);
  return std::string(order == ContractionOrder::kBFirst ? "b" : "a") + "|" +
         std::to_string(alpha_bits) + "|" + std::to_string(dtype) + (weight_first ? "|wx" : "");
}

}  // namespace kfc::rewrite
