// SPDX-License-Identifier: Apache-2.0
// kfc_kron_bench: measured time, error and peak memory of kfc::kron::Factorize (auto and exact
// SVD) and kfc::kron::SearchShape on big layers. A benchmark, not a test: it prints numbers and
// asserts nothing about them.
//
// Conventions as in kfc/kron/factorize.h: W is K x N, row-major, float; the balanced shape is
// DefaultShape(K, N) = k1 x n1 (x) k2 x n2 and its rearranged matrix R is (k1*n1) x (k2*n2).
//
// Every configuration (one weight, one method, one rank) runs in a forked child process, so its
// peak resident memory can be read without the parent's history: the child resets its peak
// (/proc/self/clear_refs, "5"), reads VmRSS, runs, then reads VmHWM. "Extra" memory is
// VmHWM - VmRSS(before): what one layer's factorization adds on top of the weight it reads (the
// weight itself is shared copy-on-write with the parent). The child warms BLAS up first (one
// multithreaded dgemm) so OpenBLAS's per-process thread buffers are not charged to the layer.
// A SearchShape child still running at --search-limit is killed and reported as "> limit".
//
// Stdout: a Markdown table and notes. Stderr: progress. --tsv FILE: the same rows as
// tab-separated values; --dump DIR: each weight as DIR/<kind>_<K>x<N>.npy (float32, C order) and
// DIR/manifest.tsv, for bench/numpy_reference.py.
#include <cblas.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "kfc/kron/factorize.h"
#include "kfc/kron/truncated_svd.h"
#ifdef KFC_BENCH_HAVE_SHAPE_SEARCH
#include "kfc/kron/shape_search.h"
#endif

namespace {

using kfc::kron::FactorizeOptions;
using kfc::kron::KronFactors;
using kfc::kron::KronShape;
using kfc::kron::SvdMethod;

constexpr int kMaxRanks = 16;  // ranks per run (the child sends exact errors for each)

// ------------------------------------------------------------------------------------------------
// Seeded Gaussian numbers: splitmix64 + Box-Muller, so a weight depends only on its seed.

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1).
  double Open() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  void FillGaussian(float* out, int64_t size, double scale) {
    constexpr double kTwoPi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < size; i += 2) {
      const double radius = scale * std::sqrt(-2.0 * std::log(Open()));
      const double angle = kTwoPi * Open();
      out[i] = static_cast<float>(radius * std::cos(angle));
      if (i + 1 < size) out[i + 1] = static_cast<float>(radius * std::sin(angle));
    }
  }

 private:
  uint64_t state_;
};

double FrobeniusNorm(const std::vector<float>& x) {
  double sum = 0.0;
  for (float v : x) sum += static_cast<double>(v) * v;
  return std::sqrt(sum);
}

// ------------------------------------------------------------------------------------------------
// Weights.

struct Weight {
  std::string kind;
  int64_t K = 0, N = 0;
  KronShape shape;  // DefaultShape(K, N)
  std::vector<float> w;
};

constexpr const char* kKindNotes =
    "- synthetic: 8 planted Kronecker terms of the balanced shape with decaying weights "
    "c_t = 0.75^t (Gaussian A_t, B_t of unit norm), plus seeded Gaussian noise of Frobenius norm "
    "0.1x the planted part. Optimal error is about 0.1 from rank 8 on.\n"
    "- trained: NOT a trained weight (none of 4096 size is available here). A stand-in for one: "
    "W = G1 diag(d) G2 + E with Gaussian G1 (K x h), G2 (h x N), h = min(K, N)/8, power-law "
    "d_j = 1/(j+1), and Gaussian E of norm 0.5x the low-rank part (20% of the energy). Its "
    "spectrum in W decays like a trained layer's; its Kronecker spectrum (of R) is nearly flat, "
    "the hard case for the randomized SVD and for the balanced shape.\n";

