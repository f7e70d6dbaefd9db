// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/runner_calibration.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "kfc/core/logging.h"
#include "kfc/io/external_data.h"
#include "kfc/io/file.h"
#include "kfc/io/model_io.h"
#include "kfc/io/temp_dir.h"
#include "kfc/pipeline/auto_run.h"
#include "kfc/pipeline/auto_select.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/pass_runner.h"
#include "kfc/pipeline/phases.h"
#include "kfc/pipeline/ratio.h"
#include "kfc/pipeline/recorded_parts.h"
#include "kfc/pipeline/sensitivity.h"
#include "kfc/report/render.h"
#include "kfc/runner/compare.h"
#include "kfc/runner/runner.h"

namespace kfc::pipeline {
namespace {

namespace fs = std::filesystem;

constexpr char kOutputStem[] = "kfc_output_";

std::string Quoted(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out;
}

// The main graph's inputs that callers feed: those without an initializer of the same name.
std::vector<std::string> FedInputs(const onnx::GraphProto& g) {
  std::set<std::string> initializers;
  for (const auto& t : g.initializer()) initializers.insert(t.name());
  std::vector<std::string> out;
  for (const auto& v : g.input()) {
    if (initializers.count(v.name()) == 0) out.push_back(v.name());
  }
  return out;
}

// The main graph's tensor outputs, which the runner can record.
std::vector<std::string> TensorOutputs(const onnx::GraphProto& g) {
  std::vector<std::string> out;
  for (const auto& v : g.output()) {
    if (v.type().has_tensor_type()) {
      out.push_back(v.name());
    } else {
      Logger().warn("output '{}' is not a tensor: it is not verified", v.name());
    }
  }
  return out;
}

// Each --calibration-data value bound to a model input, with an absolute path.
StatusOr<std::vector<runner::InputFile>> BindInputs(const onnx::ModelProto& model,
                                                    const std::vector<CalibrationInput>& given) {
  const std::vector<std::string> names = FedInputs(model.graph());
  std::map<std::string, std::string> files;
  for (const auto& in : given) {
    std::string name = in.name;
    const std::string text = (in.name.empty() ? "" : in.name + "=") + in.file;
    if (name.empty()) {
      if (names.size() != 1) {
        return InvalidArgument("--calibration-data '" + text + "': the model has " +
                               std::to_string(names.size()) + " inputs (" + Quoted(names) +
                               "): give each as INPUT=FILE.npy");
      }
      name = names[0];
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      return InvalidArgument("--calibration-data '" + text + "': the model has no input '" + name +
                             "' (its inputs: " + Quoted(names) + ")");
    }
    if (files.count(name) > 0) {
      return InvalidArgument("--calibration-data: input '" + name + "' is given twice");
    }
    std::error_code ec;
    const fs::path abs = fs::absolute(in.file, ec);
    files[name] = ec ? in.file : abs.string();
  }
  std::vector<runner::InputFile> out;
  for (const auto& name : names) {
    auto it = files.find(name);
    if (it == files.end()) {
      return InvalidArgument("--calibration-data: no data for the model's input '" + name +
                             "' (give INPUT=FILE.npy for each of " + Quoted(names) + ")");
    }
    runner::InputFile f;
    f.set_name(name);
    f.set_file(it->second);
    out.push_back(f);
  }
  return out;
}

}  // namespace

CalibrationInput CalibrationInput::Parse(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) return {"", text};
  return {text.substr(0, eq), text.substr(eq + 1)};
}

Status ValidateRunnerOptions(const RunnerOptions& runner) {
  if (runner.inputs.empty()) return InvalidArgument("--calibration-data: no input given");
  for (const auto& in : runner.inputs) {
    if (in.file.empty()) {
      return InvalidArgument("--calibration-data '" + in.name + "=': no file after the '='");
    }
  }
  if (runner.batch_size < 1 || runner.batch_size > (int64_t{1} << 30)) {
    return InvalidArgument("--calibration-batch must be from 1 to 2^30, got " +
                           std::to_string(runner.batch_size));
  }
  const double gate = runner.fail_if_output_error_above;
  if (gate != -1.0 && !(gate >= 0.0 && std::isfinite(gate))) {
    return InvalidArgument("--fail-if-output-error-above must be a finite number >= 0, got " +
                           Num(gate));
  }
  return Status::Ok();
}

