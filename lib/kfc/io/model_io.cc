#include "kfc/io/model_io.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <vector>

#include "kfc/io/atomic_file.h"
#include "kfc/io/file_identity.h"
#include "kfc/io/spill.h"
#include "kfc/tensor/tensor.h"

namespace kfc::io {
namespace fs = std::filesystem;
namespace {

std::string Quote(const std::string& path) { return "'" + path + "'"; }

std::string ErrnoText() { return std::strerror(errno); }

// Folder that holds `path` ("." for a bare file name).
fs::path ParentOf(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

}  // namespace

StatusOr<std::string> ReadFile(const std::string& path, const std::string& what, int64_t max_bytes,
                               const std::string& limit_name) {
  // Non-blocking until known to be a regular file: a FIFO or a device is refused, never waited on.
  int64_t size = 0;
  KFC_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, what, &size));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  if (size > max_bytes) {
    return InvalidArgument(what + ": " + std::to_string(size) + " bytes exceeds " + limit_name);
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  KFC_RETURN_IF_ERROR(ReadFully(fd, bytes.data(), bytes.size(), what));
  return bytes;
}

StatusOr<onnx::ModelProto> LoadModel(const std::string& path) {
  const std::string what = "model " + Quote(path);
  KFC_ASSIGN_OR_RETURN(const std::string bytes,
                       ReadFile(path, what, INT_MAX, "protobuf's 2 GiB limit for one message"));
  if (bytes.empty()) return DataLoss(what + ": file is empty, not an ONNX model");

  onnx::ModelProto model;
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(INT_MAX);
  if (!model.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage()) {
    return DataLoss(what + ": not a valid ONNX protobuf (truncated or corrupt)");
  }
  if (!model.has_graph()) return DataLoss(what + ": not an ONNX model (it has no graph)");
  if (model.ir_version() <= 0) return DataLoss(what + ": not an ONNX model (no ir_version)");
  if (model.opset_import_size() == 0) {
    return DataLoss(what + ": not an ONNX model (no opset_import)");
  }
  return model;
}

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

Status CheckOutputPath(const std::string& input, const std::string& output) {
  const std::string what = "output " + Quote(output);
  if (output.empty()) return InvalidArgument("output path is empty");
  std::error_code ec;
  const fs::path parent = ParentOf(output);
  if (!fs::exists(parent, ec)) {
    return NotFound(what + ": folder " + Quote(parent.string()) + " does not exist");
  }
  if (!fs::is_directory(parent, ec)) {
    return InvalidArgument(what + ": " + Quote(parent.string()) + " is not a folder");
  }
  if (fs::is_directory(output, ec)) return InvalidArgument(what + ": is a directory");
  KFC_RETURN_IF_ERROR(ResolveWriteTarget(output, "output").status());
  if (fs::exists(output, ec) && fs::equivalent(input, output, ec)) {
    return InvalidArgument(what + ": is the input file; write to another path");
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    return IoError(what + ": folder " + Quote(parent.string()) +
                   " is not writable: " + ErrnoText());
  }
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& bytes, CommitGroup* group) {
  AtomicFile file;
  KFC_RETURN_IF_ERROR(file.Open(path, group));
  KFC_RETURN_IF_ERROR(file.Write(bytes.data(), bytes.size()));
  return file.Commit();
}

Status CheckNotInputData(const std::string& path, const std::vector<std::string>& input_files,
                         const std::string& what) {
  std::error_code ec;
  const fs::path target = fs::weakly_canonical(path, ec);
  if (ec) return Status::Ok();  // nothing there to clobber
  for (const auto& file : input_files) {
    if (target == fs::path(file)) {
      return InvalidArgument(what + " " + Quote(path) +
                             " is an external data file of the input model; write to another name");
    }
  }
  return Status::Ok();
}

Status ValidateDataFileName(const std::string& name) {
  const std::string what = "external data file " + Quote(name);
  if (name.empty()) return InvalidArgument("external data file name is empty");
  if (name.find('/') != std::string::npos) {
    return InvalidArgument(what +
                           ": give a file name without a folder; it is written next to "
                           "the output");
  }
  if (name == "." || name == "..") return InvalidArgument(what + ": not a file name");
  return Status::Ok();
}

std::string DataFilePath(const std::string& output, const SaveOptions& options) {
  const fs::path out(output);
  const std::string name =
      options.data_file.empty() ? out.filename().string() + ".data" : options.data_file;
  return (out.parent_path() / name).string();
}

namespace {

// Initializers of `graph` and of its subgraphs, in graph order.
void CollectInitializers(onnx::GraphProto* graph, std::vector<onnx::TensorProto*>* out) {
  for (auto& t : *graph->mutable_initializer()) out->push_back(&t);
  for (auto& node : *graph->mutable_node()) {
    for (auto& a : *node.mutable_attribute()) {
      if (a.has_g()) CollectInitializers(a.mutable_g(), out);
      for (auto& g : *a.mutable_graphs()) CollectInitializers(&g, out);
    }
  }
}

// Scalars and vectors of at most kShapeLikeElements: Reshape shapes, axes, pads, scales. They
// stay inline whatever the threshold: ONNX Runtime's shape inference reads them while loading
// and cannot read external data.
bool IsShapeLike(const onnx::TensorProto& t) {
  return t.dims_size() <= 1 && (t.dims_size() == 0 || t.dims(0) <= kShapeLikeElements);
}

// Initializers whose raw_data is in the data file while the header is serialized; the
// destructor puts everything back.
class MovedOut {
 public:
  ~MovedOut() {
    for (auto& m : moved_) {
      // A tensor that was still external had no raw_data; touching it would mark it present.
      if (m.had_raw_data) m.tensor->mutable_raw_data()->swap(m.bytes);
      m.tensor->mutable_external_data()->Swap(&m.external);
      if (m.had_location) {
        m.tensor->set_data_location(m.location);
      } else {
        m.tensor->clear_data_location();
      }
    }
  }
  void Move(onnx::TensorProto* t, const std::string& location, int64_t offset, int64_t length) {
    Moved& m = moved_.emplace_back();
    m.tensor = t;
    m.had_location = t->has_data_location();
    m.location = t->data_location();
    m.had_raw_data = t->has_raw_data();
    if (m.had_raw_data) {
      t->mutable_raw_data()->swap(m.bytes);
      t->clear_raw_data();
    }
    t->mutable_external_data()->Swap(&m.external);
    SetExternalReference(t, location, offset, length);
  }
  int64_t size() const { return static_cast<int64_t>(moved_.size()); }

