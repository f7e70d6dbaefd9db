// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/runner (command splitting, the line process, the protocol's checks, the
// comparison of recordings), io/temp_dir and --calibration-data's INPUT=FILE parsing. The real
// runner (tool/kfc-runner.js in ONNX Runtime) is exercised by tests/ort/runner.test.js.
#include "kfc/runner/runner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kfc/io/npy.h"
#include "kfc/io/temp_dir.h"
#include "kfc/io/temp_names.h"
#include "kfc/pipeline/runner_calibration.h"
#include "kfc/runner/compare.h"
#include "kfc/runner/process.h"

namespace kfc {
namespace {

using Words = std::vector<std::string>;

TEST(SplitCommandTest, SplitsAtBlanksAndKeepsQuotedSpaces) {
  EXPECT_EQ(*runner::SplitCommand("node  /a/kfc-runner.js"), (Words{"node", "/a/kfc-runner.js"}));
  EXPECT_EQ(*runner::SplitCommand("python3 '/my dir/r.py' \"x y\"z"),
            (Words{"python3", "/my dir/r.py", "x yz"}));
  EXPECT_EQ(*runner::SplitCommand("\tprog ''"), (Words{"prog", ""}));
  EXPECT_FALSE(runner::SplitCommand("").ok());
  EXPECT_FALSE(runner::SplitCommand("   ").ok());
  auto bad = runner::SplitCommand("node 'x.js");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unterminated quote"), std::string::npos);
}

TEST(CalibrationInputTest, SplitsAtTheFirstEquals) {
  auto a = pipeline::CalibrationInput::Parse("x.npy");
  EXPECT_EQ(a.name, "");
  EXPECT_EQ(a.file, "x.npy");
  auto b = pipeline::CalibrationInput::Parse("input=dir/a=b.npy");
  EXPECT_EQ(b.name, "input");
  EXPECT_EQ(b.file, "dir/a=b.npy");
}

TEST(ValidateRunnerOptionsTest, ChecksEachValue) {
  pipeline::RunnerOptions o;
  EXPECT_FALSE(pipeline::ValidateRunnerOptions(o).ok()) << "no input";
  o.inputs.push_back({"x", "x.npy"});
  EXPECT_TRUE(pipeline::ValidateRunnerOptions(o).ok());
  o.batch_size = 0;
  EXPECT_FALSE(pipeline::ValidateRunnerOptions(o).ok());
  o.batch_size = 1;
  o.fail_if_output_error_above = -0.5;
  EXPECT_FALSE(pipeline::ValidateRunnerOptions(o).ok());
  o.fail_if_output_error_above = 0.0;
  EXPECT_TRUE(pipeline::ValidateRunnerOptions(o).ok());
  o.inputs.push_back({"y", ""});
  EXPECT_FALSE(pipeline::ValidateRunnerOptions(o).ok()) << "empty file";
}

TEST(TempDirTest, IsRemovedWithItsContents) {
  std::string path;
  {
    auto dir = io::TempDir::Create("kfc-unit-");
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    path = dir->path();
    std::filesystem::create_directories(dir->Join("a/b"));
    ASSERT_TRUE(io::WriteNpy(dir->Join("a/b/x.npy"), {1}, {1.0f}).ok());
    EXPECT_TRUE(std::filesystem::is_directory(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(LineProcessTest, ExchangesLinesAndReportsHowTheChildEnded) {
  auto dir = io::TempDir::Create("kfc-unit-");
  ASSERT_TRUE(dir.ok());
  // cat echoes each line back; sh reads one line and exits 7 with a message on stderr.
  auto cat = runner::LineProcess::Start({"cat"}, dir->Join("cat.err"));
  ASSERT_TRUE(cat.ok()) << cat.status().message();
  ASSERT_TRUE(cat->WriteLine("{\"a\": 1}").ok());
  ASSERT_TRUE(cat->WriteLine("second").ok());
  EXPECT_EQ(*cat->ReadLine(), "{\"a\": 1}");
  EXPECT_EQ(*cat->ReadLine(), "second");

  auto sh = runner::LineProcess::Start(
      {"sh", "-c", "read x; echo first >&2; echo \"last words: $x\" >&2; exit 7"},
      dir->Join("sh.err"));
  ASSERT_TRUE(sh.ok());
  ASSERT_TRUE(sh->WriteLine("bye").ok());
  EXPECT_FALSE(sh->ReadLine().ok()) << "end of stream expected";
  EXPECT_EQ(sh->ExitDescription(), "exited with code 7");
  EXPECT_EQ(sh->LastStderrLine(), "last words: bye");
  // Writing to a child that has gone is an error, not a SIGPIPE.
  Status s = Status::Ok();
  for (int i = 0; i < 100 && s.ok(); ++i) s = sh->WriteLine(std::string(4096, 'x'));
  EXPECT_FALSE(s.ok());

  auto missing = runner::LineProcess::Start({"kfc-no-such-program"}, dir->Join("m.err"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "runner: cannot start 'kfc-no-such-program': not found on PATH");
}

TEST(RunnerTest, GreetingAndResponsesAreChecked) {
  auto dir = io::TempDir::Create("kfc-unit-");
  ASSERT_TRUE(dir.ok());
  // A scripted runner: greets, then answers the first request with a good response, the second
  // with another id, the third with an error.
  const std::string script =
      "echo '{\"protocol\":1,\"ok\":true,\"runtime\":\"fake 1\",\"future_field\":3}';"
      "read a; echo '{\"protocol\":1,\"id\":1,\"ok\":true,\"rows\":4,\"tensors\":"
      "[{\"tensor\":\"y\",\"stem\":\"y\",\"dtype\":\"float32\",\"files\":[\"y.b00000.npy\"]}]}';"
      "read b; echo '{\"protocol\":1,\"id\":7,\"ok\":true}';";
  auto r = runner::Runner::Start({"sh", "-c", script}, dir->path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->runtime(), "fake 1");
  runner::Request req;
  req.set_model("/m.onnx");
  req.add_record()->set_tensor("y");
  auto ok = (*r)->Run(req);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->rows(), 4);
  auto wrong_id = (*r)->Run(req);
  ASSERT_FALSE(wrong_id.ok());
  EXPECT_NE(wrong_id.status().message().find("answered request 7, expected 2"), std::string::npos);
  auto gone = (*r)->Run(req);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("exited with code 0"), std::string::npos)
      << gone.status().message();

  auto err = runner::Runner::Start(
      {"sh", "-c",
       "echo '{\"protocol\":1,\"ok\":true}'; read a; "
       "echo '{\"protocol\":1,\"id\":1,\"ok\":false,\"error\":\"input x: bad dtype\"}'"},
      dir->path());
  ASSERT_TRUE(err.ok());
  auto failed = (*err)->Run(req);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(), "runner: input x: bad dtype");

  auto unsafe = runner::Runner::Start(
      {"sh", "-c",
       "echo '{\"protocol\":1,\"ok\":true}'; read a; echo '{\"protocol\":1,\"id\":1,\"ok\":true,"
       "\"tensors\":[{\"tensor\":\"y\",\"files\":[\"../../etc/passwd\"]}]}'"},
      dir->path());
  ASSERT_TRUE(unsafe.ok());
  auto escaped = (*unsafe)->Run(req);
  ASSERT_FALSE(escaped.ok());
  EXPECT_NE(escaped.status().message().find("is not a plain file name"), std::string::npos);

  auto v2 = runner::Runner::Start({"sh", "-c", "echo '{\"protocol\":2,\"ok\":true}'"}, dir->path());
  ASSERT_FALSE(v2.ok());
  EXPECT_NE(v2.status().message().find("speaks protocol 2"), std::string::npos);
}

// True once `pid` is gone or a zombie (a killed grandchild waits for init to reap it).
bool Dead(pid_t pid) {
  for (int i = 0; i < 300; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    const size_t paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z')
      return true;
    usleep(10000);
  }
  return false;
}

pid_t ReadPid(const std::string& file) {
  for (int i = 0; i < 500; ++i) {
    std::ifstream in(file);
    long pid = 0;
    if (in >> pid && pid > 0) return static_cast<pid_t>(pid);
    usleep(10000);
  }
  return -1;
}

TEST(RunnerTest, TimeoutKillsTheRunnerAndWhatItStarted) {
  auto dir = io::TempDir::Create("kfc-unit-");
  ASSERT_TRUE(dir.ok());
  const std::string pids = dir->Join("pids");
  // Greets, starts a grandchild, reads the request and never answers.
  const std::string script = "echo $$ > " + pids + ".runner; sleep 300 & echo $! > " + pids +
                             ".child; echo '{\"protocol\":1,\"ok\":true}'; read a; wait";
  auto r = runner::Runner::Start({"sh", "-c", script}, dir->path(), 2);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const pid_t runner_pid = ReadPid(pids + ".runner");
  const pid_t child_pid = ReadPid(pids + ".child");
  ASSERT_GT(runner_pid, 0);
  ASSERT_GT(child_pid, 0);
  runner::Request req;
  req.set_model("/m.onnx");
  req.add_inputs()->set_file("/data/x.npy");
  req.add_record()->set_tensor("y");
  const auto start = std::chrono::steady_clock::now();
  auto hung = (*r)->Run(req);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.status().message(),
            "runner 'sh -c '" + script +
                "'' did not answer within 2 s while running '/m.onnx' on '/data/x.npy' "
                "(recording 1 tensors); it was stopped (--runner-timeout SECONDS allows more, 0 "
                "no limit)");
  EXPECT_GE(waited, 1.9);  // the deadline starts inside Run(), poll() rounds to ms
  EXPECT_LT(waited, 30);
  EXPECT_TRUE(Dead(runner_pid));
  EXPECT_TRUE(Dead(child_pid)) << "the runner's process group is killed, not just the runner";

  // A runner that never greets.
  auto mute = runner::Runner::Start({"sleep", "300"}, dir->path(), 0.3);
  ASSERT_FALSE(mute.ok());
  EXPECT_EQ(mute.status().message(),
            "runner 'sleep 300' did not answer within 0.3 s while starting up; it was stopped "
            "(--runner-timeout SECONDS allows more, 0 no limit)");

  // Slow is fine within the timeout, and with none (0).
  for (double timeout : {10.0, 0.0}) {
    auto slow = runner::Runner::Start(
        {"sh", "-c",
         "sleep 0.6; echo '{\"protocol\":1,\"ok\":true}'; read a; sleep 0.6; "
         "echo '{\"protocol\":1,\"id\":1,\"ok\":true,\"tensors\":[{\"tensor\":\"y\","
         "\"files\":[\"y.npy\"]}]}'"},
        dir->path(), timeout);
    ASSERT_TRUE(slow.ok()) << slow.status().message();
    auto answered = (*slow)->Run(req);
    EXPECT_TRUE(answered.ok()) << answered.status().message();
  }
}

TEST(SignalCleanupTest, KillsChildGroupsAndRemovesFoldersWithoutFollowingLinks) {
  // Not a TempDir: the cleanup removes every registered folder.
  const std::string outside = std::filesystem::temp_directory_path().string() +
                              "/kfc-unit-outside-" + std::to_string(getpid());
  std::filesystem::create_directories(outside);
  ASSERT_TRUE(io::WriteNpy(outside + "/keep.npy", {1}, {1.0f}).ok());
  std::string path;
  auto dir = io::TempDir::Create("kfc-unit-");
  ASSERT_TRUE(dir.ok());
  path = dir->path();
  std::filesystem::create_directories(dir->Join("a/b/c"));
  ASSERT_TRUE(io::WriteNpy(dir->Join("a/b/c/x.npy"), {1}, {1.0f}).ok());
  for (int i = 0; i < 200; ++i) {  // more entries than one directory read returns
    ASSERT_TRUE(io::WriteNpy(dir->Join("a/f" + std::to_string(i) + ".npy"), {1}, {1.0f}).ok());
  }
  std::filesystem::create_directory_symlink(outside, dir->Join("a/link"));
  const std::string pids = dir->Join("pids");
  auto child = runner::LineProcess::Start({"sh", "-c", "sleep 300 & echo $! > " + pids + "; wait"},
                                          dir->Join("err"));
  ASSERT_TRUE(child.ok());
  const pid_t grandchild = ReadPid(pids);
  ASSERT_GT(grandchild, 0);

  io::CleanupRegisteredForTesting();  // what SIGINT/SIGTERM do before the process ends
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::exists(outside + "/keep.npy")) << "a link was followed";
  std::filesystem::remove_all(outside);
  EXPECT_TRUE(Dead(grandchild));
  EXPECT_FALSE(child->ReadLine().ok());
}

TEST(CompareRecordingsTest, RelativeAndMaxErrorsOverAllBatches) {
  auto dir = io::TempDir::Create("kfc-unit-");
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(io::WriteNpy(dir->Join("a0.npy"), {2, 2}, {3, 0, 0, 0}).ok());
  ASSERT_TRUE(io::WriteNpy(dir->Join("a1.npy"), {1, 2}, {0, 4}).ok());
  ASSERT_TRUE(io::WriteNpy(dir->Join("b0.npy"), {2, 2}, {3, 0, 1, 0}).ok());
  ASSERT_TRUE(io::WriteNpy(dir->Join("b1.npy"), {1, 2}, {0, 4.5f}).ok());
  auto d = runner::CompareRecordings({dir->Join("a0.npy"), dir->Join("a1.npy")},
                                     {dir->Join("b0.npy"), dir->Join("b1.npy")}, "output 'y'");
  ASSERT_TRUE(d.ok()) << d.status().message();
  // ||B - A|| = sqrt(1 + 0.25), ||A|| = 5.
  EXPECT_NEAR(d->relative_error, std::sqrt(1.25) / 5.0, 1e-12);
  EXPECT_DOUBLE_EQ(d->max_abs_error, 1.0);
  EXPECT_EQ(d->elements, 6);

  auto same = runner::CompareRecordings({dir->Join("a0.npy")}, {dir->Join("a0.npy")}, "same");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->relative_error, 0.0);

  auto count = runner::CompareRecordings({dir->Join("a0.npy")}, {}, "output 'y'");
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.status().message(), "output 'y': 1 batches against 0");
  auto shape =
      runner::CompareRecordings({dir->Join("a0.npy")}, {dir->Join("a1.npy")}, "output 'y'");
  ASSERT_FALSE(shape.ok());
  EXPECT_EQ(shape.status().message(),
            "output 'y': batch 0 has shape [1, 2] after compression, [2, 2] before");

  ASSERT_TRUE(io::WriteNpy(dir->Join("nan.npy"), {1, 2}, {0, NAN}).ok());
  auto nan = runner::CompareRecordings({dir->Join("a1.npy")}, {dir->Join("nan.npy")}, "y");
  ASSERT_TRUE(nan.ok());
  EXPECT_TRUE(std::isnan(nan->relative_error));
}

}  // namespace
}  // namespace kfc
