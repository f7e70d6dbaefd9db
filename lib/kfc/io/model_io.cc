#include "kfc/io/model_io.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace kfc::io {
namespace fs = std::filesystem;
namespace {

std::string Quote(const std::string& path) { return "'" + path + "'"; }

std::string ErrnoText() { return std::strerror(errno); }

// Folder that holds `path` ("." for a bare file name).
fs::path ParentOf(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

}  // namespace

StatusOr<std::string> ReadFile(const std::string& path, const std::string& what, int64_t max_bytes,
                               const std::string& limit_name) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound(what + ": no such file");
    return IoError(what + ": " + ErrnoText());
  }
  if (S_ISDIR(st.st_mode)) return InvalidArgument(what + ": is a directory, not a file");
  if (st.st_size > max_bytes) {
    return InvalidArgument(what + ": " + std::to_string(st.st_size) + " bytes exceeds " +
                           limit_name);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError(what + ": cannot open: " + ErrnoText());
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  if (!bytes.empty() && !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return IoError(what + ": read failed: " + ErrnoText());
  }
  return bytes;
}

StatusOr<onnx::ModelProto> LoadModel(const std::string& path) {
  const std::string what = "model " + Quote(path);
  KFC_ASSIGN_OR_RETURN(const std::string bytes,
                       ReadFile(path, what, INT_MAX, "protobuf's 2 GiB limit for one message"));
  if (bytes.empty()) return DataLoss(what + ": file is empty, not an ONNX model");

  onnx::ModelProto model;
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(INT_MAX);
  if (!model.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage()) {
    return DataLoss(what + ": not a valid ONNX protobuf (truncated or corrupt)");
  }
  if (!model.has_graph()) return DataLoss(what + ": not an ONNX model (it has no graph)");
  if (model.ir_version() <= 0) return DataLoss(what + ": not an ONNX model (no ir_version)");
  if (model.opset_import_size() == 0) {
    return DataLoss(what + ": not an ONNX model (no opset_import)");
  }
  return model;
}

StatusOr<std::string> SerializeModel(const onnx::ModelProto& model) {
  const size_t size = model.ByteSizeLong();
  if (size > static_cast<size_t>(INT_MAX)) {
    return InvalidArgument("output model: " + std::to_string(size) +
                           " bytes exceeds protobuf's 2 GiB limit for one message");
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    model.SerializeWithCachedSizes(&coded);
    if (coded.HadError()) return Internal("output model: protobuf serialization failed");
  }
  return bytes;
}

Status CheckOutputPath(const std::string& input, const std::string& output) {
  const std::string what = "output " + Quote(output);
  if (output.empty()) return InvalidArgument("output path is empty");
  std::error_code ec;
  const fs::path parent = ParentOf(output);
  if (!fs::exists(parent, ec)) {
    return NotFound(what + ": folder " + Quote(parent.string()) + " does not exist");
  }
  if (!fs::is_directory(parent, ec)) {
    return InvalidArgument(what + ": " + Quote(parent.string()) + " is not a folder");
  }
  if (fs::is_directory(output, ec)) return InvalidArgument(what + ": is a directory");
  if (fs::exists(output, ec) && fs::equivalent(input, output, ec)) {
    return InvalidArgument(what + ": is the input file; write to another path");
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    return IoError(what + ": folder " + Quote(parent.string()) +
                   " is not writable: " + ErrnoText());
  }
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& bytes) {
  const std::string what = "output " + Quote(path);
  const fs::path target(path);
  std::string tmpl = (ParentOf(path) / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return IoError(what + ": cannot create a temporary file: " + ErrnoText());
  auto fail = [&](const std::string& step) {
    Status s = IoError(what + ": " + step + ": " + ErrnoText());
    ::close(fd);
    ::unlink(tmpl.c_str());
    return s;
  };
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write failed");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  // mkstemp creates 0600; give the file the usual permissions for new files (0666 & ~umask).
  mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) return fail("chmod failed");
  if (::fsync(fd) != 0) return fail("fsync failed");
  if (::close(fd) != 0) {
    Status s = IoError(what + ": close failed: " + ErrnoText());
    ::unlink(tmpl.c_str());
    return s;
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    Status s = IoError(what + ": rename into place failed: " + ErrnoText());
    ::unlink(tmpl.c_str());
    return s;
  }
  // Make the rename itself durable; failure here does not undo a complete, valid file.
  if (int dir = ::open(ParentOf(path).c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::Ok();
}

}  // namespace kfc::io
