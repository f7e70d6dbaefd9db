// SPDX-License-Identifier: Apache-2.0
// Writes as safe as reads (issue 18): the real binary never changes a file it reads, never replaces
// anything but a regular file, never blocks on a FIFO, makes its outputs appear only when
// everything (stdout included) succeeded, and leaves no temporary files, whatever happens.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "kfc/io/model_io.h"
#include "kfc/io/npy.h"
#include "tests/support/test_util.h"

namespace kfc {
namespace {

namespace fs = std::filesystem;
using testing::ProcessResult;
using testing::RunProcess;
using testing::TempDir;

const std::string kBin = KFC_COMPRESS_BIN;
const std::string kDigits = std::string(KFC_SOURCE_DIR) + "/testdata/digits_mlp.onnx";
constexpr int64_t kWBytes = 64 * 96 * 4;  // testing::WriteExternalModel's W

// The binary under `timeout`, so that a hang fails the test (exit 124) instead of stalling it.
ProcessResult Cli(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/timeout", "20", kBin});
  return RunProcess(args);
}

// A shell line (for redirections and limits); KFC is the binary.
ProcessResult Shell(const std::string& line) {
  return RunProcess({"/bin/sh", "-c", "KFC='" + kBin + "'; " + line});
}

using testing::ReadFile;

void ExpectCleanError(const ProcessResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), code == 2 ? 2 : 1) << r.err;
}

// Item 1: the input (model or external data) is never an output, however it is named.
TEST(WriteSafetyTest, NoOutputMayBeAnInputFile) {
  TempDir dir;
  const std::string input = testing::WriteExternalModel(dir.path(), "w.data", 0, kWBytes);
  const std::string model = ReadFile(input), data = ReadFile(dir.File("w.data"));
  // The model as its own output's data file.
  ExpectCleanError(Cli({input, "-r", "2", "--external-data=model.onnx", "-o", dir.File("o.onnx")}),
                   1, "is the input file");
  // The input's data file as --report, --plan-out, --calibration-probe, or through a link.
  ExpectCleanError(
      Cli({input, "-r", "2", "-o", dir.File("o.onnx"), "--report", dir.File("w.data")}), 1,
      "is an external data file of the input model");
  ExpectCleanError(Cli({input, "-r", "2", "--dry-run", "--plan-out", dir.File("w.data")}), 1,
                   "is an external data file of the input model");
  ExpectCleanError(Cli({input, "--calibration-probe", dir.File("w.data")}), 1,
                   "is an external data file of the input model");
  ASSERT_EQ(::symlink("w.data", dir.File("link.json").c_str()), 0);
  ExpectCleanError(Cli({input, "-r", "2", "--dry-run", "--report", dir.File("link.json")}), 1,
                   "is an external data file of the input model");
  EXPECT_EQ(ReadFile(input), model);
  EXPECT_EQ(ReadFile(dir.File("w.data")), data);
  EXPECT_EQ(dir.List(), (std::vector<std::string>{"link.json", "model.onnx", "w.data"}));
}

TEST(WriteSafetyTest, TheInputAsTheOutputsDataFileIsRefused) {
  TempDir dir;
  // o.onnx.data is the input model; -o o.onnx --external-data would write its data there.
  testing::WriteText(ReadFile(kDigits), dir.File("o.onnx.data"));
  ExpectCleanError(
      Cli({dir.File("o.onnx.data"), "-r", "4", "--external-data", "-o", dir.File("o.onnx")}), 1,
      "is the input file");
  EXPECT_EQ(ReadFile(dir.File("o.onnx.data")), ReadFile(kDigits));
  EXPECT_EQ(dir.List(), std::vector<std::string>{"o.onnx.data"});
}

TEST(WriteSafetyTest, TheCalibrationFilesAndThePlanAreInputsToo) {
  TempDir dir;
  ASSERT_EQ(Cli({kDigits, "-r", "4", "--dry-run", "--plan-out", dir.File("p.txt")}).exit_code, 0);
  const std::string plan = ReadFile(dir.File("p.txt"));
  ExpectCleanError(Cli({kDigits, "--plan", dir.File("p.txt"), "-o", dir.File("o.onnx"), "--report",
                        dir.File("p.txt")}),
                   1, "is the --plan file");
  EXPECT_EQ(ReadFile(dir.File("p.txt")), plan);
  fs::create_directory(dir.File("acts"));
  ASSERT_TRUE(io::WriteNpy(dir.File("acts/a.npy"), {2, 64}, std::vector<float>(128, 1.f)).ok());
  testing::WriteText("{}", dir.File("acts/kfc_calibration.json"));
  ExpectCleanError(Cli({kDigits, "-r", "4", "--calibration", dir.File("acts"), "--dry-run",
                        "--plan-out", dir.File("acts/a.npy")}),
                   1, "is a calibration file");
  ExpectCleanError(Cli({kDigits, "-r", "4", "--calibration", dir.File("acts"), "-o",
                        dir.File("acts/kfc_calibration.json")}),
                   1, "is a calibration file");
  EXPECT_EQ(ReadFile(dir.File("acts/kfc_calibration.json")), "{}");
}

