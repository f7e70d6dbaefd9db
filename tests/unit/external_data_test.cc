// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/io/external_data and the external data side of SaveModel: resolving
// external tensors (initializers, Constant values, subgraphs), the path rules, every way the
// location, range or size can be wrong, the light copy the checker sees, and writing the output
// with external data (aligned, deterministic, atomic, automatic above the inline limit).
#include "kfc/io/external_data.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/tensor/tensor.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc::io {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::MessageDifferencer;
using testing::TempDir;
using testing::WriteText;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

onnx::ModelProto InlineModel() { return testing::ProjModel(); }

constexpr int64_t kWBytes = 64 * 96 * 4;
using testing::WriteExternalModel;

StatusOr<onnx::ModelProto> Load(const std::string& path) {
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, LoadModel(path));
  KFC_RETURN_IF_ERROR(LoadExternalData(&model, path).status());
  return model;
}

void ExpectError(const std::string& path, StatusCode code,
                 const std::vector<std::string>& needles) {
  auto m = Load(path);
  ASSERT_FALSE(m.ok()) << "loaded " << path;
  EXPECT_EQ(m.status().code(), code) << m.status().message();
  for (const auto& needle : needles) {
    EXPECT_TRUE(Contains(m.status().message(), needle)) << m.status().message();
  }
}

// Writes `model` as model.onnx in `dir`, then expects Load to fail as ExpectError says.
void ExpectModelError(const onnx::ModelProto& model, const TempDir& dir, StatusCode code,
                      const std::vector<std::string>& needles) {
  testing::WriteModel(model, dir.File("model.onnx"));
  ExpectError(dir.File("model.onnx"), code, needles);
}

// --- reading ---

TEST(LoadExternalDataTest, InitializerIsInlinedWithTheSameValues) {
  TempDir dir;
  const std::string path = WriteExternalModel(dir.path(), "w.data", 4096, kWBytes);
  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status().message();
  ASSERT_TRUE(tensor::HasExternalData(model->graph().initializer(0)));
  auto stats = LoadExternalData(&*model, path);
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->tensors, 1);
  EXPECT_EQ(stats->bytes, kWBytes);
  ASSERT_EQ(stats->files.size(), 1u);
  EXPECT_EQ(stats->files[0], fs::canonical(dir.File("w.data")).string());

  const onnx::TensorProto& w = model->graph().initializer(0);
  EXPECT_FALSE(tensor::HasExternalData(w));
  EXPECT_EQ(w.external_data_size(), 0);
  auto got = tensor::DecodeFloat32(w);
  auto want = tensor::DecodeFloat32(InlineModel().graph().initializer(0));
  ASSERT_TRUE(got.ok() && want.ok());
  EXPECT_EQ(*got, *want);
  // The checker and shape inference accept the resolved model (they could not find the data file
  // from the working folder before).
  EXPECT_TRUE(pipeline::CheckModel(*model, "model").ok());
}

TEST(LoadExternalDataTest, MissingLengthReadsToTheEndOfTheFile) {
  TempDir dir;
  auto m = Load(WriteExternalModel(dir.path(), "w.data", 64, -1));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->graph().initializer(0).raw_data().size(), static_cast<size_t>(kWBytes));
}

TEST(LoadExternalDataTest, ConstantValuesAndSubgraphInitializersAreResolved) {
  TempDir dir;
  onnx::ModelProto model = InlineModel();
  onnx::TensorProto w = model.graph().initializer(0);
  model.mutable_graph()->clear_initializer();
  // W as a Constant node's value, and a copy as an initializer of a subgraph (an If branch).
  auto* constant = model.mutable_graph()->add_node();
  constant->set_op_type("Constant");
  constant->add_output("W");
  auto* value = constant->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  *value->mutable_t() = w;
  auto* branch = model.mutable_graph()->add_node();
  branch->set_op_type("If");
  branch->set_name("branch");
  auto* g = branch->add_attribute();
  g->set_name("then_branch");
  g->set_type(onnx::AttributeProto::GRAPH);
  g->mutable_g()->set_name("then");
  *g->mutable_g()->add_initializer() = w;
  const std::string a = testing::MakeExternal(value->mutable_t(), "w.data", 0, kWBytes);
  const std::string b =
      testing::MakeExternal(g->mutable_g()->mutable_initializer(0), "./w.data", 0, kWBytes);
  ASSERT_EQ(a, b);
  WriteText(a, dir.File("w.data"));
  testing::WriteModel(model, dir.File("model.onnx"));

  auto loaded = LoadModel(dir.File("model.onnx"));
  ASSERT_TRUE(loaded.ok());
  auto stats = LoadExternalData(&*loaded, dir.File("model.onnx"));
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->tensors, 2);
  EXPECT_EQ(stats->files.size(), 1u) << "one file, two spellings: opened once";
  EXPECT_EQ(loaded->graph().node(1).attribute(0).t().raw_data(), a);
  EXPECT_EQ(loaded->graph().node(2).attribute(0).g().initializer(0).raw_data(), a);
}