// Synthetic: sum_{t<8} c_t A_t (x) B_t + noise, with A_t, B_t of the balanced shape.
void MakeSynthetic(uint64_t seed, Weight* out) {
  const KronShape& s = out->shape;
  const int64_t m = s.k1 * s.n1, n = s.k2 * s.n2, terms = 8;
  Rng rng(seed);
  std::vector<float> a(static_cast<size_t>(terms * m)), b(static_cast<size_t>(terms * n));
  rng.FillGaussian(a.data(), terms * m, 1.0 / std::sqrt(static_cast<double>(m)));
  rng.FillGaussian(b.data(), terms * n, 1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t t = 0; t < terms; ++t) {
    const float c = static_cast<float>(std::pow(0.75, static_cast<double>(t)));
    for (int64_t p = 0; p < m; ++p) a[static_cast<size_t>(t * m + p)] *= c;
  }
  std::vector<float>& w = out->w;
  w.assign(static_cast<size_t>(out->K * out->N), 0.0f);
  // W[i1*k2 + i2, j1*n2 + j2] = sum_t A_t[i1, j1] B_t[i2, j2].
  for (int64_t i1 = 0; i1 < s.k1; ++i1) {
    for (int64_t i2 = 0; i2 < s.k2; ++i2) {
      float* row = w.data() + (i1 * s.k2 + i2) * out->N;
      for (int64_t t = 0; t < terms; ++t) {
        const float* a_t = a.data() + t * m + i1 * s.n1;
        const float* b_t = b.data() + t * n + i2 * s.n2;
        for (int64_t j1 = 0; j1 < s.n1; ++j1) {
          float* dst = row + j1 * s.n2;
          const float a_v = a_t[j1];
          for (int64_t j2 = 0; j2 < s.n2; ++j2) dst[j2] += a_v * b_t[j2];
        }
      }
    }
  }
  std::vector<float> noise(w.size());
  rng.FillGaussian(noise.data(), static_cast<int64_t>(noise.size()), 1.0);
  const double scale = 0.1 * FrobeniusNorm(w) / FrobeniusNorm(noise);
  for (size_t i = 0; i < w.size(); ++i) w[i] += static_cast<float>(scale * noise[i]);
}

// Trained-like: G1 diag(1/(j+1)) G2 + noise (see kKindNotes).
void MakeTrainedLike(uint64_t seed, Weight* out) {
  const int64_t K = out->K, N = out->N, h = std::max<int64_t>(8, std::min(K, N) / 8);
  Rng rng(seed);
  std::vector<float> g1(static_cast<size_t>(K * h)), g2(static_cast<size_t>(h * N));
  rng.FillGaussian(g1.data(), K * h, 1.0);
  rng.FillGaussian(g2.data(), h * N, 1.0);
  for (int64_t i = 0; i < K; ++i) {
    for (int64_t j = 0; j < h; ++j) g1[static_cast<size_t>(i * h + j)] /= static_cast<float>(j + 1);
  }
  std::vector<float>& w = out->w;
  w.assign(static_cast<size_t>(K * N), 0.0f);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(K), static_cast<int>(N),
              static_cast<int>(h), 1.0f, g1.data(), static_cast<int>(h), g2.data(),
              static_cast<int>(N), 0.0f, w.data(), static_cast<int>(N));
  std::vector<float> noise(w.size());
  rng.FillGaussian(noise.data(), static_cast<int64_t>(noise.size()), 1.0);
  const double signal = FrobeniusNorm(w);
  const double scale = 0.5 * signal / FrobeniusNorm(noise);
  // Unit-ish entries, like an initialized layer: divide by the mean entry magnitude.
  const double unit = std::sqrt(1.25) * signal / std::sqrt(static_cast<double>(K * N));
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = static_cast<float>((w[i] + scale * noise[i]) / unit);
  }
}

bool MakeWeight(const std::string& kind, int64_t K, int64_t N, Weight* out, std::string* error) {
  auto shape = kfc::kron::DefaultShape(K, N);
  if (!shape.ok()) {
    *error = shape.status().message();
    return false;
  }
  out->kind = kind;
  out->K = K;
  out->N = N;
  out->shape = shape.value();
  const uint64_t seed =
      0x6b66632d62656e63ULL ^ (static_cast<uint64_t>(K) << 32) ^ static_cast<uint64_t>(N);
  if (kind == "synthetic") {
    MakeSynthetic(seed, out);
  } else if (kind == "trained") {
    MakeTrainedLike(seed + 1, out);
  } else {
    *error = "unknown weight kind '" + kind + "' (synthetic, trained)";
    return false;
  }
  return true;
}

// .npy version 1.0, float32 little-endian, C order; the header is padded to a multiple of 64.
bool WriteNpy(const std::string& path, const Weight& w) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(w.K) +
                       ", " + std::to_string(w.N) + "), }";
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  f.write(magic, 8);
  f.write(len_bytes, 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(reinterpret_cast<const char*>(w.w.data()),
          static_cast<std::streamsize>(w.w.size() * sizeof(float)));
  return static_cast<bool>(f);
}

// ------------------------------------------------------------------------------------------------
// One configuration in a child process.

