// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/spill.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "kfc/io/external_data.h"

namespace kfc::io {
namespace fs = std::filesystem;
namespace {

// A 64-bit digest, 8 bytes per step (the tail zero-padded), mixed with the length. Only a first
// filter: a match is confirmed by comparing the bytes.
uint64_t Digest(const char* data, size_t size) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ size;
  size_t i = 0;
  auto mix = [&](uint64_t word) {
    h ^= word;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  };
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    std::memcpy(&word, data + i, 8);
    mix(word);
  }
  if (i < size) {
    uint64_t word = 0;
    std::memcpy(&word, data + i, size - i);
    mix(word);
  }
  h ^= h >> 29;
  h *= 0xc4ceb9fe1a85ec53ULL;
  return h ^ (h >> 32);
}

}  // namespace

const std::string& SpillFile::Location() {
  static const std::string location("\0kfc-spill", 10);
  return location;
}

bool IsSpilled(const onnx::TensorProto& t) {
  if (t.data_location() != onnx::TensorProto::EXTERNAL) return false;
  for (const auto& e : t.external_data()) {
    if (e.key() == "location") return e.value() == SpillFile::Location();
  }
  return false;
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status SpillFile::Fail(const std::string& step, int err) const {
  return IoError(subject_ + ": " + step + " a temporary file for " + kind_ + " in '" + folder_ +
                 "': " + std::strerror(err));
}

Status SpillFile::Open(const std::string& output) {
  const fs::path parent = fs::path(output).parent_path();
  temp_name_ = "." + fs::path(output).filename().string() + ".spill-XXXXXX";
  return OpenIn(parent.empty() ? "." : parent.string(), "output '" + output + "'", "factors");
}

Status SpillFile::OpenIn(const std::string& folder, const std::string& subject,
                         const std::string& kind) {
  subject_ = subject;
  kind_ = kind;
  folder_ = folder;
#ifdef O_TMPFILE
  fd_ = ::open(folder_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ >= 0) return Status::Ok();
  // File systems without O_TMPFILE refuse it with EOPNOTSUPP (or EISDIR, EINVAL on old kernels);
  // any other error is the folder's and the fallback would meet it too.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return Fail("cannot create", errno);
#endif
  std::string tmpl = (fs::path(folder_) / temp_name_).string();
  fd_ = ::mkstemp(tmpl.data());
  if (fd_ < 0) return Fail("cannot create", errno);
  if (::unlink(tmpl.c_str()) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmpl.c_str());
    return Fail("cannot unlink", err);
  }
  return Status::Ok();
}

int64_t SpillFile::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

int64_t SpillFile::bytes_spilled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_spilled_;
}

int64_t SpillFile::tensors_spilled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tensors_spilled_;
}

Status SpillFile::Read(int64_t offset, char* out, size_t size) const {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd_, out + done, std::min<size_t>(size - done, size_t{1} << 30),
                              static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail("reading back", n < 0 ? errno : EIO);
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

StatusOr<bool> SpillFile::Equals(int64_t offset, const char* data, size_t size) const {
  std::string chunk(std::min<size_t>(size, size_t{1} << 20), '\0');
  for (size_t from = 0; from < size; from += chunk.size()) {
    const size_t n = std::min(chunk.size(), size - from);
    KFC_RETURN_IF_ERROR(Read(offset + static_cast<int64_t>(from), chunk.data(), n));
    if (std::memcmp(chunk.data(), data + from, n) != 0) return false;
  }
  return true;
}

Status SpillFile::Spill(onnx::TensorProto* t) {
  // Taken out of the tensor, so that its buffer is freed on return (clearing keeps the capacity).
  std::string bytes;
  t->mutable_raw_data()->swap(bytes);
  Status s = Write(bytes, t);
  if (!s.ok()) t->mutable_raw_data()->swap(bytes);
  return s;
}

Status SpillFile::Write(const std::string& bytes, onnx::TensorProto* t) {
  const auto length = static_cast<int64_t>(bytes.size());
  const uint64_t digest = Digest(bytes.data(), bytes.size());
  int64_t offset = -1;
  {
    // Held while writing too: Equals may read any range recorded in by_digest_.
    std::lock_guard<std::mutex> lock(mu_);
    auto [first, last] = by_digest_.equal_range(digest);
    for (auto it = first; it != last && offset < 0; ++it) {
      if (it->second.second != length) continue;
      KFC_ASSIGN_OR_RETURN(const bool same, Equals(it->second.first, bytes.data(), bytes.size()));
      if (same) offset = it->second.first;
    }
    if (offset < 0) {
      KFC_RETURN_IF_ERROR(WriteAtEnd(bytes.data(), bytes.size()));
      offset = size_;
      size_ += length;
      by_digest_.emplace(digest, std::make_pair(offset, length));
    }
    bytes_spilled_ += length;
    ++tensors_spilled_;
  }
  t->clear_raw_data();
  SetExternalReference(t, Location(), offset, length);
  return Status::Ok();
}

Status SpillFile::WriteAtEnd(const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd_, data + done, std::min<size_t>(size - done, 1u << 30),
                               static_cast<off_t>(size_ + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail("writing to", n < 0 ? errno : EIO);
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

StatusOr<int64_t> SpillFile::Append(const char* data, size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  KFC_RETURN_IF_ERROR(WriteAtEnd(data, size));
  const int64_t offset = size_;
  size_ += static_cast<int64_t>(size);
  return offset;
}

}  // namespace kfc::io
