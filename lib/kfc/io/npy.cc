// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/npy.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "kfc/io/file.h"
#include "kfc/io/file_identity.h"
#include "kfc/io/model_io.h"

namespace kfc::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

// The value text of `key` in the header's Python dict literal ("" when absent).
std::string DictValue(const std::string& header, const std::string& key) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t v = header.find(':', k);
  if (v == std::string::npos) return "";
  ++v;
  while (v < header.size() && header[v] == ' ') ++v;
  if (v >= header.size()) return "";
  if (header[v] == '(') return header.substr(v, header.find(')', v) - v + 1);
  size_t end = v;
  if (header[v] == '\'')
    end = header.find('\'', v + 1) + 1;
  else
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  return header.substr(v, end - v);
}

// Magic, version 1 and the header dict for `descr` (quoted, e.g. "'<f4'") and `dims` ("(3, 4)"),
// padded to a multiple of 64 bytes: everything before the data.
std::string NpyPreamble(const std::string& descr, const std::string& dims) {
  std::string header = "{'descr': " + descr + ", 'fortran_order': False, 'shape': " + dims + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes(kMagic, 6);
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>((header.size() >> 8) & 0xff);
  return bytes + header;
}

}  // namespace

NpyReader::Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

StatusOr<NpyReader> NpyReader::Open(const std::string& path) {
  const std::string what = "activation file '" + path + "'";
  int64_t file_size = 0;
  NpyReader r;
  r.path_ = path;
  r.in_ = std::make_shared<Fd>();
  KFC_ASSIGN_OR_RETURN(r.in_->fd, OpenRegularFile(path, what, &file_size));
  const int fd = r.in_->fd;
  auto read = [&](char* out, size_t n) { return ReadFully(fd, out, n, what).ok(); };
  char magic[8] = {};
  if (file_size < 10 || !read(magic, 8) || std::memcmp(magic, kMagic, 6) != 0) {
    return DataLoss(what + ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  int64_t data_offset = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!read(reinterpret_cast<char*>(b), 2)) return DataLoss(what + ": truncated header");
    header_len = b[0] | (b[1] << 8);
    data_offset = 10 + header_len;
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!read(reinterpret_cast<char*>(b), 4)) return DataLoss(what + ": truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    data_offset = 12 + static_cast<int64_t>(header_len);
  } else {
    return DataLoss(what + ": unsupported .npy version " + std::to_string(major));
  }
  if (header_len > (1u << 20)) return DataLoss(what + ": header too long");
  if (data_offset > file_size) return DataLoss(what + ": truncated header");
  std::string header(header_len, '\0');
  if (!read(header.data(), header_len)) return DataLoss(what + ": truncated header");
  const std::string descr = DictValue(header, "descr");
  // '<' little-endian, '>' big-endian, '=' native, '|' not applicable (1-byte types only).
  if (descr.size() == 5 && descr[1] != '\0' && std::strchr("<>=|", descr[1]) != nullptr &&
      descr[2] == 'f' && (descr[3] == '2' || descr[3] == '4' || descr[3] == '8') &&
      descr[0] == '\'' && descr[4] == '\'') {
    r.item_size_ = descr[3] - '0';
    r.swap_ = descr[1] == '>';
  } else {
    return InvalidArgument(what + ": dtype " + (descr.empty() ? "(none)" : descr) +
                           " is not supported (float16, float32 or float64: '<f2', '<f4', '<f8', "
                           "or big-endian '>f2', '>f4', '>f8')");
  }
  if (DictValue(header, "fortran_order") != "False") {
    return InvalidArgument(what + ": Fortran order is not supported (save a C-order array)");
  }
  std::string shape = DictValue(header, "shape");
  if (shape.size() < 2) return DataLoss(what + ": header has no shape");
  r.elements_ = 1;
  size_t pos = 1;
  constexpr int64_t kMaxElements = int64_t{1} << 50;
  while (pos < shape.size() - 1) {
    while (pos < shape.size() && (shape[pos] == ' ' || shape[pos] == ',')) ++pos;
    if (pos >= shape.size() - 1) break;
    size_t end = pos;
    while (end < shape.size() && std::isdigit(static_cast<unsigned char>(shape[end]))) ++end;
    if (end == pos) return DataLoss(what + ": bad shape " + shape);
    int64_t d = 0;
    const auto [ptr, ec] = std::from_chars(shape.data() + pos, shape.data() + end, d);
    if (ec != std::errc() || ptr != shape.data() + end || d > kMaxElements) {
      return DataLoss(what + ": shape " + shape + " has a dimension too large (" +
                      shape.substr(pos, std::min<size_t>(end - pos, 40)) + ")");
    }
    if (d > 0 && r.elements_ > kMaxElements / d) {
      return DataLoss(what + ": shape " + shape + " has more than 2^50 elements");
    }
    r.shape_.push_back(d);
    r.elements_ *= d;
    pos = end;
  }
  if (file_size - data_offset < r.elements_ * r.item_size_) {
    return DataLoss(what + ": shape " + shape + " needs " +
                    std::to_string(r.elements_ * r.item_size_) + " bytes of data, the file has " +
                    std::to_string(file_size - data_offset));
  }
  return r;
}

