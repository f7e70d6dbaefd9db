// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/external_data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <system_error>
#include <thread>

#include "kfc/tensor/tensor.h"

namespace kfc::io {
namespace fs = std::filesystem;
namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Reads exactly `size` bytes at `offset`: 0, or the errno of the failure (-1 when the file ended
// first).
int PreadAll(int fd, char* out, size_t size, int64_t offset) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out + done, std::min<size_t>(size - done, size_t{1} << 30),
                              static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return -1;
    done += static_cast<size_t>(n);
  }
  return 0;
}

// From this size on, a read is split in two halves read at once: from the page cache, a read is a
// copy bound by one core (12 ms for a 64 MiB weight), and a single big layer is read while the
// other core waits. Smaller weights are read whole (a model's many layers already read in
// parallel).
constexpr size_t kSplitReadMinBytes = size_t{32} << 20;

// PreadAll, the second half on a thread of its own for large reads.
int PreadAllSplit(int fd, char* out, size_t size, int64_t offset) {
  if (size < kSplitReadMinBytes) return PreadAll(fd, out, size, offset);
  const size_t half = (size / 2) & ~size_t{4095};
  int second = 0;
  std::thread helper;
  try {
    helper = std::thread([&] {
      second = PreadAll(fd, out + half, size - half, offset + static_cast<int64_t>(half));
    });
  } catch (const std::system_error&) {
    return PreadAll(fd, out, size, offset);  // no thread: read it whole
  }
  const int first = PreadAll(fd, out, half, offset);
  helper.join();
  return first != 0 ? first : second;
}

// Visits the tensors of `graph`; `suffix` is "" for the main graph, " in graph '..'" below it.
Status VisitGraph(onnx::GraphProto* graph, const std::string& suffix, const TensorVisitor& fn);

Status VisitNodes(google::protobuf::RepeatedPtrField<onnx::NodeProto>* nodes,
                  const std::string& suffix, const TensorVisitor& fn) {
  for (auto& node : *nodes) {
    const std::string node_what =
        node.name().empty() ? "the " + node.op_type() + " node writing " +
                                  Quote(node.output_size() > 0 ? node.output(0) : std::string())
                            : "node " + Quote(node.name());
    for (auto& a : *node.mutable_attribute()) {
      const std::string what = "attribute " + Quote(a.name()) + " of " + node_what + suffix;
      if (a.has_t()) KFC_RETURN_IF_ERROR(fn(a.mutable_t(), what));
      for (auto& t : *a.mutable_tensors()) KFC_RETURN_IF_ERROR(fn(&t, what));
      if (a.has_sparse_tensor()) {
        KFC_RETURN_IF_ERROR(fn(a.mutable_sparse_tensor()->mutable_values(), what + " (values)"));
        KFC_RETURN_IF_ERROR(fn(a.mutable_sparse_tensor()->mutable_indices(), what + " (indices)"));
      }
      for (auto& s : *a.mutable_sparse_tensors()) {
        KFC_RETURN_IF_ERROR(fn(s.mutable_values(), what + " (values)"));
        KFC_RETURN_IF_ERROR(fn(s.mutable_indices(), what + " (indices)"));
      }
      if (a.has_g()) {
        KFC_RETURN_IF_ERROR(VisitGraph(a.mutable_g(), " in graph " + Quote(a.g().name()), fn));
      }
      for (auto& g : *a.mutable_graphs()) {
        KFC_RETURN_IF_ERROR(VisitGraph(&g, " in graph " + Quote(g.name()), fn));
      }
    }
  }
  return Status::Ok();
}

Status VisitGraph(onnx::GraphProto* graph, const std::string& suffix, const TensorVisitor& fn) {
  for (auto& t : *graph->mutable_initializer()) {
    KFC_RETURN_IF_ERROR(fn(&t, "initializer " + Quote(t.name()) + suffix));
  }
  for (auto& s : *graph->mutable_sparse_initializer()) {
    const std::string what = "sparse initializer " + Quote(s.values().name()) + suffix;
    KFC_RETURN_IF_ERROR(fn(s.mutable_values(), what + " (values)"));
    KFC_RETURN_IF_ERROR(fn(s.mutable_indices(), what + " (indices)"));
  }
  return VisitNodes(graph->mutable_node(), suffix, fn);
}

// A whole decimal number >= 0 that fits int64.
bool ParseOffset(const std::string& text, int64_t* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return !text.empty() && ec == std::errc() && ptr == end && *out >= 0;
}

std::string Range(int64_t offset, int64_t length) {
  return "[offset " + std::to_string(offset) + ", length " + std::to_string(length) + "]";
}

}  // namespace

