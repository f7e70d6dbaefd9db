// SPDX-License-Identifier: Apache-2.0
// Provenance: SHA-256 (known answers), the metadata replacement, the options text, and what a
// compressed model says about itself (metadata_props and the rewritten nodes' doc_string).
#include "kfc/pipeline/provenance.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "kfc/core/sha256.h"
#include "kfc/io/file_digest.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/rewrite/metadata.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

TEST(Sha256Test, KnownAnswers) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // A million 'a's, fed in uneven pieces across block boundaries.
  Sha256 h;
  const std::string chunk(997, 'a');
  size_t left = 1000000;
  while (left > 0) {
    const size_t n = std::min(left, chunk.size());
    h.Update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(h.HexDigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(FileDigestTest, HashesTheBytesAndNamesAMissingFile) {
  testing::TempDir dir;
  testing::WriteText("abc", dir.File("f"));
  auto d = io::FileSha256(dir.File("f"));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, Sha256Hex("abc"));
  auto missing = io::FileSha256(dir.File("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
}

TEST(MetadataTest, ReplacesOnlyItsOwnPrefix) {
  onnx::ModelProto m;
  auto add = [&](const std::string& k, const std::string& v) {
    auto* e = m.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  };
  add("accuracy", "0.98");
  add("kfc_compress.version", "old");
  add("kfc_compress.stale", "x");
  add("author", "me");
  rewrite::ReplaceMetadata(&m, "kfc_compress.", {{"kfc_compress.version", "new"}});
  ASSERT_EQ(m.metadata_props_size(), 3);
  EXPECT_EQ(m.metadata_props(0).key(), "accuracy");
  EXPECT_EQ(m.metadata_props(1).key(), "author");
  EXPECT_EQ(m.metadata_props(2).key(), "kfc_compress.version");
  EXPECT_EQ(m.metadata_props(2).value(), "new");
}

TEST(ProvenanceTest, OptionsTextHasNoPathsOrThreads) {
  pipeline::Options o = kfc::testing::ToyOptions();
  o.max_error = 0.05;
  o.include = {"fc.*"};
  o.calibration_dir = "/data/calib";
  o.threads = 7;
  o.fail_if_error_above = 0.1;
  EXPECT_EQ(pipeline::OptionsText(o),
            "--max-error 0.05 --shape auto --objective params --node-cost 0 --min-params 4096 "
            "--include 'fc.*' "
            "--calibration DIR --fail-if-error-above 0.1");
  o.threads = 1;
  o.calibration_dir = "/elsewhere";
  EXPECT_EQ(pipeline::OptionsText(o).find("/"), std::string::npos);
  pipeline::Options r = kfc::testing::ToyOptions();
  r.rank = 4;
  r.objective = pipeline::Objective::kMacs;
  r.allow_slower = true;
  EXPECT_EQ(pipeline::OptionsText(r),
            "-r 4 --shape balanced --objective macs --allow-slower-than-dense --node-cost 0 "
            "--min-params 4096");
}

TEST(ProvenanceTest, CompressedModelSaysWhatWasDone) {
  auto model = io::LoadModel(KFC_SOURCE_DIR "/testdata/digits_mlp.onnx");
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto* kept = model->add_metadata_props();
  kept->set_key("licence");
  kept->set_value("Apache-2.0");
  const std::string producer = model->producer_name();
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 4;
  options.input_sha256 = std::string(64, 'a');
  auto result = pipeline::CompressModel(*model, options);
  ASSERT_TRUE(result.ok()) << result.status().message();
  const onnx::ModelProto& out = result->model;
  std::map<std::string, std::string> meta;
  for (const auto& e : out.metadata_props()) meta[e.key()] = e.value();
  EXPECT_EQ(meta["licence"], "Apache-2.0") << "the input's metadata is kept";
  EXPECT_EQ(meta["test_accuracy"], "0.9778");
  EXPECT_EQ(out.metadata_props_size(), model->metadata_props_size() + 8);
  EXPECT_EQ(meta["kfc_compress.version"], KFC_VERSION);
  EXPECT_EQ(meta["kfc_compress.options"],
            "-r 4 --shape balanced --objective params --node-cost 0 --min-params 4096");
  EXPECT_EQ(meta["kfc_compress.input_sha256"], options.input_sha256);
  EXPECT_EQ(meta["kfc_compress.layers_compressed"], "2 of 3");
  EXPECT_FALSE(meta["kfc_compress.model_params"].empty());
  EXPECT_FALSE(meta["kfc_compress.worst_relative_error"].empty());
  EXPECT_EQ(out.producer_name(), producer) << "producer stays the exporter's";
  // Every node of a rewritten layer names the node it replaces; untouched nodes say nothing new.
  int documented = 0;
  for (const auto& n : out.graph().node()) {
    if (n.doc_string().rfind("kfc-compress: ", 0) != 0) continue;
    ++documented;
    EXPECT_TRUE(n.doc_string().find("'fc1'") != std::string::npos ||
                n.doc_string().find("'fc2'") != std::string::npos)
        << n.doc_string();
    EXPECT_NE(n.doc_string().find(" at rank 4, relative error "), std::string::npos)
        << n.doc_string();
  }
  EXPECT_GE(documented, 4);
  // The file size in the report counts the provenance.
  EXPECT_EQ(result->report.totals().file_bytes_after(), static_cast<double>(out.ByteSizeLong()));
}

TEST(ProvenanceTest, CompressFileRecordsTheInputFilesSha256) {
  testing::TempDir dir;
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 4;
  auto rep = pipeline::CompressFile(KFC_SOURCE_DIR "/testdata/digits_mlp.onnx",
                                    dir.File("out.onnx"), options, false);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  auto out = io::LoadModel(dir.File("out.onnx"));
  ASSERT_TRUE(out.ok());
  auto digest = io::FileSha256(KFC_SOURCE_DIR "/testdata/digits_mlp.onnx");
  ASSERT_TRUE(digest.ok());
  bool found = false;
  for (const auto& e : out->metadata_props()) {
    if (e.key() == "kfc_compress.input_sha256") found = e.value() == *digest;
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace kfc
