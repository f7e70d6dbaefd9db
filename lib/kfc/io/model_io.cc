#include "kfc/io/model_io.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "kfc/io/atomic_file.h"
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
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound(what + ": no such file");
    return IoError(what + ": " + ErrnoText());
  }
  if (S_ISDIR(st.st_mode)) return InvalidArgument(what + ": is a directory, not a file");
  if (st.st_size > max_bytes) {
    return InvalidArgument(what + ": " + std::to_string(st.st_size) + " bytes exceeds " +
                           limit_name);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError(what + ": cannot open: " + ErrnoText());
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  if (!bytes.empty() && !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return IoError(what + ": read failed: " + ErrnoText());
  }
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
  if (fs::exists(output, ec) && fs::equivalent(input, output, ec)) {
    return InvalidArgument(what + ": is the input file; write to another path");
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    return IoError(what + ": folder " + Quote(parent.string()) +
                   " is not writable: " + ErrnoText());
  }
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& bytes) {
  AtomicFile file;
  KFC_RETURN_IF_ERROR(file.Open(path));
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
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    const std::pair<const char*, std::string> entries[] = {{"location", location},
                                                           {"offset", std::to_string(offset)},
                                                           {"length", std::to_string(length)}};
    for (const auto& [key, value] : entries) {
      auto* e = t->add_external_data();
      e->set_key(key);
      e->set_value(value);
    }
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

// Reads every external tensor of `model` for which `inline_it` says so into raw_data.
Status InlineExternal(onnx::ModelProto* model, ExternalDataReader* reader,
                      const std::function<bool(const onnx::TensorProto&)>& inline_it) {
  return ForEachTensor(model, [&](onnx::TensorProto* t, const std::string& what) -> Status {
    if (!tensor::HasExternalData(*t) || !inline_it(*t)) return Status::Ok();
    KFC_ASSIGN_OR_RETURN(std::string bytes, reader->Read(*t, what));
    t->clear_external_data();
    t->clear_data_location();
    t->mutable_raw_data()->swap(bytes);
    return Status::Ok();
  });
}

}  // namespace

StatusOr<SaveResult> SaveModel(onnx::ModelProto* model, const std::string& path,
                               const SaveOptions& options, ExternalDataReader* reader) {
  SaveResult result;
  const int64_t external_bytes = ExternalDataBytes(*model);
  if (external_bytes > 0 && reader == nullptr) {
    return InvalidArgument("output " + Quote(path) +
                           ": the model keeps tensors in external files, and no reader for them");
  }
  const auto inline_size = static_cast<int64_t>(model->ByteSizeLong()) + external_bytes;
  result.automatic = !options.external_data && inline_size > options.inline_limit;
  if (!options.external_data && !result.automatic) {
    KFC_RETURN_IF_ERROR(
        InlineExternal(model, reader, [](const onnx::TensorProto&) { return true; }));
    KFC_ASSIGN_OR_RETURN(const std::string bytes, SerializeModel(*model));
    KFC_RETURN_IF_ERROR(WriteFileAtomic(path, bytes));
    result.model_bytes = static_cast<int64_t>(bytes.size());
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
  KFC_RETURN_IF_ERROR(InlineExternal(
      model, reader, [&](const onnx::TensorProto& t) { return file_tensors.count(&t) == 0; }));
  AtomicFile data, file;
  KFC_RETURN_IF_ERROR(data.Open(data_path));
  std::string header;
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
    KFC_ASSIGN_OR_RETURN(header, SerializeModel(*model));
  }
  KFC_RETURN_IF_ERROR(file.Open(path));
  KFC_RETURN_IF_ERROR(file.Write(header.data(), header.size()));
  KFC_RETURN_IF_ERROR(data.Finish());
  KFC_RETURN_IF_ERROR(file.Finish());
  KFC_RETURN_IF_ERROR(data.Rename());
  if (Status s = file.Rename(); !s.ok()) {
    ::unlink(data_path.c_str());
    return s;
  }
  result.model_bytes = static_cast<int64_t>(header.size());
  result.data_path = data_path;
  result.data_bytes = data.size();
  return result;
}

}  // namespace kfc::io
