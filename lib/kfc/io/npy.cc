#include "kfc/io/npy.h"

#include <sys/stat.h>

#include <cstring>

#include "kfc/io/file.h"

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

}  // namespace

StatusOr<NpyReader> NpyReader::Open(const std::string& path) {
  const std::string what = "activation file '" + path + "'";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return NotFound(what + ": no such file");
  NpyReader r;
  r.path_ = path;
  r.in_ = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*r.in_) return IoError(what + ": cannot open");
  char magic[8] = {};
  if (!r.in_->read(magic, 8) || std::memcmp(magic, kMagic, 6) != 0) {
    return DataLoss(what + ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!r.in_->read(reinterpret_cast<char*>(b), 2)) return DataLoss(what + ": truncated header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!r.in_->read(reinterpret_cast<char*>(b), 4)) return DataLoss(what + ": truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    return DataLoss(what + ": unsupported .npy version " + std::to_string(major));
  }
  if (header_len > (1u << 20)) return DataLoss(what + ": header too long");
  std::string header(header_len, '\0');
  if (!r.in_->read(header.data(), header_len)) return DataLoss(what + ": truncated header");
  const std::string descr = DictValue(header, "descr");
  if (descr == "'<f4'") {
    r.item_size_ = 4;
  } else if (descr == "'<f8'") {
    r.item_size_ = 8;
  } else {
    return InvalidArgument(what + ": dtype " + (descr.empty() ? "(none)" : descr) +
                           " is not supported (float32 '<f4' or float64 '<f8')");
  }
  if (DictValue(header, "fortran_order") != "False") {
    return InvalidArgument(what + ": Fortran order is not supported (save a C-order array)");
  }
  std::string shape = DictValue(header, "shape");
  if (shape.size() < 2) return DataLoss(what + ": header has no shape");
  r.elements_ = 1;
  size_t pos = 1;
  while (pos < shape.size() - 1) {
    while (pos < shape.size() && (shape[pos] == ' ' || shape[pos] == ',')) ++pos;
    if (pos >= shape.size() - 1) break;
    size_t end = pos;
    while (end < shape.size() && std::isdigit(static_cast<unsigned char>(shape[end]))) ++end;
    if (end == pos) return DataLoss(what + ": bad shape " + shape);
    const int64_t d = std::stoll(shape.substr(pos, end - pos));
    if (d > 0 && r.elements_ > (int64_t{1} << 50) / d) return DataLoss(what + ": shape too large");
    r.shape_.push_back(d);
    r.elements_ *= d;
    pos = end;
  }
  const int64_t data_offset = static_cast<int64_t>(r.in_->tellg());
  if (st.st_size - data_offset < r.elements_ * r.item_size_) {
    return DataLoss(what + ": shape " + shape + " needs " +
                    std::to_string(r.elements_ * r.item_size_) + " bytes of data, the file has " +
                    std::to_string(st.st_size - data_offset));
  }
  return r;
}

Status NpyReader::Read(int64_t max_elements, std::vector<float>* out) {
  const int64_t n = std::min(max_elements, elements_ - consumed_);
  out->resize(static_cast<size_t>(std::max<int64_t>(n, 0)));
  if (n <= 0) return Status::Ok();
  if (item_size_ == 4) {
    if (!in_->read(reinterpret_cast<char*>(out->data()), n * 4)) {
      return IoError("activation file '" + path_ + "': read failed");
    }
  } else {
    std::vector<double> buf(static_cast<size_t>(n));
    if (!in_->read(reinterpret_cast<char*>(buf.data()), n * 8)) {
      return IoError("activation file '" + path_ + "': read failed");
    }
    for (int64_t i = 0; i < n; ++i) (*out)[static_cast<size_t>(i)] = static_cast<float>(buf[i]);
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
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes(kMagic, 6);
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>((header.size() >> 8) & 0xff);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  return WriteFileAtomic(path, bytes);
}

}  // namespace kfc::io