Status ForEachTensor(onnx::ModelProto* model, const TensorVisitor& fn) {
  KFC_RETURN_IF_ERROR(VisitGraph(model->mutable_graph(), "", fn));
  for (auto& f : *model->mutable_functions()) {
    KFC_RETURN_IF_ERROR(VisitNodes(f.mutable_node(), " in function " + Quote(f.name()), fn));
  }
  return Status::Ok();
}

ExternalDataReader::ExternalDataReader(const std::string& model_path) {
  const fs::path parent = fs::path(model_path).parent_path();
  folder_ = parent.empty() ? "." : parent.string();
}

ExternalDataReader::~ExternalDataReader() {
  for (auto& [path, file] : files_) {
    if (file.map != nullptr) ::munmap(const_cast<char*>(file.map), static_cast<size_t>(file.size));
    ::close(file.fd);
  }
}

std::vector<std::string> ExternalDataReader::Files() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [path, file] : files_) out.push_back(path);
  return out;
}

StatusOr<ExternalDataReader::File*> ExternalDataReader::Open(const std::string& location,
                                                             const std::string& what) {
  const std::string where = what + ": external data location " + Quote(location);
  if (location.empty()) return InvalidArgument(what + ": external data has an empty location");
  if (location.find('\0') != std::string::npos) {
    return InvalidArgument(what + ": external data location has a NUL byte");
  }
  const fs::path loc(location);
  if (loc.is_absolute()) {
    return InvalidArgument(where +
                           " is an absolute path; it must be relative to the model's folder");
  }
  for (const auto& part : loc) {
    if (part == "..") {
      return InvalidArgument(where + " has a '..' component; it must stay in the model's folder");
    }
  }
  const fs::path full = fs::path(folder_) / loc;
  std::error_code ec;
  const fs::path canonical = fs::canonical(full, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) {
      return NotFound(what + ": external data file " + Quote(location) + " does not exist in " +
                      Quote(folder_));
    }
    return IoError(where + ": " + ec.message());
  }
  const fs::path folder = fs::canonical(folder_, ec);
  if (ec) return IoError(where + ": model folder " + Quote(folder_) + ": " + ec.message());
  const fs::path rel = canonical.lexically_relative(folder);
  if (rel.empty() || *rel.begin() == "..") {
    return InvalidArgument(where + " resolves to " + Quote(canonical.string()) +
                           ", outside the model's folder " + Quote(folder.string()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = files_.find(canonical.string()); it != files_.end()) return &it->second;
  const int fd = ::open(canonical.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO: no hang
  if (fd < 0) return IoError(where + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(where + " is not a regular file");
  }
  File& f = files_[canonical.string()];
  f.fd = fd;
  f.size = static_cast<int64_t>(st.st_size);
  return &f;
}

StatusOr<ExternalDataReader::Extent> ExternalDataReader::Locate(const onnx::TensorProto& t,
                                                                const std::string& what) {
  std::string location;
  std::string offset_text = "0", length_text;
  for (const auto& entry : t.external_data()) {
    if (entry.key() == "location") location = entry.value();
    if (entry.key() == "offset") offset_text = entry.value();
    if (entry.key() == "length") length_text = entry.value();
  }
  if (!t.raw_data().empty() || t.float_data_size() || t.int32_data_size() || t.int64_data_size() ||
      t.double_data_size() || t.uint64_data_size() || t.string_data_size()) {
    return DataLoss(what + ": stored externally but also has inline data");
  }
  KFC_ASSIGN_OR_RETURN(const int64_t need, tensor::ExpectedDataBytes(t, what));
  int64_t offset = 0, length = -1;
  if (!ParseOffset(offset_text, &offset)) {
    return InvalidArgument(what + ": external data offset " + Quote(offset_text) +
                           " is not a whole number >= 0");
  }
  if (!length_text.empty() && !ParseOffset(length_text, &length)) {
    return InvalidArgument(what + ": external data length " + Quote(length_text) +
                           " is not a whole number >= 0");
  }
  const bool spill = location == SpillFile::Location() && spill_ != nullptr;
  int fd = -1;
  int64_t file_size = 0;
  File* file = nullptr;
  if (spill) {
    fd = spill_->fd();
    file_size = spill_->size();
    location = "the spill file";
  } else {
    KFC_ASSIGN_OR_RETURN(file, Open(location, what));
    fd = file->fd;
    file_size = file->size;
  }
  const std::string file_text = Quote(location) + " (" + std::to_string(file_size) + " bytes)";
  if (offset > file_size || (length >= 0 && length > file_size - offset)) {
    return DataLoss(
        what + ": external data " +
        (length >= 0 ? Range(offset, length) : "[offset " + std::to_string(offset) + "]") +
        " exceeds " + file_text);
  }
  const std::string dims_text = ", dims " + tensor::DimsText(t.dims()) + " of " +
                                tensor::DTypeName(t.data_type()) + " need " + std::to_string(need);
  if (length < 0 && file_size - offset != need) {
    return DataLoss(what + ": external data from offset " + std::to_string(offset) +
                    " to the end of " + file_text + " is " + std::to_string(file_size - offset) +
                    " bytes" + dims_text);
  }
  if (length >= 0 && length != need) {
    return DataLoss(what + ": external data " + Range(offset, length) + " in " + Quote(location) +
                    " has " + std::to_string(length) + " bytes" + dims_text);
  }
  return Extent{fd, spill, offset, need, location, file};
}

Status ExternalDataReader::ReadRange(const Extent& e, int64_t from, char* out, size_t size,
                                     const std::string& what) {
  const auto start = std::chrono::steady_clock::now();
  const int err = PreadAllSplit(e.fd, out, size, e.offset + from);
  if (err != 0) {
    return IoError(what + ": reading external data " + Range(e.offset, e.length) + " from " +
                   Quote(e.location) +
                   " failed: " + (err > 0 ? std::strerror(err) : "file shrank"));
  }
  if (e.spill) {
    spill_bytes_read_ += static_cast<int64_t>(size);
    return Status::Ok();
  }
  bytes_read_ += static_cast<int64_t>(size);
  read_nanos_ +=
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  return Status::Ok();
}

StatusOr<std::string> ExternalDataReader::Read(const onnx::TensorProto& t,
                                               const std::string& what) {
  KFC_ASSIGN_OR_RETURN(const Extent e, Locate(t, what));
  std::string bytes(static_cast<size_t>(e.length), '\0');
  KFC_RETURN_IF_ERROR(ReadRange(e, 0, bytes.data(), bytes.size(), what));
  return bytes;
}

Status ExternalDataReader::ReadInto(const onnx::TensorProto& t, const std::string& what, char* out,
                                    size_t size) {
  KFC_ASSIGN_OR_RETURN(const Extent e, Locate(t, what));
  if (e.length != static_cast<int64_t>(size)) {
    return Internal(what + ": external data has " + std::to_string(e.length) + " bytes, " +
                    std::to_string(size) + " expected");
  }
  return ReadRange(e, 0, out, size, what);
}

Status ExternalDataReader::Copy(const onnx::TensorProto& t, const std::string& what,
                                const std::function<Status(const char*, size_t)>& sink) {
  KFC_ASSIGN_OR_RETURN(const int64_t length, Check(t, what));
  std::string chunk(static_cast<size_t>(std::min<int64_t>(length, kCopyChunkBytes)), '\0');
  return ReadInChunks(t, what, chunk.data(), chunk.size(), sink);
}

Status ExternalDataReader::ReadInChunks(const onnx::TensorProto& t, const std::string& what,
                                        char* buffer, size_t chunk,
                                        const std::function<Status(const char*, size_t)>& sink) {
  KFC_ASSIGN_OR_RETURN(const Extent e, Locate(t, what));
  for (int64_t from = 0; from < e.length; from += static_cast<int64_t>(chunk)) {
    const auto size = static_cast<size_t>(std::min<int64_t>(e.length - from, chunk));
    KFC_RETURN_IF_ERROR(ReadRange(e, from, buffer, size, what));
    KFC_RETURN_IF_ERROR(sink(buffer, size));
  }
  return Status::Ok();
}

const char* ExternalDataReader::MapOf(File* file) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!file->map_tried && file->size > 0) {
    file->map_tried = true;
    void* p = ::mmap(nullptr, static_cast<size_t>(file->size), PROT_READ, MAP_SHARED, file->fd, 0);
    if (p != MAP_FAILED) file->map = static_cast<const char*>(p);
  }
  return file->map;
}

