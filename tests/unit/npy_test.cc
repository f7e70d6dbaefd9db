// SPDX-License-Identifier: Apache-2.0
// NpyReader: every float dtype a probe can produce, in either byte order; hostile headers give one
// line naming the file; FIFOs are refused without blocking.
#include "kfc/io/npy.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tests/support/test_util.h"

namespace kfc::io {
namespace {

using testing::TempDir;

// A .npy (version 1) with `descr`, `shape` text and raw data bytes.
std::string Npy(const std::string& descr, const std::string& shape, const std::string& data) {
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  return bytes + header + data;
}

template <typename T>
std::string Bytes(const std::vector<T>& v, bool big_endian) {
  std::string out(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  if (big_endian) {
    for (size_t i = 0; i < out.size(); i += sizeof(T)) {
      std::reverse(out.begin() + static_cast<std::ptrdiff_t>(i),
                   out.begin() + static_cast<std::ptrdiff_t>(i + sizeof(T)));
    }
  }
  return out;
}

std::vector<float> ReadAll(const std::string& path) {
  auto r = NpyReader::Open(path);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return {};
  std::vector<float> all, chunk;
  for (;;) {
    EXPECT_TRUE(r->Read(3, &chunk).ok());
    if (chunk.empty()) break;
    all.insert(all.end(), chunk.begin(), chunk.end());
  }
  return all;
}

TEST(NpyReaderTest, ReadsFloat16And32And64InBothByteOrders) {
  TempDir dir;
  const std::vector<float> want = {1.0f, -2.5f, 0.0f, 65504.0f, 0.000061035156f, -0.33325195f};
  // float16 bits of `want` (exactly representable values).
  const std::vector<uint16_t> halves = {0x3c00, 0xc100, 0x0000, 0x7bff, 0x0400, 0xb555};
  std::vector<double> doubles(want.begin(), want.end());
  for (bool big : {false, true}) {
    const std::string order = big ? ">" : "<";
    testing::WriteText(Npy(order + "f2", "(2, 3)", Bytes(halves, big)), dir.File("h.npy"));
    testing::WriteText(Npy(order + "f4", "(2, 3)", Bytes(want, big)), dir.File("f.npy"));
    testing::WriteText(Npy(order + "f8", "(2, 3)", Bytes(doubles, big)), dir.File("d.npy"));
    for (const char* name : {"h.npy", "f.npy", "d.npy"}) {
      SCOPED_TRACE(order + name);
      EXPECT_EQ(ReadAll(dir.File(name)), want);
    }
  }
  // Subnormal and infinite halves.
  testing::WriteText(
      Npy("<f2", "(3,)", Bytes(std::vector<uint16_t>{0x0001, 0x7c00, 0xfc00}, false)),
      dir.File("s.npy"));
  const auto s = ReadAll(dir.File("s.npy"));
  ASSERT_EQ(s.size(), 3u);
  EXPECT_FLOAT_EQ(s[0], 5.9604645e-08f);
  EXPECT_TRUE(std::isinf(s[1]) && s[1] > 0);
  EXPECT_TRUE(std::isinf(s[2]) && s[2] < 0);
}

TEST(NpyReaderTest, HugeShapeIsOneLineNamingTheFile) {
  TempDir dir;
  for (const std::string shape :
       {"(99999999999999999999999, 4)", "(4294967296, 4294967296)", "(1125899906842625,)"}) {
    testing::WriteText(Npy("<f4", shape, std::string(16, '\0')), dir.File("big.npy"));
    auto r = NpyReader::Open(dir.File("big.npy"));
    ASSERT_FALSE(r.ok()) << shape;
    EXPECT_NE(r.status().message().find("activation file '" + dir.File("big.npy") + "'"),
              std::string::npos)
        << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
    EXPECT_EQ(r.status().message().find("stoll"), std::string::npos);
  }
}

TEST(NpyReaderTest, UnsupportedDtypeAndFifoAreRefused) {
  TempDir dir;
  testing::WriteText(Npy("<i4", "(1,)", std::string(4, '\0')), dir.File("i.npy"));
  auto r = NpyReader::Open(dir.File("i.npy"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'<i4' is not supported"), std::string::npos)
      << r.status().message();
  ASSERT_EQ(::mkfifo(dir.File("p.npy").c_str(), 0600), 0);
  r = NpyReader::Open(dir.File("p.npy"));  // would block forever without O_NONBLOCK
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is a FIFO"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace kfc::io
