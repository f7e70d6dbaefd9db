// SPDX-License-Identifier: Apache-2.0
// A private temporary folder that is removed, with everything in it, when its owner goes away, or
// when the tool is interrupted by a signal (io/temp_names.h).
#pragma once

#include <string>

#include "kfc/core/status.h"

namespace kfc::io {

class TempDir {
 public:
  // Creates a fresh folder (mode 0700) named `prefix` + 6 random characters in $TMPDIR, or /tmp
  // when TMPDIR is unset or empty. IoError naming the folder tried when it cannot be made.
  static StatusOr<TempDir> Create(const std::string& prefix);

  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)), slot_(other.slot_) {
    other.path_.clear();
    other.slot_ = -1;
  }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  // `name` inside the folder.
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  TempDir(std::string path, int slot) : path_(std::move(path)), slot_(slot) {}
  std::string path_;
  int slot_ = -1;  // its signal-cleanup slot (io/temp_names.h), -1 when none
};

}  // namespace kfc::io
