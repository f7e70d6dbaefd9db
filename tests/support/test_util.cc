#include "tests/support/test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "onnx/defs/parser.h"

namespace kfc::testing {
namespace fs = std::filesystem;

std::vector<float> RandomVector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

onnx::ModelProto ParseModelText(const std::string& text) {
  onnx::ModelProto model;
  onnx::OnnxParser parser(text.c_str());
  auto status = parser.Parse(model);
  EXPECT_TRUE(status.IsOK()) << status.ErrorMessage() << "\n" << text;
  return model;
}

void AddRandomInitializer(onnx::ModelProto* model, const std::string& name,
                          const std::vector<int64_t>& dims, uint32_t seed) {
  auto* t = model->mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  size_t n = 1;
  for (int64_t d : dims) {
    t->add_dims(d);
    n *= static_cast<size_t>(d);
  }
  for (float v : RandomVector(n, seed)) t->add_float_data(v);
}

std::vector<double> MatMulReference(const std::vector<float>& x, const std::vector<float>& w,
                                    int64_t m, int64_t k, int64_t n) {
  std::vector<double> y(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) y[i * n + j] += double(x[i * k + p]) * w[p * n + j];
  return y;
}

namespace {
std::string Drain(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}
}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv) {
  ProcessResult r;
  TempDir capture;
  const std::string out_path = capture.File("stdout"), err_path = capture.File("stderr");
  pid_t pid = ::fork();
  if (pid == 0) {
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  int fo = ::open(out_path.c_str(), O_RDONLY), fe = ::open(err_path.c_str(), O_RDONLY);
  r.out = Drain(fo);
  r.err = Drain(fe);
  ::close(fo);
  ::close(fe);
  return r;
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "kfc-test-XXXXXX").string();
  char* made = ::mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::vector<std::string> TempDir::List() const {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void WriteModel(const onnx::ModelProto& model, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  ASSERT_TRUE(model.SerializeToOstream(&f)) << path;
}

void WriteText(const std::string& text, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

}  // namespace kfc::testing
