// SPDX-License-Identifier: Apache-2.0
// Names and data a model or a probe can carry that once broke the tool (issue 18 items 6 and 9,
// issue 13 item 4): shared and invalid-UTF-8 names in plans, terminal escapes in names, float16
// calibration activations.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kfc/io/model_io.h"
#include "kfc/tensor/tensor.h"
#include "kfc_report.pb.h"
#include "tests/support/test_util.h"

namespace kfc {
namespace {

using testing::ProcessResult;
using testing::RunProcess;
using testing::TempDir;

const std::string kBin = KFC_COMPRESS_BIN;
const std::string kDigits = std::string(KFC_SOURCE_DIR) + "/testdata/digits_mlp.onnx";

ProcessResult Cli(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/timeout", "60", kBin});
  return RunProcess(args);
}

using testing::ReadFile;

// The digits MLP (Gemm fc1 64x256, fc2 256x128, fc3 128x10) with its three nodes renamed.
std::string Renamed(const TempDir& dir, const std::string& file, const std::string& a,
                    const std::string& b, const std::string& c) {
  auto model = io::LoadModel(kDigits);
  EXPECT_TRUE(model.ok());
  const std::string names[] = {a, b, c};
  int i = 0;
  for (auto& n : *model->mutable_graph()->mutable_node()) {
    if (n.op_type() == "Gemm") n.set_name(names[i++]);
  }
  EXPECT_EQ(i, 3);
  testing::WriteModel(*model, dir.File(file));
  return dir.File(file);
}

// The model's bytes without its kfc_compress.options metadata entry.
std::string WithoutOptions(const std::string& path) {
  auto m = io::LoadModel(path);
  EXPECT_TRUE(m.ok());
  if (!m.ok()) return "";
  auto* props = m->mutable_metadata_props();
  for (int p = 0; p < props->size(); ++p) {
    if (props->Get(p).key() == "kfc_compress.options") {
      props->DeleteSubrange(p, 1);
      break;
    }
  }
  auto bytes = io::SerializeModel(*m);
  return bytes.ok() ? *bytes : "";
}

// Item 6: --plan-out then --plan gives the same bytes, with no warning, whatever the names.
TEST(HostileNamesTest, PlanOutThenPlanReproducesTheRunWithSharedOrInvalidNames) {
  TempDir dir;
  const std::vector<std::array<std::string, 3>> cases = {
      {"dup", "dup", "dup"},             // one name for all three nodes
      {"fc1", "fc1.weight", "fc3"},      // a node named like another layer's weight
      {"a\xff", "a\xfe", "a\xc3"},       // invalid UTF-8, all written as "a\uFFFD"
      {"", "fc1.weight", "fc2.weight"},  // unnamed node (keyed by weight) and both at once
  };
  int n = 0;
  for (const auto& names : cases) {
    SCOPED_TRACE(n);
    const std::string model =
        Renamed(dir, "m" + std::to_string(n) + ".onnx", names[0], names[1], names[2]);
    const std::string a = dir.File("a" + std::to_string(n) + ".onnx");
    const std::string b = dir.File("b" + std::to_string(n) + ".onnx");
    const std::string plan = dir.File("p" + std::to_string(n) + ".txt");
    auto r = Cli({model, "--ratio", "0.2", "--min-params", "0", "-q", "-o", a, "--plan-out", plan});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Cli({model, "--plan", plan, "--min-params", "0", "-o", b});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err.find("matches no layer"), std::string::npos) << r.err;
    // The same model but for the provenance's record of the options, which differ by design.
    EXPECT_EQ(WithoutOptions(a), WithoutOptions(b)) << ReadFile(plan);
    ++n;
  }
}

TEST(HostileNamesTest, PlanEntriesThatMatchNothingAreWarnings) {
  TempDir dir;
  testing::WriteText(
      "layers { name: \"fc1\" rank: 2 }\nlayers { name: \"nope\" rank: 2 }\n"
      "layers { name: \"fc2\" occurrence: 2 rank: 3 }\nlayers { regex: \"^zz\" skip: true }\n",
      dir.File("p.txt"));
  auto r = Cli({kDigits, "--plan", dir.File("p.txt"), "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("entry 2 (name 'nope') matches no layer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("entry 3 (name 'fc2' occurrence 2) matches no layer"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("entry 4 (regex '^zz') matches no layer"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("entry 1 "), std::string::npos) << r.err;
}

// Item 9: terminal escapes and newlines in names are shown escaped on stdout and stderr.
TEST(HostileNamesTest, EscapesAndNewlinesInNamesAreEscaped) {
  TempDir dir;
  const std::string model = Renamed(dir, "m.onnx", "red\x1b[31mX", "two\nlines",
                                    "c1\xc2\x9b"
                                    "2J");
  for (const char* json : {"", "--json"}) {
    std::vector<std::string> args = {model, "-r", "4", "-v", "--dry-run"};
    if (*json) args.push_back(json);
    auto r = Cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const std::string* text : {&r.out, &r.err}) {
      EXPECT_EQ(text->find('\x1b'), std::string::npos) << *text;
      EXPECT_EQ(text->find("\xc2\x9b"), std::string::npos) << *text;
      EXPECT_EQ(text->find("two\nlines"), std::string::npos) << *text;
    }
    if (!*json) {
      EXPECT_NE(r.out.find("red\\x1b[31mX"), std::string::npos) << r.out;
      EXPECT_NE(r.err.find("two\\x0alines"), std::string::npos) << r.err;
    } else {
      report::Report rep;  // JSON keeps the names exactly
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
      EXPECT_EQ(rep.layers(0).node_name(), "red\x1b[31mX");
    }
  }
}

// Issue 13 item 4: a float16 probe's activations (and big-endian ones) calibrate like float32.
TEST(HostileNamesTest, Float16AndBigEndianActivationsCalibrate) {
  TempDir dir;
  ASSERT_EQ(Cli({kDigits, "--calibration-probe", dir.File("probe.onnx")}).exit_code, 0);
  std::filesystem::create_directory(dir.File("acts"));
  std::filesystem::copy_file(dir.File("probe.calib.json"), dir.File("acts/kfc_calibration.json"));
  const std::pair<const char*, int64_t> tensors[] = {
      {"kfc_calib_0", 64}, {"kfc_calib_1", 256}, {"kfc_calib_2", 128}};
  int t = 0;
  for (const auto& [name, k] : tensors) {
    const auto rows = testing::RandomVector(static_cast<size_t>(40 * k), 3);
    // float16 for two tensors, big-endian float32 for the third.
    const bool half = t++ < 2;
    std::string data;
    for (float v : rows) {
      if (half) {
        const uint16_t h = tensor::FloatToHalfBits(v);
        data += static_cast<char>(h & 0xff);
        data += static_cast<char>(h >> 8);
      } else {
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        for (int s = 24; s >= 0; s -= 8) data += static_cast<char>((bits >> s) & 0xff);
      }
    }
    std::string header = std::string("{'descr': '") + (half ? "<f2" : ">f4") +
                         "', 'fortran_order': False, 'shape': (40, " + std::to_string(k) + "), }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::string bytes("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(header.size() & 0xff);
    bytes += static_cast<char>(header.size() >> 8);
    testing::WriteText(bytes + header + data, dir.File(std::string("acts/") + name + ".npy"));
  }
  auto r = Cli({kDigits, "-r", "8", "--calibration", dir.File("acts"), "--dry-run", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  int calibrated = 0;
  for (const auto& l : rep.layers()) calibrated += l.calibrated();
  EXPECT_EQ(calibrated, 2) << r.out;  // fc1 and fc2 (fc3 is below --min-params)
}

}  // namespace
}  // namespace kfc

namespace kfc {
namespace {

// Item 9: a Gemm alpha of NaN or Inf is a clear error naming the node (it gave non-finite factors
// with exit 0).
TEST(HostileModelTest, NonFiniteGemmAlphaIsAnErrorNamingTheNode) {
  TempDir dir;
  for (const float alpha : {std::nanf(""), INFINITY, -INFINITY}) {
    auto model = io::LoadModel(kDigits);
    ASSERT_TRUE(model.ok());
    for (auto& n : *model->mutable_graph()->mutable_node()) {
      if (n.name() != "fc2") continue;
      auto* a = n.add_attribute();
      a->set_name("alpha");
      a->set_type(onnx::AttributeProto::FLOAT);
      a->set_f(alpha);
    }
    testing::WriteModel(*model, dir.File("m.onnx"));
    auto r = Cli({dir.File("m.onnx"), "-r", "4", "-q", "-o", dir.File("o.onnx")});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("'fc2'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("alpha"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir.File("o.onnx")));
  }
}

// Item 9: a weight stored as a sparse initializer: the model compresses (the layer is skipped
// with a reason), it does not fail.
TEST(HostileModelTest, SparseInitializerWeightDoesNotFailTheModel) {
  TempDir dir;
  auto model = io::LoadModel(kDigits);
  ASSERT_TRUE(model.ok());
  auto* g = model->mutable_graph();
  for (int i = 0; i < g->initializer_size(); ++i) {
    if (g->initializer(i).name() != "fc2.weight") continue;
    onnx::TensorProto dense = g->initializer(i);
    auto* sparse = g->add_sparse_initializer();
    *sparse->mutable_dims() = dense.dims();
    auto* values = sparse->mutable_values();
    values->set_name("fc2.weight");
    values->set_data_type(onnx::TensorProto::FLOAT);
    auto* indices = sparse->mutable_indices();
    indices->set_name("fc2.weight_indices");
    indices->set_data_type(onnx::TensorProto::INT64);
    const auto* data = reinterpret_cast<const float*>(dense.raw_data().data());
    const int64_t count = static_cast<int64_t>(dense.raw_data().size() / 4);
    int64_t nonzero = 0;
    for (int64_t j = 0; j < count; j += 3) {  // every third element
      values->add_float_data(data[j]);
      indices->add_int64_data(j);
      ++nonzero;
    }
    values->add_dims(nonzero);
    indices->add_dims(nonzero);
    g->mutable_initializer()->DeleteSubrange(i, 1);
    break;
  }
  testing::WriteModel(*model, dir.File("m.onnx"));
  auto r = Cli({dir.File("m.onnx"), "-r", "4", "--json", "-o", dir.File("o.onnx")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  for (const auto& l : rep.layers()) {
    if (l.node_name() == "fc1") {
      EXPECT_TRUE(l.compressed());
    }
    if (l.node_name() == "fc2") {
      EXPECT_FALSE(l.compressed());
      EXPECT_FALSE(l.skip_reason().empty());
    }
  }
  EXPECT_TRUE(io::LoadModel(dir.File("o.onnx")).ok());
}

}  // namespace
}  // namespace kfc
