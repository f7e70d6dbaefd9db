// SPDX-License-Identifier: Apache-2.0
// Status and StatusOr: how every fallible library call reports failure.
// A Status is ok or carries a code and a one-line message that names the object and the cause,
// e.g. "initializer 'W1': data has 12 bytes, expected 4096 (32 x 32 float)".
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace kfc {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad options or impossible shapes given by the caller
  kNotFound,         // missing file or object
  kDataLoss,         // truncated or corrupt input
  kFailedPrecondition,
  kInternal,  // a library we call failed (LAPACK info != 0, checker failure on our output)
  kIoError,   // reading or writing files
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status DataLoss(std::string m) { return Status(StatusCode::kDataLoss, std::move(m)); }
inline Status FailedPrecondition(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status IoError(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }

// Holds either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  // An ok Status carries no value: that programmer error becomes an Internal error rather than a
  // StatusOr that claims ok() with nothing inside (asserts vanish in release builds).
  StatusOr(const Status& status)  // NOLINT: implicit by design
      : status_(status.ok() ? Status(StatusCode::kInternal, "StatusOr built from an ok Status")
                            : status) {}
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace kfc

#define KFC_CONCAT_INNER_(a, b) a##b
#define KFC_CONCAT_(a, b) KFC_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function when `expr` is not ok.
#define KFC_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::kfc::Status kfc_status_ = (expr);        \
    if (!kfc_status_.ok()) return kfc_status_; \
  } while (0)

// `KFC_ASSIGN_OR_RETURN(auto x, Fn())`: binds the value or returns the error.
#define KFC_ASSIGN_OR_RETURN(lhs, expr) \
  KFC_ASSIGN_OR_RETURN_IMPL_(KFC_CONCAT_(kfc_statusor_, __LINE__), lhs, expr)
#define KFC_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