TEST(LoadExternalDataTest, ErrorsNameTheSubgraphAndTheConstantNode) {
  TempDir dir;
  onnx::ModelProto model = InlineModel();
  auto* node = model.mutable_graph()->add_node();
  node->set_op_type("If");
  node->set_name("branch");
  auto* g = node->add_attribute();
  g->set_name("else_branch");
  g->mutable_g()->set_name("else");
  auto* c = g->mutable_g()->add_node();
  c->set_op_type("Constant");
  c->add_output("k");
  auto* value = c->add_attribute();
  value->set_name("value");
  *value->mutable_t() = model.graph().initializer(0);
  testing::MakeExternal(value->mutable_t(), "gone.data", 0, kWBytes);
  testing::WriteModel(model, dir.File("model.onnx"));
  ExpectError(
      dir.File("model.onnx"), StatusCode::kNotFound,
      {"attribute 'value' of the Constant node writing 'k' in graph 'else'", "'gone.data'"});
}

// --- path rules ---

TEST(ExternalPathRulesTest, AbsoluteLocationIsRejected) {
  TempDir dir;
  WriteText(std::string(kWBytes, '\0'), dir.File("w.data"));
  ExpectError(WriteExternalModel(dir.path(), dir.File("w.data"), 0, kWBytes, false),
              StatusCode::kInvalidArgument,
              {"initializer 'W'", "'" + dir.File("w.data") + "'", "absolute path"});
}

TEST(ExternalPathRulesTest, DotDotIsRejectedEvenWhenItStaysInside) {
  TempDir dir;
  fs::create_directory(dir.File("m"));
  WriteText(std::string(kWBytes, '\0'), dir.File("m/w.data"));
  for (const std::string location : {"../w.data", "../m/w.data", "sub/../w.data"}) {
    ExpectError(WriteExternalModel(dir.File("m"), location, 0, kWBytes, false),
                StatusCode::kInvalidArgument, {"initializer 'W'", "'" + location + "'", "'..'"});
  }
}

TEST(ExternalPathRulesTest, SymlinkEscapingTheFolderIsRejected) {
  TempDir dir;
  fs::create_directory(dir.File("m"));
  WriteText(std::string(kWBytes, '\0'), dir.File("outside.data"));
  fs::create_symlink("../outside.data", dir.File("m/link.data"));
  fs::create_directory_symlink(dir.path(), dir.File("m/up"));
  ExpectError(WriteExternalModel(dir.File("m"), "link.data", 0, kWBytes, false),
              StatusCode::kInvalidArgument,
              {"initializer 'W'", "'link.data'", "outside the model's folder"});
  ExpectError(WriteExternalModel(dir.File("m"), "up/outside.data", 0, kWBytes, false),
              StatusCode::kInvalidArgument, {"'up/outside.data'", "outside the model's folder"});
}

TEST(ExternalPathRulesTest, SymlinkInsideTheFolderAndSubfoldersAreFine) {
  TempDir dir;
  fs::create_directory(dir.File("sub"));
  WriteExternalModel(dir.path(), "sub/w.data", 0, kWBytes);
  fs::create_symlink("sub/w.data", dir.File("link.data"));
  EXPECT_TRUE(Load(WriteExternalModel(dir.path(), "sub/w.data", 0, kWBytes, false)).ok());
  auto m = Load(WriteExternalModel(dir.path(), "link.data", 0, kWBytes, false));
  EXPECT_TRUE(m.ok()) << m.status().message();
}

