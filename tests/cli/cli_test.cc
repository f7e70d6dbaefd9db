// SPDX-License-Identifier: Apache-2.0
// Runs the real kfc-compress binary: exact exit codes, stdout/stderr separation, no output file
// left behind on failure.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "kfc/io/model_io.h"
#include "kfc/io/npy.h"
#include "kfc_report.pb.h"
#include "tests/support/test_util.h"

namespace kfc {
namespace {

using testing::ProcessResult;
using testing::RunProcess;
using testing::TempDir;

const std::string kBin = KFC_COMPRESS_BIN;
const std::string kDigits = std::string(KFC_SOURCE_DIR) + "/testdata/digits_mlp.onnx";

using testing::Cli;

using testing::ReadFile;

// One line on stderr naming the problem; nothing on stdout.
void ExpectCleanError(const ProcessResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(CliTest, CompressesDigitsModelAndPrintsTable) {
  TempDir dir;
  auto r = Cli({kDigits, "-r", "4", "-o", dir.File("out.onnx")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("fc1"), std::string::npos);
  EXPECT_NE(r.out.find("totals: 3 layers, 2 compressed, 1 skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("below_min_params"), std::string::npos);
  EXPECT_EQ(r.out.find("info:"), std::string::npos) << "logs must not go to stdout";
  EXPECT_NE(r.err.find("info: wrote"), std::string::npos) << r.err;
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out.onnx"});
  auto model = io::LoadModel(dir.File("out.onnx"));
  ASSERT_TRUE(model.ok()) << model.status().message();
}

TEST(CliTest, JsonStdoutParsesAsReport) {
  TempDir dir;
  auto r = Cli({kDigits, "-r", "4", "-o", dir.File("out.onnx"), "--json", "--report",
                dir.File("report.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  auto status = google::protobuf::util::JsonStringToMessage(r.out, &rep);
  ASSERT_TRUE(status.ok()) << status.ToString() << "\n" << r.out;
  EXPECT_EQ(rep.totals().layers_compressed(), 2);
  EXPECT_EQ(rep.layers_size(), 3);
  EXPECT_EQ(ReadFile(dir.File("report.json")), r.out);
  // Counts are JSON numbers, not strings.
  EXPECT_NE(r.out.find("\"params_before\": 16384"), std::string::npos) << r.out;
}

TEST(CliTest, IdenticalRunsGiveIdenticalBytes) {
  TempDir dir;
  ASSERT_EQ(Cli({kDigits, "-r", "3", "-o", dir.File("a.onnx"), "-q"}).exit_code, 0);
  ASSERT_EQ(Cli({kDigits, "-r", "3", "-o", dir.File("b.onnx"), "-q"}).exit_code, 0);
  const std::string a = ReadFile(dir.File("a.onnx"));
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, ReadFile(dir.File("b.onnx")));
}

TEST(CliTest, DryRunWritesNothing) {
  TempDir dir;
  auto r = Cli({kDigits, "-r", "4", "-o", dir.File("out.onnx"), "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dry run"), std::string::npos);
  EXPECT_TRUE(dir.List().empty());
}

TEST(CliTest, QuietSilencesLogs) {
  TempDir dir;
  auto r = Cli({kDigits, "-r", "2", "-o", dir.File("out.onnx"), "-q"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
}

TEST(CliTest, VerboseLogsEachLayerDecision) {
  TempDir dir;
  auto r = Cli({kDigits, "-r", "2", "--dry-run", "-v"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("layer 'fc3' skipped: below_min_params"), std::string::npos) << r.err;
}

TEST(CliTest, IncludeExcludeAndMinParams) {
  auto r = Cli(
      {"--exclude", "^fc1$", kDigits, "-r", "2", "--dry-run", "--json", "--min-params", "0", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  ASSERT_EQ(rep.layers_size(), 3);
  EXPECT_EQ(rep.layers(0).skip_reason(), "excluded");
  EXPECT_TRUE(rep.layers(1).compressed());
  // 128x10 (1280 MACs per row) passes min-params 0, but any compressed form's extra node costs
  // more at batch 1 (--node-cost): left dense, saying so. With --node-cost 0, MACs alone judge.
  EXPECT_EQ(rep.layers(2).skip_reason(), "slower_than_dense");
  EXPECT_NE(rep.layers(2).skip_detail().find("1 more node (8192 MACs at batch 1), dense 1280"),
            std::string::npos)
      << rep.layers(2).skip_detail();
  r = Cli({"--exclude", "^fc1$", kDigits, "-r", "2", "--dry-run", "--json", "--min-params", "0",
           "--node-cost", "0", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_TRUE(rep.layers(2).compressed());

  r = Cli({kDigits, "-r", "2", "--dry-run", "--json", "--include", "fc2\\.weight", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_EQ(rep.layers(0).skip_reason(), "not_included");
  EXPECT_TRUE(rep.layers(1).compressed());
}

TEST(CliTest, ForcedShapeIsUsedWhereItDivides) {
  auto r =
      Cli({kDigits, "-r", "2", "--dry-run", "--json", "--shape", "4x32", "--node-cost", "0", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_EQ(rep.layers(0).k1(), 4);  // 64x256
  EXPECT_EQ(rep.layers(0).n1(), 32);
  EXPECT_EQ(rep.layers(0).k2(), 16);
  EXPECT_EQ(rep.layers(0).n2(), 8);
  EXPECT_EQ(rep.shape_policy(), "4x32");
}

// The default shape at -r is swapped for low rank where it would be slower than dense at batch 1;
// a forced shape is not: that layer stays dense and the report says why.
TEST(CliTest, ShapeSlowerAtBatchOneIsLowRankUnlessForced) {
  TempDir dir;
  auto r = Cli({kDigits, "-r", "4", "-o", dir.File("out.onnx"), "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  // Two nodes per compressed layer, no Reshape: 8 nodes where the Kronecker form had 16.
  auto model = io::LoadModel(dir.File("out.onnx"));
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::string ops;
  for (const auto& node : model->graph().node()) ops += node.op_type() + " ";
  EXPECT_EQ(ops, "MatMul Gemm Relu MatMul Gemm Relu Gemm Softmax ");
  for (int i : {0, 1}) {
    const report::LayerReport& l = rep.layers(i);
    ASSERT_TRUE(l.compressed()) << l.node_name();
    EXPECT_TRUE(l.n1() == 1 && l.k2() == 1) << l.node_name();  // K x 1 (x) 1 x N
    // The parameters rank 4 of the balanced shape would take: fc1 4*256/(64+256) -> 3.
    EXPECT_EQ(l.rank(), i == 0 ? 3 : 4) << l.node_name();
    EXPECT_EQ(l.shape_note().rfind("low rank instead of balanced: rank 4 of ", 0), 0)
        << l.shape_note();
    EXPECT_NE(l.shape_note().find("+ 6 more nodes (49152 MACs at batch 1)"), std::string::npos)
        << l.shape_note();
  }
  r = Cli({kDigits, "-r", "4", "--dry-run", "--json", "--shape", "balanced", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_EQ(rep.layers(0).skip_reason(), "slower_than_dense");
  EXPECT_EQ(rep.layers(1).skip_reason(), "slower_than_dense");
  r = Cli({kDigits, "-r", "4", "--dry-run", "--json", "--node-cost", "0", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_EQ(rep.layers(0).k1(), 64);  // balanced 64x2 (x) 1x128, as before --node-cost
  EXPECT_EQ(rep.layers(0).n1(), 2);
  EXPECT_EQ(rep.layers(0).shape_note(), "");
}

TEST(CliTest, RankIsClampedAndReported) {
  auto r = Cli({kDigits, "-r", "100000", "--dry-run", "--json", "--min-params", "0", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  // Full rank never saves parameters, so every layer is unprofitable; the clamp is still shown.
  for (const auto& l : rep.layers()) {
    EXPECT_EQ(l.skip_reason(), "unprofitable") << l.node_name();
    EXPECT_TRUE(l.rank_clamped());
    EXPECT_EQ(l.rank(), std::min(l.k1() * l.n1(), l.k2() * l.n2()));
  }
}

TEST(CliTest, HelpAndVersionExitZero) {
  auto r = Cli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Exit codes"), std::string::npos);
  EXPECT_NE(r.out.find("--min-params"), std::string::npos);
  r = Cli({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("kfc-compress 0."), std::string::npos);
}

TEST(CliTest, UsageErrorsExitTwo) {
  TempDir dir;
  const std::string out = dir.File("out.onnx");
  ExpectCleanError(Cli({kDigits, "-r", "0", "-o", out}), 2, "rank must be at least 1");
  ExpectCleanError(Cli({kDigits, "-r", "-o", out}), 2, "error:");
  ExpectCleanError(Cli({kDigits, "-o", out}), 2, "--rank");
  ExpectCleanError(Cli({kDigits, "-r", "4"}), 2, "--output is required");
  ExpectCleanError(Cli({kDigits, "-r", "abc", "-o", out}), 2, "error:");
  ExpectCleanError(Cli({kDigits, "-r", "4", "-o", out, "--shape", "4by4"}), 2, "--shape");
  ExpectCleanError(Cli({kDigits, "-r", "4", "-o", out, "--include", "(["}), 2, "regex");
  ExpectCleanError(Cli({kDigits, "-r", "4", "-o", out, "--bogus"}), 2, "--bogus");
  EXPECT_TRUE(dir.List().empty());
}

TEST(CliTest, RuntimeFailuresExitOneAndLeaveNoOutput) {
  TempDir dir;
  const std::string out = dir.File("out.onnx");
  ExpectCleanError(Cli({dir.File("missing.onnx"), "-r", "4", "-o", out}), 1, "no such file");

  testing::WriteText("this is not an onnx model\n", dir.File("text.onnx"));
  ExpectCleanError(Cli({dir.File("text.onnx"), "-r", "4", "-o", out}), 1, "not");

  const std::string full = ReadFile(kDigits);
  testing::WriteText(full.substr(0, full.size() / 2), dir.File("truncated.onnx"));
  ExpectCleanError(Cli({dir.File("truncated.onnx"), "-r", "4", "-o", out}), 1,
                   "truncated or corrupt");

  testing::WriteText("", dir.File("empty.onnx"));
  ExpectCleanError(Cli({dir.File("empty.onnx"), "-r", "4", "-o", out}), 1, "empty");

  ExpectCleanError(Cli({kDigits, "-r", "4", "-o", dir.File("no/such/folder/out.onnx")}), 1,
                   "does not exist");
  ExpectCleanError(Cli({kDigits, "-r", "4", "-o", dir.path()}), 1, "is a directory");

  std::vector<std::string> expected = {"empty.onnx", "text.onnx", "truncated.onnx"};
  EXPECT_EQ(dir.List(), expected);
}

// Factors are spilled to a nameless file next to the output as they are produced: when that
// cannot be written (here a file size limit, as a full disk would), the error is one line naming
// the output and the cause, and nothing is left in the folder.
TEST(CliTest, SpillWriteFailureIsOneLineAndLeavesNothing) {
  TempDir dir;
  onnx::ModelProto model = testing::ParseModelText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 256] x) => (float[N, 1024] y) { y = MatMul (x, W) }
  )");
  testing::AddRandomInitializer(&model, "W", {256, 1024}, 3);
  testing::WriteModel(model, dir.File("in.onnx"));
  std::filesystem::create_directories(dir.File("out"));
  const std::string out = dir.File("out/out.onnx");
  // -r 64 stacks 128 KiB constants; the shell lets files grow to 64 KiB, and ignores SIGXFSZ so
  // that the write fails with EFBIG instead of killing the process.
  const ProcessResult r =
      RunProcess({"/bin/bash", "-c", "trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"", kBin,
                  dir.File("in.onnx"), "-r", "64", "-q", "-o", out});
  ExpectCleanError(r, 1, "output '" + out + "'");
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("out")));
  // Without the limit the same run works, and leaves only the output.
  const ProcessResult ok = Cli({dir.File("in.onnx"), "-r", "64", "-q", "-o", out});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.File("out")),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(CliTest, UnwritableOutputFolderExitsOne) {
  TempDir dir;
  const std::string locked = dir.File("locked");
  ASSERT_EQ(::mkdir(locked.c_str(), 0500), 0);
  // root ignores permission bits, so use a path under a regular file instead when running as root.
  const std::string target = ::geteuid() == 0 ? dir.File("file/out.onnx") : locked + "/out.onnx";
  if (::geteuid() == 0) testing::WriteText("x", dir.File("file"));
  auto r = Cli({kDigits, "-r", "4", "-o", target});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("output '" + target + "'"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(locked + "/out.onnx"));
}

TEST(CliTest, OutputEqualToInputIsRefused) {
  TempDir dir;
  const std::string copy = dir.File("model.onnx");
  testing::WriteText(ReadFile(kDigits), copy);
  auto r = Cli({copy, "-r", "4", "-o", copy});
  ExpectCleanError(r, 1, "is the input file");
  EXPECT_EQ(ReadFile(copy), ReadFile(kDigits)) << "input must never be lost";
}

TEST(CliRobustnessTest, ReportPathSpelledDifferentlyFromOutputIsRefused) {
  TempDir dir;
  ASSERT_EQ(::mkdir(dir.File("out").c_str(), 0755), 0);
  auto r = Cli(
      {kDigits, "-r", "4", "-o", dir.File("out/a.onnx"), "--report", dir.path() + "/./out/a.onnx"});
  ExpectCleanError(r, 1, "are the same file");
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("out")));
}

TEST(CliRobustnessTest, OutOfRangeIntegersAreUsageErrors) {
  TempDir dir;
  const std::string out = dir.File("out.onnx");
  ExpectCleanError(Cli({kDigits, "-r", "99999999999999999999", "-o", out}), 2, "--rank");
  ExpectCleanError(Cli({kDigits, "-r", "4", "--min-params", "18446744073709551616", "-o", out}), 2,
                   "--min-params");
  ExpectCleanError(Cli({kDigits, "-r", "1.5", "-o", out}), 2, "--rank");
  EXPECT_TRUE(dir.List().empty());
}

TEST(CliRobustnessTest, CheckerErrorsAreOneLine) {
  TempDir dir;
  // No default-domain opset import: the ONNX checker's message spans several lines.
  auto model = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) { y = MatMul(x, W) })");
  testing::AddRandomInitializer(&model, "W", {64, 64}, 1);
  model.mutable_opset_import(0)->set_domain("com.example");
  testing::WriteModel(model, dir.File("bad.onnx"));
  auto r = Cli({dir.File("bad.onnx"), "-r", "2", "-o", dir.File("out.onnx")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("fails the ONNX checker"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.File("out.onnx")));
}

TEST(CliAutoShapeTest, DryRunListsCandidatesAndLowRankComparison) {
  // --node-cost 0: at batch 1 only the low-rank shapes would be candidates for these layers.
  auto r = Cli({kDigits, "-r", "4", "--shape", "auto", "--dry-run", "--node-cost", "0", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("rank 4, shape auto"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(low-rank r="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("shapes searched for fc1"), std::string::npos) << r.out;
  // Without --dry-run or -v, the candidates stay out of the report.
  TempDir dir;
  r = Cli({kDigits, "-r", "4", "--shape", "auto", "--node-cost", "0", "-o", dir.File("a.onnx"),
           "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_EQ(rep.layers(0).candidates_size(), 0);
  EXPECT_GE(rep.layers(0).lowrank_relative_error(), rep.layers(0).relative_error());
  EXPECT_GT(rep.layers(0).shapes_compared(), 10);
}

}  // namespace
}  // namespace kfc

namespace kfc {
namespace {

TEST(CliBudgetTest, ExactlyOneModeAndValidNumbers) {
  TempDir dir;
  const std::string out = dir.File("out.onnx");
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{kDigits, "-o", out}, "give one of --rank, --max-error or --ratio"},
      {{kDigits, "-r", "4", "--ratio", "0.5", "-o", out}, "give only one of"},
      {{kDigits, "--max-error", "0.1", "--ratio", "0.5", "-o", out}, "give only one of"},
      {{kDigits, "--ratio", "0", "-o", out}, "ratio must be in (0, 1]"},
      {{kDigits, "--ratio", "1.5", "-o", out}, "ratio must be in (0, 1]"},
      {{kDigits, "--ratio", "nan", "-o", out}, "--ratio: expected a number"},
      {{kDigits, "--max-error", "-0.1", "-o", out}, "max-error must be in [0, 1]"},
      {{kDigits, "--max-error", "0x1p-3", "-o", out}, "--max-error: expected a number"},
      {{kDigits, "-r", "4", "--fail-if-error-above", "2", "-o", out}, "fail-if-error-above"},
      {{kDigits, "-r", "4", "--fail-if-ratio-above", "0", "-o", out}, "fail-if-ratio-above"},
      // -1 is the library's "no gate": given on the command line it must not disable the gate.
      {{kDigits, "-r", "4", "--calibration-data", dir.File("x.npy"), "--fail-if-output-error-above",
        "-1", "-o", out},
       "fail-if-output-error-above must be >= 0, got -1"},
      {{kDigits, "-r", "4", "--shape", "3y4", "-o", out}, "got '3y4'"},
      {{kDigits, "-r", "4", "--plan", dir.File("missing.txt"), "-o", out}, "missing.txt"},
  };
  for (const auto& [args, needle] : cases) {
    ExpectCleanError(Cli(args), 2, needle);
  }
  EXPECT_TRUE(dir.List().empty());
}

TEST(CliBudgetTest, FailedGateExitsThreeAndWritesNoModel) {
  TempDir dir;
  auto r = Cli({kDigits, "-r", "4", "-o", dir.File("out.onnx"), "--report", dir.File("r.json"),
                "--fail-if-error-above", "0.5", "-q"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.out.find("gate fail_if_error_above 0.500000: FAILED"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("gate failed: fail_if_error_above: worst layer 'fc1'"), std::string::npos)
      << r.err;
  EXPECT_EQ(dir.List(), std::vector<std::string>{"r.json"});  // the report, not the model
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(ReadFile(dir.File("r.json")), &rep).ok());
  EXPECT_FALSE(rep.gates_passed());
  EXPECT_FALSE(rep.output_written());
  EXPECT_EQ(rep.output(), "");

  r = Cli({kDigits, "-r", "4", "-o", dir.File("out.onnx"), "--fail-if-error-above", "0.5",
           "--write-on-gate-failure", "-q"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_TRUE(io::LoadModel(dir.File("out.onnx")).ok());

  r = Cli({kDigits, "-r", "4", "-o", dir.File("pass.onnx"), "--fail-if-error-above", "0.9",
           "--fail-if-ratio-above", "0.5", "-q"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("gate fail_if_ratio_above 0.500000: passed"), std::string::npos) << r.out;
  EXPECT_TRUE(io::LoadModel(dir.File("pass.onnx")).ok());
}

TEST(CliBudgetTest, DryRunPlanOutThenPlanGivesTheSameBytes) {
  TempDir dir;
  for (const std::string plan : {"plan.txt", "plan.json"}) {
    auto r = Cli({kDigits, "--ratio", "0.3", "-o", dir.File("direct.onnx"), "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Cli({kDigits, "--ratio", "0.3", "--dry-run", "--plan-out", dir.File(plan), "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Cli({kDigits, "--plan", dir.File(plan), "-o", dir.File("pinned.onnx"), "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("plan only"), std::string::npos) << r.out;
    // The same model but for the provenance's record of the options, which differ by design.
    std::string options[2], bytes[2];
    const char* files[2] = {"direct.onnx", "pinned.onnx"};
    for (int i = 0; i < 2; ++i) {
      auto m = io::LoadModel(dir.File(files[i]));
      ASSERT_TRUE(m.ok()) << m.status().message();
      auto* props = m->mutable_metadata_props();
      for (int p = 0; p < props->size(); ++p) {
        if (props->Get(p).key() != "kfc_compress.options") continue;
        options[i] = props->Get(p).value();
        props->DeleteSubrange(p, 1);
        break;
      }
      auto s = io::SerializeModel(*m);
      ASSERT_TRUE(s.ok());
      bytes[i] = *s;
    }
    EXPECT_EQ(options[0].rfind("--ratio 0.3 ", 0), 0u) << options[0];
    EXPECT_EQ(options[1].rfind("--plan PLAN (2 entries) ", 0), 0u) << options[1];
    EXPECT_EQ(bytes[0], bytes[1]) << plan;
  }
}

TEST(CliBudgetTest, InvalidPlanIsAUsageErrorNamingTheEntry) {
  TempDir dir;
  testing::WriteText("layers { name: \"fc1\" rank: 2 skip: true }", dir.File("p.txt"));
  ExpectCleanError(Cli({kDigits, "--plan", dir.File("p.txt"), "-o", dir.File("out.onnx")}), 2,
                   "entry 1: layer 'fc1': give at most one of");
  EXPECT_EQ(dir.List(), std::vector<std::string>{"p.txt"});
}

TEST(CliBudgetTest, PlanOutMayNotOverwriteTheModelOrInput) {
  TempDir dir;
  ExpectCleanError(
      Cli({kDigits, "-r", "4", "-o", dir.File("m.onnx"), "--plan-out", dir.File("m.onnx")}), 1,
      "are the same file");
  ExpectCleanError(Cli({kDigits, "-r", "4", "--dry-run", "--plan-out", kDigits}), 1, "");
  EXPECT_TRUE(dir.List().empty());
}

// --- external data ---

constexpr int64_t kWBytes = 64 * 96 * 4;  // testing::WriteExternalModel's W

// Runs the CLI on a bad external data model in `dir`/in, writing to `dir`/out: exit 1, one line on
// stderr naming the tensor and `file`, nothing on stdout, no output written.
void ExpectBadExternal(const TempDir& dir, const std::string& model, const std::string& file,
                       const std::string& cause) {
  auto r = Cli({model, "-r", "2", "-o", dir.File("out/out.onnx"), "--external-data"});
  SCOPED_TRACE(file + ": " + cause);
  ExpectCleanError(r, 1, "initializer 'W'");
  EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(cause), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("out")));
}

TEST(CliExternalDataTest, BadExternalDataExitsOneNamingTensorAndFile) {
  TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir.File("in"));
  fs::create_directories(dir.File("out"));
  const std::string in = dir.File("in");
  testing::WriteText(std::string(kWBytes, '\0'), dir.File("outside.data"));

  ExpectBadExternal(dir,
                    testing::WriteExternalModel(in, dir.File("outside.data"), 0, kWBytes, false),
                    dir.File("outside.data"), "absolute path");
  ExpectBadExternal(dir, testing::WriteExternalModel(in, "../outside.data", 0, kWBytes, false),
                    "'../outside.data'", "'..'");
  fs::create_symlink("../outside.data", dir.File("in/link.data"));
  ExpectBadExternal(dir, testing::WriteExternalModel(in, "link.data", 0, kWBytes, false),
                    "'link.data'", "outside the model's folder");
  ExpectBadExternal(dir, testing::WriteExternalModel(in, "missing.data", 0, kWBytes, false),
                    "'missing.data'", "does not exist");
  const std::string past = testing::WriteExternalModel(in, "w.data", 4096, kWBytes, false);
  testing::WriteText(std::string(8192, '\0'), dir.File("in/w.data"));
  ExpectBadExternal(dir, past, "'w.data' (8192 bytes)", "[offset 4096, length 24576] exceeds");
  ExpectBadExternal(dir, testing::WriteExternalModel(in, "w.data", 0, kWBytes - 4, true, 4),
                    "'w.data'", "dims [64, 96] of float32 need 24576");

  onnx::ModelProto model = testing::ProjModel();
  auto* w = model.mutable_graph()->mutable_initializer(0);
  testing::WriteText(testing::MakeExternal(w, "w.data", 0, kWBytes), dir.File("in/w.data"));
  w->set_dims(0, int64_t{1} << 62);
  w->set_dims(1, 4);
  testing::WriteModel(model, dir.File("in/model.onnx"));
  ExpectBadExternal(dir, dir.File("in/model.onnx"), "initializer 'W'", "overflow int64");

  model = testing::ProjModel();  // inline raw_data of the wrong size
  w = model.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_raw_data(std::string(100, '\0'));
  testing::WriteModel(model, dir.File("in/model.onnx"));
  ExpectBadExternal(dir, dir.File("in/model.onnx"), "raw_data has 100 bytes",
                    "dims [64, 96] of float32 need 24576");
}

TEST(CliExternalDataTest, ExternalInputCompressesAndWritesInlineOrExternal) {
  TempDir dir;
  const std::string input = testing::WriteExternalModel(dir.path(), "w.data", 64, -1);
  const std::string data_before = ReadFile(dir.File("w.data"));
  std::filesystem::create_directory(dir.File("o"));
  // --node-cost 0: the 64x96 layer is too small to gain at batch 1.
  auto r =
      Cli({input, "-r", "2", "--node-cost", "0", "-o", dir.File("o/inline.onnx"), "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_EQ(rep.totals().layers_compressed(), 1);
  EXPECT_EQ(rep.external_data_file(), "");

  r = Cli({input, "-r", "2", "--node-cost", "0", "-o", dir.File("o/a.onnx"), "--external-data",
           "--external-data-threshold", "0", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_EQ(rep.external_data_file(), dir.File("o/a.onnx.data"));
  EXPECT_FALSE(rep.external_data_automatic());
  r = Cli({input, "-r", "2", "--node-cost", "0", "-o", dir.File("o/b.onnx"),
           "--external-data=b.weights", "--external-data-threshold", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("+ external data " + dir.File("o/b.weights")), std::string::npos) << r.out;
  EXPECT_EQ(ReadFile(dir.File("o/a.onnx.data")), ReadFile(dir.File("o/b.weights")));
  std::vector<std::string> expected = {"a.onnx", "a.onnx.data", "b.onnx", "b.weights",
                                       "inline.onnx"};
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir.File("o"))) {
    files.push_back(e.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, expected);
  EXPECT_EQ(ReadFile(dir.File("w.data")), data_before) << "the input's data must not change";
  for (const std::string name : {"inline.onnx", "a.onnx", "b.onnx"}) {
    auto model = io::LoadModel(dir.File("o/" + name));
    ASSERT_TRUE(model.ok()) << name;
    EXPECT_TRUE(io::LoadExternalData(&*model, dir.File("o/" + name)).ok()) << name;
  }
}

TEST(CliExternalDataTest, IdenticalRunsGiveIdenticalModelAndDataBytes) {
  TempDir dir;
  for (const std::string name : {"a", "b"}) {
    ASSERT_EQ(Cli({kDigits, "-r", "3", "-o", dir.File(name + ".onnx"),
                   "--external-data=" + name + ".data", "-q"})
                  .exit_code,
              0);
  }
  EXPECT_FALSE(ReadFile(dir.File("a.data")).empty());
  EXPECT_EQ(ReadFile(dir.File("a.data")), ReadFile(dir.File("b.data")));
  // The headers differ only in the location they name.
  std::string a = ReadFile(dir.File("a.onnx")), b = ReadFile(dir.File("b.onnx"));
  for (std::string* s : {&a, &b}) {
    for (size_t at; (at = s->find(s == &a ? "a.data" : "b.data")) != std::string::npos;) {
      s->replace(at, 6, "X.data");
    }
  }
  EXPECT_EQ(a, b);
}

TEST(CliExternalDataTest, BadFlagsAreUsageErrors) {
  TempDir dir;
  const std::string out = dir.File("out.onnx");
  ExpectCleanError(Cli({kDigits, "-r", "2", "-o", out, "--external-data=a/b.data"}), 2,
                   "without a folder");
  ExpectCleanError(Cli({kDigits, "-r", "2", "-o", out, "--external-data=.."}), 2,
                   "not a file name");
  ExpectCleanError(Cli({kDigits, "-r", "2", "-o", out, "--external-data=out.onnx"}), 2,
                   "the output's own name");
  ExpectCleanError(Cli({kDigits, "-r", "2", "-o", out, "--external-data-threshold", "-1"}), 2,
                   "--external-data-threshold");
  // The value needs '=': a separate word is not taken as FILE.
  ExpectCleanError(Cli({kDigits, "-r", "2", "-o", out, "--external-data", "w.data"}), 2, "w.data");
  EXPECT_TRUE(dir.List().empty());
}

TEST(CliExternalDataTest, OutputsMayNotOverwriteTheInputsDataOrEachOther) {
  TempDir dir;
  const std::string input = testing::WriteExternalModel(dir.path(), "w.data", 0, kWBytes);
  const std::string data = ReadFile(dir.File("w.data"));
  ExpectCleanError(Cli({input, "-r", "2", "-o", dir.File("w.data")}), 1,
                   "is an external data file of the input model");
  ExpectCleanError(Cli({input, "-r", "2", "-o", dir.File("out.onnx"), "--external-data=w.data"}), 1,
                   "is an external data file of the input model");
  ExpectCleanError(Cli({input, "-r", "2", "-o", dir.File("out.onnx"), "--external-data=r.json",
                        "--report", dir.File("r.json")}),
                   1, "are the same file");
  EXPECT_EQ(ReadFile(dir.File("w.data")), data);
  EXPECT_EQ(dir.List(), (std::vector<std::string>{"model.onnx", "w.data"}));
}

}  // namespace
}  // namespace kfc

namespace kfc {
namespace {

// A probe of the digits MLP and DIR holding its sidecar plus rows for every exposed tensor.
std::string CalibrationDir(const TempDir& dir) {
  auto r = Cli({kDigits, "--calibration-probe", dir.File("probe.onnx")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::filesystem::create_directory(dir.File("acts"));
  std::filesystem::copy_file(dir.File("probe.calib.json"), dir.File("acts/kfc_calibration.json"));
  const std::pair<const char*, int64_t> tensors[] = {
      {"kfc_calib_0", 64}, {"kfc_calib_1", 256}, {"kfc_calib_2", 128}};
  for (const auto& [name, k] : tensors) {
    EXPECT_TRUE(io::WriteNpy(dir.File(std::string("acts/") + name + ".npy"), {40, k},
                             testing::RandomVector(static_cast<size_t>(40 * k), 3))
                    .ok());
  }
  return dir.File("acts");
}

TEST(CliCalibrationTest, ProbeThenCalibratedRunReportsBothErrors) {
  TempDir dir;
  const std::string acts = CalibrationDir(dir);
  auto r = Cli({kDigits, "-r", "8", "--calibration", acts, "-o", dir.File("out.onnx"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  report::Report rep;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
  EXPECT_EQ(rep.calibration(), acts);
  for (const auto& l : rep.layers()) {
    if (!l.compressed()) continue;
    EXPECT_TRUE(l.calibrated()) << l.node_name();
    EXPECT_GE(l.data_relative_error(), 0.0);
    EXPECT_LE(l.data_relative_error(), l.weight_only_data_relative_error() + 1e-12);
  }
}

// --calibration-regularization: a smaller lambda whitens more, so on inputs with a few large
// channels the fit follows the data more closely; the value is recorded in the provenance.
TEST(CliCalibrationTest, RegularizationChangesTheFitAndIsRecorded) {
  TempDir dir;
  const std::string acts = CalibrationDir(dir);
  std::vector<float> rows = testing::RandomVector(static_cast<size_t>(400 * 64), 5);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i % 64 < 4) rows[i] *= 100.f;  // four loud channels, as after a LayerNorm in transformers
  }
  ASSERT_TRUE(io::WriteNpy(acts + "/kfc_calib_0.npy", {400, 64}, rows).ok());
  auto first_layer_error = [&](const std::vector<std::string>& extra, const std::string& out) {
    std::vector<std::string> args = {kDigits,         "-r", "2",  "--shape", "lowrank",
                                     "--calibration", acts, "-o", out,       "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    report::Report rep;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &rep).ok());
    return rep.layers_size() > 0 ? rep.layers(0).data_relative_error() : -1.0;
  };
  const double lambda10 = first_layer_error({}, dir.File("a.onnx"));
  const double lambda001 =
      first_layer_error({"--calibration-regularization", "0.01"}, dir.File("b.onnx"));
  EXPECT_GT(lambda10, 0.0);
  EXPECT_LT(lambda001, 0.9 * lambda10);
  EXPECT_EQ(ReadFile(dir.File("a.onnx")).find("--calibration-regularization"), std::string::npos);
  EXPECT_NE(ReadFile(dir.File("b.onnx")).find("--calibration-regularization 0.01"),
            std::string::npos);
  for (const char* bad : {"0", "-1", "nan", "x"}) {
    ExpectCleanError(Cli({kDigits, "-r", "2", "--calibration", acts, "--calibration-regularization",
                          bad, "-o", dir.File("c.onnx")}),
                     2, "calibration-regularization must be a number above 0");
  }
  ExpectCleanError(
      Cli({kDigits, "-r", "2", "--calibration-regularization", "1", "-o", dir.File("c.onnx")}), 2,
      "--calibration-regularization needs --calibration DIR or --calibration-data");
}

TEST(CliCalibrationTest, BadCalibrationDataIsAClearErrorAndWritesNothing) {
  TempDir dir;
  const std::string acts = CalibrationDir(dir);
  const std::string out = dir.File("out.onnx");
  // Rows whose last dim is not the layer's K.
  ASSERT_TRUE(
      io::WriteNpy(acts + "/kfc_calib_1.extra.npy", {4, 10}, std::vector<float>(40, 1.f)).ok());
  ExpectCleanError(Cli({kDigits, "-r", "4", "--calibration", acts, "-o", out}), 1,
                   "does not end in K = 256");
  std::filesystem::remove(acts + "/kfc_calib_1.extra.npy");
  // NaN in an activation.
  std::vector<float> nan_rows(64 * 2, 0.5f);
  nan_rows[70] = NAN;
  ASSERT_TRUE(io::WriteNpy(acts + "/kfc_calib_0.z.npy", {2, 64}, nan_rows).ok());
  ExpectCleanError(Cli({kDigits, "-r", "4", "--calibration", acts, "-o", out}), 1,
                   "kfc_calib_0.z.npy': activation has a NaN at row");
  std::filesystem::remove(acts + "/kfc_calib_0.z.npy");
  // A sidecar from another model.
  const std::string fashion = std::string(KFC_SOURCE_DIR) + "/testdata/fashion_mlp.onnx";
  ExpectCleanError(Cli({fashion, "-r", "4", "--calibration", acts, "-o", out}), 1,
                   "was made for a different model");
  // No sidecar at all.
  std::filesystem::remove(acts + "/kfc_calibration.json");
  ExpectCleanError(Cli({kDigits, "-r", "4", "--calibration", acts, "-o", out}), 1,
                   "no kfc_calibration.json");
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace kfc

namespace kfc {
namespace {

TEST(CliProgressTest, ProgressLineOnlyOnATerminalAndNotWithQuiet) {
  TempDir dir;
  // Not a terminal (pipes): no progress line.
  auto r = Cli({kDigits, "-r", "4", "-o", dir.File("a.onnx")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
  // On a pseudo-terminal (util-linux script): phases with layers done/total, MB and elapsed time.
  const std::string cmd = kBin + " " + kDigits + " -r 4 -o " + dir.File("b.onnx") + " >/dev/null";
  r = testing::RunProcess({"/usr/bin/script", "-qec", cmd, "/dev/null"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  // The digits MLP's third layer (128x10) is below --min-params: two layers are worked on.
  // Reading and checking is part of deciding (one read per weight for both).
  for (const char* phase : {"deciding", "factorizing"}) {
    EXPECT_NE(r.out.find("\rkfc-compress: " + std::string(phase) + " 2/2 layers, 0.2/0.2 MB"),
              std::string::npos)
        << phase << "\n"
        << r.out;
  }
  EXPECT_EQ(r.out.find("kfc-compress: reading"), std::string::npos) << r.out;
  // -q on a terminal: nothing but errors.
  const std::string quiet = cmd + " -q";
  r = testing::RunProcess({"/usr/bin/script", "-qec", quiet, "/dev/null"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.find("layers,"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kfc

namespace kfc {
namespace {

// Two MatMuls on graph inputs and one small constant one: nothing can be compressed.
std::string WriteNothingModel(const TempDir& dir) {
  auto model = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[B, 8] x, float[8, 8] a, float[8, 8] b) => (float[B, 8] y, float[B, 8] z, float[B, 8] w) {
  y = MatMul(x, a)
  z = MatMul(x, b)
  w = MatMul(x, W)
})");
  testing::AddRandomInitializer(&model, "W", {8, 8}, 5);
  const std::string path = dir.File("nothing.onnx");
  testing::WriteModel(model, path);
  return path;
}

TEST(CliOutcomeTest, NothingCompressedIsOneStderrLineWithReasonsCounted) {
  TempDir dir;
  const std::string model = WriteNothingModel(dir);
  auto r = Cli({model, "-r", "2", "-o", dir.File("out.onnx")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("0 of 3 layers compressed: 2 weight_not_constant, 1 below_min_params\n"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.out.find("0 of 3 layers compressed"), std::string::npos) << "stderr only";
  EXPECT_TRUE(std::filesystem::exists(dir.File("out.onnx")));
  // A run that compresses something says nothing of the kind.
  auto ok = Cli({kDigits, "-r", "4", "-o", dir.File("digits.onnx")});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.err.find("layers compressed"), std::string::npos) << ok.err;
}

TEST(CliOutcomeTest, LayersInModelLocalFunctionsAreNamedNotDenied) {
  TempDir dir;
  auto model = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 18, "local" : 1]>
agraph (float[B, 128] x) => (float[B, 128] y) {
  y = local.Linear(x, W)
})");
  testing::AddRandomInitializer(&model, "W", {128, 128}, 5);
  onnx::FunctionProto* f = model.add_functions();
  f->set_domain("local");
  f->set_name("Linear");
  f->add_input("a");
  f->add_input("w");
  f->add_output("b");
  onnx::NodeProto* mm = f->add_node();
  mm->set_op_type("MatMul");
  mm->add_input("a");
  mm->add_input("w");
  mm->add_output("b");
  onnx::OperatorSetIdProto* opset = f->add_opset_import();
  opset->set_version(18);
  const std::string path = dir.File("function.onnx");
  testing::WriteModel(model, path);
  auto r = Cli({path, "-r", "2", "-o", dir.File("out.onnx")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: model-local function 'local.Linear' holds 1 Gemm/MatMul node(s), "
                       "left as they are"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("0 of 0 layers compressed: no Gemm or MatMul in the graph or its subgraphs"),
            std::string::npos)
      << r.err;
}

TEST(CliOutcomeTest, FailIfNothingCompressedExitsThreeAndWritesNothing) {
  TempDir dir;
  const std::string model = WriteNothingModel(dir);
  auto r = Cli({model, "-r", "2", "-o", dir.File("out.onnx"), "--fail-if-nothing-compressed"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("0 of 3 layers compressed: 2 weight_not_constant, 1 below_min_params"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("gate failed: fail_if_nothing_compressed"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("gate fail_if_nothing_compressed"), std::string::npos) << r.out;
  EXPECT_EQ(dir.List(), std::vector<std::string>{"nothing.onnx"});
  // With a layer compressed, the gate passes and the model is written.
  auto ok =
      Cli({kDigits, "-r", "4", "-o", dir.File("digits.onnx"), "--fail-if-nothing-compressed"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(
      ok.out.find("gate fail_if_nothing_compressed 1.000000: passed (2 of 3 layers compressed)"),
      std::string::npos)
      << ok.out;
  EXPECT_TRUE(std::filesystem::exists(dir.File("digits.onnx")));
}

}  // namespace
}  // namespace kfc