namespace {

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(mant), -24);  // zero and subnormals
    return sign ? -f : f;
  }
  const uint32_t bits =
      exp == 0x1f ? sign | 0x7f800000u | (mant << 13) : sign | ((exp + 112) << 23) | (mant << 13);
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename U>
U Load(const unsigned char* p, bool swap) {
  U u;
  std::memcpy(&u, p, sizeof(U));
  if (!swap) return u;
  U v = 0;
  for (size_t i = 0; i < sizeof(U); ++i) v = static_cast<U>((v << 8) | p[i]);
  return v;
}

}  // namespace

Status NpyReader::Read(int64_t max_elements, std::vector<float>* out) {
  const int64_t n = std::min(max_elements, elements_ - consumed_);
  out->resize(static_cast<size_t>(std::max<int64_t>(n, 0)));
  if (n <= 0) return Status::Ok();
  const std::string what = "activation file '" + path_ + "'";
  if (item_size_ == 4 && !swap_) {
    KFC_RETURN_IF_ERROR(
        ReadFully(in_->fd, reinterpret_cast<char*>(out->data()), static_cast<size_t>(n) * 4, what));
  } else {
    std::vector<unsigned char> buf(static_cast<size_t>(n) * item_size_);
    KFC_RETURN_IF_ERROR(ReadFully(in_->fd, reinterpret_cast<char*>(buf.data()), buf.size(), what));
    for (int64_t i = 0; i < n; ++i) {
      const unsigned char* p = buf.data() + i * item_size_;
      float& v = (*out)[static_cast<size_t>(i)];
      if (item_size_ == 2) {
        v = HalfToFloat(Load<uint16_t>(p, swap_));
      } else if (item_size_ == 4) {
        const uint32_t bits = Load<uint32_t>(p, swap_);
        std::memcpy(&v, &bits, 4);
      } else {
        const uint64_t bits = Load<uint64_t>(p, swap_);
        double d;
        std::memcpy(&d, &bits, 8);
        v = static_cast<float>(d);
      }
    }
  }
  consumed_ += n;
  return Status::Ok();
}

Status WriteNpy(const std::string& path, const std::vector<int64_t>& shape,
                const std::vector<float>& data) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // (a, b) but (a,)
  if (!dims.empty() && shape.size() > 1) dims.pop_back();
  std::string bytes = NpyPreamble("'<f4'", "(" + dims + ")");
  bytes.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  return WriteFileAtomic(path, bytes);
}

}  // namespace kfc::io

