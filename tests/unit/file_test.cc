// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/io/file: atomic writes and the output path checks.
#include "kfc/io/file.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kfc/io/model_io.h"
#include "tests/support/test_util.h"

namespace kfc::io {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::MessageDifferencer;
using testing::TempDir;
using testing::WriteModel;
using testing::WriteText;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

onnx::ModelProto SmallModel() {
  auto model = testing::ParseModelText(
      "<ir_version: 8, opset_import: [\"\" : 13]>\n"
      "agraph (float[2, 4] x) => (float[2, 3] y) {\n  y = MatMul(x, W)\n}");
  model.mutable_graph()->mutable_node(0)->set_name("proj");
  testing::AddRandomInitializer(&model, "W", {4, 3}, 5);
  return model;
}

// --- ReadFile ---

TEST(ReadFileTest, ReadsTheWholeFile) {
  TempDir dir;
  const std::string bytes("a\0b\xff\n", 5);
  WriteText(bytes, dir.File("f.bin"));
  auto read = io::ReadFile(dir.File("f.bin"), "file 'f.bin'", 5, "5 bytes");
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(*read, bytes);
}

TEST(ReadFileTest, FailuresNameTheObjectAndTheCause) {
  TempDir dir;
  auto missing = io::ReadFile(dir.File("none"), "plan 'none'", 100, "the limit");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "plan 'none': no such file");
  auto folder = io::ReadFile(dir.path(), "plan 'dir'", 100, "the limit");
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(folder.status().message(), "plan 'dir': is a directory, not a file");
  WriteText("123456", dir.File("big"));
  auto big = io::ReadFile(dir.File("big"), "plan 'big'", 5, "the 5-byte limit");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(big.status().message(), "plan 'big': 6 bytes exceeds the 5-byte limit");
}

// --- WriteFileAtomic ---

TEST(WriteFileAtomicTest, WritesTheBytesAndNothingElse) {
  TempDir dir;
  const std::string bytes("model\0bytes\xff\n", 13);
  const std::string path = dir.File("out.onnx");
  Status s = WriteFileAtomic(path, bytes);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ReadFile(path), bytes);
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out.onnx"}) << "temporary file left behind";
}

TEST(WriteFileAtomicTest, NewFileGetsUmaskPermissions) {
  TempDir dir;
  const mode_t old_mask = ::umask(022);
  Status s = WriteFileAtomic(dir.File("out.onnx"), "x");
  ::umask(old_mask);
  ASSERT_TRUE(s.ok()) << s.message();
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("out.onnx").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u) << "mkstemp's 0600 must not leak into the output";
}

TEST(WriteFileAtomicTest, EmptyBytesGiveAnEmptyFile) {
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.File("empty.bin"), "").ok());
  EXPECT_TRUE(fs::exists(dir.File("empty.bin")));
  EXPECT_EQ(fs::file_size(dir.File("empty.bin")), 0u);
  EXPECT_EQ(dir.List(), std::vector<std::string>{"empty.bin"});
}

TEST(WriteFileAtomicTest, ReplacesAnExistingFile) {
  TempDir dir;
  const std::string path = dir.File("out.onnx");
  WriteText(std::string(1000, 'o'), path);
  ASSERT_TRUE(WriteFileAtomic(path, "new").ok());
  EXPECT_EQ(ReadFile(path), "new") << "old content must be fully replaced, not overwritten";
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out.onnx"});
}

TEST(WriteFileAtomicTest, SerializedModelLoadsBack) {
  TempDir dir;
  const onnx::ModelProto model = SmallModel();
  auto bytes = SerializeModel(model);
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(WriteFileAtomic(dir.File("m.onnx"), *bytes).ok());
  auto loaded = LoadModel(dir.File("m.onnx"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE(MessageDifferencer::Equals(model, *loaded));
}

TEST(WriteFileAtomicTest, MissingFolderFailsCleanly) {
  TempDir dir;
  const std::string path = dir.File("missing/out.onnx");
  Status s = WriteFileAtomic(path, "bytes");
  ASSERT_FALSE(s.ok());
  // Found before anything is created (io::ResolveWriteTarget).
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), path)) << s.message();
  EXPECT_TRUE(Contains(s.message(), "folder '" + dir.File("missing") + "' does not exist"))
      << s.message();
  EXPECT_FALSE(fs::exists(dir.File("missing")));
  EXPECT_TRUE(dir.List().empty());
}

TEST(WriteFileAtomicTest, TargetThatIsADirectoryFailsAndLeavesNoTemporaryFile) {
  TempDir dir;
  const std::string path = dir.File("out.onnx");
  fs::create_directory(path);
  WriteText("keep", path + "/inside");
  Status s = WriteFileAtomic(path, "bytes");
  ASSERT_FALSE(s.ok());
  // Refused before anything is written: only regular files are replaced.
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "'" + path + "' is a directory")) << s.message();
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out.onnx"});
  EXPECT_TRUE(fs::is_directory(path));
  EXPECT_EQ(ReadFile(path + "/inside"), "keep");
}