TEST(ExternalPathRulesTest, MissingFileIsNotFound) {
  TempDir dir;
  ExpectError(WriteExternalModel(dir.path(), "absent.data", 0, kWBytes, false),
              StatusCode::kNotFound, {"initializer 'W'", "'absent.data'", "does not exist"});
}

TEST(ExternalPathRulesTest, ADirectoryIsNotADataFile) {
  TempDir dir;
  fs::create_directory(dir.File("w.data"));
  ExpectError(WriteExternalModel(dir.path(), "w.data", 0, kWBytes, false),
              StatusCode::kInvalidArgument, {"'w.data'", "not a regular file"});
}

// --- ranges and sizes ---

TEST(ExternalRangeTest, RangePastTheEndNamesOffsetLengthAndFileSize) {
  TempDir dir;
  const std::string path = WriteExternalModel(dir.path(), "model.data", 4096, kWBytes, false);
  WriteText(std::string(8192, '\0'), dir.File("model.data"));
  auto m = Load(path);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(m.status().message(),
            "initializer 'W': external data [offset 4096, length 24576] exceeds 'model.data' "
            "(8192 bytes)");
}

TEST(ExternalRangeTest, OffsetPastTheEndWithoutLength) {
  TempDir dir;
  const std::string path = WriteExternalModel(dir.path(), "w.data", 100000, -1, false);
  WriteText(std::string(kWBytes, '\0'), dir.File("w.data"));
  ExpectError(path, StatusCode::kDataLoss, {"[offset 100000] exceeds 'w.data' (24576 bytes)"});
}

TEST(ExternalRangeTest, LengthThatDisagreesWithDimsIsRejected) {
  TempDir dir;
  const std::string path = WriteExternalModel(dir.path(), "w.data", 0, kWBytes - 4, true, 4);
  ExpectError(
      path, StatusCode::kDataLoss,
      {"initializer 'W'", "'w.data'", "has 24572 bytes, dims [64, 96] of float32 need 24576"});
}

TEST(ExternalRangeTest, FileRestThatDisagreesWithDimsIsRejected) {
  TempDir dir;
  const std::string path = WriteExternalModel(dir.path(), "w.data", 0, -1, true, 8);
  ExpectError(path, StatusCode::kDataLoss,
              {"to the end of 'w.data' (24584 bytes) is 24584 bytes", "need 24576"});
}

TEST(ExternalRangeTest, BadOffsetOrLengthTextIsRejected) {
  TempDir dir;
  WriteExternalModel(dir.path(), "w.data", 0, kWBytes);
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"offset", "-1"},
                                   {"offset", "12abc"},
                                   {"length", "99999999999999999999"},
                                   {"length", ""}}) {
    onnx::ModelProto model = InlineModel();
    auto* w = model.mutable_graph()->mutable_initializer(0);
    testing::MakeExternal(w, "w.data", 0, kWBytes);
    for (auto& e : *w->mutable_external_data()) {
      if (e.key() == key) e.set_value(value);
    }
    testing::WriteModel(model, dir.File("model.onnx"));
    auto m = Load(dir.File("model.onnx"));
    if (key == "length" && value.empty()) {  // an empty length is no length: to the end
      EXPECT_TRUE(m.ok()) << m.status().message();
      continue;
    }
    ASSERT_FALSE(m.ok()) << key << "=" << value;
    EXPECT_TRUE(Contains(m.status().message(), "external data " + key + " '" + value + "'"))
        << m.status().message();
  }
}

TEST(ExternalRangeTest, DimsWhoseProductOverflowsAreRejected) {
  TempDir dir;
  onnx::ModelProto model = InlineModel();
  auto* w = model.mutable_graph()->mutable_initializer(0);
  testing::MakeExternal(w, "w.data", 0, kWBytes);
  w->set_dims(0, int64_t{1} << 62);
  w->set_dims(1, 4);
  WriteText(std::string(kWBytes, '\0'), dir.File("w.data"));
  ExpectModelError(model, dir, StatusCode::kInvalidArgument, {"initializer 'W'", "overflow int64"});
  // Elements that fit but bytes that do not.
  w->set_dims(0, int64_t{1} << 61);
  w->set_dims(1, 1);
  ExpectModelError(model, dir, StatusCode::kInvalidArgument,
                   {"initializer 'W'", "need more than 2^63 bytes"});
}

