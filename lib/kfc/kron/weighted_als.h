// SPDX-License-Identifier: Apache-2.0
// Alternating least squares for the calibrated Kronecker fit, and the double-precision helpers it
// shares with weighted.cc. Matrices are row-major doubles; index conventions are factorize.h's.
#pragma once

#include <cstdint>
#include <vector>

#include "kfc/kron/shapes.h"

namespace kfc::kron::als {

// Rearrangement of a double K x N matrix for shape (k1, n1, k2, n2): R[i1*n1+j1, i2*n2+j2] =
// M[i1*k2+i2, j1*n2+j2], as kron::Rearrange does for float weights.
std::vector<double> RearrangeD(const std::vector<double>& m, const KronShape& s);

// tr(D^T C D) for D = W - W_hat (double), with C K x K.
double WeightedEnergy(const std::vector<double>& d, const std::vector<double>& c, int64_t K,
                      int64_t N);

// Alternating least squares on the factors (double, A: r x k1 x n1, B: r x k2 x n2) for the exact
// objective tr(D^T C D), C K x K and W K x N. Returns the iterations run.
int RefineAls(const std::vector<double>& c, const std::vector<double>& w, const KronShape& s,
              int64_t r, int max_iterations, std::vector<double>* a, std::vector<double>* b);

}  // namespace kfc::kron::als
