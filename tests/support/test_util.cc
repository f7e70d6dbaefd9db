// SPDX-License-Identifier: Apache-2.0
#include "tests/support/test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
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

std::string MakeExternal(onnx::TensorProto* t, const std::string& location, int64_t offset,
                         int64_t length) {
  std::string bytes = t->raw_data();
  if (bytes.empty() && t->float_data_size() > 0) {
    bytes.resize(sizeof(float) * static_cast<size_t>(t->float_data_size()));
    std::memcpy(bytes.data(), t->float_data().data(), bytes.size());
  }
  t->clear_raw_data();
  t->clear_float_data();
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  std::vector<std::pair<std::string, std::string>> entries = {{"location", location},
                                                              {"offset", std::to_string(offset)}};
  if (length >= 0) entries.emplace_back("length", std::to_string(length));
  for (const auto& [key, value] : entries) {
    auto* e = t->add_external_data();
    e->set_key(key);
    e->set_value(value);
  }
  return bytes;
}

onnx::ModelProto ProjModel() {
  auto model = ParseModelText(
      "<ir_version: 8, opset_import: [\"\" : 13]>\n"
      "agraph (float[N, 64] x) => (float[N, 96] y) {\n  y = MatMul(x, W)\n}");
  model.mutable_graph()->mutable_node(0)->set_name("proj");
  AddRandomInitializer(&model, "W", {64, 96}, 7);
  return model;
}

std::string WriteExternalModel(const std::string& dir, const std::string& location, int64_t offset,
                               int64_t length, bool write_data, int64_t trailing) {
  onnx::ModelProto model = ProjModel();
  const std::string bytes =
      MakeExternal(model.mutable_graph()->mutable_initializer(0), location, offset, length);
  if (write_data) {
    WriteText(std::string(static_cast<size_t>(offset), '\0') + bytes +
                  std::string(static_cast<size_t>(trailing), '\0'),
              (fs::path(dir) / location).string());
  }
  const std::string path = dir + "/model.onnx";
  WriteModel(model, path);
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace kfc::testing
