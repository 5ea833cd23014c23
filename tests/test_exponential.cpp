// The phi functions against exact values: closed forms in long double at moderate h and
// the series at tiny h, where the closed forms would cancel.
#include <catch2/catch.hpp>
#include <cmath>

#include "diffsde/solvers/exponential.hpp"

using diffsde::phi;

TEST_CASE("phi_k matches its closed forms and its series") {
  for (double h : {-30.0, -5.0, -1.5, -1.0, -0.999, -0.3, 0.3, 0.999, 1.0, 2.5, 10.0}) {
    const long double H = h;
    const long double p1 = std::expm1(H) / H;
    const long double p2 = (p1 - 1) / H;
    const long double p3 = (p2 - 0.5L) / H;
    INFO("h = " << h);
    CHECK(phi(0, h) == Approx(static_cast<double>(std::exp(H))).epsilon(1e-15));
    CHECK(phi(1, h) == Approx(static_cast<double>(p1)).epsilon(1e-14));
    CHECK(phi(2, h) == Approx(static_cast<double>(p2)).epsilon(1e-12));
    CHECK(phi(3, h) == Approx(static_cast<double>(p3)).epsilon(1e-10));
  }
  for (double h : {1e-12, -1e-9, 1e-6, -1e-5}) {
    // Leading terms of sum_j h^j/(j+k)!.
    CHECK(phi(1, h) == Approx(1 + h / 2 + h * h / 6).epsilon(1e-15));
    CHECK(phi(2, h) == Approx(0.5 + h / 6 + h * h / 24).epsilon(1e-15));
    CHECK(phi(3, h) == Approx(1.0 / 6 + h / 24 + h * h / 120).epsilon(1e-15));
  }
  CHECK(phi(1, 0.0) == 1.0);
  CHECK(phi(2, 0.0) == 0.5);
  CHECK_THROWS(phi(-1, 0.5));
}
