// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/model_io.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <deque>
#include <filesystem>
#include <set>
#include <vector>

#include "kfc/graph/walk.h"
#include "kfc/io/atomic_file.h"
#include "kfc/io/file.h"
#include "kfc/io/file_identity.h"
#include "kfc/io/spill.h"
#include "kfc/tensor/tensor.h"

namespace kfc::io {
namespace fs = std::filesystem;
namespace {

std::string Quote(const std::string& path) { return "'" + path + "'"; }

}  // namespace

namespace {

// LoadModel's and ParseModel's checks of a parsed model.
StatusOr<onnx::ModelProto> CheckParsed(onnx::ModelProto model, const std::string& what) {
  if (!model.has_graph()) return DataLoss(what + ": not an ONNX model (it has no graph)");
  if (model.ir_version() <= 0) return DataLoss(what + ": not an ONNX model (no ir_version)");
  if (model.opset_import_size() == 0) {
    return DataLoss(what + ": not an ONNX model (no opset_import)");
  }
  return model;
}

}  // namespace

StatusOr<onnx::ModelProto> LoadModel(const std::string& path) {
  const std::string what = "model " + Quote(path);
  // Parsed from the file in 1 MiB reads, never held whole: a model with inline weights is then in
  // memory once (its parsed tensors), not twice (the file's bytes and the tensors).
  int64_t size = 0;
  KFC_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, what, &size));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  if (size > INT_MAX) {
    return InvalidArgument(what + ": " + std::to_string(size) +
                           " bytes exceeds protobuf's 2 GiB limit for one message");
  }
  if (size == 0) return DataLoss(what + ": file is empty, not an ONNX model");
  onnx::ModelProto model;
  google::protobuf::io::FileInputStream raw(fd, 1 << 20);
  bool parsed = false;
  {
    google::protobuf::io::CodedInputStream coded(&raw);
    coded.SetTotalBytesLimit(INT_MAX);
    parsed = model.ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
  }
  if (raw.GetErrno() != 0) {
    return IoError(what + ": cannot read: " + std::strerror(raw.GetErrno()));
  }
  if (!parsed || raw.ByteCount() != size) {
    return DataLoss(what + ": not a valid ONNX protobuf (truncated or corrupt)");
  }
  return CheckParsed(std::move(model), what);
}

StatusOr<onnx::ModelProto> ParseModel(const std::string& bytes, const std::string& what) {
  if (bytes.empty()) return DataLoss(what + ": empty, not an ONNX model");
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    return DataLoss(what + ": " + std::to_string(bytes.size()) +
                    " bytes exceeds protobuf's 2 GiB limit for one message");
  }
  onnx::ModelProto model;
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(INT_MAX);
  if (!model.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage()) {
    return DataLoss(what + ": not a valid ONNX protobuf (truncated or corrupt)");
  }
  return CheckParsed(std::move(model), what);
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

}  // namespace

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
  // Initializers of the main graph and of its subgraphs, in graph order.
  std::vector<onnx::TensorProto*> initializers;
  graph::ForEachMutableGraph(model->mutable_graph(), [&](onnx::GraphProto* g, const graph::Scope&) {
    for (auto& t : *g->mutable_initializer()) initializers.push_back(&t);
  });
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
