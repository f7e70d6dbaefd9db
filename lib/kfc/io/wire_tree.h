// The protobuf wire-format walker behind StreamModel (model_stream.h): a serialized model in
// which some tensors' raw_data is a marker (a prefix no tensor of the model holds, then the
// tensor's index) is cut into pieces, so that it can be written with each marker replaced by that
// tensor's real data and every enclosing length prefix recomputed. Only the messages that can
// hold tensors are descended into (ModelProto.graph and .functions, GraphProto.node, .initializer
// and .sparse_initializer, NodeProto.attribute, AttributeProto.t, .g, .tensors, .graphs and the
// sparse ones, FunctionProto.node, SparseTensorProto.values and .indices), and of those only the
// ones on the way to a marker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::io {

inline constexpr size_t kMarkerPrefixBytes = 12;
inline constexpr size_t kMarkerBytes =
    kMarkerPrefixBytes + 8;  // prefix, then the index (little-endian)

// The serialized model cut into pieces: bytes copied as they are, submessages on the way to a
// marked tensor (their length prefix recomputed), and the marked tensors' data.
class WireTree {
 public:
  // `bytes`: the serialized ModelProto; `prefix`: the markers' prefix (kMarkerPrefixBytes long);
  // `lengths[i]`: the real data size of the tensor marked with index i. `bytes` and `prefix` must
  // outlive the tree.
  WireTree(const std::string& bytes, const std::string& prefix, std::vector<int64_t> lengths)
      : bytes_(bytes), prefix_(prefix), lengths_(std::move(lengths)) {}

  // Parses the whole model; false on bytes that are not protobuf wire format.
  bool Parse() {
    root_ = Message(Kind::kModel, 0, bytes_.size());
    return ok_;
  }
  int64_t size() const { return messages_[root_].size; }

  // Writes the model with each marked tensor's data produced by `data(index)`, every other byte
  // through `out`.
  Status Write(const std::function<Status(size_t index)>& data,
               const std::function<Status(const char*, size_t)>& out) const {
    return WriteMessage(root_, data, out);
  }

 private:
  // Messages on the way from ModelProto to a tensor's raw_data.
  enum class Kind { kModel, kGraph, kNode, kAttribute, kFunction, kSparse, kTensor, kNone };
  static Kind ChildKind(Kind kind, uint32_t field);

  struct Piece {
    size_t begin = 0, end = 0;  // bytes copied verbatim (for a child or data: its tag)
    int64_t child = -1;         // a submessage (index into messages_)
    int64_t data = -1;          // a marked tensor's data (its index)
  };
  struct Msg {
    std::vector<Piece> pieces;
    int64_t size = 0;
  };

  bool ReadVarint(size_t* pos, size_t end, uint64_t* v);
  bool HasMarker(size_t begin, size_t end) const;
  // The index of the marker that [begin, end) is exactly, or -1.
  int64_t MarkerAt(size_t begin, size_t end) const;
  int64_t Message(Kind kind, size_t begin, size_t end);
  int64_t Bad(int64_t index) {
    ok_ = false;
    return index;
  }
  Status WriteMessage(int64_t index, const std::function<Status(size_t)>& data,
                      const std::function<Status(const char*, size_t)>& out) const;

  const std::string& bytes_;
  const std::string& prefix_;
  std::vector<int64_t> lengths_;
  std::vector<Msg> messages_;
  int64_t root_ = 0;
  bool ok_ = true;
};

}  // namespace kfc::io