namespace kfc::io {
namespace {

// A whole .npy file of any dtype, parsed far enough to split it by rows.
struct RawNpy {
  std::string bytes;
  std::string header;  // the dict text
  size_t data_offset = 0;
  std::vector<int64_t> shape;
  int64_t item_size = 0;
};

StatusOr<RawNpy> ReadRawNpy(const std::string& path) {
  const std::string what = "calibration input '" + path + "'";
  RawNpy r;
  KFC_ASSIGN_OR_RETURN(r.bytes, ReadFile(path, what, int64_t{1} << 40, "1 TiB"));
  const std::string& b = r.bytes;
  if (b.size() < 10 || b.compare(0, 6, std::string(kMagic, 6)) != 0) {
    return DataLoss(what + ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(b[6]);
  auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[i])); };
  size_t header_len = 0;
  if (major == 1) {
    header_len = byte(8) | (byte(9) << 8);
    r.data_offset = 10 + header_len;
  } else if ((major == 2 || major == 3) && b.size() >= 12) {
    header_len = byte(8) | (byte(9) << 8) | (byte(10) << 16) | (byte(11) << 24);
    r.data_offset = 12 + header_len;
  } else {
    return DataLoss(what + ": unsupported .npy version " + std::to_string(major));
  }
  if (r.data_offset > b.size()) return DataLoss(what + ": truncated header");
  r.header = b.substr(r.data_offset - header_len, header_len);
  if (DictValue(r.header, "fortran_order") != "False") {
    return InvalidArgument(what + ": Fortran order is not supported (save it in C order)");
  }
  const std::string descr = DictValue(r.header, "descr");
  size_t digits = descr.size() >= 3 ? descr.find_first_of("0123456789") : std::string::npos;
  int64_t size = 0;
  if (digits != std::string::npos) {
    std::from_chars(descr.data() + digits, descr.data() + descr.size() - 1, size);
  }
  if (size <= 0 || descr.find_first_of("[(") != std::string::npos) {
    return InvalidArgument(what + ": dtype " + descr + " is not supported");
  }
  // Unicode strings ('<U8') hold 4 bytes per character.
  r.item_size = descr.find('U') != std::string::npos ? 4 * size : size;
  const std::string dims = DictValue(r.header, "shape");
  for (size_t i = 1; i + 1 < dims.size();) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) ++i;
    if (i + 1 >= dims.size()) break;
    int64_t d = 0;
    auto [end, ec] = std::from_chars(dims.data() + i, dims.data() + dims.size(), d);
    if (ec != std::errc() || d < 0) return DataLoss(what + ": bad shape " + dims);
    r.shape.push_back(d);
    i = static_cast<size_t>(end - dims.data());
  }
  if (r.shape.empty()) return InvalidArgument(what + ": a scalar has no rows");
  int64_t elements = r.item_size;
  for (int64_t d : r.shape) elements *= d;
  if (static_cast<int64_t>(b.size() - r.data_offset) != elements) {
    return DataLoss(what + ": " + std::to_string(b.size() - r.data_offset) +
                    " data bytes, its shape " + dims + " needs " + std::to_string(elements));
  }
  return r;
}

Status WriteRows(const RawNpy& r, int64_t first, int64_t rows, const std::string& path) {
  std::string dims = "(" + std::to_string(rows) + ",";
  for (size_t i = 1; i < r.shape.size(); ++i) {
    dims += (i == 1 ? " " : ", ") + std::to_string(r.shape[i]);
  }
  dims += ")";
  int64_t row_bytes = r.item_size;
  for (size_t i = 1; i < r.shape.size(); ++i) row_bytes *= r.shape[i];
  std::string bytes = NpyPreamble(DictValue(r.header, "descr"), dims);
  bytes.append(r.bytes, r.data_offset + static_cast<size_t>(first * row_bytes),
               static_cast<size_t>(rows * row_bytes));
  return WriteFileAtomic(path, bytes);
}

}  // namespace

StatusOr<int64_t> NpyRows(const std::string& path) {
  KFC_ASSIGN_OR_RETURN(const RawNpy r, ReadRawNpy(path));
  return r.shape[0];
}

Status SplitNpyRows(const std::string& path, int64_t head_rows, const std::string& head_path,
                    const std::string& tail_path) {
  KFC_ASSIGN_OR_RETURN(const RawNpy r, ReadRawNpy(path));
  if (head_rows < 0 || head_rows > r.shape[0]) {
    return InvalidArgument("calibration input '" + path + "': cannot split " +
                           std::to_string(r.shape[0]) + " rows after row " +
                           std::to_string(head_rows));
  }
  KFC_RETURN_IF_ERROR(WriteRows(r, 0, head_rows, head_path));
  return WriteRows(r, head_rows, r.shape[0] - head_rows, tail_path);
}

}  // namespace kfc::io
