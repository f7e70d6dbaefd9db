// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/model_stream.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <climits>
#include <deque>
#include <set>
#include <vector>

#include "kfc/io/spill.h"
#include "kfc/io/wire_tree.h"
#include "kfc/tensor/tensor.h"

namespace kfc::io {
namespace {

// Collects small writes into 1 MiB blocks before they reach the sink.
class BufferedSink {
 public:
  explicit BufferedSink(const ByteSink& sink) : sink_(sink) { buffer_.reserve(kBlock); }
  Status Write(const char* data, size_t size) {
    if (buffer_.size() + size > kBlock) KFC_RETURN_IF_ERROR(Flush());
    if (size >= kBlock) return sink_(data, size);
    buffer_.append(data, size);
    return Status::Ok();
  }
  Status Flush() {
    if (buffer_.empty()) return Status::Ok();
    Status s = sink_(buffer_.data(), buffer_.size());
    buffer_.clear();
    return s;
  }

 private:
  static constexpr size_t kBlock = size_t{1} << 20;
  const ByteSink& sink_;
  std::string buffer_;
};

}  // namespace

StatusOr<std::string> SerializeModel(const onnx::ModelProto& model) {
  const size_t size = model.ByteSizeLong();
  if (size > static_cast<size_t>(INT_MAX)) {
    return InvalidArgument("output model: " + std::to_string(size) +
                           " bytes exceeds protobuf's 2 GiB limit for one message");
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    model.SerializeWithCachedSizes(&coded);
    if (coded.HadError()) return Internal("output model: protobuf serialization failed");
  }
  return bytes;
}

StatusOr<int64_t> StreamModel(onnx::ModelProto* model, const TensorFilter& inline_it,
                              ExternalDataReader* reader, const ByteSink& sink) {
  struct Marked {
    onnx::TensorProto* tensor;
    std::string what;
    google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto> external;
    bool had_raw_data;
    // An inline tensor of at least kInlineMarkMinBytes: its raw_data, moved here (not copied)
    // while the header is serialized, so the header never holds a second copy of the weights;
    // written from the tensor once put back.
    bool in_memory = false;
    std::string bytes;
  };
  std::deque<Marked> marked;
  std::vector<int64_t> lengths;
  std::set<std::string> inline_raw;  // raw_data of marker size already in the model
  KFC_RETURN_IF_ERROR(
      ForEachTensor(model, [&](onnx::TensorProto* t, const std::string& what) -> Status {
        if (!tensor::HasExternalData(*t)) {
          if (t->raw_data().size() == kMarkerBytes) inline_raw.insert(t->raw_data());
          if (static_cast<int64_t>(t->raw_data().size()) >= kInlineMarkMinBytes) {
            marked.push_back({t, what, {}, true, true, {}});
            lengths.push_back(static_cast<int64_t>(t->raw_data().size()));
          }
          return Status::Ok();
        }
        if (!inline_it(*t)) return Status::Ok();
        marked.push_back({t, what, {}, t->has_raw_data()});
        lengths.push_back(tensor::StoredDataBytes(*t));
        return Status::Ok();
      }));
  // A prefix no tensor of the model holds (the first one, but for a model made to collide).
  std::string prefix(
      "\xff"
      "kfc-marker!");
  auto collides = [&] {
    for (const auto& raw : inline_raw) {
      if (raw.compare(0, kMarkerPrefixBytes, prefix) == 0) return true;
    }
    return false;
  };
  while (collides()) ++prefix.back();

  std::string header;
  {
    // Each marked tensor as it is inline, with its marker for data; put back at scope exit.
    struct Restore {
      std::deque<Marked>* marked;
      ~Restore() {
        for (Marked& m : *marked) {
          if (m.in_memory) {
            m.tensor->mutable_raw_data()->swap(m.bytes);
            continue;
          }
          m.tensor->clear_raw_data();
          if (m.had_raw_data) m.tensor->set_raw_data("");
          m.tensor->mutable_external_data()->Swap(&m.external);
          m.tensor->set_data_location(onnx::TensorProto::EXTERNAL);
        }
      }
    } restore{&marked};
    for (size_t i = 0; i < marked.size(); ++i) {
      onnx::TensorProto* t = marked[i].tensor;
      std::string marker = prefix;
      const uint64_t index = i;
      marker.append(reinterpret_cast<const char*>(&index), 8);
      if (marked[i].in_memory) {
        marked[i].bytes.swap(*t->mutable_raw_data());
        t->mutable_raw_data()->swap(marker);
        continue;
      }
      t->mutable_external_data()->Swap(&marked[i].external);
      t->clear_data_location();
      t->set_raw_data(std::move(marker));
    }
    KFC_ASSIGN_OR_RETURN(header, SerializeModel(*model));
  }
  WireTree tree(header, prefix, lengths);
  if (!tree.Parse()) return Internal("output model: serialized bytes do not parse back");
  if (tree.size() > static_cast<int64_t>(INT_MAX)) {
    return InvalidArgument("output model: " + std::to_string(tree.size()) +
                           " bytes exceeds protobuf's 2 GiB limit for one message");
  }
  if (!sink) return tree.size();
  bool external = false;
  for (const Marked& m : marked) external = external || !m.in_memory;
  if (external && reader == nullptr) {
    return InvalidArgument("output model: it keeps tensors in external files, and no reader");
  }
  BufferedSink out(sink);
  auto write = [&](const char* data, size_t size) { return out.Write(data, size); };
  KFC_RETURN_IF_ERROR(tree.Write(
      [&](size_t i) {
        // In memory: the tensor's own raw_data, put back by the restore above.
        if (marked[i].in_memory) {
          const std::string& raw = marked[i].tensor->raw_data();
          return write(raw.data(), raw.size());
        }
        return reader->Copy(*marked[i].tensor, marked[i].what, write);
      },
      write));
  KFC_RETURN_IF_ERROR(out.Flush());
  return tree.size();
}

StatusOr<int64_t> InlineSize(onnx::ModelProto* model) {
  int64_t kept = 0;
  bool spilled = false;
  KFC_RETURN_IF_ERROR(ForEachTensor(model, [&](onnx::TensorProto* t, const std::string&) {
    if (IsSpilled(*t)) {
      spilled = true;
    } else if (tensor::HasExternalData(*t)) {
      kept += tensor::StoredDataBytes(*t);
    }
    return Status::Ok();
  }));
  if (!spilled) return static_cast<int64_t>(model->ByteSizeLong()) + kept;
  KFC_ASSIGN_OR_RETURN(const int64_t size, StreamModel(model, IsSpilled, nullptr, nullptr));
  return size + kept;
}

}  // namespace kfc::io
