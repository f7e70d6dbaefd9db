// A private temporary folder that is removed, with everything in it, when its owner goes away.
#pragma once

#include <string>

#include "kfc/core/status.h"

namespace kfc::io {

class TempDir {
 public:
  // Creates a fresh folder (mode 0700) named `prefix` + 6 random characters in $TMPDIR, or /tmp
  // when TMPDIR is unset or empty. IoError naming the folder tried when it cannot be made.
  static StatusOr<TempDir> Create(const std::string& prefix);

  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  // `name` inside the folder.
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace kfc::io