// Lowers the file size limit for the scope (SIGXFSZ ignored, so write() fails with EFBIG).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_FSIZE, &lowered) == 0;
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
  bool ok_ = false;
};

TEST(WriteFileAtomicTest, FailedWriteKeepsTheOldFileAndLeavesNoTemporaryFile) {
  TempDir dir;
  const std::string path = dir.File("out.onnx");
  WriteText("old content", path);
  Status s;
  {
    FileSizeLimit limit(1024);
    ASSERT_TRUE(limit.ok());
    s = WriteFileAtomic(path, std::string(64 * 1024, 'n'));
  }
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_TRUE(Contains(s.message(), path)) << s.message();
  EXPECT_TRUE(Contains(s.message(), "write failed")) << s.message();
  EXPECT_EQ(ReadFile(path), "old content");
  EXPECT_EQ(dir.List(), std::vector<std::string>{"out.onnx"});
}

// --- CheckOutputPath ---

class CheckOutputPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = dir_.File("in.onnx");
    WriteModel(SmallModel(), input_);
  }
  TempDir dir_;
  std::string input_;
};

TEST_F(CheckOutputPathTest, NewFileInExistingFolderIsFine) {
  Status s = CheckOutputPath(input_, dir_.File("out.onnx"));
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(fs::exists(dir_.File("out.onnx"))) << "checking must not create the output";
}

TEST_F(CheckOutputPathTest, ExistingOtherFileIsFine) {
  WriteText("old", dir_.File("out.onnx"));
  Status s = CheckOutputPath(input_, dir_.File("out.onnx"));
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ReadFile(dir_.File("out.onnx")), "old");
}

TEST_F(CheckOutputPathTest, MissingFolderIsNotFound) {
  const std::string output = dir_.File("nope/out.onnx");
  Status s = CheckOutputPath(input_, output);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), output)) << s.message();
  EXPECT_TRUE(Contains(s.message(), "'" + dir_.File("nope") + "' does not exist")) << s.message();
}

TEST_F(CheckOutputPathTest, OutputThatIsADirectoryIsRejected) {
  fs::create_directory(dir_.File("sub"));
  for (const std::string& output : {dir_.File("sub"), dir_.File("sub/"), dir_.path()}) {
    Status s = CheckOutputPath(input_, output);
    ASSERT_FALSE(s.ok()) << output;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << output;
    EXPECT_TRUE(Contains(s.message(), "is a directory")) << s.message();
  }
}

TEST_F(CheckOutputPathTest, OutputEqualToInputIsRejected) {
  Status s = CheckOutputPath(input_, input_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "is the input file")) << s.message();
  EXPECT_TRUE(Contains(s.message(), input_)) << s.message();
}

TEST_F(CheckOutputPathTest, OutputEqualToInputUnderAnotherSpellingIsRejected) {
  fs::create_directory(dir_.File("sub"));
  fs::create_symlink(input_, dir_.File("link.onnx"));
  ASSERT_EQ(::link(input_.c_str(), dir_.File("hard.onnx").c_str()), 0);
  const std::string base = fs::path(dir_.path()).filename().string();
  for (const std::string& output :
       {dir_.path() + "/./in.onnx", dir_.path() + "//in.onnx", dir_.File("sub/../in.onnx"),
        dir_.path() + "/../" + base + "/in.onnx", dir_.File("link.onnx"), dir_.File("hard.onnx")}) {
    Status s = CheckOutputPath(input_, output);
    ASSERT_FALSE(s.ok()) << output;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << output;
    EXPECT_TRUE(Contains(s.message(), "is the input file")) << output << ": " << s.message();
  }
  // And the other way round: the input spelled oddly, the output plainly.
  Status s = CheckOutputPath(dir_.path() + "/./in.onnx", input_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
}

TEST_F(CheckOutputPathTest, ParentThatIsARegularFileIsRejected) {
  const std::string output = input_ + "/out.onnx";
  Status s = CheckOutputPath(input_, output);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), output)) << s.message();
  EXPECT_TRUE(Contains(s.message(), "is not a folder")) << s.message();
}

TEST_F(CheckOutputPathTest, EmptyOutputIsRejected) {
  Status s = CheckOutputPath(input_, "");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "output path is empty");
}

TEST_F(CheckOutputPathTest, UnwritableFolderIsIoError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can write to any folder";
  const std::string locked = dir_.File("locked");
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
  Status s = CheckOutputPath(input_, locked + "/out.onnx");
  fs::permissions(locked, fs::perms::owner_all);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_TRUE(Contains(s.message(), "not writable")) << s.message();
}

}  // namespace
}  // namespace kfc::io
