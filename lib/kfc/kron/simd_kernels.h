// SPDX-License-Identifier: Apache-2.0
// Hand-vectorized inner loops for x86-64 CPUs that have the instructions, chosen at run time (the
// build targets plain x86-64). Each says what it computes and in what order, so results are the
// same bits whatever the thread count; a CPU without the instructions gets `false` (or the scalar
// loop of the same arithmetic) and the caller's portable path. This header includes no ONNX or
// protobuf headers.
#pragma once

#include <cstdint>

namespace kfc::kron {

// acc[k] += x[8 b + k]^2 (in double: convert, multiply, add; no fused multiply-add) for
// b = 0..blocks-1 in increasing b: the bits of the scalar loop, with AVX2 where available.
void AddSquareBlocks(const float* x, int64_t blocks, double acc[8]);

// Whether the CPU runs MultiplyAtRowsDouble's vector kernel (AVX-512F).
bool HaveDoubleAccumulationKernel();

// z (n x l, column-major, leading dimension n) = (first ? 0 : z) + sum over rows i = 0..rows-1 of
// A^T[:, i] q[i, :] for the rows x n row-major float A and the rows x l row-major double q (leading
// dimension ldq
// >= l, padded with zeros to a multiple of 6 columns: q has ldq columns, ldq % 6 == 0). Every
// product of a float of A (exact in double) and a double of q is accumulated in double, by fused
// multiply-add, in increasing i, for each entry separately. Needs HaveDoubleAccumulationKernel().
void MultiplyAtRowsDouble(const float* a, int64_t rows, int64_t n, const double* q, int64_t l,
                          int64_t ldq, bool first, double* z);

// Whether the CPU runs the float32 sweep kernels below (AVX-512F).
bool HaveFloatSweepKernels();

// Padded width of the thin float blocks the sweep kernels take: l rounded up to a multiple of 6.
int64_t SweepWidth(int64_t l);

// y (rows x ldy, row-major float; ldy = SweepWidth(l)) = A xt^T for the rows x n row-major float A
// and the ldy x n row-major float xt (x transposed, leading dimension ldx >= n, rows l.. zero):
// each y[i, c] is the dot product of row i of A and row c of xt, accumulated in float by fused
// multiply-add in 16 lanes (lane k takes the j = k mod 16, in increasing j), the lanes then added
// in a fixed order. Needs HaveFloatSweepKernels().
void MultiplyRowsFloat(const float* a, int64_t rows, int64_t n, const float* xt, int64_t ldx,
                       float* y, int64_t ldy);

// w (n x l, column-major float, leading dimension n) = (first ? 0 : w) + A^T y for the rows x n
// row-major float A and the rows x ldy row-major float y (ldy = SweepWidth(l), columns l.. zero):
// each entry accumulated in float by fused multiply-add in increasing row. Needs
// HaveFloatSweepKernels().
void AddAtRowsFloat(const float* a, int64_t rows, int64_t n, const float* y, int64_t l, int64_t ldy,
                    bool first, float* w);

}  // namespace kfc::kron