// Plain data sent from the child through a pipe.
struct Measurement {
  int ok = 0;
  int method = 0;   // SvdMethod the Factorize call used
  int float32 = 0;  // its randomized subspace passes ran in float32
  int repeats = 0;  // timed runs; seconds is their median
  double seconds = 0.0;
  double error = -1.0;
  double rank_errors[kMaxRanks] = {};  // exact run: SpectrumError at each requested rank
  int64_t peak_bytes = -1;             // VmHWM after the first timed run
  int64_t extra_bytes = -1;            // peak_bytes - VmRSS(before); -1 when unreadable
  int64_t child_maxrss_bytes = -1;     // wait4's ru_maxrss (includes the inherited weight)
  // SearchShape only.
  int64_t k1 = 0, n1 = 0, k2 = 0, n2 = 0, rank = 0, params = 0, full_evaluations = 0;
  int64_t candidates = 0;
  int timed_out = 0;  // killed at the time limit
  char message[512] = {};
};

void SetMessage(Measurement* m, const std::string& text) {
  std::snprintf(m->message, sizeof(m->message), "%s", text.c_str());
}

// A field of /proc/self/status in bytes, or -1.
int64_t StatusBytes(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t len = std::strlen(field);
  while (std::getline(f, line)) {
    if (line.compare(0, len, field) == 0 && line.size() > len && line[len] == ':') {
      return std::atoll(line.c_str() + len + 1) * 1024;
    }
  }
  return -1;
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string one, five, fifteen;
  f >> one >> five >> fifteen;
  return f ? one + " " + five + " " + fifteen : "unknown";
}