// Item 2: only regular files are replaced.
TEST(WriteSafetyTest, SpecialFilesAreNeverReplaced) {
  TempDir dir;
  ASSERT_EQ(::mkfifo(dir.File("fifo").c_str(), 0600), 0);
  ASSERT_EQ(::symlink("fifo", dir.File("to_fifo").c_str()), 0);
  ASSERT_EQ(::symlink("nowhere", dir.File("dangling").c_str()), 0);
  ASSERT_EQ(::mkdir(dir.File("folder").c_str(), 0755), 0);
  // A character device made here (as root), never the system's /dev/null: a tool that replaced it
  // would break the machine, not just fail the test.
  const bool device = ::mknod(dir.File("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;
  std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-o", dir.File("fifo")}, "is a FIFO"},
      {{"-o", dir.File("to_fifo")}, "is a FIFO"},
      {{"-o", dir.File("dangling")}, "symbolic link to nothing"},
      {{"-o", dir.File("o.onnx"), "--report", dir.File("to_fifo")}, "is a FIFO"},
      {{"--dry-run", "--plan-out", dir.File("fifo")}, "is a FIFO"},
      {{"--dry-run", "--report", dir.File("folder")}, "is a directory"},
  };
  if (device) {
    cases.push_back({{"-o", dir.File("null")}, "is a character device"});
    cases.push_back(
        {{"-o", dir.File("o.onnx"), "--report", dir.File("null")}, "is a character device"});
    cases.push_back({{"--dry-run", "--plan-out", dir.File("null")}, "is a character device"});
  }
  for (const auto& [flags, needle] : cases) {
    std::vector<std::string> args = {kDigits, "-r", "4"};
    args.insert(args.end(), flags.begin(), flags.end());
    SCOPED_TRACE(flags.back());
    ExpectCleanError(Cli(args), 1, needle);
  }
  ExpectCleanError(Cli({kDigits, "--calibration-probe", dir.File("fifo")}), 1, "is a FIFO");
  struct stat st {};
  ASSERT_EQ(::lstat(dir.File("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(::lstat(dir.File("to_fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  if (device) {
    ASSERT_EQ(::lstat(dir.File("null").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
  auto listed = dir.List();
  listed.erase(std::remove(listed.begin(), listed.end(), "null"), listed.end());
  EXPECT_EQ(listed, (std::vector<std::string>{"dangling", "fifo", "folder", "to_fifo"}));
}

TEST(WriteSafetyTest, ALinkToARegularFileIsWrittenThrough) {
  TempDir dir;
  testing::WriteText("old", dir.File("real.onnx"));
  ASSERT_EQ(::symlink("real.onnx", dir.File("link.onnx").c_str()), 0);
  auto r = Cli({kDigits, "-r", "4", "-q", "-o", dir.File("link.onnx")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::lstat(dir.File("link.onnx").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link stays a link";
  EXPECT_TRUE(io::LoadModel(dir.File("real.onnx")).ok());
}

TEST(WriteSafetyTest, TheReportMayNotBeTheFileStdoutGoesTo) {
  TempDir dir;
  // Like --report /dev/stdout, through a link of our own (a tool that replaced links would
  // otherwise replace the system's /dev/stdout).
  ASSERT_EQ(::symlink("/proc/self/fd/1", dir.File("stdout").c_str()), 0);
  auto r = Shell("\"$KFC\" '" + kDigits + "' -r 4 -q -o '" + dir.File("o.onnx") + "' --report '" +
                 dir.File("stdout") + "' > '" + dir.File("table.txt") + "'");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("this run's stdout"), std::string::npos) << r.err;
  EXPECT_EQ(dir.List(), (std::vector<std::string>{"stdout", "table.txt"}));
}

// Item 3: FIFOs as inputs are refused at once, never waited on.
TEST(WriteSafetyTest, FifoInputsAreRefusedWithoutHanging) {
  TempDir dir;
  ASSERT_EQ(::mkfifo(dir.File("model.onnx").c_str(), 0600), 0);
  ExpectCleanError(Cli({dir.File("model.onnx"), "-r", "4", "--dry-run"}), 1, "is a FIFO");
  ExpectCleanError(Cli({kDigits, "--plan", dir.File("model.onnx"), "--dry-run"}), 2, "is a FIFO");

  TempDir ext;
  const std::string input = testing::WriteExternalModel(ext.path(), "w.data", 0, kWBytes, false);
  ASSERT_EQ(::mkfifo(ext.File("w.data").c_str(), 0600), 0);
  auto r = Cli({input, "-r", "2", "--dry-run"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;

  // A calibration .npy that is a FIFO.
  TempDir cal;
  ASSERT_EQ(Cli({kDigits, "--calibration-probe", cal.File("probe.onnx")}).exit_code, 0);
  fs::create_directory(cal.File("acts"));
  fs::copy_file(cal.File("probe.calib.json"), cal.File("acts/kfc_calibration.json"));
  ASSERT_EQ(::mkfifo(cal.File("acts/kfc_calib_0.npy").c_str(), 0600), 0);
  ExpectCleanError(Cli({kDigits, "-r", "4", "-q", "--calibration", cal.File("acts"), "--dry-run"}),
                   1, "is a FIFO");
}

// Item 4: an existing output survives a failure to deliver the report.
TEST(WriteSafetyTest, FullStdoutKeepsTheOldOutputAndItsDataFile) {
  TempDir dir;
  const std::string out = dir.File("old.onnx");
  ASSERT_EQ(Cli({kDigits, "-r", "8", "-q", "--external-data", "-o", out}).exit_code, 0);
  const std::string model = ReadFile(out), data = ReadFile(out + ".data");
  ASSERT_FALSE(data.empty());
  for (const std::string& flags :
       {std::string(), std::string(" --json"), " --report '" + dir.File("r.json") + "'"}) {
    auto r = Shell("\"$KFC\" '" + kDigits + "' -r 2 -q --external-data -o '" + out + "'" + flags +
                   " > /dev/full");
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("stdout: writing the report failed"), std::string::npos) << r.err;
    EXPECT_EQ(ReadFile(out), model);
    EXPECT_EQ(ReadFile(out + ".data"), data);
  }
  EXPECT_EQ(dir.List(), (std::vector<std::string>{"old.onnx", "old.onnx.data"}));
  // The probe too.
  auto r = Shell("\"$KFC\" '" + kDigits + "' --calibration-probe '" + dir.File("p.onnx") +
                 "' > /dev/full");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(dir.List(), (std::vector<std::string>{"old.onnx", "old.onnx.data"}));
}

// Item 8: no leftovers when the file size limit is hit (SIGXFSZ) or on SIGTERM; long names work.
TEST(WriteSafetyTest, FileSizeLimitIsAnErrorAndLeavesNothing) {
  TempDir dir;
  // ulimit -f counts 512-byte blocks: 8 is 4 KiB, less than the output.
  auto r =
      Shell("ulimit -f 8; \"$KFC\" '" + kDigits + "' -r 16 -q -o '" + dir.File("o.onnx") + "'");
  EXPECT_EQ(r.exit_code, 1) << "not killed by SIGXFSZ: " << r.err;
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  EXPECT_TRUE(dir.List().empty());
}

TEST(WriteSafetyTest, SignalsDuringTheRunLeaveNoFiles) {
  TempDir dir;
  for (const char* sig : {"TERM", "INT", "HUP"}) {
    for (const char* delay : {"0.02", "0.08", "0.15"}) {
      Shell("\"$KFC\" '" + kDigits + "' -r 64 -q --external-data -o '" + dir.File("o.onnx") +
            "' & sleep " + delay + "; kill -" + sig + " $!; wait");
      for (const auto& name : dir.List()) {
        EXPECT_TRUE(name == "o.onnx" || name == "o.onnx.data")
            << sig << " " << delay << ": " << name;
      }
    }
  }
}

TEST(WriteSafetyTest, OutputNamesUpTo255BytesWork) {
  TempDir dir;
  for (size_t length : {245u, 250u, 255u}) {
    const std::string name = std::string(length - 5, 'n') + ".onnx";
    auto r = Cli({kDigits, "-r", "4", "-q", "-o", dir.File(name)});
    EXPECT_EQ(r.exit_code, 0) << length << ": " << r.err;
    EXPECT_TRUE(io::LoadModel(dir.File(name)).ok()) << length;
    fs::remove(dir.File(name));
  }
  EXPECT_TRUE(dir.List().empty());
}

// Item 9: concurrent runs writing one output never mix one run's model with another's data.
TEST(WriteSafetyTest, ConcurrentRunsLeaveOneRunsModelAndDataTogether) {
  TempDir dir;
  const std::vector<std::string> ranks = {"2", "3", "5", "8"};
  std::vector<std::pair<std::string, std::string>> refs;
  for (const auto& r : ranks) {
    fs::create_directory(dir.File("ref" + r));
    const std::string out = dir.File("ref" + r + "/out.onnx");
    ASSERT_EQ(Cli({kDigits, "-r", r, "-q", "--external-data", "-o", out}).exit_code, 0);
    refs.emplace_back(ReadFile(out), ReadFile(out + ".data"));
  }
  fs::create_directory(dir.File("race"));
  const std::string out = dir.File("race/out.onnx");
  std::string line;
  for (const auto& r : ranks) {
    line += "\"$KFC\" '" + kDigits + "' -r " + r + " -q -j 1 --external-data -o '" + out + "' & ";
  }
  line += "wait";
  for (int round = 0; round < 15; ++round) {
    Shell(line);
    const auto pair = std::make_pair(ReadFile(out), ReadFile(out + ".data"));
    EXPECT_NE(std::find(refs.begin(), refs.end(), pair), refs.end()) << "round " << round;
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.File("race"))) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"out.onnx", "out.onnx.data"}));
}

// Item 9: -1 is out of range like any other negative, not "not given".
TEST(WriteSafetyTest, MinusOneIsRefusedLikeOtherOutOfRangeValues) {
  TempDir dir;
  const std::string out = dir.File("o.onnx");
  ExpectCleanError(Cli({kDigits, "--max-error", "-1", "-o", out}), 2,
                   "max-error must be in [0, 1]");
  ExpectCleanError(Cli({kDigits, "--ratio", "-1", "-o", out}), 2, "ratio must be in (0, 1]");
  ExpectCleanError(Cli({kDigits, "-r", "4", "--fail-if-error-above", "-1", "-o", out}), 2,
                   "fail-if-error-above must be in [0, 1]");
  ExpectCleanError(Cli({kDigits, "-r", "4", "--fail-if-ratio-above", "-1", "-o", out}), 2,
                   "fail-if-ratio-above must be above 0");
  ExpectCleanError(Cli({kDigits, "-r", "4", "--ratio=-1", "-o", out}), 2,
                   "ratio must be in (0, 1]");
  EXPECT_TRUE(dir.List().empty());
}

// Item 7 and issue 13 item 3: RE2 syntax, no backreferences, bounded time; unmatched warned.
TEST(WriteSafetyTest, RegexesAreRe2AndCannotHangTheRun) {
  TempDir dir;
  ExpectCleanError(Cli({kDigits, "-r", "4", "--dry-run", "--include", "(.*)(.*)(.*)\\3x"}), 2,
                   "invalid escape sequence: \\3");
  // A 1000-character node name against nested stars: linear in RE2, and memory bounded.
  auto model = io::LoadModel(kDigits);
  ASSERT_TRUE(model.ok());
  model->mutable_graph()->mutable_node(0)->set_name(std::string(1000, 'a'));
  testing::WriteModel(*model, dir.File("long.onnx"));
  // Under AddressSanitizer the address space holds the sanitizer's shadow memory, so the 2 GB cap
  // is only applied to uninstrumented builds; the time bound holds in both.
#if defined(__SANITIZE_ADDRESS__)
  const std::string cap = "";
#else
  const std::string cap = "ulimit -v 2000000; ";
#endif
  auto r = Shell(cap + "timeout 20 \"$KFC\" '" + dir.File("long.onnx") +
                 "' -r 4 --dry-run -q --include '(.*)(.*)(.*)(.*)x' --exclude '(a*)*b'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // \d works (POSIX ERE read it as 'd'); a pattern matching nothing is a warning quoting it.
  r = Cli({kDigits, "-r", "4", "--dry-run", "--include", "fc\\d", "--include", "nothing_\\w+",
           "--exclude", "fc3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("fc1"), std::string::npos);
  EXPECT_NE(r.err.find("warning: --include 'nothing_\\w+' matches no eligible layer"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("--include 'fc\\d' matches no"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kfc
