// SPDX-License-Identifier: Apache-2.0
// Kronecker shapes: enumeration, the balanced default and its ties, and MAC counts.
#include "kfc/kron/shapes.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace kfc::kron {
namespace {

// Divisors of x >= 1 in increasing order, O(sqrt(x)).
std::vector<int64_t> Divisors(int64_t x) {
  std::vector<int64_t> small, large;
  for (int64_t d = 1; d <= x / d; ++d) {
    if (x % d != 0) continue;
    small.push_back(d);
    if (d != x / d) large.push_back(x / d);
  }
  small.insert(small.end(), large.rbegin(), large.rend());
  return small;
}

}  // namespace

std::string ShapeString(const KronShape& s) {
  return std::to_string(s.k1) + "x" + std::to_string(s.n1) + " (x) " + std::to_string(s.k2) + "x" +
         std::to_string(s.n2);
}

std::string DimsString(int64_t rows, int64_t cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

// Checks K, N and `shape` against each other without overflowing; on success K*N, k1*n1 and
// k2*n2 are all representable in int64 and the vectors of K*N doubles can be sized.
Status ValidateDims(int64_t K, int64_t N, const KronShape& shape) {
  if (K < 1 || N < 1) {
    return InvalidArgument("weight dimensions " + DimsString(K, N) + " must both be at least 1");
  }
  if (shape.k1 < 1 || shape.n1 < 1 || shape.k2 < 1 || shape.n2 < 1) {
    return InvalidArgument("shape " + ShapeString(shape) + " has a dimension below 1");
  }
  int64_t shape_k = 0, shape_n = 0;
  if (!CheckedMul(shape.k1, shape.k2, &shape_k) || !CheckedMul(shape.n1, shape.n2, &shape_n) ||
      shape_k != K || shape_n != N) {
    return InvalidArgument("shape " + ShapeString(shape) + " does not divide weight " +
                           DimsString(K, N) + ": k1*k2 must equal K and n1*n2 must equal N");
  }
  int64_t elements = 0;
  if (!CheckedMul(K, N, &elements) ||
      static_cast<uint64_t>(elements) > std::vector<double>().max_size()) {
    return InvalidArgument("weight " + DimsString(K, N) + " has too many elements to index");
  }
  return Status::Ok();
}

int64_t Macs(const KronShape& shape, int64_t rank, ContractionOrder order) {
  const int64_t K = shape.K(), N = shape.N();
  if (order == ContractionOrder::kBFirst) return rank * K * shape.n2 + rank * shape.k1 * N;
  return rank * K * shape.n1 + rank * shape.k2 * N;
}

ContractionOrder CheaperOrder(const KronShape& shape, int64_t rank) {
  return Macs(shape, rank, ContractionOrder::kAFirst) < Macs(shape, rank, ContractionOrder::kBFirst)
             ? ContractionOrder::kAFirst
             : ContractionOrder::kBFirst;
}

int64_t MacsPerTerm(const KronShape& shape) {
  return std::min(Macs(shape, 1, ContractionOrder::kBFirst),
                  Macs(shape, 1, ContractionOrder::kAFirst));
}

int64_t ExtraNodes(const KronShape& shape) {
  return IsLowRankShape(shape, shape.K(), shape.N()) ? 1 : 6;
}

int64_t MaxRankWithinMacs(const KronShape& shape, int64_t max_macs, int64_t node_cost) {
  if (max_macs < 0) return shape.MaxRank();
  const int64_t left = max_macs - ExtraNodes(shape) * node_cost;
  if (left < 0) return 0;
  const int64_t per_term = MacsPerTerm(shape);
  if (per_term <= 0) return shape.MaxRank();
  return std::min(shape.MaxRank(), left / per_term);
}

std::vector<KronShape> EnumerateShapes(int64_t K, int64_t N) {
  std::vector<KronShape> shapes;
  if (K < 1 || N < 1 || (K == 1 && N == 1)) return shapes;
  const std::vector<int64_t> k_divisors = Divisors(K);
  const std::vector<int64_t> n_divisors = Divisors(N);
  shapes.reserve(k_divisors.size() * n_divisors.size());
  for (int64_t k1 : k_divisors) {
    for (int64_t n1 : n_divisors) {
      if ((k1 == 1 && n1 == 1) || (k1 == K && n1 == N)) continue;
      shapes.push_back(KronShape{k1, n1, K / k1, N / n1});
    }
  }
  return shapes;
}

namespace {

// DefaultShape's order: fewer parameters per term, then k1*n1 closer to k2*n2 (the "key"), then
// the squarest factors, then the smaller k1 and n1 (EnumerateShapes' order, kept by stable sort).
std::pair<double, double> BalanceKey(const KronShape& s) {
  // Compared in double so the key stays defined even where K*N overflows.
  const double p = static_cast<double>(s.k1) * static_cast<double>(s.n1);
  const double q = static_cast<double>(s.k2) * static_cast<double>(s.n2);
  return std::make_pair(p + q, std::fabs(p - q));
}

// Aspect (max(k1,k2)*max(n1,n2)) / (min(k1,k2)*min(n1,n2)) of a is below b's, compared exactly by
// cross-multiplying.
bool Squarer(const KronShape& a, const KronShape& b) {
  __extension__ typedef __int128 Wide;
  const Wide a_num = Wide(std::max(a.k1, a.k2)) * std::max(a.n1, a.n2);
  const Wide a_den = Wide(std::min(a.k1, a.k2)) * std::min(a.n1, a.n2);
  const Wide b_num = Wide(std::max(b.k1, b.k2)) * std::max(b.n1, b.n2);
  const Wide b_den = Wide(std::min(b.k1, b.k2)) * std::min(b.n1, b.n2);
  return a_num * b_den < b_num * a_den;
}

bool DefaultOrder(const KronShape& a, const KronShape& b) {
  const auto ka = BalanceKey(a), kb = BalanceKey(b);
  if (ka != kb) return ka < kb;
  return Squarer(a, b);
}

}  // namespace

bool IsLowRankShape(const KronShape& s, int64_t K, int64_t N) {
  return s == KronShape{K, 1, 1, N} || s == KronShape{1, N, K, 1};
}

std::vector<KronShape> TiedDefaultShapes(int64_t K, int64_t N) {
  std::vector<KronShape> shapes = EnumerateShapes(K, N);
  // Balanced means Kronecker: the low-rank shapes are plain truncated SVD (--shape lowrank), and
  // stay only where nothing else divides the layer (prime dimensions).
  if (std::any_of(shapes.begin(), shapes.end(),
                  [&](const KronShape& s) { return !IsLowRankShape(s, K, N); })) {
    shapes.erase(std::remove_if(shapes.begin(), shapes.end(),
                                [&](const KronShape& s) { return IsLowRankShape(s, K, N); }),
                 shapes.end());
  }
  if (shapes.empty()) return shapes;
  std::stable_sort(shapes.begin(), shapes.end(), DefaultOrder);
  const auto best = BalanceKey(shapes.front());
  shapes.erase(std::find_if(shapes.begin(), shapes.end(),
                            [&](const KronShape& s) { return BalanceKey(s) != best; }),
               shapes.end());
  return shapes;
}

StatusOr<KronShape> DefaultShape(int64_t K, int64_t N) {
  const std::vector<KronShape> tied = TiedDefaultShapes(K, N);
  if (tied.empty()) {
    return InvalidArgument("weight " + DimsString(K, N) + " has no non-trivial Kronecker shape");
  }
  return tied.front();
}

}  // namespace kfc::kron
