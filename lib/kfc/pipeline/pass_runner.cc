// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/pass_runner.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kfc/core/logging.h"
#include "kfc/io/file.h"
#include "kfc/io/model_io.h"
#include "kfc/io/model_stream.h"
#include "kfc/pipeline/compress.h"

namespace kfc::pipeline {
namespace {

namespace fs = std::filesystem;

// The tensors of `tensors` not in `known`, in order.
std::vector<std::string> Unknown(const std::vector<std::string>& tensors,
                                 const std::map<std::string, std::vector<std::string>>& known) {
  std::vector<std::string> out;
  for (const auto& t : tensors) {
    if (known.count(t) == 0) out.push_back(t);
  }
  return out;
}

struct NpyHead {
  std::string descr;
  std::vector<int64_t> shape;
  int64_t data_start = 0;
  int64_t size = 0;
};

StatusOr<NpyHead> ReadNpyHead(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char pre[12] = {};
  if (!in.read(pre, 10) || std::memcmp(pre, "\x93NUMPY", 6) != 0) {
    return InvalidArgument("'" + path + "' is not a .npy file");
  }
  int64_t len = static_cast<unsigned char>(pre[8]) | (static_cast<unsigned char>(pre[9]) << 8);
  int64_t start = 10;
  if (pre[6] != 1) {
    if (!in.read(pre + 10, 2)) return InvalidArgument("'" + path + "' is not a .npy file");
    len = 0;
    for (int i = 3; i >= 0; --i) len = len * 256 + static_cast<unsigned char>(pre[8 + i]);
    start = 12;
  }
  std::string header(static_cast<size_t>(len), '\0');
  if (!in.read(header.data(), len)) return InvalidArgument("'" + path + "': truncated header");
  NpyHead h;
  h.data_start = start + len;
  const size_t d = header.find("'descr':");
  const size_t q1 = header.find('\'', d + 8);
  const size_t q2 = header.find('\'', q1 + 1);
  const size_t s1 = header.find('(', header.find("'shape':"));
  const size_t s2 = header.find(')', s1);
  if (d == std::string::npos || q2 == std::string::npos || s2 == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos) {
    return InvalidArgument("'" + path + "': a .npy header this reader does not take");
  }
  h.descr = header.substr(q1 + 1, q2 - q1 - 1);
  std::string dims = header.substr(s1 + 1, s2 - s1 - 1);
  for (size_t at = 0; at < dims.size();) {
    const size_t comma = dims.find(',', at);
    const std::string word = dims.substr(at, comma == std::string::npos ? comma : comma - at);
    if (word.find_first_of("0123456789") != std::string::npos) h.shape.push_back(std::stoll(word));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  std::error_code ec;
  h.size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) return IoError("'" + path + "': " + ec.message());
  return h;
}

// A row count (held as a double, as the runner's responses give it) without a fraction.
std::string FormatRows(double rows) { return std::to_string(static_cast<int64_t>(rows)); }

}  // namespace

bool CutWanted() {
  const char* v = std::getenv("KFC_RUNNER_CUT");
  return v == nullptr || std::string(v) != "0";
}

int64_t FrontierBudget(const std::vector<runner::InputFile>& inputs) {
  int64_t bytes = 0;
  for (const auto& in : inputs) {
    std::error_code ec;
    const auto size = fs::file_size(in.file(), ec);
    if (!ec) bytes += static_cast<int64_t>(size);
  }
  return std::min<int64_t>(int64_t{1} << 30, std::max<int64_t>(int64_t{64} << 20, 16 * bytes));
}

Status WriteRunnable(onnx::ModelProto* model, const std::string& input, const std::string& dir,
                     const std::string& name, io::ExternalDataReader* reader) {
  const std::string path = dir + "/" + name;
  std::set<std::string> locations;
  KFC_RETURN_IF_ERROR(io::ForEachTensor(model, [&](onnx::TensorProto* t, const std::string&) {
    if (t->data_location() != onnx::TensorProto::EXTERNAL) return Status::Ok();
    for (const auto& e : t->external_data()) {
      if (e.key() == "location") locations.insert(e.value());
    }
    return Status::Ok();
  }));
  bool linked = !locations.empty();
  const fs::path from = fs::path(input).parent_path();
  for (const auto& loc : locations) {
    std::error_code ec;
    const fs::path to = fs::path(dir) / loc;
    fs::create_directories(to.parent_path(), ec);
    if (ec || link((from / loc).c_str(), to.c_str()) != 0) {
      linked = false;
      break;
    }
  }
  if (linked) {
    Logger().debug("'{}': the input's {} data files hard-linked next to it", path,
                   locations.size());
    KFC_ASSIGN_OR_RETURN(std::string bytes, io::SerializeModel(*model));
    return io::WriteFileAtomic(path, bytes);
  }
  if (!locations.empty()) {
    Logger().debug("'{}': data files cannot be hard-linked there; the weights are copied", path);
  }
  for (const auto& loc : locations) {
    std::error_code ec;
    fs::remove(fs::path(dir) / loc, ec);
  }
  return io::SaveModel(model, path, io::SaveOptions{}, reader).status();
}

Status ConcatNpy(const std::vector<std::string>& files, const std::string& out) {
  if (files.empty()) return InvalidArgument("'" + out + "': no files to join");
  std::vector<NpyHead> heads;
  int64_t rows = 0;
  for (const auto& f : files) {
    KFC_ASSIGN_OR_RETURN(NpyHead h, ReadNpyHead(f));
    const NpyHead& first = heads.empty() ? h : heads.front();
    if (h.shape.empty() || h.descr != first.descr ||
        !std::equal(h.shape.begin() + 1, h.shape.end(), first.shape.begin() + 1,
                    first.shape.end())) {
      return InvalidArgument("'" + f + "': dtype or trailing dims differ from '" + files[0] + "'");
    }
    rows += h.shape[0];
    heads.push_back(std::move(h));
  }
  std::string shape = "(" + std::to_string(rows) + ",";
  for (size_t d = 1; d < heads[0].shape.size(); ++d) {
    shape += (d == 1 ? " " : ", ") + std::to_string(heads[0].shape[d]);
  }
  shape += ")";
  std::string header =
      "{'descr': '" + heads[0].descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream o(out, std::ios::binary | std::ios::trunc);
  const char pre[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  o.write(pre, 8);
  o.put(static_cast<char>(header.size() & 0xff));
  o.put(static_cast<char>(header.size() >> 8));
  o << header;
  std::vector<char> buf(1 << 20);
  for (size_t i = 0; i < files.size(); ++i) {
    std::ifstream in(files[i], std::ios::binary);
    in.seekg(heads[i].data_start);
    for (int64_t left = heads[i].size - heads[i].data_start; left > 0;) {
      const int64_t chunk = std::min<int64_t>(left, static_cast<int64_t>(buf.size()));
      if (!in.read(buf.data(), chunk)) return IoError("'" + files[i] + "': read failed");
      o.write(buf.data(), chunk);
      left -= chunk;
    }
  }
  o.flush();
  if (!o) return IoError("'" + out + "': write failed");
  return Status::Ok();
}

PassRunner::PassRunner(runner::Runner* runner, std::vector<runner::InputFile> inputs,
                       int32_t batch_size, double rows, std::string input,
                       io::ExternalDataReader* reader)
    : runner_(runner),
      inputs_(std::move(inputs)),
      batch_size_(batch_size),
      rows_(rows),
      input_(std::move(input)),
      reader_(reader) {}

Status PassRunner::EnableCut(Frontier frontier,
                             std::map<std::string, std::vector<std::string>> recorded,
                             const std::string& dir, int64_t budget_bytes) {
  cut_ = false;
  const std::string on = label_.empty() ? "" : " (" + label_ + ")";
  auto refuse = [&](const std::string& why) {
    Logger().info("runner: later passes run the whole model{}: {}", on, why);
    return FailedPrecondition(why);
  };
  int64_t bytes = 0;
  for (const auto& name : frontier.recorded) {
    auto it = recorded.find(name);
    if (it == recorded.end() || it->second.empty()) {
      return refuse("frontier tensor '" + name + "' was not recorded");
    }
    // The files' leading dims are the rows: they add up to the rows of the passes. (Their split
    // into files need not be this runner's batches: auto records its fit and held-out rows apart.)
    double rows = 0;
    for (const auto& file : it->second) {
      StatusOr<NpyHead> read = ReadNpyHead(file);
      if (!read.ok()) return refuse(read.status().message());
      const NpyHead& h = *read;
      if (h.shape.empty()) return refuse("frontier tensor '" + name + "' has no row axis");
      rows += static_cast<double>(h.shape[0]);
      bytes += h.size - h.data_start;
    }
    if (rows != rows_) {
      return refuse("frontier tensor '" + name + "' has " + FormatRows(rows) +
                    " rows in its files, " + "not the passes' " + FormatRows(rows_));
    }
  }
  if (bytes > budget_bytes) {
    return refuse("the frontier takes " + std::to_string(bytes) + " bytes, over the budget of " +
                  std::to_string(budget_bytes));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return refuse("temporary folder '" + dir + "': " + ec.message());
  fed_.clear();
  for (size_t i = 0; i < frontier.recorded.size(); ++i) {
    const std::string& name = frontier.recorded[i];
    const std::string file = dir + "/frontier" + std::to_string(i) + ".npy";
    const Status joined = ConcatNpy(recorded[name], file);
    if (!joined.ok()) {
      fed_.clear();
      return refuse(joined.message());
    }
    fed_[name] = file;
    recorded[name] = {file};
  }
  Logger().info(
      "runner: later passes run the model after the frontier ({} tensors, {} MB; {} of {} nodes "
      "before it){}",
      frontier.recorded.size(), bytes / 1000000, frontier.nodes_before,
      frontier.nodes_before + frontier.nodes_after, on);
  known_ = std::move(recorded);
  frontier_ = std::move(frontier);
  cut_ = true;
  return Status::Ok();
}

Status PassRunner::RecordFrontier(const onnx::ModelProto& original, io::ExternalDataReader* reader,
                                  Frontier frontier, const std::string& dir, int64_t budget_bytes) {
  onnx::ModelProto exposed = original;
  ExposeFrontier(frontier, {}, &exposed);
  const bool was_cut = cut_;
  cut_ = false;  // this pass runs the whole model
  StatusOr<std::vector<std::vector<std::string>>> files =
      Run(&exposed, reader, frontier.recorded, dir + "/record");
  cut_ = was_cut;
  KFC_RETURN_IF_ERROR(files.status());
  exposed = onnx::ModelProto();
  std::map<std::string, std::vector<std::string>> recorded;
  for (size_t i = 0; i < frontier.recorded.size(); ++i)
    recorded[frontier.recorded[i]] = (*files)[i];
  const Status enabled = EnableCut(std::move(frontier), recorded, dir, budget_bytes);
  std::error_code ec;
  fs::remove_all(dir + "/record", ec);
  return enabled;
}

StatusOr<onnx::ModelProto> PassRunner::Cut(const onnx::ModelProto& model,
                                           const std::vector<std::string>& tensors,
                                           std::vector<runner::InputFile>* inputs) const {
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto cut, BuildCutModel(model, frontier_, tensors));
  inputs->clear();
  for (const auto& v : cut.graph().input()) {
    auto it = fed_.find(v.name());
    const auto given =
        std::find_if(inputs_.begin(), inputs_.end(),
                     [&](const runner::InputFile& f) { return f.name() == v.name(); });
    runner::InputFile f;
    f.set_name(v.name());
    if (it != fed_.end()) {
      f.set_file(it->second);
    } else if (given != inputs_.end()) {
      f.set_file(given->file());
    } else {
      continue;  // an initializer listed as an input
    }
    inputs->push_back(f);
  }
  if (inputs->empty()) return FailedPrecondition("the cut reads no input");
  // The checks: all of them, but outputs of unknown rank (a tensor behind a Reshape whose target
  // shape inference cannot fold) are left out of the copy checked, as the ONNX checker wants a
  // shape on every graph output; the runtime takes them as the whole model's passes do.
  onnx::ModelProto checked = cut;
  auto* outs = checked.mutable_graph()->mutable_output();
  outs->erase(std::remove_if(outs->begin(), outs->end(),
                             [](const onnx::ValueInfoProto& v) {
                               return !v.type().tensor_type().has_shape();
                             }),
              outs->end());
  KFC_RETURN_IF_ERROR(CheckModel(checked, "cut model"));
  return cut;
}

StatusOr<std::vector<std::vector<std::string>>> PassRunner::Merge(
    const std::vector<std::string>& tensors, const std::vector<std::string>& ran,
    const std::vector<std::vector<std::string>>& files) const {
  std::vector<std::vector<std::string>> out;
  for (const auto& t : tensors) {
    auto at = std::find(ran.begin(), ran.end(), t);
    if (at != ran.end()) {
      out.push_back(files[static_cast<size_t>(at - ran.begin())]);
    } else {
      out.push_back(known_.at(t));
    }
  }
  return out;
}

StatusOr<std::vector<std::vector<std::string>>> PassRunner::Run(
    onnx::ModelProto* model, io::ExternalDataReader* reader,
    const std::vector<std::string>& tensors, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("temporary folder '" + dir + "': " + ec.message());
  io::ExternalDataReader* r = reader != nullptr ? reader : reader_;
  if (cut_) {
    const std::vector<std::string> ran = Unknown(tensors, known_);
    std::vector<runner::InputFile> inputs;
    StatusOr<onnx::ModelProto> cut =
        ran.empty() ? FailedPrecondition("nothing to run") : Cut(*model, ran, &inputs);
    if (cut.ok()) {
      KFC_RETURN_IF_ERROR(WriteRunnable(&*cut, input_, dir, "cut.onnx", r));
      ++cut_passes_;
      KFC_ASSIGN_OR_RETURN(auto files, RunRequest(dir + "/cut.onnx", inputs, ran, dir));
      return Merge(tensors, ran, files);
    }
    if (ran.empty()) return Merge(tensors, {}, {});
    Logger().info("runner: this pass runs the whole model: {}", cut.status().message());
  }
  KFC_RETURN_IF_ERROR(WriteRunnable(model, input_, dir, "model.onnx", r));
  return RunRequest(dir + "/model.onnx", inputs_, tensors, dir);
}

StatusOr<std::vector<std::vector<std::string>>> PassRunner::RunFile(
    const std::string& path, const std::vector<std::string>& tensors, const std::string& dir) {
  if (cut_) {
    KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, io::LoadModel(path));
    const std::vector<std::string> ran = Unknown(tensors, known_);
    if (ran.empty()) return Merge(tensors, {}, {});
    std::vector<runner::InputFile> inputs;
    StatusOr<onnx::ModelProto> cut = Cut(model, ran, &inputs);
    if (cut.ok()) {
      KFC_ASSIGN_OR_RETURN(const std::string bytes, io::SerializeModel(*cut));
      KFC_RETURN_IF_ERROR(io::WriteFileAtomic(path + ".cut.onnx", bytes));
      ++cut_passes_;
      KFC_ASSIGN_OR_RETURN(auto files, RunRequest(path + ".cut.onnx", inputs, ran, dir));
      return Merge(tensors, ran, files);
    }
    Logger().info("runner: this pass runs the whole model: {}", cut.status().message());
  }
  return RunRequest(path, inputs_, tensors, dir);
}

StatusOr<std::vector<std::vector<std::string>>> PassRunner::RunRequest(
    const std::string& path, const std::vector<runner::InputFile>& inputs,
    const std::vector<std::string>& tensors, const std::string& dir) {
  runner::Request request;
  request.set_model(path);
  for (const auto& in : inputs) *request.add_inputs() = in;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto* r = request.add_record();
    r->set_tensor(tensors[i]);
    r->set_stem("kfc_pass_" + std::to_string(i));
  }
  request.set_batch_size(batch_size_);
  request.set_output_dir(dir);
  ++passes_;
  KFC_ASSIGN_OR_RETURN(const runner::Response ran, runner_->Run(request));
  if (ran.rows() != rows_) {
    return Internal("runner: model '" + path + "' ran on " +
                    std::to_string(static_cast<int64_t>(ran.rows())) + " rows, the first pass on " +
                    std::to_string(static_cast<int64_t>(rows_)));
  }
  std::vector<std::vector<std::string>> files;
  for (int i = 0; i < ran.tensors_size(); ++i) {
    files.emplace_back();
    for (const auto& f : ran.tensors(i).files()) files.back().push_back(dir + "/" + f);
  }
  return files;
}

}  // namespace kfc::pipeline
