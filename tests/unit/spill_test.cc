// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/io/spill (the nameless file factors wait in until the output is written) and
// io::StreamModel (the model's bytes streamed with spilled and external tensors copied in):
// nothing is ever left in the folder, identical bytes share one range, and the streamed bytes
// equal SerializeModel of the model with every tensor read inline, for tensors in the main graph,
// in If branches, in a Constant node and in a function, at sizes across the varint boundaries.
#include "kfc/io/spill.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kfc/io/external_data.h"
#include "kfc/io/model_io.h"
#include "tests/support/test_util.h"

namespace kfc::io {
namespace {

using testing::TempDir;

// `bytes` bytes of a pattern that differs with `seed`.
std::string Pattern(size_t bytes, uint32_t seed) {
  std::string s(bytes, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

onnx::TensorProto Uint8Tensor(const std::string& name, const std::string& bytes) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::UINT8);
  t.add_dims(static_cast<int64_t>(bytes.size()));
  t.set_raw_data(bytes);
  return t;
}

TEST(SpillFileTest, LeavesNothingInTheFolderAndReadsBack) {
  TempDir dir;
  {
    SpillFile spill;
    ASSERT_TRUE(spill.Open(dir.File("out.onnx")).ok());
    onnx::TensorProto t = Uint8Tensor("a", Pattern(100000, 1));
    ASSERT_TRUE(spill.Spill(&t).ok());
    EXPECT_TRUE(dir.List().empty()) << "the spill has no name";
    EXPECT_TRUE(IsSpilled(t));
    EXPECT_FALSE(t.has_raw_data());
    std::string back(100000, '\0');
    ASSERT_TRUE(spill.Read(0, back.data(), back.size()).ok());
    EXPECT_EQ(back, Pattern(100000, 1));
  }
  EXPECT_TRUE(dir.List().empty());
}

TEST(SpillFileTest, IdenticalBytesShareOneRange) {
  TempDir dir;
  SpillFile spill;
  ASSERT_TRUE(spill.Open(dir.File("out.onnx")).ok());
  onnx::TensorProto a = Uint8Tensor("a", Pattern(70000, 1));
  onnx::TensorProto b = Uint8Tensor("b", Pattern(70000, 2));
  onnx::TensorProto a2 = Uint8Tensor("a2", Pattern(70000, 1));
  for (auto* t : {&a, &b, &a2}) ASSERT_TRUE(spill.Spill(t).ok());
  auto reference = [](const onnx::TensorProto& t) {
    std::string s;
    for (const auto& e : t.external_data()) s += e.key() + "=" + e.value() + ";";
    return s;
  };
  EXPECT_EQ(reference(a), reference(a2));
  EXPECT_NE(reference(a), reference(b));
  EXPECT_EQ(spill.size(), 140000);
  EXPECT_EQ(spill.bytes_spilled(), 210000);
  EXPECT_EQ(spill.tensors_spilled(), 3);
}

TEST(SpillFileTest, MissingFolderIsAnErrorNamingTheOutput) {
  SpillFile spill;
  Status s = spill.Open("/nonexistent-kfc-folder/out.onnx");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("output '/nonexistent-kfc-folder/out.onnx'"), std::string::npos)
      << s.message();
}

TEST(SpillFileTest, ModelsMayNotReferToTheSpill) {
  TempDir dir;
  onnx::TensorProto t = Uint8Tensor("w", "");
  t.clear_dims();
  t.add_dims(4);
  t.clear_raw_data();
  SetExternalReference(&t, SpillFile::Location(), 0, 4);
  ExternalDataReader reader(dir.File("model.onnx"));
  auto read = reader.Read(t, "initializer 'w'");
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("NUL byte"), std::string::npos) << read.status().message();
}

// A model whose tensors hold the given sizes: in the main graph, in both branches of an If, as a
// Constant node's value (inside a branch) and in a function; `big` more bytes to push the graph
// lengths across varint boundaries.
onnx::ModelProto ModelWithTensors(const std::vector<size_t>& sizes) {
  onnx::ModelProto model = testing::ParseModelText(R"(
    <ir_version: 8, opset_import: ["" : 17, "local" : 1]>
    g (bool c) => (float y) {
      y = If (c) <then_branch = t () => (float a) { a = Constant <value_float = 1.0> () },
                  else_branch = e () => (float b) { b = Constant <value_float = 2.0> () }>
    }
    <domain: "local", opset_import: ["" : 17]>
    f (x) => (z) { z = Identity (x) }
  )");
  uint32_t seed = 0;
  auto* g = model.mutable_graph();
  auto* then_g = g->mutable_node(0)->mutable_attribute(0)->mutable_g();
  auto* else_g = g->mutable_node(0)->mutable_attribute(1)->mutable_g();
  for (size_t size : sizes) {
    ++seed;
    *g->add_initializer() = Uint8Tensor("main" + std::to_string(seed), Pattern(size, seed));
    *then_g->add_initializer() = Uint8Tensor("then" + std::to_string(seed), Pattern(size, seed));
    *else_g->add_initializer() = Uint8Tensor("else" + std::to_string(seed), Pattern(size, ~seed));
  }
  auto* value = then_g->mutable_node(0)->mutable_attribute(0);
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->clear_f();
  *value->mutable_t() = Uint8Tensor("", Pattern(sizes.back(), 99));
  auto* fn_node = model.mutable_functions(0)->add_node();
  fn_node->set_op_type("Constant");
  fn_node->add_output("k");
  auto* fn_value = fn_node->add_attribute();
  fn_value->set_name("value");
  fn_value->set_type(onnx::AttributeProto::TENSOR);
  *fn_value->mutable_t() = Uint8Tensor("", Pattern(sizes.front(), 98));
  return model;
}

