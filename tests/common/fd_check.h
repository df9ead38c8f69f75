// Central finite differences against an analytic gradient, in double.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

namespace hessgpt::testing {

// Checks analytic[i] == d loss / d x[i] for an evenly spaced sample of at most
// max_checks entries of x. Error is relative, with a floor so that entries whose
// gradient is ~0 are judged absolutely.
template <typename T>
void expect_fd_match(T* x, size_t n, const double* analytic, const std::function<double()>& loss,
                     const std::string& what, size_t max_checks = 200, double tol = 1e-6,
                     double floor = 1.0, double h = 1e-5) {
  const size_t stride = std::max<size_t>(1, n / max_checks);
  for (size_t i = 0; i < n; i += stride) {
    const T saved = x[i];
    x[i] = saved + static_cast<T>(h);
    const double up = loss();
    x[i] = saved - static_cast<T>(h);
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    const double err = std::abs(numeric - analytic[i]) / std::max(floor, std::abs(numeric));
    ASSERT_LT(err, tol) << what << "[" << i << "]: analytic " << analytic[i] << " numeric "
                        << numeric;
  }
}

}  // namespace hessgpt::testing
