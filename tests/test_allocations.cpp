// "Nothing per step" (the project's design rule for the driver): the driver loop allocates no memory per step on the
// Eigen path. This executable counts every heap allocation: it replaces the global
// operator new/delete and, because Eigen allocates its arrays with malloc directly, also
// malloc and its relatives (forwarding to glibc's __libc_* functions). A run with 10 steps
// and one with 50 steps from the same start must then make the same number of
// allocations: whatever a run allocates (work arrays in init, a model's scratch on its
// first call, threads) it allocates once, not per step.
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "diffsde/driver.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/analytic.hpp"
#include "support/exact.hpp"
#include "support/orders.hpp"

// AddressSanitizer replaces malloc itself; under it this file counts nothing and the test
// only says so.
#if defined(__SANITIZE_ADDRESS__)
#define DIFFSDE_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DIFFSDE_COUNT_ALLOCATIONS 0
#endif
#endif
#if !defined(DIFFSDE_COUNT_ALLOCATIONS) && defined(__GLIBC__)
#define DIFFSDE_COUNT_ALLOCATIONS 1
#endif
#if !defined(DIFFSDE_COUNT_ALLOCATIONS)
#define DIFFSDE_COUNT_ALLOCATIONS 0
#endif

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

#if DIFFSDE_COUNT_ALLOCATIONS
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t n, std::size_t size);
void* __libc_realloc(void* p, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
void __libc_free(void* p);

void* malloc(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, size);
}
void* memalign(std::size_t alignment, std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}  // extern "C"

void* operator new(std::size_t size) {
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  const auto a = static_cast<std::size_t>(alignment);
  if (void* p = aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return operator new(size, alignment);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif

using namespace diffsde;
using nlohmann::json;

namespace {

struct Problem {
  std::shared_ptr<const Schedule> schedule = std::make_shared<VpLinearSchedule>();
  GmmModel model = GmmModel::builtin_2d(schedule);
  State x_T = test::standard_normal_rows(256, 2, 5);
};

struct Count {
  long allocations = 0;
  long attempts = 0;  // accepted + rejected steps
};

// Sees every step and keeps nothing.
class StepCounter final : public Observer {
 public:
  void on_step(long, double, const State&) override { ++steps; }
  long steps = 0;
};

// Allocations made by one integrate call (the solver, noise and grid made before counting).
// With `observe`, an observer makes a run on several threads advance its row blocks in
// lockstep, gathering them after every step.
Count allocations(const json& config, const Problem& p, int steps, bool tree, int threads,
                  bool observe) {
  const auto times = TimeUniformGrid({1.0, 1e-3, steps}).times(*p.schedule);
  auto solver = solver_registry().create(config, "solver");
  std::unique_ptr<NoiseSource> noise;
  if (tree)
    noise = std::make_unique<BrownianTreeNoise>(3, 1e-3, 1.0);
  else
    noise = std::make_unique<PhiloxNoise>(3);
  State x = p.x_T;
  DriverOptions options;
  options.threads = threads;
  StepCounter counter;
  std::vector<Observer*> observers;
  if (observe) observers.push_back(&counter);
  const long before = g_allocations.load();
  const Summary s =
      integrate(*solver, *p.schedule, p.model, times, x, noise.get(), observers, options);
  return {g_allocations.load() - before, s.accepted + s.rejected};
}

}  // namespace

TEST_CASE("The counting allocator sees Eigen's and the standard library's allocations") {
  if (!DIFFSDE_COUNT_ALLOCATIONS) {
    WARN("allocations are not counted in this build (sanitizer or not glibc)");
    return;
  }
  const long before = g_allocations.load();
  {
    State a(16, 16);
    auto b = std::make_unique<int>(1);
    std::vector<double> c(3);
    a.setZero();
    c[0] = static_cast<double>(*b) + a(0, 0);
  }
  CHECK(g_allocations.load() - before == 3);
}

TEST_CASE("A reused Integrator allocates no work arrays after its first run") {
  if (!DIFFSDE_COUNT_ALLOCATIONS) {
    WARN("allocations are not counted in this build (sanitizer or not glibc)");
    return;
  }
  const Problem p;
  const auto times = TimeUniformGrid({1.0, 1e-3, 10}).times(*p.schedule);
  for (const char* name : {"euler_maruyama", "dpm_solver", "unipc"}) {
    for (int threads : {1, 2}) {
      INFO(name << ", threads " << threads);
      // What a second run allocates does not depend on the batch: small objects only.
      std::vector<long> counts;
      for (long batch : {256L, 4096L}) {
        auto solver = solver_registry().create(json{{"name", name}}, "solver");
        DriverOptions options;
        options.threads = threads;
        Integrator integrator(*solver, options);
        const State x_T = test::standard_normal_rows(batch, 2, 5);
        for (int run = 0; run < 2; ++run) {
          PhiloxNoise noise(3);
          State x = x_T;
          const long before = g_allocations.load();
          integrator.run(*p.schedule, p.model, times, x, &noise);
          if (run == 1) counts.push_back(g_allocations.load() - before);
        }
      }
      CHECK(counts[0] == counts[1]);
      CHECK(counts[0] < 20 * threads);
    }
  }
}

TEST_CASE("No solver allocates per step (batch 256, 10 vs 50 steps)") {
  if (!DIFFSDE_COUNT_ALLOCATIONS) {
    WARN("allocations are not counted in this build (sanitizer or not glibc)");
    return;
  }
  const Problem p;
  for (const json& config : test::all_solver_variants()) {
    for (bool tree : {false, true}) {
      if (config["name"] == "ggf" && !tree) continue;  // ggf needs the tree
      const std::pair<int, bool> runs[] = {{1, false}, {2, false}, {2, true}};  // threads, observed
      for (const auto& [threads, observe] : runs) {
        INFO(config.dump() << (tree ? " on a brownian tree" : " on philox") << ", threads "
                           << threads << (observe ? ", observed" : ""));
        allocations(config, p, 10, tree, threads, observe);  // first use: scratch grows
        const Count a10 = allocations(config, p, 10, tree, threads, observe);
        const Count a50 = allocations(config, p, 50, tree, threads, observe);
        if (config.value("stepper", "") == "bulirsch_stoer") {
          // odeint's bulirsch_stoer::try_step makes two std::vector work arrays per
          // attempt, inside Boost: exactly that and nothing else.
          CHECK(a50.allocations - a10.allocations == 2 * (a50.attempts - a10.attempts));
          CHECK(a50.attempts > a10.attempts);
        } else {
          CHECK(a10.allocations == a50.allocations);
        }
        CHECK(a10.allocations < 200 * threads);
      }
    }
  }
}