TEST(ExternalRangeTest, ExternalTensorWithInlineDataToo) {
  TempDir dir;
  onnx::ModelProto model = InlineModel();
  auto* w = model.mutable_graph()->mutable_initializer(0);
  WriteText(testing::MakeExternal(w, "w.data", 0, kWBytes), dir.File("w.data"));
  w->add_float_data(1.0f);
  ExpectModelError(model, dir, StatusCode::kDataLoss, {"initializer 'W'", "also has inline data"});
}

TEST(InlineDataTest, RawDataThatDisagreesWithDimsIsRejectedAtLoad) {
  TempDir dir;
  onnx::ModelProto model = InlineModel();
  auto* w = model.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_raw_data(std::string(100, '\0'));
  ExpectModelError(
      model, dir, StatusCode::kDataLoss,
      {"initializer 'W': raw_data has 100 bytes, dims [64, 96] of float32 need 24576"});
  w->clear_raw_data();
  w->add_float_data(1.0f);
  ExpectModelError(
      model, dir, StatusCode::kDataLoss,
      {"initializer 'W': float_data has 1 values, dims [64, 96] of float32 need 6144"});
  w->clear_float_data();
  w->set_dims(0, int64_t{1} << 62);
  w->set_dims(1, 8);
  w->set_raw_data(std::string(4, '\0'));
  ExpectModelError(model, dir, StatusCode::kInvalidArgument, {"overflow int64"});
}

// --- the copy the checker sees ---

TEST(CopyForCheckingTest, LargeRawDataBecomesOneElementAndDimsStay) {
  onnx::ModelProto model = InlineModel();
  auto* w = model.mutable_graph()->mutable_initializer(0);
  testing::MakeExternal(w, "x", 0, 0);  // float_data -> bytes, then back inline as raw_data
  w->clear_external_data();
  w->clear_data_location();
  w->set_raw_data(std::string(kWBytes * 4, '\x01'));
  w->set_dims(0, 256);
  auto* small = model.mutable_graph()->add_initializer();
  *small = tensor::EncodeInt64("shape", {2}, {3, 4});
  const onnx::ModelProto copy = CopyForChecking(model);
  ASSERT_EQ(copy.graph().initializer_size(), 2);
  EXPECT_EQ(copy.graph().initializer(0).raw_data(), std::string(4, '\x01'));
  EXPECT_EQ(copy.graph().initializer(0).dims(0), 256);
  EXPECT_EQ(copy.graph().initializer(0).dims(1), 96);
  EXPECT_TRUE(MessageDifferencer::Equals(copy.graph().initializer(1), *small));
  onnx::ModelProto without = model, copy_without = copy;
  without.mutable_graph()->mutable_initializer(0)->clear_raw_data();
  copy_without.mutable_graph()->mutable_initializer(0)->clear_raw_data();
  EXPECT_TRUE(MessageDifferencer::Equals(without, copy_without)) << "only raw_data may differ";
}

TEST(CopyForCheckingTest, CheckModelStillSeesWrongDimsOfALargeWeight) {
  onnx::ModelProto model = InlineModel();
  auto* w = model.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_dims(0, 65);  // x is [N, 64]: MatMul cannot take a [65, 96] weight
  w->set_raw_data(std::string(65 * 96 * 4 * 4, '\0'));
  w->set_dims(1, 96 * 4);
  EXPECT_FALSE(pipeline::CheckModel(model, "model").ok());
  EXPECT_TRUE(pipeline::CheckModel(InlineModel(), "model").ok());
}

// --- writing ---

class SaveExternalTest : public ::testing::Test {
 protected:
  // Two large initializers and two small ones (a scalar and a 2-element shape).
  onnx::ModelProto Model() {
    onnx::ModelProto model = InlineModel();
    testing::AddRandomInitializer(&model, "V", {32, 32}, 3);  // 4096 bytes
    *model.mutable_graph()->add_initializer() = tensor::EncodeFloat32("s", {}, {2.0f});
    *model.mutable_graph()->add_initializer() = tensor::EncodeInt64("shape", {2}, {3, 4});
    // float_data -> raw_data: only raw_data moves out.
    for (auto& t : *model.mutable_graph()->mutable_initializer()) {
      if (t.float_data_size() > 0) {
        t.set_raw_data(testing::MakeExternal(&t, "x", 0, 0));
        t.clear_external_data();
        t.clear_data_location();
      }
    }
    return model;
  }
  TempDir dir_;
};