bool ResetPeakRss() {
  const int fd = open("/proc/self/clear_refs", O_WRONLY);
  if (fd < 0) return false;
  const bool ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

void WarmUpBlas() {
  const int n = 384;
  std::vector<double> a(static_cast<size_t>(n * n), 1.0), c(static_cast<size_t>(n * n));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a.data(), n, a.data(), n,
              0.0, c.data(), n);
}

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs `body` in a child; body times itself and fills the measurement. Memory is added here.
// A child still running after `limit_seconds` (> 0) is killed and reported as timed out.
Measurement RunInChild(const std::function<void(Measurement*)>& body, double limit_seconds = 0) {
  Measurement result;
  int fds[2];
  if (pipe(fds) != 0) {
    SetMessage(&result, "pipe failed");
    return result;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    SetMessage(&result, "fork failed");
    return result;
  }
  if (pid == 0) {
    close(fds[0]);
    Measurement m;
    WarmUpBlas();
    const bool reset = ResetPeakRss();
    const int64_t before = StatusBytes("VmRSS");
    body(&m);
    // The first run's peak: later runs can find freed but untrimmed heap pages still resident.
    const int64_t peak = m.peak_bytes >= 0 ? m.peak_bytes : StatusBytes("VmHWM");
    m.extra_bytes = (reset && before >= 0 && peak >= 0) ? peak - before : -1;
    const char* p = reinterpret_cast<const char*>(&m);
    size_t left = sizeof(m);
    while (left > 0) {
      const ssize_t n = write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
    close(fds[1]);
    _exit(0);  // no atexit handlers or static destructors of the parent's state
  }
  close(fds[1]);
  char* p = reinterpret_cast<char*>(&result);
  size_t got = 0;
  bool timed_out = false;
  const double deadline = Now() + limit_seconds;
  while (got < sizeof(result)) {
    if (limit_seconds > 0) {
      const double left = deadline - Now();
      pollfd pfd{fds[0], POLLIN, 0};
      if (left <= 0 || poll(&pfd, 1, static_cast<int>(std::min(left, 1e6) * 1000) + 1) == 0) {
        if (Now() < deadline) continue;
        kill(pid, SIGKILL);
        timed_out = true;
        break;
      }
    }
    const ssize_t n = read(fds[0], p + got, sizeof(result) - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  if (timed_out) {
    result = Measurement();
    result.timed_out = 1;
    result.seconds = limit_seconds;
    SetMessage(&result, "still running after " + Fmt("%.0f", limit_seconds) + " s, killed");
  } else if (got != sizeof(result)) {
    result = Measurement();
    SetMessage(&result, WIFSIGNALED(status)
                            ? "child killed by signal " + std::to_string(WTERMSIG(status))
                            : "child exited without a result");
  }
  result.child_maxrss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  return result;
}

// Runs `once` (which returns false on failure) once, and again while the runs are short, up to
// `max_repeats` runs in all; stores the median time.
void TimeRepeated(int max_repeats, const std::function<bool(Measurement*)>& once, Measurement* m) {
  std::vector<double> times;
  double total = 0.0;
  do {
    const double start = Now();
    if (!once(m)) return;
    times.push_back(Now() - start);
    if (times.size() == 1) m->peak_bytes = StatusBytes("VmHWM");
    total += times.back();
  } while (static_cast<int>(times.size()) < max_repeats && total < 2.0);
  std::sort(times.begin(), times.end());
  m->seconds = times[times.size() / 2];
  m->repeats = static_cast<int>(times.size());
  m->ok = 1;
}

Measurement MeasureFactorize(const Weight& w, int64_t rank, SvdMethod method,
                             kfc::kron::SvdPrecision precision, const std::vector<int64_t>& ranks,
                             int max_repeats) {
  return RunInChild([&](Measurement* m) {
    FactorizeOptions options;
    options.svd.method = method;
    options.svd.precision = precision;
    TimeRepeated(
        max_repeats,
        [&](Measurement* out) {
          auto f = kfc::kron::Factorize(w.w.data(), w.K, w.N, w.shape, rank, options);
          if (!f.ok()) {
            SetMessage(out, f.status().message());
            return false;
          }
          const KronFactors& factors = f.value();
          out->error = factors.relative_error;
          out->method = static_cast<int>(factors.method);
          out->float32 = factors.float32_passes ? 1 : 0;
          if (factors.method == SvdMethod::kExact) {
            for (size_t i = 0; i < ranks.size() && i < kMaxRanks; ++i) {
              out->rank_errors[i] = kfc::kron::SpectrumError(factors.singular_values, ranks[i],
                                                             factors.frobenius_norm);
            }
          }
          return true;
        },
        m);
  });
}

#ifdef KFC_BENCH_HAVE_SHAPE_SEARCH
Measurement MeasureSearch(const Weight& w, int64_t max_params, int max_repeats,
                          double limit_seconds) {
  return RunInChild(
      [&](Measurement* m) {
        TimeRepeated(
            max_repeats,
            [&](Measurement* out) {
              kfc::kron::SearchBudget budget;
              budget.max_params = max_params;
              auto r = kfc::kron::SearchShape(w.w.data(), w.K, w.N, budget);
              if (!r.ok()) {
                SetMessage(out, r.status().message());
                return false;
              }
              const kfc::kron::ShapeSearchResult& s = r.value();
              if (!s.found) {
                SetMessage(out, "no shape fits the budget");
                return false;
              }
              out->error = s.error;
              out->k1 = s.shape.k1;
              out->n1 = s.shape.n1;
              out->k2 = s.shape.k2;
              out->n2 = s.shape.n2;
              out->rank = s.rank;
              out->params = s.params;
              out->full_evaluations = s.full_evaluations;
              out->candidates = static_cast<int64_t>(s.candidates.size());
              return true;
            },
            m);
      },
      limit_seconds);
}
#endif

// ------------------------------------------------------------------------------------------------
// Options and output.

struct Options {
  std::vector<std::string> sizes = {"1024x1024", "4096x4096", "4096x16384"};
  std::vector<int64_t> ranks = {1, 4, 16, 64};
  std::vector<std::string> kinds = {"synthetic", "trained"};
  bool quick = false;
  bool no_exact = false;
  bool no_search = false;
  double exact_limit = 120.0;   // seconds
  double search_limit = 300.0;  // seconds
  int repeats = 5;
  std::string dump_dir;
  std::string tsv_path;
  std::string precision = "auto";  // SvdOptions::precision of the auto Factorize runs
};

std::string Seconds(double s) {
  if (s < 0) return "n/a";
  if (s < 0.1) return Fmt("%.4f", s);
  if (s < 10) return Fmt("%.3f", s);
  return Fmt("%.1f", s);
}

std::string Ratio(double num, double den, const char* format = "%.2f") {
  if (num < 0 || den <= 0) return "n/a";
  return Fmt(format, num / den);
}

std::string ShapeText(int64_t k1, int64_t n1, int64_t k2, int64_t n2) {
  return std::to_string(k1) + "x" + std::to_string(n1) + "(x)" + std::to_string(k2) + "x" +
         std::to_string(n2);
}

const char* MethodName(int method) {
  switch (static_cast<SvdMethod>(method)) {
    case SvdMethod::kExact:
      return "exact";
    case SvdMethod::kRandomized:
      return "randomized";
    default:
      return "auto";
  }
}

// "randomized (float32)" etc. for the table: the method and, when randomized, the pass precision.
std::string MethodText(const Measurement& m) {
  const std::string name = MethodName(m.method);
  if (static_cast<SvdMethod>(m.method) != SvdMethod::kRandomized) return name;
  return name + (m.float32 ? " (float32)" : " (float64)");
}

bool ParseSize(const std::string& text, int64_t* K, int64_t* N) {
  const size_t x = text.find('x');
  if (x == std::string::npos) return false;
  char* end = nullptr;
  *K = std::strtoll(text.c_str(), &end, 10);
  if (end != text.c_str() + x) return false;
  *N = std::strtoll(text.c_str() + x + 1, &end, 10);
  return *end == '\0' && *K > 0 && *N > 0;
}

// One row of the results (one weight, one rank).
struct Row {
  std::string kind;
  int64_t K = 0, N = 0;
  KronShape shape;
  int64_t rank = 0;
  Measurement fixed;        // Factorize, default options (auto)
  std::string exact_state;  // measured | reused | skipped
  double exact_seconds = -1.0;
  double exact_error = -1.0;
  int64_t exact_extra = -1;
  Measurement search;
  bool search_done = false;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "kfc_kron_bench: time, error and peak memory of kfc::kron::Factorize (auto vs exact SVD) and "
      "SearchShape on the balanced Kronecker shape of big synthetic weights. Prints a Markdown "
      "table; asserts nothing.",
      "kfc_kron_bench"};
  app.add_option("--sizes", o.sizes, "weights as KxN, comma separated")
      ->delimiter(',')
      ->type_name("KxN,...");
  app.add_option("--ranks", o.ranks, "ranks (number of Kronecker terms), comma separated")
      ->delimiter(',')
      ->type_name("R,...");
  app.add_option("--kinds", o.kinds, "weight kinds: synthetic, trained")
      ->delimiter(',')
      ->type_name("KIND,...");
  app.add_flag("--quick", o.quick, "1024x1024 only");
  app.add_flag("--no-exact", o.no_exact, "skip the exact-SVD reference");
  app.add_option("--precision", o.precision,
                 "precision of the auto runs' randomized subspace passes: auto (float32, float64 "
                 "below a relative error of 1e-3), float32 or float64")
      ->check(CLI::IsMember({"auto", "float32", "float64"}));
  app.add_flag("--no-search", o.no_search, "skip SearchShape");
  app.add_option("--exact-limit", o.exact_limit,
                 "skip the exact SVD where its time, extrapolated from a smaller measured one as "
                 "m*n*min(m,n), exceeds this many seconds")
      ->type_name("SECONDS");
  app.add_option("--search-limit", o.search_limit,
                 "kill a SearchShape run after this many seconds (0: no limit); once one is "
                 "killed, the larger ranks of that weight are skipped")
      ->type_name("SECONDS");
  app.add_option("--repeats", o.repeats,
                 "at most this many timed runs per configuration (more only while they total "
                 "under 2 s); the median is reported")
      ->type_name("N");
  app.add_option("--dump", o.dump_dir,
                 "write each weight as DIR/<kind>_<K>x<N>.npy and DIR/manifest.tsv (and, unless "
                 "--tsv is given, the results as DIR/kfc_results.tsv)")
      ->type_name("DIR");
  app.add_option("--tsv", o.tsv_path, "also write the results as tab-separated values")
      ->type_name("FILE");
  CLI11_PARSE(app, argc, argv);
  if (o.quick) o.sizes = {"1024x1024"};
  if (o.ranks.empty() || o.ranks.size() > static_cast<size_t>(kMaxRanks)) {
    std::fprintf(stderr, "kfc_kron_bench: give 1 to %d ranks\n", kMaxRanks);
    return 2;
  }
  if (o.repeats < 1) o.repeats = 1;
  const kfc::kron::SvdPrecision precision =
      o.precision == "float32"   ? kfc::kron::SvdPrecision::kFloat32
      : o.precision == "float64" ? kfc::kron::SvdPrecision::kFloat64
                                 : kfc::kron::SvdPrecision::kAuto;
  if (!o.dump_dir.empty() && o.tsv_path.empty()) o.tsv_path = o.dump_dir + "/kfc_results.tsv";
#ifndef KFC_BENCH_HAVE_SHAPE_SEARCH
  o.no_search = true;
#endif

  std::ofstream manifest;
  if (!o.dump_dir.empty()) {
    manifest.open(o.dump_dir + "/manifest.tsv");
    if (!manifest) {
      std::fprintf(stderr, "kfc_kron_bench: cannot write %s/manifest.tsv\n", o.dump_dir.c_str());
      return 1;
    }
    manifest << "kind\tK\tN\tk1\tn1\tk2\tn2\tranks\tfile\n";
  }

  std::vector<Row> rows;
  std::vector<std::string> notes;
  const std::string load_start = LoadAverage();
  // Exact time / (m*n*min(m,n)) from the largest exact run so far (dgesdd's cost model).
  double exact_seconds_per_unit = -1.0, exact_calibration_unit = 0.0;
  for (const std::string& size : o.sizes) {
    int64_t K = 0, N = 0;
    if (!ParseSize(size, &K, &N)) {
      std::fprintf(stderr, "kfc_kron_bench: bad size '%s' (want KxN)\n", size.c_str());
      return 2;
    }
    for (const std::string& kind : o.kinds) {
      Weight w;
      std::string error;
      const double gen_start = Now();
      if (!MakeWeight(kind, K, N, &w, &error)) {
        std::fprintf(stderr, "kfc_kron_bench: %s\n", error.c_str());
        return 2;
      }
      const KronShape& s = w.shape;
      const int64_t m = s.k1 * s.n1, n = s.k2 * s.n2;
      std::fprintf(stderr, "[%s %s] shape %s, R %lldx%lld, generated in %.1f s\n", kind.c_str(),
                   size.c_str(), ShapeText(s.k1, s.n1, s.k2, s.n2).c_str(),
                   static_cast<long long>(m), static_cast<long long>(n), Now() - gen_start);
      if (!o.dump_dir.empty()) {
        const std::string file = kind + "_" + size + ".npy";
        if (!WriteNpy(o.dump_dir + "/" + file, w)) {
          std::fprintf(stderr, "kfc_kron_bench: cannot write %s/%s\n", o.dump_dir.c_str(),
                       file.c_str());
          return 1;
        }
        std::string ranks;
        for (int64_t r : o.ranks) {
          if (r <= s.MaxRank()) ranks += (ranks.empty() ? "" : ",") + std::to_string(r);
        }
        manifest << kind << '\t' << K << '\t' << N << '\t' << s.k1 << '\t' << s.n1 << '\t' << s.k2
                 << '\t' << s.n2 << '\t' << ranks << '\t' << file << std::endl;
      }

      std::vector<int64_t> ranks;
      for (int64_t r : o.ranks) {
        if (r >= 1 && r <= s.MaxRank()) ranks.push_back(r);
      }

      // Exact SVD once: it computes the whole spectrum whatever the rank, so its time and its
      // errors at every rank come from one run (at the smallest rank).
      Measurement exact;
      std::string exact_state = "skipped";
      const double unit =
          static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::min(m, n));
      if (!o.no_exact && !ranks.empty()) {
        const double estimate = exact_seconds_per_unit > 0 ? exact_seconds_per_unit * unit : -1;
        if (estimate > o.exact_limit) {
          notes.push_back("exact SVD skipped for " + kind + " " + size + " (R " +
                          std::to_string(m) + "x" + std::to_string(n) + "): estimated " +
                          Fmt("%.0f", estimate) + " s from a smaller measured run, over the " +
                          Fmt("%.0f", o.exact_limit) + " s limit");
        } else {
          exact =
              MeasureFactorize(w, ranks.front(), SvdMethod::kExact, precision, ranks, o.repeats);
          if (exact.ok) {
            exact_state = "measured";
            if (unit >= exact_calibration_unit) {
              exact_seconds_per_unit = exact.seconds / unit;
              exact_calibration_unit = unit;
            }
            std::fprintf(stderr, "[%s %s] exact: %.2f s, extra %.0f MB\n", kind.c_str(),
                         size.c_str(), exact.seconds, exact.extra_bytes / 1e6);
          } else {
            notes.push_back("exact SVD failed for " + kind + " " + size + ": " + exact.message);
          }
        }
      }

      int64_t search_timed_out_rank = 0;  // a search at this rank hit the limit
      for (size_t i = 0; i < ranks.size(); ++i) {
        Row row;
        row.kind = kind;
        row.K = K;
        row.N = N;
        row.shape = s;
        row.rank = ranks[i];
        row.fixed = MeasureFactorize(w, row.rank, SvdMethod::kAuto, precision, ranks, o.repeats);
        if (!row.fixed.ok) {
          notes.push_back("Factorize failed for " + kind + " " + size + " rank " +
                          std::to_string(row.rank) + ": " + row.fixed.message);
        }
        if (exact.ok) {
          row.exact_state = i == 0 ? "measured" : "reused";
          row.exact_seconds = exact.seconds;
          row.exact_error = exact.rank_errors[i];
          row.exact_extra = exact.extra_bytes;
        } else {
          row.exact_state = exact_state;
        }
#ifdef KFC_BENCH_HAVE_SHAPE_SEARCH
        if (!o.no_search && search_timed_out_rank > 0) {
          row.search_done = true;
          row.search.timed_out = 1;
          SetMessage(&row.search, "skipped: the rank " + std::to_string(search_timed_out_rank) +
                                      " search already exceeded the limit");
          notes.push_back("SearchShape skipped for " + kind + " " + size + " rank " +
                          std::to_string(row.rank) + ": the rank " +
                          std::to_string(search_timed_out_rank) + " search already exceeded " +
                          Fmt("%.0f", o.search_limit) + " s (its cost grows with the rank)");
        } else if (!o.no_search) {
          row.search = MeasureSearch(w, row.rank * s.ParamsPerTerm(), o.repeats, o.search_limit);
          row.search_done = true;
          if (row.search.timed_out) {
            search_timed_out_rank = row.rank;
          } else if (!row.search.ok) {
            notes.push_back("SearchShape failed for " + kind + " " + size + " rank " +
                            std::to_string(row.rank) + ": " + row.search.message);
          }
        }
#endif
        std::string search_text;
        if (row.search_done) {
          search_text = row.search.ok           ? ", search " + Seconds(row.search.seconds) + " s"
                        : !row.search.timed_out ? ", search failed"
                        : row.search.seconds > 0
                            ? ", search killed after " + Seconds(row.search.seconds) + " s"
                            : ", search skipped";
        }
        std::fprintf(stderr, "[%s %s] rank %lld: auto %s %.3f s err %.6f%s\n", kind.c_str(),
                     size.c_str(), static_cast<long long>(row.rank), MethodText(row.fixed).c_str(),
                     row.fixed.seconds, row.fixed.error, search_text.c_str());
        rows.push_back(row);
      }
    }
  }

  // Markdown table.
  std::printf(
      "| kind | size | balanced shape (R) | rank | auto method | auto s | exact s | auto error | "
      "exact error | gap %% | search s | search / fixed | search pick (rank, error) | "
      "mem auto / W | mem exact / W | mem search / W |\n");
  std::printf("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
  for (const Row& r : rows) {
    const double weight_bytes = 4.0 * static_cast<double>(r.K) * static_cast<double>(r.N);
    const KronShape& s = r.shape;
    std::string exact_s = "skipped";
    std::string gap = "n/a";
    if (r.exact_state == "measured" || r.exact_state == "reused") {
      exact_s = Seconds(r.exact_seconds) + (r.exact_state == "reused" ? " (reused)" : "");
      if (r.exact_error > 0 && r.fixed.ok) {
        gap = Fmt("%+.3f", 100.0 * (r.fixed.error - r.exact_error) / r.exact_error);
      }
    }
    std::string search_s = "n/a", search_ratio = "n/a", pick = "n/a", search_mem = "n/a";
    if (r.search_done && r.search.ok) {
      search_s = Seconds(r.search.seconds);
      search_ratio = r.fixed.ok ? Ratio(r.search.seconds, r.fixed.seconds, "%.1f") : "n/a";
      pick = ShapeText(r.search.k1, r.search.n1, r.search.k2, r.search.n2) + " (r " +
             std::to_string(r.search.rank) + ", " + Fmt("%.4f", r.search.error) + "; " +
             std::to_string(r.search.full_evaluations) + "/" + std::to_string(r.search.candidates) +
             " full)";
      search_mem = Ratio(static_cast<double>(r.search.extra_bytes), weight_bytes);
    } else if (r.search_done && r.search.timed_out) {
      const bool ran = r.search.seconds > 0;
      search_s = ran ? "> " + Fmt("%.0f", r.search.seconds) : "skipped";
      search_ratio =
          ran && r.fixed.ok ? "> " + Ratio(r.search.seconds, r.fixed.seconds, "%.0f") : "n/a";
      pick = ran ? "killed at the limit" : "skipped (a lower rank hit the limit)";
    }
    std::printf(
        "| %s | %lldx%lld | %s (%lldx%lld) | %lld | %s | %s | %s | %s | %s | %s | %s | %s | %s | "
        "%s | %s | %s |\n",
        r.kind.c_str(), static_cast<long long>(r.K), static_cast<long long>(r.N),
        ShapeText(s.k1, s.n1, s.k2, s.n2).c_str(), static_cast<long long>(s.k1 * s.n1),
        static_cast<long long>(s.k2 * s.n2), static_cast<long long>(r.rank),
        r.fixed.ok ? MethodText(r.fixed).c_str() : "failed",
        r.fixed.ok ? Seconds(r.fixed.seconds).c_str() : "n/a", exact_s.c_str(),
        r.fixed.ok ? Fmt("%.6f", r.fixed.error).c_str() : "n/a",
        r.exact_error >= 0 ? Fmt("%.6f", r.exact_error).c_str() : "n/a", gap.c_str(),
        search_s.c_str(), search_ratio.c_str(), pick.c_str(),
        Ratio(static_cast<double>(r.fixed.extra_bytes), weight_bytes).c_str(),
        Ratio(static_cast<double>(r.exact_extra), weight_bytes).c_str(), search_mem.c_str());
  }
  std::printf("\nNotes:\n");
  std::printf(
      "- auto = kfc::kron::Factorize with default FactorizeOptions (SvdMethod::kAuto); exact = "
      "svd.method = kExact (dgesdd of the whole R). The exact SVD computes every singular value "
      "whatever the rank, so it is timed once per weight (at the smallest rank, marked measured) "
      "and that time and its spectrum serve every rank (marked reused). The randomized method "
      "names the precision of its subspace passes (--precision, here %s); its last pass and its "
      "error are double either way.\n",
      o.precision.c_str());
  std::printf(
      "- gap %% = (auto error - exact error) / exact error; errors are ||W - W_hat||_F / "
      "||W||_F as Factorize reports them (exact for the returned factors).\n");
  std::printf(
      "- search = SearchShape with max_params = rank * the balanced shape's parameters per term "
      "(what --shape auto -r R does); search / fixed = its time over the auto Factorize time at "
      "that rank. 'k/n full' = shapes given full-accuracy work / shapes considered.\n");
  std::printf(
      "- mem X / W = peak extra resident memory of one call in a fresh child process (VmHWM "
      "after - VmRSS before, BLAS threads warmed up first) over the weight's bytes K*N*4.\n");
  std::printf("- times are medians of up to %d runs while runs total under 2 s, else one run.\n",
              o.repeats);
  std::printf("%s", kKindNotes);
#ifndef KFC_BENCH_HAVE_SHAPE_SEARCH
  std::printf("- SearchShape not measured: built without lib/kfc/kron/shape_search.cc.\n");
#endif
  for (const std::string& note : notes) std::printf("- %s\n", note.c_str());
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const char* threads = std::getenv("OPENBLAS_NUM_THREADS");
  std::printf(
      "- environment: %ld CPUs online, OPENBLAS_CORETYPE=%s, OPENBLAS_NUM_THREADS=%s, load "
      "average %s at the start and %s at the end (other work on the machine skews times)\n",
      sysconf(_SC_NPROCESSORS_ONLN), coretype ? coretype : "(unset)", threads ? threads : "(unset)",
      load_start.c_str(), LoadAverage().c_str());

  if (!o.tsv_path.empty()) {
    std::ofstream tsv(o.tsv_path);
    tsv << "kind\tK\tN\tk1\tn1\tk2\tn2\trank\tauto_method\tauto_s\tauto_error\tauto_extra_bytes"
           "\texact_state\texact_s\texact_error\texact_extra_bytes\tsearch_state\tsearch_s"
           "\tsearch_shape"
           "\tsearch_rank\tsearch_error\tsearch_extra_bytes\tweight_bytes\n";
    tsv.precision(10);
    for (const Row& r : rows) {
      const KronShape& s = r.shape;
      const bool search_ok = r.search_done && r.search.ok;
      const char* search_state = !r.search_done         ? "none"
                                 : r.search.ok          ? "ok"
                                 : !r.search.timed_out  ? "failed"
                                 : r.search.seconds > 0 ? "timed_out"
                                                        : "skipped";
      tsv << r.kind << '\t' << r.K << '\t' << r.N << '\t' << s.k1 << '\t' << s.n1 << '\t' << s.k2
          << '\t' << s.n2 << '\t' << r.rank << '\t' << (r.fixed.ok ? MethodText(r.fixed) : "failed")
          << '\t' << (r.fixed.ok ? r.fixed.seconds : -1.0) << '\t'
          << (r.fixed.ok ? r.fixed.error : -1.0) << '\t' << r.fixed.extra_bytes << '\t'
          << r.exact_state << '\t' << r.exact_seconds << '\t' << r.exact_error << '\t'
          << r.exact_extra << '\t' << search_state << '\t'
          << (search_ok || r.search.timed_out ? r.search.seconds : -1.0) << '\t'
          << (search_ok ? ShapeText(r.search.k1, r.search.n1, r.search.k2, r.search.n2) : "n/a")
          << '\t' << (search_ok ? r.search.rank : -1) << '\t' << (search_ok ? r.search.error : -1.0)
          << '\t' << (search_ok ? r.search.extra_bytes : -1) << '\t' << 4 * r.K * r.N << '\n';
    }
    if (!tsv) {
      std::fprintf(stderr, "kfc_kron_bench: cannot write %s\n", o.tsv_path.c_str());
      return 1;
    }
  }
  return 0;
}