Status ExternalDataReader::MapInChunks(const onnx::TensorProto& t, const std::string& what,
                                       size_t chunk, size_t align,
                                       const std::function<Status(const char*, size_t)>& sink) {
  KFC_ASSIGN_OR_RETURN(const Extent e, Locate(t, what));
  if (chunk == 0) return Internal(what + ": chunks of no bytes");
  const char* map = nullptr;
  if (e.file != nullptr && align > 0 && e.offset % static_cast<int64_t>(align) == 0 &&
      chunk % align == 0) {
    map = MapOf(e.file);
  }
  if (map == nullptr) {
    std::unique_ptr<char[]> buffer;
    try {
      buffer.reset(new char[std::min<size_t>(chunk, static_cast<size_t>(e.length))]);
    } catch (const std::bad_alloc&) {
      return Internal(what + ": cannot allocate a chunk of " + std::to_string(chunk) + " bytes");
    }
    return ReadInChunks(t, what, buffer.get(), chunk, sink);
  }
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t window = std::max<size_t>(1, kMapWindowBytes / chunk) * chunk;
  const auto length = static_cast<size_t>(e.length), offset = static_cast<size_t>(e.offset);
  for (size_t from = 0; from < length; from += window) {
    const size_t end = std::min(length, from + window);
    Status done = Status::Ok();
    for (size_t at = from; at < end && done.ok(); at += chunk) {
      const size_t size = std::min(chunk, end - at);
      bytes_read_ += static_cast<int64_t>(size);
      mapped_bytes_ += static_cast<int64_t>(size);
      done = sink(map + offset + at, size);
    }
    // The window's pages, whole (one shared with a neighbour's data is only faulted in again).
    const size_t first = (offset + from) / page * page;
    const size_t last =
        std::min((offset + end + page - 1) / page * page, static_cast<size_t>(e.file->size));
    (void)::madvise(const_cast<char*>(map + first), last - first, MADV_DONTNEED);
    KFC_RETURN_IF_ERROR(done);
  }
  return Status::Ok();
}