 private:
  struct Moved {
    onnx::TensorProto* tensor = nullptr;
    std::string bytes;
    google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto> external;
    bool had_location = false;
    bool had_raw_data = false;
    onnx::TensorProto::DataLocation location = onnx::TensorProto::DEFAULT;
  };
  std::deque<Moved> moved_;  // stable addresses, no copies of the bytes
};

// --- streamed serialization (StreamModel) ---

// Messages on the way from ModelProto to a tensor's raw_data.
enum class Kind { kModel, kGraph, kNode, kAttribute, kFunction, kSparse, kTensor, kNone };

// The message kind of field `field` of a `kind` message, when it can hold tensors.
Kind ChildKind(Kind kind, uint32_t field) {
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

constexpr uint32_t kRawDataField = 9;
constexpr size_t kMarkerPrefixBytes = 12;
constexpr size_t kMarkerBytes = kMarkerPrefixBytes + 8;  // prefix, then the index (little-endian)

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

// The serialized model cut into pieces: bytes copied as they are, submessages on the way to a
// marked tensor (their length prefix recomputed), and the marked tensors' data.
class WireTree {
 public:
  WireTree(const std::string& bytes, const std::string& prefix, std::vector<int64_t> lengths)
      : bytes_(bytes), prefix_(prefix), lengths_(std::move(lengths)) {}

  // Parses the whole model; false on bytes that are not protobuf wire format.
  bool Parse() {
    root_ = Message(Kind::kModel, 0, bytes_.size());
    return ok_;
  }
  int64_t size() const { return messages_[root_].size; }

  // Writes the model with each marked tensor's data produced by `data(index, sink)`.
  Status Write(const std::function<Status(size_t index)>& data,
               const std::function<Status(const char*, size_t)>& out) const {
    return WriteMessage(root_, data, out);
  }

 private:
  struct Piece {
    size_t begin = 0, end = 0;  // bytes copied verbatim (for a child or data: its tag)
    int64_t child = -1;         // a submessage (index into messages_)
    int64_t data = -1;          // a marked tensor's data (its index)
  };
  struct Msg {
    std::vector<Piece> pieces;
    int64_t size = 0;
  };

  bool ReadVarint(size_t* pos, size_t end, uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *pos < end; shift += 7) {
      const auto byte = static_cast<uint8_t>(bytes_[(*pos)++]);
      *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (byte < 0x80) return true;
    }
    return false;
  }

  bool HasMarker(size_t begin, size_t end) const {
    return std::search(bytes_.begin() + static_cast<std::ptrdiff_t>(begin),
                       bytes_.begin() + static_cast<std::ptrdiff_t>(end), prefix_.begin(),
                       prefix_.end()) != bytes_.begin() + static_cast<std::ptrdiff_t>(end);
  }

  // The index of the marker that [begin, end) is exactly, or -1.
  int64_t MarkerAt(size_t begin, size_t end) const {
    if (end - begin != kMarkerBytes || bytes_.compare(begin, kMarkerPrefixBytes, prefix_) != 0) {
      return -1;
    }
    uint64_t index = 0;
    std::memcpy(&index, bytes_.data() + begin + kMarkerPrefixBytes, 8);
    return index < lengths_.size() ? static_cast<int64_t>(index) : -1;
  }

  int64_t Message(Kind kind, size_t begin, size_t end) {
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

  int64_t Bad(int64_t index) {
    ok_ = false;
    return index;
  }

  Status WriteMessage(int64_t index, const std::function<Status(size_t)>& data,
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

  const std::string& bytes_;
  const std::string& prefix_;
  std::vector<int64_t> lengths_;
  std::vector<Msg> messages_;
  int64_t root_ = 0;
  bool ok_ = true;
};

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

StatusOr<int64_t> StreamModel(onnx::ModelProto* model, const TensorFilter& inline_it,
                              ExternalDataReader* reader, const ByteSink& sink) {
  struct Marked {
    onnx::TensorProto* tensor;
    std::string what;
    google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto> external;
    bool had_raw_data;
  };
  std::deque<Marked> marked;
  std::vector<int64_t> lengths;
  std::set<std::string> inline_raw;  // raw_data of marker size already in the model
  KFC_RETURN_IF_ERROR(
      ForEachTensor(model, [&](onnx::TensorProto* t, const std::string& what) -> Status {
        if (!tensor::HasExternalData(*t)) {
          if (t->raw_data().size() == kMarkerBytes) inline_raw.insert(t->raw_data());
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
          m.tensor->clear_raw_data();
          if (m.had_raw_data) m.tensor->set_raw_data("");
          m.tensor->mutable_external_data()->Swap(&m.external);
          m.tensor->set_data_location(onnx::TensorProto::EXTERNAL);
        }
      }
    } restore{&marked};
    for (size_t i = 0; i < marked.size(); ++i) {
      onnx::TensorProto* t = marked[i].tensor;
      t->mutable_external_data()->Swap(&marked[i].external);
      t->clear_data_location();
      std::string marker = prefix;
      const uint64_t index = i;
      marker.append(reinterpret_cast<const char*>(&index), 8);
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
  if (!marked.empty() && reader == nullptr) {
    return InvalidArgument("output model: it keeps tensors in external files, and no reader");
  }
  BufferedSink out(sink);
  auto write = [&](const char* data, size_t size) { return out.Write(data, size); };
  KFC_RETURN_IF_ERROR(tree.Write(
      [&](size_t i) { return reader->Copy(*marked[i].tensor, marked[i].what, write); }, write));
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

StatusOr<SaveResult> SaveModel(onnx::ModelProto* model, const std::string& path,
                               const SaveOptions& options, ExternalDataReader* reader) {
  SaveResult result;
  const int64_t external_bytes = ExternalDataBytes(*model);
  if (external_bytes > 0 && reader == nullptr) {
    return InvalidArgument("output " + Quote(path) +
                           ": the model keeps tensors in external files, and no reader for them");
  }
  KFC_ASSIGN_OR_RETURN(const int64_t inline_size, InlineSize(model));
  result.automatic = !options.external_data && inline_size > options.inline_limit;
  auto write_to = [](AtomicFile* f) {
    return [f](const char* bytes, size_t size) { return f->Write(bytes, size); };
  };
  if (!options.external_data && !result.automatic) {
    AtomicFile file;
    KFC_RETURN_IF_ERROR(file.Open(path, options.commit));
    KFC_ASSIGN_OR_RETURN(
        result.model_bytes,
        StreamModel(
            model, [](const onnx::TensorProto&) { return true; }, reader, write_to(&file)));
    KFC_RETURN_IF_ERROR(file.Commit());
    return result;
  }
  if (!options.data_file.empty()) KFC_RETURN_IF_ERROR(ValidateDataFileName(options.data_file));
  const std::string data_path = DataFilePath(path, options);
  const std::string name = fs::path(data_path).filename().string();
  if (name == fs::path(path).filename().string()) {
    return InvalidArgument("output " + Quote(path) + ": the external data file has its name");
  }
  std::vector<onnx::TensorProto*> initializers;
  CollectInitializers(model->mutable_graph(), &initializers);
  // Initializers of at least the threshold go to the data file (copied there from the input's
  // files when still external); every other tensor is written inline.
  auto to_file = [&](const onnx::TensorProto& t) {
    const int64_t size = tensor::HasExternalData(t) ? tensor::StoredDataBytes(t)
                                                    : static_cast<int64_t>(t.raw_data().size());
    return size > 0 && size >= options.threshold && !IsShapeLike(t);
  };
  std::set<const onnx::TensorProto*> file_tensors;
  for (const onnx::TensorProto* t : initializers) {
    if (to_file(*t)) file_tensors.insert(t);
  }
  // The data file and the model appear together (the data file first), or neither does.
  CommitGroup both;
  CommitGroup* group = options.commit != nullptr ? options.commit : &both;
  AtomicFile data, file;
  KFC_RETURN_IF_ERROR(data.Open(data_path, group));
  KFC_RETURN_IF_ERROR(file.Open(path, group));
  {
    MovedOut moved;
    for (onnx::TensorProto* t : initializers) {
      if (file_tensors.count(t) == 0) continue;
      const int64_t offset = (data.size() + kExternalDataAlignment - 1) / kExternalDataAlignment *
                             kExternalDataAlignment;
      KFC_RETURN_IF_ERROR(data.Write(nullptr, static_cast<size_t>(offset - data.size())));
      if (tensor::HasExternalData(*t)) {
        KFC_RETURN_IF_ERROR(
            reader->Copy(*t, "initializer " + Quote(t->name()),
                         [&](const char* bytes, size_t size) { return data.Write(bytes, size); }));
      } else {
        KFC_RETURN_IF_ERROR(data.Write(t->raw_data().data(), t->raw_data().size()));
      }
      moved.Move(t, name, offset, data.size() - offset);
    }
    result.data_tensors = moved.size();
    // Every other tensor is written inline, streamed from its file when still external.
    KFC_ASSIGN_OR_RETURN(
        result.model_bytes,
        StreamModel(
            model, [&](const onnx::TensorProto& t) { return file_tensors.count(&t) == 0; }, reader,
            write_to(&file)));
  }
  KFC_RETURN_IF_ERROR(data.Finish());
  KFC_RETURN_IF_ERROR(file.Finish());
  KFC_RETURN_IF_ERROR(data.Rename());
  KFC_RETURN_IF_ERROR(file.Rename());
  if (group == &both) KFC_RETURN_IF_ERROR(both.Commit());
  result.data_path = data_path;
  result.data_bytes = data.size();
  return result;
}

}  // namespace kfc::io