TEST_F(SaveExternalTest, WritesAlignedDataThatLoadsBackToTheSameModel) {
  onnx::ModelProto model = Model();
  const onnx::ModelProto before = model;
  SaveOptions options;
  options.external_data = true;
  auto saved = SaveModel(&model, dir_.File("out.onnx"), options);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_TRUE(MessageDifferencer::Equals(model, before)) << "the model must be restored";
  EXPECT_EQ(saved->data_path, dir_.File("out.onnx.data"));
  EXPECT_EQ(saved->data_tensors, 2);
  EXPECT_FALSE(saved->automatic);
  EXPECT_EQ(dir_.List(), (std::vector<std::string>{"out.onnx", "out.onnx.data"}));
  EXPECT_EQ(saved->data_bytes, static_cast<int64_t>(fs::file_size(dir_.File("out.onnx.data"))));
  EXPECT_EQ(saved->data_bytes, 24576 + 4096);

  auto header = LoadModel(dir_.File("out.onnx"));
  ASSERT_TRUE(header.ok());
  std::vector<std::string> external;
  for (const auto& t : header->graph().initializer()) {
    if (!tensor::HasExternalData(t)) continue;
    external.push_back(t.name());
    ASSERT_EQ(t.external_data_size(), 3);
    EXPECT_EQ(t.external_data(0).key(), "location");
    EXPECT_EQ(t.external_data(0).value(), "out.onnx.data");
    EXPECT_EQ(t.external_data(1).key(), "offset");
    EXPECT_EQ(std::stoll(t.external_data(1).value()) % kExternalDataAlignment, 0);
    EXPECT_EQ(t.external_data(2).key(), "length");
  }
  EXPECT_EQ(external, (std::vector<std::string>{"W", "V"}));
  auto loaded = Load(dir_.File("out.onnx"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE(MessageDifferencer::Equals(*loaded, before));
}

TEST_F(SaveExternalTest, SameModelAndOptionsGiveIdenticalBytes) {
  SaveOptions options;
  options.external_data = true;
  options.data_file = "weights.bin";
  onnx::ModelProto a = Model(), b = Model();
  ASSERT_TRUE(SaveModel(&a, dir_.File("a.onnx"), options).ok());
  const std::string model_a = ReadAll(dir_.File("a.onnx")),
                    data_a = ReadAll(dir_.File("weights.bin"));
  ASSERT_TRUE(SaveModel(&b, dir_.File("a.onnx"), options).ok());
  EXPECT_EQ(ReadAll(dir_.File("a.onnx")), model_a);
  EXPECT_EQ(ReadAll(dir_.File("weights.bin")), data_a);
}

TEST_F(SaveExternalTest, ThresholdAndShapeLikeTensorsStayInline) {
  onnx::ModelProto model = Model();
  SaveOptions options;
  options.external_data = true;
  options.threshold = 0;
  auto saved = SaveModel(&model, dir_.File("out.onnx"), options);
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->data_tensors, 2) << "the scalar and the shape stay inline at threshold 0";
  options.threshold = 4097;
  saved = SaveModel(&model, dir_.File("out.onnx"), options);
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->data_tensors, 1) << "V has 4096 bytes, below the threshold";
}

