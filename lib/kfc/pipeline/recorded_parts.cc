// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/recorded_parts.h"

#include <unistd.h>

#include <filesystem>

namespace kfc::pipeline {

namespace fs = std::filesystem;

std::vector<std::string> FilesOf(const runner::Response& response, int i, const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& f : response.tensors(i).files()) out.push_back(dir + "/" + f);
  return out;
}

std::vector<std::string> FilesOf(const std::vector<Part>& parts, int i) {
  std::vector<std::string> out;
  for (const auto& p : parts) {
    for (auto& f : FilesOf(p.response, i, p.dir)) out.push_back(std::move(f));
  }
  return out;
}

StatusOr<Part> RecordPart(runner::Runner* runner, runner::Request request,
                          const std::vector<runner::InputFile>& inputs, const std::string& dir) {
  Part part{inputs, dir, {}};
  request.clear_inputs();
  for (const auto& in : inputs) *request.add_inputs() = in;
  request.set_output_dir(dir);
  KFC_ASSIGN_OR_RETURN(part.response, runner->Run(request));
  return part;
}

Status LinkParts(const std::vector<Part>& parts, const runner::Request& request, int tensors,
                 const std::string& dir) {
  for (size_t p = 0; p < parts.size(); ++p) {
    for (int i = 0; i < tensors; ++i) {
      const std::string& stem = request.record(i).stem();
      for (const auto& f : parts[p].response.tensors(i).files()) {
        const std::string to = dir + "/" + stem + ".p" + std::to_string(p) + f.substr(stem.size());
        const std::string from = parts[p].dir + "/" + f;
        if (link(from.c_str(), to.c_str()) != 0) {
          std::error_code ec;
          fs::copy_file(from, to, ec);
          if (ec) return IoError("calibration file '" + to + "': " + ec.message());
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace kfc::pipeline
