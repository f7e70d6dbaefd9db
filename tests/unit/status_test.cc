// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/core/status: Status, WithContext, StatusOr, and the propagation macros.
#include "kfc/core/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace kfc {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(StatusTest, FactoriesSetCodeAndMessage) {
  struct Case {
    Status status;
    StatusCode code;
  };
  const std::vector<Case> cases = {
      {InvalidArgument("m1"), StatusCode::kInvalidArgument},
      {NotFound("m2"), StatusCode::kNotFound},
      {DataLoss("m3"), StatusCode::kDataLoss},
      {FailedPrecondition("m4"), StatusCode::kFailedPrecondition},
      {Internal("m5"), StatusCode::kInternal},
      {IoError("m6"), StatusCode::kIoError},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_FALSE(cases[i].status.ok()) << i;
    EXPECT_EQ(cases[i].status.code(), cases[i].code) << i;
    EXPECT_EQ(cases[i].status.message(), "m" + std::to_string(i + 1));
  }
}

TEST(StatusTest, WithContextPrefixesTheMessageAndKeepsTheCode) {
  const Status s = DataLoss("raw_data has 12 bytes");
  const Status c = s.WithContext("initializer 'W'");
  EXPECT_EQ(c.code(), StatusCode::kDataLoss);
  EXPECT_EQ(c.message(), "initializer 'W': raw_data has 12 bytes");
  // The original is unchanged.
  EXPECT_EQ(s.message(), "raw_data has 12 bytes");
  // Contexts nest outermost first.
  EXPECT_EQ(c.WithContext("model 'a.onnx'").message(),
            "model 'a.onnx': initializer 'W': raw_data has 12 bytes");
}

TEST(StatusTest, WithContextOnOkStaysOkWithoutMessage) {
  const Status c = Status::Ok().WithContext("layer 'fc1'");
  EXPECT_TRUE(c.ok());
  EXPECT_EQ(c.message(), "");
}

TEST(StatusOrTest, HoldsAValue) {
  StatusOr<int> v(42);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v.status().ok());
  EXPECT_EQ(v.value(), 42);
  EXPECT_EQ(*v, 42);
  *v = 7;
  EXPECT_EQ(v.value(), 7);
}

TEST(StatusOrTest, HoldsAnError) {
  StatusOr<std::string> v(NotFound("model 'x.onnx': no such file"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(v.status().message(), "model 'x.onnx': no such file");
}

TEST(StatusOrTest, ArrowAndMoveOut) {
  StatusOr<std::vector<int>> v(std::vector<int>{1, 2, 3});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->size(), 3u);
  std::vector<int> moved = std::move(v).value();
  EXPECT_EQ(moved, (std::vector<int>{1, 2, 3}));
}

TEST(StatusOrTest, MoveOnlyValue) {
  StatusOr<std::unique_ptr<int>> v(std::make_unique<int>(5));
  ASSERT_TRUE(v.ok());
  std::unique_ptr<int> p = std::move(v).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 5);
}

// --- Macros ---

Status FailIf(bool fail, int* calls) {
  ++*calls;
  return fail ? IoError("disk full") : Status::Ok();
}

StatusOr<int> Half(int x, int* calls) {
  ++*calls;
  if (x % 2 != 0) return InvalidArgument(std::to_string(x) + " is odd");
  return x / 2;
}

Status TwoSteps(bool fail_first, bool fail_second, int* calls, int* reached) {
  KFC_RETURN_IF_ERROR(FailIf(fail_first, calls));
  ++*reached;
  KFC_RETURN_IF_ERROR(FailIf(fail_second, calls));
  ++*reached;
  return Status::Ok();
}

TEST(StatusMacroTest, ReturnIfErrorPropagatesTheFirstError) {
  int calls = 0, reached = 0;
  EXPECT_TRUE(TwoSteps(false, false, &calls, &reached).ok());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(reached, 2);

  calls = reached = 0;
  Status s = TwoSteps(true, false, &calls, &reached);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "disk full");
  EXPECT_EQ(calls, 1) << "the expression must be evaluated once and nothing after it run";
  EXPECT_EQ(reached, 0);

  calls = reached = 0;
  EXPECT_EQ(TwoSteps(false, true, &calls, &reached).code(), StatusCode::kIoError);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(reached, 1);
}

// Quarter of x via two halvings; each step binds with KFC_ASSIGN_OR_RETURN.
StatusOr<int> Quarter(int x, int* calls) {
  KFC_ASSIGN_OR_RETURN(int half, Half(x, calls));
  int quarter = -1;
  KFC_ASSIGN_OR_RETURN(quarter, Half(half, calls));  // assigns an existing variable
  return quarter;
}

TEST(StatusMacroTest, AssignOrReturnBindsTheValue) {
  int calls = 0;
  auto q = Quarter(20, &calls);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(*q, 5);
  EXPECT_EQ(calls, 2);
}

TEST(StatusMacroTest, AssignOrReturnPropagatesTheError) {
  int calls = 0;
  auto first = Quarter(7, &calls);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(first.status().message(), "7 is odd");
  EXPECT_EQ(calls, 1);

  calls = 0;
  auto second = Quarter(10, &calls);  // 10 -> 5, then 5 is odd
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), "5 is odd");
  EXPECT_EQ(calls, 2);
}

StatusOr<std::unique_ptr<int>> MakeBox(int v) {
  if (v < 0) return InvalidArgument("negative");
  return std::make_unique<int>(v);
}

Status UnboxInto(int v, int* out) {
  KFC_ASSIGN_OR_RETURN(std::unique_ptr<int> box, MakeBox(v));
  *out = *box;
  return Status::Ok();
}

TEST(StatusMacroTest, AssignOrReturnMovesMoveOnlyValuesIntoAStatusFunction) {
  int out = 0;
  EXPECT_TRUE(UnboxInto(9, &out).ok());
  EXPECT_EQ(out, 9);
  out = 0;
  Status s = UnboxInto(-1, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "negative");
  EXPECT_EQ(out, 0);
}

StatusOr<int> ReturnIfErrorInStatusOrFunction(bool fail) {
  int calls = 0;
  KFC_RETURN_IF_ERROR(FailIf(fail, &calls).WithContext("step 1"));
  return 1;
}

TEST(StatusMacroTest, ReturnIfErrorWorksInStatusOrFunctions) {
  auto ok = ReturnIfErrorInStatusOrFunction(false);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 1);
  auto bad = ReturnIfErrorInStatusOrFunction(true);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kIoError);
  EXPECT_EQ(bad.status().message(), "step 1: disk full");
}

}  // namespace
}  // namespace kfc