TEST_F(SaveExternalTest, AboveTheInlineLimitExternalDataIsAutomatic) {
  onnx::ModelProto model = Model();
  SaveOptions options;
  auto saved = SaveModel(&model, dir_.File("small.onnx"), options);
  ASSERT_TRUE(saved.ok());
  EXPECT_TRUE(saved->data_path.empty());
  EXPECT_EQ(dir_.List(), std::vector<std::string>{"small.onnx"});
  options.inline_limit = 20000;  // the 2 GiB limit, lowered
  saved = SaveModel(&model, dir_.File("big.onnx"), options);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_TRUE(saved->automatic);
  EXPECT_EQ(saved->data_path, dir_.File("big.onnx.data"));
  EXPECT_LT(saved->model_bytes, 20000);
  auto loaded = Load(dir_.File("big.onnx"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE(MessageDifferencer::Equals(*loaded, Model()));
}

TEST_F(SaveExternalTest, BadDataFileNamesAreRejectedAndNothingIsWritten) {
  for (const std::string name : {"a/b.data", "..", ".", "/abs.data", "out.onnx"}) {
    onnx::ModelProto model = Model();
    SaveOptions options;
    options.external_data = true;
    options.data_file = name;
    auto saved = SaveModel(&model, dir_.File("out.onnx"), options);
    EXPECT_FALSE(saved.ok()) << name;
    EXPECT_TRUE(dir_.List().empty()) << name;
  }
}

TEST_F(SaveExternalTest, FailureWritingTheModelLeavesNeitherFile) {
  // The model's target is a folder: refused before either file is written (only regular files
  // are replaced), so no data file appears either.
  fs::create_directory(dir_.File("out.onnx"));
  onnx::ModelProto model = Model();
  SaveOptions options;
  options.external_data = true;
  auto saved = SaveModel(&model, dir_.File("out.onnx"), options);
  ASSERT_FALSE(saved.ok());
  EXPECT_TRUE(Contains(saved.status().message(), "is a directory")) << saved.status().message();
  EXPECT_EQ(dir_.List(), std::vector<std::string>{"out.onnx"});
  EXPECT_TRUE(fs::is_empty(dir_.File("out.onnx")));
}

// --- large tensors left in their files (PrepareExternalData), read and copied on demand ---

TEST(PrepareExternalDataTest, LargeTensorsStayExternalAndReadBackTheSameBytes) {
  TempDir dir;
  const std::string path = WriteExternalModel(dir.path(), "w.data", 4096, kWBytes);
  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status().message();
  ExternalDataReader reader(path);
  auto stats = PrepareExternalData(&*model, &reader, kWBytes);  // W has exactly kWBytes: kept
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->tensors, 1);
  EXPECT_EQ(stats->kept, 1);
  EXPECT_EQ(stats->bytes, kWBytes);
  const onnx::TensorProto& w = model->graph().initializer(0);
  ASSERT_TRUE(tensor::HasExternalData(w));
  EXPECT_EQ(ExternalDataBytes(*model), kWBytes);

  auto bytes = reader.Read(w, "W");
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  auto inlined = Load(path);
  ASSERT_TRUE(inlined.ok());
  EXPECT_EQ(*bytes, inlined->graph().initializer(0).raw_data());
  std::string copied;
  int chunks = 0;
  ASSERT_TRUE(reader
                  .Copy(w, "W",
                        [&](const char* data, size_t size) {
                          copied.append(data, size);
                          ++chunks;
                          return Status::Ok();
                        })
                  .ok());
  EXPECT_EQ(copied, *bytes);
  EXPECT_EQ(chunks, 1);
  // The checker sees a placeholder, not the data file (it would look in the working folder).
  EXPECT_TRUE(pipeline::CheckModel(*model, "model").ok());
  const onnx::ModelProto light = CopyForChecking(*model);
  EXPECT_FALSE(tensor::HasExternalData(light.graph().initializer(0)));
  EXPECT_EQ(light.graph().initializer(0).external_data_size(), 0);
  EXPECT_EQ(light.graph().initializer(0).raw_data().size(), 4u);
  EXPECT_EQ(light.graph().initializer(0).dims(1), 96);

  // Below the threshold the tensor is read inline, as LoadExternalData does.
  auto small = LoadModel(path);
  ExternalDataReader reader2(path);
  stats = PrepareExternalData(&*small, &reader2, kWBytes + 1);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->kept, 0);
  EXPECT_TRUE(MessageDifferencer::Equals(*small, *inlined));
}

TEST(PrepareExternalDataTest, KeptTensorsAreCheckedLikeReadOnes) {
  TempDir dir;
  const std::string path = WriteExternalModel(dir.path(), "w.data", 4096, kWBytes + 4);
  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok());
  ExternalDataReader reader(path);
  auto stats = PrepareExternalData(&*model, &reader, 1);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(stats.status().message(), "initializer 'W'")) << stats.status().message();
}