// Moves every tensor of the model to the spill or (every other one) to an input data file, then
// streams it: the bytes must equal SerializeModel of the model as it was.
void ExpectStreamEqualsSerialized(const std::vector<size_t>& sizes) {
  const onnx::ModelProto original = ModelWithTensors(sizes);
  auto want = SerializeModel(original);
  ASSERT_TRUE(want.ok());
  TempDir dir;
  SpillFile spill;
  ASSERT_TRUE(spill.Open(dir.File("out.onnx")).ok());
  onnx::ModelProto model = original;
  std::string data;  // every other tensor goes to the input's data file
  int n = 0;
  ASSERT_TRUE(ForEachTensor(&model, [&](onnx::TensorProto* t, const std::string&) -> Status {
                if (++n % 2 == 0) return spill.Spill(t);
                const std::string bytes = t->raw_data();
                t->clear_raw_data();
                SetExternalReference(t, "in.data", static_cast<int64_t>(data.size()),
                                     static_cast<int64_t>(bytes.size()));
                data += bytes;
                return Status::Ok();
              }).ok());
  EXPECT_EQ(n, static_cast<int>(3 * sizes.size() + 2))
      << "every tensor: graphs, Constant, function";
  testing::WriteText(data, dir.File("in.data"));
  ExternalDataReader reader(dir.File("in.onnx"));
  reader.set_spill(&spill);
  const std::string before = SerializeModel(model).value();
  std::string got;
  auto size = StreamModel(
      &model, [](const onnx::TensorProto&) { return true; }, &reader,
      [&](const char* p, size_t s) {
        got.append(p, s);
        return Status::Ok();
      });
  ASSERT_TRUE(size.ok()) << size.status().message();
  EXPECT_EQ(*size, static_cast<int64_t>(want->size()));
  EXPECT_TRUE(got == *want) << "streamed " << got.size() << " bytes, serialized " << want->size();
  EXPECT_EQ(SerializeModel(model).value(), before) << "the model is restored";
  auto size_only = StreamModel(
      &model, [](const onnx::TensorProto&) { return true; }, nullptr, nullptr);
  ASSERT_TRUE(size_only.ok());
  EXPECT_EQ(*size_only, static_cast<int64_t>(want->size()));
}

TEST(StreamModelTest, EqualsSerializeModelAcrossVarintBoundaries) {
  ExpectStreamEqualsSerialized({1, 127, 128, 129});
  ExpectStreamEqualsSerialized({16383, 16384, 100});
  ExpectStreamEqualsSerialized({2097151, 2097152, 5});
  ExpectStreamEqualsSerialized({0, 1000, 70000});
}

TEST(StreamModelTest, OnlySelectedTensorsAreInlined) {
  const onnx::ModelProto original = ModelWithTensors({300, 200000});
  TempDir dir;
  SpillFile spill;
  ASSERT_TRUE(spill.Open(dir.File("out.onnx")).ok());
  onnx::ModelProto model = original;
  onnx::ModelProto expected = original;
  // The main graph's big tensor is spilled but not selected: it stays a reference.
  ASSERT_TRUE(spill.Spill(model.mutable_graph()->mutable_initializer(1)).ok());
  ASSERT_TRUE(spill.Spill(model.mutable_graph()->mutable_initializer(0)).ok());
  *expected.mutable_graph()->mutable_initializer(1) = model.graph().initializer(1);
  ExternalDataReader reader(dir.File("in.onnx"));
  reader.set_spill(&spill);
  const onnx::TensorProto* keep = &model.graph().initializer(1);
  std::string got;
  auto size = StreamModel(
      &model, [&](const onnx::TensorProto& t) { return &t != keep; }, &reader,
      [&](const char* p, size_t s) {
        got.append(p, s);
        return Status::Ok();
      });
  ASSERT_TRUE(size.ok()) << size.status().message();
  EXPECT_TRUE(got == SerializeModel(expected).value());
}

TEST(StreamModelTest, MarkerLookalikesInTheModelStayAsTheyAre) {
  onnx::ModelProto model = ModelWithTensors({20, 20});
  // Inline tensors of the marker's size whose bytes start like one.
  std::string lookalike = std::string("\xff") + "kfc-marker!" + std::string(8, '\0');
  model.mutable_graph()->mutable_initializer(0)->set_raw_data(lookalike);
  const std::string want = SerializeModel(model).value();
  TempDir dir;
  SpillFile spill;
  ASSERT_TRUE(spill.Open(dir.File("out.onnx")).ok());
  onnx::ModelProto spilled = model;
  ASSERT_TRUE(spill.Spill(spilled.mutable_graph()->mutable_initializer(1)).ok());
  ExternalDataReader reader(dir.File("in.onnx"));
  reader.set_spill(&spill);
  std::string got;
  ASSERT_TRUE(StreamModel(
                  &spilled, [](const onnx::TensorProto&) { return true; }, &reader,
                  [&](const char* p, size_t s) {
                    got.append(p, s);
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_TRUE(got == want);
}

}  // namespace
}  // namespace kfc::io