StatusOr<int64_t> ExternalDataReader::Check(const onnx::TensorProto& t, const std::string& what) {
  KFC_ASSIGN_OR_RETURN(const Extent e, Locate(t, what));
  return e.length;
}

StatusOr<ExternalDataStats> PrepareExternalData(onnx::ModelProto* model, ExternalDataReader* reader,
                                                int64_t keep_from_bytes) {
  ExternalDataStats stats;
  KFC_RETURN_IF_ERROR(
      ForEachTensor(model, [&](onnx::TensorProto* t, const std::string& what) -> Status {
        if (tensor::HasExternalData(*t)) {
          KFC_ASSIGN_OR_RETURN(const int64_t length, reader->Check(*t, what));
          stats.bytes += length;
          ++stats.tensors;
          if (length >= keep_from_bytes) {
            ++stats.kept;
            return Status::Ok();
          }
          KFC_ASSIGN_OR_RETURN(std::string bytes, reader->Read(*t, what));
          t->clear_external_data();
          t->clear_data_location();
          t->mutable_raw_data()->swap(bytes);
        }
        return tensor::CheckInlineData(*t, what);
      }));
  stats.files = reader->Files();
  return stats;
}

StatusOr<ExternalDataStats> LoadExternalData(onnx::ModelProto* model,
                                             const std::string& model_path) {
  ExternalDataReader reader(model_path);
  return PrepareExternalData(model, &reader, std::numeric_limits<int64_t>::max());
}

void SetExternalReference(onnx::TensorProto* t, const std::string& location, int64_t offset,
                          int64_t length) {
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  t->clear_external_data();
  const std::pair<const char*, std::string> entries[] = {{"location", location},
                                                         {"offset", std::to_string(offset)},
                                                         {"length", std::to_string(length)}};
  for (const auto& [key, value] : entries) {
    auto* e = t->add_external_data();
    e->set_key(key);
    e->set_value(value);
  }
}

int64_t ExternalDataBytes(const onnx::ModelProto& model) {
  int64_t bytes = 0;
  // ForEachTensor takes a mutable model; this visitor only reads.
  (void)ForEachTensor(const_cast<onnx::ModelProto*>(&model),
                      [&](onnx::TensorProto* t, const std::string&) -> Status {
                        if (tensor::HasExternalData(*t)) bytes += tensor::StoredDataBytes(*t);
                        return Status::Ok();
                      });
  return bytes;
}

onnx::ModelProto CopyForChecking(const onnx::ModelProto& model) {
  onnx::ModelProto copy;
  tensor::CopyWithoutBulkData(model, &copy, kCheckerInlineBytes);
  // ONNX's shape inference types a sparse initializer as sparse_tensor, which no operator takes
  // (Gemm's B included), while runtimes densify them at load: check them as dense placeholders
  // (dims and dtype kept, one element), so that such a model is not refused (issue 18).
  onnx::GraphProto* g = copy.mutable_graph();
  for (const onnx::SparseTensorProto& sparse : g->sparse_initializer()) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(sparse.values().name());
    t->set_data_type(sparse.values().data_type());
    *t->mutable_dims() = sparse.dims();
    t->set_raw_data(std::string(static_cast<size_t>(tensor::DTypeSize(t->data_type())), '\0'));
  }
  g->clear_sparse_initializer();
  return copy;
}

}  // namespace kfc::io