TEST(SaveKeptExternalTest, KeptTensorsAreCopiedOrInlinedAsIfLoadedWhole) {
  TempDir dir, whole_dir;
  const std::string path = WriteExternalModel(dir.path(), "w.data", 4096, kWBytes);
  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok());
  ExternalDataReader reader(path);
  ASSERT_TRUE(PrepareExternalData(&*model, &reader, 1).ok());
  auto whole = Load(path);
  ASSERT_TRUE(whole.ok());

  // External output: W is copied from w.data into the output's data file; the model still refers
  // to the input's file afterwards. Same bytes as saving the fully loaded model.
  SaveOptions options;
  options.external_data = true;
  onnx::ModelProto kept = *model;
  auto saved = SaveModel(&kept, dir.File("out.onnx"), options, &reader);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_TRUE(MessageDifferencer::Equals(kept, *model));
  ASSERT_TRUE(SaveModel(&*whole, whole_dir.File("out.onnx"), options).ok());
  EXPECT_EQ(ReadAll(dir.File("out.onnx")), ReadAll(whole_dir.File("out.onnx")));
  EXPECT_EQ(ReadAll(dir.File("out.onnx.data")), ReadAll(whole_dir.File("out.onnx.data")));

  // Inline output: W is read into the model.
  kept = *model;
  saved = SaveModel(&kept, dir.File("inline.onnx"), SaveOptions{}, &reader);
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  auto back = Load(dir.File("inline.onnx"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->graph().initializer(0).raw_data(), whole->graph().initializer(0).raw_data());

  // Without a reader the kept tensor cannot be written.
  kept = *model;
  saved = SaveModel(&kept, dir.File("no.onnx"), SaveOptions{});
  ASSERT_FALSE(saved.ok());
  EXPECT_TRUE(Contains(saved.status().message(), "no reader")) << saved.status().message();
  EXPECT_FALSE(fs::exists(dir.File("no.onnx")));
}

// --- the pipeline: external input in, automatic external output ---

TEST(CompressFileExternalTest, ExternalInputCompressesAndLargeOutputGoesExternal) {
  TempDir dir;
  const std::string input = WriteExternalModel(dir.path(), "w.data", 0, kWBytes);
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 2;
  options.exclude = {"proj"};  // W stays dense, so the output stays large
  options.save.inline_limit = 10000;
  auto report = pipeline::CompressFile(input, dir.File("out.onnx"), options, false);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_TRUE(report->external_data_automatic());
  EXPECT_EQ(report->external_data_file(), dir.File("out.onnx.data"));
  EXPECT_TRUE(Load(dir.File("out.onnx")).ok());

  options.exclude.clear();
  report = pipeline::CompressFile(input, dir.File("small.onnx"), options, false);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->totals().layers_compressed(), 1);
  EXPECT_FALSE(report->external_data_automatic());
  EXPECT_EQ(report->external_data_file(), "");
  EXPECT_FALSE(fs::exists(dir.File("small.onnx.data")));
}

TEST(CompressFileExternalTest, OutputsThatWouldOverwriteInputDataAreRefused) {
  TempDir dir;
  const std::string input = WriteExternalModel(dir.path(), "w.data", 0, kWBytes);
  const std::string data = ReadAll(dir.File("w.data"));
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 2;
  auto report = pipeline::CompressFile(input, dir.File("w.data"), options, false);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(Contains(report.status().message(), "is an external data file of the input"))
      << report.status().message();
  options.save.external_data = true;
  options.save.data_file = "w.data";
  report = pipeline::CompressFile(input, dir.File("out.onnx"), options, false);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(Contains(report.status().message(), "external data file '" + dir.File("w.data")))
      << report.status().message();
  EXPECT_EQ(ReadAll(dir.File("w.data")), data);
  EXPECT_EQ(dir.List(), (std::vector<std::string>{"model.onnx", "w.data"}));
}