StatusOr<report::Report> CompressFileWithRunner(const std::string& input, const std::string& output,
                                                const Options& options,
                                                const RunnerOptions& runner_options, bool dry_run) {
  KFC_RETURN_IF_ERROR(ValidateOptions(options));
  KFC_RETURN_IF_ERROR(ValidateRunnerOptions(runner_options));
  if (!options.calibration_dir.empty()) {
    return InvalidArgument("--calibration-data and --calibration DIR exclude each other");
  }
  if (!dry_run) KFC_RETURN_IF_ERROR(io::CheckOutputPath(input, output));
  if (runner_options.command.empty()) {
    return NotFound("runner: " + runner_options.missing_runner_hint);
  }
  auto& log = Logger();

  // The probe, prepared as CompressFile prepares the model, so that the fingerprints agree.
  auto start = Clock::now();
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, io::LoadModel(input));
  io::ExternalDataReader reader(input);
  KFC_RETURN_IF_ERROR(io::PrepareExternalData(&model, &reader, io::kKeptExternalMinBytes).status());
  KFC_RETURN_IF_ERROR(CheckModel(model, "input model '" + input + "'"));
  KFC_ASSIGN_OR_RETURN(const std::vector<runner::InputFile> inputs,
                       BindInputs(model, runner_options.inputs));
  const std::vector<std::string> outputs = TensorOutputs(model.graph());
  KFC_ASSIGN_OR_RETURN(Probe probe, BuildProbe(model, input));
  // Later passes (compensation stages, sensitivity trials) run only the model after the frontier
  // (runner_cut.h), which the first pass records as well.
  // auto's candidates run on the held-out rows the same way.
  const AutoSearch search = SearchFor(options, runner_options.search);
  const bool later_passes =
      options.compensate || search.any() ||
      (options.allocation == AllocationObjective::kSensitivity && options.ratio > 0);
  StatusOr<Frontier> frontier = FailedPrecondition("KFC_RUNNER_CUT=0");
  if (later_passes && CutWanted()) frontier = FindFrontier(model);
  if (later_passes && !frontier.ok()) {
    log.info("runner: later passes run the whole model: {}", frontier.status().message());
  }
  std::vector<runner::Record> frontier_records;
  if (frontier.ok()) {
    std::set<std::string> stems;
    for (const auto& t : probe.sidecar.tensors()) stems.insert(t.name());
    frontier_records = ExposeFrontier(*frontier, stems, &probe.model);
  }
  model = onnx::ModelProto();  // the probe holds its own copy

  KFC_ASSIGN_OR_RETURN(io::TempDir tmp, io::TempDir::Create("kfc-compress-"));
  const std::string calib_dir = tmp.Join("calibration");
  std::error_code ec;
  fs::create_directories(calib_dir, ec);
  if (ec) return IoError("temporary folder '" + calib_dir + "': " + ec.message());
  KFC_RETURN_IF_ERROR(WriteRunnable(&probe.model, input, tmp.path(), "probe.onnx", &reader));
  probe.model = onnx::ModelProto();  // written: its weights need not stay in memory
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.add_whitespace = true;
  json_options.preserve_proto_field_names = true;
  std::string sidecar;
  if (!google::protobuf::util::MessageToJsonString(probe.sidecar, &sidecar, json_options).ok()) {
    return Internal("calibration sidecar: JSON rendering failed");
  }
  KFC_RETURN_IF_ERROR(io::WriteFileAtomic(calib_dir + "/" + kSidecarName, sidecar));
  log.info("wrote the probe ({} exposed activations) in {:.3f} s", probe.sidecar.tensors_size(),
           SecondsSince(start));

  // 1. The runner records every exposed activation and every model output.
  start = Clock::now();
  log.debug("starting the runner: {}", runner::CommandText(runner_options.command));
  auto started =
      runner::Runner::Start(runner_options.command, tmp.path(), runner_options.timeout_seconds);
  if (!started.ok()) {
    // The hint (how to get Node.js) helps only when the program itself is missing.
    if (started.status().code() != StatusCode::kNotFound) return started.status();
    return NotFound(started.status().message() + runner_options.start_hint);
  }
  std::unique_ptr<runner::Runner> runner = std::move(*started);
  runner::Request request;
  request.set_model(tmp.Join("probe.onnx"));
  for (const auto& in : inputs) *request.add_inputs() = in;
  for (const auto& t : probe.sidecar.tensors()) {
    auto* r = request.add_record();
    r->set_tensor(t.name());
    r->set_stem(t.name());  // Calibration reads <name>.*.npy
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto* r = request.add_record();
    r->set_tensor(outputs[i]);
    r->set_stem(kOutputStem + std::to_string(i));
  }
  const int first_frontier = request.record_size();
  for (const auto& r : frontier_records) *request.add_record() = r;
  request.set_batch_size(static_cast<int32_t>(runner_options.batch_size));
  const int first_output = probe.sidecar.tensors_size();
  Options with_data = options;
  with_data.calibration_dir = calib_dir;
  // auto (auto_select.h): the fit and the held-out rows are recorded apart; the calibration
  // folder then links both parts, in row order.
  RowSplit split;
  std::vector<runner::InputFile> fit_inputs, held_inputs;
  if (search.any()) {
    KFC_ASSIGN_OR_RETURN(split, SplitInputs(inputs, tmp, &fit_inputs, &held_inputs));
  }
  std::vector<Part> parts;
  if (split.held > 0) {
    for (const char* d : {"fit", "held"}) {
      fs::create_directories(tmp.Join(d), ec);
      if (ec) return IoError("temporary folder '" + tmp.Join(d) + "': " + ec.message());
      KFC_RETURN_IF_ERROR(io::WriteFileAtomic(tmp.Join(d) + "/" + kSidecarName, sidecar));
    }
    KFC_ASSIGN_OR_RETURN(Part fit, RecordPart(runner.get(), request, fit_inputs, tmp.Join("fit")));
    parts.push_back(std::move(fit));
    KFC_ASSIGN_OR_RETURN(Part held,
                         RecordPart(runner.get(), request, held_inputs, tmp.Join("held")));
    parts.push_back(std::move(held));
    KFC_RETURN_IF_ERROR(LinkParts(parts, request, first_output, calib_dir));
  } else {
    KFC_ASSIGN_OR_RETURN(Part all, RecordPart(runner.get(), request, inputs, calib_dir));
    parts.push_back(std::move(all));
  }
  double total_rows = 0;
  for (const auto& p : parts) total_rows += p.response.rows();
  const runner::Response& recorded = parts[0].response;  // the whole set without auto's split
  // The passes after the first: on all rows (compensation stages, sensitivity trials) and on the
  // held-out rows (auto's candidates), each with the cut fed by its rows' frontier recordings.
  PassRunner passes(runner.get(), inputs, request.batch_size(), total_rows, input, &reader);
  std::optional<PassRunner> held_passes;
  if (split.held > 0) {
    held_passes.emplace(runner.get(), parts[1].inputs, request.batch_size(),
                        parts[1].response.rows(), input, &reader);
    passes.set_label("all " + std::to_string(split.fit + split.held) + " rows");
    held_passes->set_label("the " + std::to_string(split.held) + " held-out rows");
  }
  if (frontier.ok()) {
    // The first pass's recordings of the tensors made before the cut, over `from`'s rows.
    const auto made_before = [&](const std::vector<Part>& from) {
      std::map<std::string, std::vector<std::string>> out;
      for (int i = 0; i < request.record_size(); ++i) {
        const std::string& t = request.record(i).tensor();
        if (frontier->before.count(t) > 0) out[t] = FilesOf(from, i);
      }
      return out;
    };
    // Each logs why not, when the cut does not apply: its passes then run the whole model.
    (void)passes.EnableCut(*frontier, made_before(parts), tmp.Join("frontier"),
                           FrontierBudget(inputs));
    if (held_passes) {
      (void)held_passes->EnableCut(*frontier, made_before({parts[1]}), tmp.Join("frontier_held"),
                                   FrontierBudget(parts[1].inputs));
    }
    for (size_t i = 0; i < frontier_records.size(); ++i) {  // joined, or not used
      for (const auto& f : FilesOf(parts, first_frontier + static_cast<int>(i))) {
        std::error_code rm;
        fs::remove(f, rm);
      }
    }
  }
  log.info("runner ({}): recorded {} activations and {} outputs on {} rows in {:.3f} s",
           runner->runtime(), probe.sidecar.tensors_size(), outputs.size(),
           static_cast<int64_t>(total_rows), SecondsSince(start));
  KFC_ASSIGN_OR_RETURN(
      const report::AutoSelection selection,
      SelectSettings(input, options, search, split, parts, request, first_output, outputs.size(),
                     held_passes ? &*held_passes : nullptr, tmp, start, &with_data));

  // 2.-3. Compress with the recorded activations; verify before anything is written.
  if (options.allocation == AllocationObjective::kSensitivity && options.ratio > 0) {
    SensitivityRun sensitivity{&passes, {}, {}, tmp.Join("sensitivity")};
    for (size_t i = 0; i < outputs.size(); ++i) {
      const int at = first_output + static_cast<int>(i);
      sensitivity.outputs.push_back(outputs[i]);
      sensitivity.original.push_back(FilesOf(recorded, at, calib_dir));
    }
    KFC_ASSIGN_OR_RETURN(with_data.layer_sensitivity,
                         MeasureSensitivity(input, with_data, sensitivity));
  }
  // --compensate: each stage's partly compressed model runs on the same inputs, in the same
  // batches, recording the stage's layer inputs (pipeline/phases.h, Compensate). One folder per
  // stage, the previous one removed first: one stage's recordings on disk at a time.
  int pass = 0;
  if (options.compensate) {
    with_data.record_activations = [&](onnx::ModelProto* partial,
                                       io::ExternalDataReader* model_reader,
                                       const std::vector<std::string>& tensors)
        -> StatusOr<std::vector<std::vector<std::string>>> {
      const auto t0 = Clock::now();
      std::error_code rm;
      if (pass > 0) fs::remove_all(tmp.Join("stage" + std::to_string(pass)), rm);
      const std::string dir = tmp.Join("stage" + std::to_string(++pass));
      KFC_ASSIGN_OR_RETURN(auto files, passes.Run(partial, model_reader, tensors, dir));
      log.info("runner: compensation pass {} recorded {} activations in {:.3f} s", pass,
               tensors.size(), SecondsSince(t0));
      return files;
    };
  }
  const std::string verify_dir = tmp.Join("verify");
  with_data.before_write = [&](onnx::ModelProto* compressed, io::ExternalDataReader* model_reader,
                               report::Report* rep) -> Status {
    auto t0 = Clock::now();
    std::error_code mk;
    fs::create_directories(verify_dir, mk);
    if (mk) return IoError("temporary folder '" + verify_dir + "': " + mk.message());
    // The verification copy is ours, in our temporary folder: written now, not staged with the
    // run's outputs, and not one of the run's checked writes.
    io::SaveOptions verify_save = options.save;
    verify_save.commit = nullptr;
    verify_save.files = nullptr;
    KFC_RETURN_IF_ERROR(
        io::SaveModel(compressed, verify_dir + "/model.onnx", verify_save, model_reader).status());
    runner::Request check;
    for (size_t i = 0; i < outputs.size(); ++i)
      *check.add_record() = request.record(first_output + static_cast<int>(i));
    check.set_batch_size(request.batch_size());
    if (!outputs.empty()) {
      // Part by part, so that each batch compares with the original's batch of the same rows.
      std::vector<Part> ran;
      for (size_t p = 0; p < parts.size(); ++p) {
        const std::string dir = verify_dir + "/p" + std::to_string(p);
        fs::create_directories(dir, mk);
        if (mk) return IoError("temporary folder '" + dir + "': " + mk.message());
        check.set_model(verify_dir + "/model.onnx");
        KFC_ASSIGN_OR_RETURN(Part part, RecordPart(runner.get(), check, parts[p].inputs, dir));
        ran.push_back(std::move(part));
      }
      for (size_t i = 0; i < outputs.size(); ++i) {
        const int at = first_output + static_cast<int>(i);
        KFC_ASSIGN_OR_RETURN(
            const runner::Difference d,
            runner::CompareRecordings(FilesOf(parts, at), FilesOf(ran, static_cast<int>(i)),
                                      "output '" + outputs[i] + "'"));
        report::OutputError* e = rep->add_output_errors();
        e->set_name(report::ToValidUtf8(outputs[i]));
        e->set_relative_error(d.relative_error);
        e->set_max_abs_error(d.max_abs_error);
        e->set_elements(static_cast<double>(d.elements));
      }
    }
    if (search.any()) *rep->mutable_auto_selection() = selection;
    rep->set_calibration("runner");
    for (const auto& in : runner_options.inputs) {
      rep->add_calibration_data(
          report::ToValidUtf8((in.name.empty() ? inputs[0].name() : in.name) + "=" + in.file));
    }
    rep->set_calibration_rows(total_rows);
    rep->set_runner(report::ToValidUtf8(runner->runtime()));
    log.info("runner: ran the compressed model and compared {} outputs in {:.3f} s", outputs.size(),
             SecondsSince(t0));
    if (runner_options.fail_if_output_error_above >= 0) {
      const double threshold = runner_options.fail_if_output_error_above;
      double worst = 0.0;
      std::string who = "no output: error";
      for (const auto& e : rep->output_errors()) {
        const double v = e.relative_error();
        if (std::isnan(v) || (!std::isnan(worst) && v > worst)) {  // NaN counts as the worst
          worst = v;
          who = "output '" + e.name() + "' relative error";
        }
      }
      report::Gate* g = rep->add_gates();
      g->set_gate("fail_if_output_error_above");
      g->set_threshold(threshold);
      g->set_value(worst);
      g->set_passed(worst <= threshold);
      g->set_detail(report::ToValidUtf8(
          who + " " + Num(worst) +
          (g->passed() ? " is within " + Num(threshold)
                       : " exceeds " + Num(threshold) +
                             (std::isfinite(worst) ? " by " + Num(worst - threshold) : ""))));
      if (!g->passed()) rep->set_gates_passed(false);
    }
    return Status::Ok();
  };
  auto report = CompressFile(input, output, with_data, dry_run);
  const std::string diagnostics = runner->Stderr();
  if (!diagnostics.empty()) log.debug("runner stderr:\n{}", diagnostics);
  return report;
}

}  // namespace kfc::pipeline
