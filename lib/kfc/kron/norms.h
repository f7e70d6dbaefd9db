// SPDX-License-Identifier: Apache-2.0
// ||W||_F^2 in double from runs of W's elements (row-major order), and the first NaN or infinity
// of W, shared by Factorize's finite check and the in-place rearrangement that reads W anyway.
// This header includes no ONNX or protobuf headers.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "kfc/core/status.h"
#include "kfc/kron/simd_kernels.h"

namespace kfc::kron {

// Sum of squares accumulated in double in eight interleaved partial sums (element e of W, counted
// from 0 in row-major order over every Add, goes to sum e % 8), added pairwise at the end:
// independent chains the CPU overlaps, several times faster than one running sum and no less
// accurate. Each partial sum sees its elements in increasing e whatever the runs Add is given, so
// the total has the same bits however W is split.
class SquareSum {
 public:
  template <typename T>
  void Add(const T* x, int64_t count) {
    int64_t e = 0;
    for (; e < count && (index_ + e) % 8 != 0; ++e) Square(x[e], (index_ + e) % 8);
    const int64_t blocks = (count - e) / 8;
    if constexpr (std::is_same_v<T, float>) {
      AddSquareBlocks(x + e, blocks, acc_);  // vectorized, the same bits
    } else {
      for (int64_t b = 0; b < blocks; ++b) {
        for (int k = 0; k < 8; ++k) Square(x[e + 8 * b + k], k);
      }
    }
    e += 8 * blocks;
    for (; e < count; ++e) Square(x[e], (index_ + e) % 8);
    index_ += count;
  }
  // For a kernel that adds `count` elements (a multiple of 8) itself, starting a group of eight
  // (count_so_far() % 8 == 0): add(acc) adds the square of the element e of the run to acc[e % 8]
  // for e in increasing order, as Add would.
  template <typename AddGroups>
  void AddGroupsWith(int64_t count, AddGroups&& add) {
    add(acc_);
    index_ += count;
  }
  int64_t count_so_far() const { return index_; }
  // Not finite exactly when an element so far is NaN or infinite (float squares cannot overflow
  // a double sum of fewer than 2^200 of them).
  double Total() const {
    return ((acc_[0] + acc_[1]) + (acc_[2] + acc_[3])) +
           ((acc_[4] + acc_[5]) + (acc_[6] + acc_[7]));
  }

 private:
  template <typename T>
  void Square(T x, int64_t k) {
    const double v = static_cast<double>(x);
    acc_[k] += v * v;
  }
  double acc_[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t index_ = 0;
};

// The first NaN or infinity of the rows x N row-major w as InvalidArgument naming it ("weight has
// a NaN at row i, column j", rows counted from first_row), or Ok.
template <typename T>
Status FindNonFinite(const T* w, int64_t rows, int64_t N, int64_t first_row = 0) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = w + i * N;
    for (int64_t j = 0; j < N; ++j) {
      const T x = row[j];
      if (!std::isfinite(x)) {
        return InvalidArgument(std::string("weight has ") +
                               (std::isnan(x) ? "a NaN" : "an infinity") + " at row " +
                               std::to_string(first_row + i) + ", column " + std::to_string(j));
      }
    }
  }
  return Status::Ok();
}

}  // namespace kfc::kron