// A weight of 32 MiB or more is read in two halves at once (external_data.cc): every byte must
// land where a single read puts it, whatever the size (here not a multiple of the page size).
TEST(ExternalDataReaderTest, LargeReadsGiveTheSameBytesAsTheFile) {
  TempDir dir;
  constexpr int64_t kRows = 4097, kCols = 2049, kOffset = 4096;
  const size_t size = static_cast<size_t>(kRows * kCols) * sizeof(float);
  ASSERT_GE(size, size_t{32} << 20);
  std::string file(static_cast<size_t>(kOffset) + size, '\0');
  for (size_t i = 0; i < size; ++i) {
    file[static_cast<size_t>(kOffset) + i] = static_cast<char>((i * 131) ^ (i >> 13));
  }
  WriteText(file, dir.File("big.data"));
  onnx::TensorProto w;
  w.set_name("W");
  w.set_data_type(onnx::TensorProto::FLOAT);
  w.add_dims(kRows);
  w.add_dims(kCols);
  w.set_data_location(onnx::TensorProto::EXTERNAL);
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"location", "big.data"},
                                   {"offset", std::to_string(kOffset)},
                                   {"length", std::to_string(size)}}) {
    auto* e = w.add_external_data();
    e->set_key(key);
    e->set_value(value);
  }
  ExternalDataReader reader(dir.File("model.onnx"));
  std::string into(size, '\x55');
  ASSERT_TRUE(reader.ReadInto(w, "W", into.data(), into.size()).ok());
  EXPECT_TRUE(into == file.substr(static_cast<size_t>(kOffset)));
  auto bytes = reader.Read(w, "W");
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  EXPECT_TRUE(*bytes == into);
  EXPECT_EQ(reader.bytes_read(), static_cast<int64_t>(2 * size));
}

// MapInChunks hands a tensor over from a mapping of its file when its offset is aligned, in
// windows of ExternalDataReader::kMapWindowBytes released after use, and reads it through a
// buffer otherwise: the same bytes, chunk by chunk, either way, over several windows and from an
// offset inside a page; a sink's error stops it at that chunk.
TEST(ExternalDataReaderTest, MappedChunksGiveTheSameBytesAsTheFile) {
  TempDir dir;
  constexpr size_t kChunk = 3 * 4096 + 12;  // not a divisor of the window
  const size_t size = 400 * kChunk;         // more than two windows
  ASSERT_GT(size, 2 * ExternalDataReader::kMapWindowBytes);
  std::string file(2 * 4096 + size + 64, '\0');
  for (size_t i = 0; i < file.size(); ++i) file[i] = static_cast<char>((i * 131) ^ (i >> 11));
  WriteText(file, dir.File("big.data"));
  for (const int64_t offset : {int64_t{4100}, int64_t{4098}}) {  // aligned to 4, and not
    onnx::TensorProto w;
    w.set_name("W");
    w.set_data_type(onnx::TensorProto::UINT8);
    w.add_dims(static_cast<int64_t>(size));
    w.set_data_location(onnx::TensorProto::EXTERNAL);
    for (const auto& [key, value] : {std::pair<std::string, std::string>{"location", "big.data"},
                                     {"offset", std::to_string(offset)},
                                     {"length", std::to_string(size)}}) {
      auto* e = w.add_external_data();
      e->set_key(key);
      e->set_value(value);
    }
    ExternalDataReader reader(dir.File("model.onnx"));
    std::string got;
    int chunks = 0;
    ASSERT_TRUE(reader
                    .MapInChunks(w, "W", kChunk, 4,
                                 [&](const char* data, size_t n) {
                                   EXPECT_EQ(n, kChunk);
                                   got.append(data, n);
                                   ++chunks;
                                   return Status::Ok();
                                 })
                    .ok());
    EXPECT_TRUE(got == file.substr(static_cast<size_t>(offset), size)) << offset;
    EXPECT_EQ(chunks, static_cast<int>(size / kChunk));
    EXPECT_EQ(reader.bytes_read(), static_cast<int64_t>(size));
    EXPECT_EQ(reader.mapped_bytes(), offset % 4 == 0 ? static_cast<int64_t>(size) : 0) << offset;

    // A sink's error ends the read there, and is the result.
    chunks = 0;
    const Status stopped = reader.MapInChunks(w, "W", kChunk, 4, [&](const char*, size_t) {
      return ++chunks == 200 ? InvalidArgument("stop here") : Status::Ok();
    });
    EXPECT_EQ(stopped.message(), "stop here");
    EXPECT_EQ(chunks, 200);
    // The data is still readable afterwards (released pages are faulted in again).
    got.clear();
    ASSERT_TRUE(reader
                    .MapInChunks(w, "W", kChunk, 4,
                                 [&](const char* data, size_t n) {
                                   got.append(data, n);
                                   return Status::Ok();
                                 })
                    .ok());
    EXPECT_TRUE(got == file.substr(static_cast<size_t>(offset), size)) << offset;
  }
}

}  // namespace
}  // namespace kfc::io
