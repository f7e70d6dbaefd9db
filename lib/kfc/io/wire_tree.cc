#include "kfc/io/wire_tree.h"

#include <algorithm>
#include <cstring>

namespace kfc::io {
namespace {

constexpr uint32_t kRawDataField = 9;

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

}  // namespace

// The message kind of field `field` of a `kind` message, when it can hold tensors.
WireTree::Kind WireTree::ChildKind(Kind kind, uint32_t field) {
  switch (kind) {
    case Kind::kModel:
      return field == 7 ? Kind::kGraph : field == 25 ? Kind::kFunction : Kind::kNone;
    case Kind::kGraph:
      return field == 1    ? Kind::kNode
             : field == 5  ? Kind::kTensor
             : field == 15 ? Kind::kSparse
                           : Kind::kNone;
    case Kind::kNode:
      return field == 5 ? Kind::kAttribute : Kind::kNone;
    case Kind::kAttribute:
      return field == 5 || field == 10    ? Kind::kTensor
             : field == 6 || field == 11  ? Kind::kGraph
             : field == 22 || field == 23 ? Kind::kSparse
                                          : Kind::kNone;
    case Kind::kFunction:
      return field == 7 ? Kind::kNode : Kind::kNone;
    case Kind::kSparse:
      return field == 1 || field == 2 ? Kind::kTensor : Kind::kNone;
    default:
      return Kind::kNone;
  }
}

bool WireTree::ReadVarint(size_t* pos, size_t end, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *pos < end; shift += 7) {
    const auto byte = static_cast<uint8_t>(bytes_[(*pos)++]);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) return true;
  }
  return false;
}

bool WireTree::HasMarker(size_t begin, size_t end) const {
  return std::search(bytes_.begin() + static_cast<std::ptrdiff_t>(begin),
                     bytes_.begin() + static_cast<std::ptrdiff_t>(end), prefix_.begin(),
                     prefix_.end()) != bytes_.begin() + static_cast<std::ptrdiff_t>(end);
}

int64_t WireTree::MarkerAt(size_t begin, size_t end) const {
  if (end - begin != kMarkerBytes || bytes_.compare(begin, kMarkerPrefixBytes, prefix_) != 0) {
    return -1;
  }
  uint64_t index = 0;
  std::memcpy(&index, bytes_.data() + begin + kMarkerPrefixBytes, 8);
  return index < lengths_.size() ? static_cast<int64_t>(index) : -1;
}

int64_t WireTree::Message(Kind kind, size_t begin, size_t end) {
  const auto index = static_cast<int64_t>(messages_.size());
  messages_.emplace_back();
  Msg m;
  size_t run = begin;  // start of the verbatim bytes not yet recorded
  for (size_t pos = begin; pos < end && ok_;) {
    const size_t field_begin = pos;
    uint64_t tag = 0, length = 0;
    if (!ReadVarint(&pos, end, &tag)) return Bad(index);
    const size_t tag_end = pos;
    switch (tag & 7) {
      case 0:
        if (!ReadVarint(&pos, end, &length)) return Bad(index);
        continue;
      case 1:
        pos += 8;
        continue;
      case 5:
        pos += 4;
        continue;
      case 2:
        break;
      default:
        return Bad(index);  // groups: ONNX has none
    }
    if (!ReadVarint(&pos, end, &length) || length > end - pos) return Bad(index);
    const size_t content = pos;
    pos += length;
    const auto field = static_cast<uint32_t>(tag >> 3);
    Piece p{field_begin, tag_end, -1, -1};
    if (kind == Kind::kTensor && field == kRawDataField) {
      p.data = MarkerAt(content, pos);
      if (p.data < 0) continue;
      m.size += static_cast<int64_t>(tag_end - field_begin) +
                static_cast<int64_t>(VarintSize(lengths_[p.data])) + lengths_[p.data];
    } else {
      const Kind child = ChildKind(kind, field);
      if (child == Kind::kNone || !HasMarker(content, pos)) continue;
      p.child = Message(child, content, pos);
      const int64_t size = messages_[p.child].size;
      m.size += static_cast<int64_t>(tag_end - field_begin) +
                static_cast<int64_t>(VarintSize(size)) + size;
    }
    if (run < field_begin) {
      m.pieces.push_back({run, field_begin, -1, -1});
      m.size += static_cast<int64_t>(field_begin - run);
    }
    m.pieces.push_back(p);
    run = pos;
  }
  if (run < end) {
    m.pieces.push_back({run, end, -1, -1});
    m.size += static_cast<int64_t>(end - run);
  }
  messages_[index] = std::move(m);
  return index;
}

Status WireTree::WriteMessage(int64_t index, const std::function<Status(size_t)>& data,
                              const std::function<Status(const char*, size_t)>& out) const {
  for (const Piece& p : messages_[index].pieces) {
    KFC_RETURN_IF_ERROR(out(bytes_.data() + p.begin, p.end - p.begin));
    if (p.child < 0 && p.data < 0) continue;
    std::string length;
    AppendVarint(p.child >= 0 ? messages_[p.child].size : lengths_[p.data], &length);
    KFC_RETURN_IF_ERROR(out(length.data(), length.size()));
    KFC_RETURN_IF_ERROR(p.child >= 0 ? WriteMessage(p.child, data, out)
                                     : data(static_cast<size_t>(p.data)));
  }
  return Status::Ok();
}

}  // namespace kfc::io
