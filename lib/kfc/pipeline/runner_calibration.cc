// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/runner_calibration.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

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
#include "kfc/io/npy.h"
#include "kfc/io/temp_dir.h"
#include "kfc/kron/weighted.h"
#include "kfc/pipeline/auto_select.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/pass_runner.h"
#include "kfc/pipeline/ratio.h"
#include "kfc/pipeline/sensitivity.h"
#include "kfc/report/render.h"
#include "kfc/runner/compare.h"
#include "kfc/runner/runner.h"

namespace kfc::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kOutputStem[] = "kfc_output_";

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

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

// The runner's files of recorded tensor `i` of `response`, as paths in `dir`.
std::vector<std::string> FilesOf(const runner::Response& response, int i, const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& f : response.tensors(i).files()) out.push_back(dir + "/" + f);
  return out;
}

// The calibration rows one runner request recorded: the whole set, or (auto) its fit or held-out
// part. Every part's recordings are in `dir`.
struct Part {
  std::vector<runner::InputFile> inputs;
  std::string dir;
  runner::Response response;
};

// Recorded tensor `i`'s files over all parts, in row order.
std::vector<std::string> FilesOf(const std::vector<Part>& parts, int i) {
  std::vector<std::string> out;
  for (const auto& p : parts) {
    for (auto& f : FilesOf(p.response, i, p.dir)) out.push_back(std::move(f));
  }
  return out;
}

// `request` run on `inputs`, recorded into `dir`.
StatusOr<Part> RecordPart(runner::Runner* runner, runner::Request request,
                          const std::vector<runner::InputFile>& inputs, const std::string& dir) {
  Part part{inputs, dir, {}};
  request.clear_inputs();
  for (const auto& in : inputs) *request.add_inputs() = in;
  request.set_output_dir(dir);
  KFC_ASSIGN_OR_RETURN(part.response, runner->Run(request));
  return part;
}

// auto (auto_select.h): each input's rows split into fit and held-out files in tmp/fit_in and
// tmp/held_in; returns the split (held 0: too few rows, nothing written).
StatusOr<RowSplit> SplitInputs(const std::vector<runner::InputFile>& inputs, const io::TempDir& tmp,
                               std::vector<runner::InputFile>* fit,
                               std::vector<runner::InputFile>* held) {
  int64_t rows = -1;
  for (const auto& in : inputs) {
    KFC_ASSIGN_OR_RETURN(const int64_t n, io::NpyRows(in.file()));
    if (rows >= 0 && n != rows) {
      return InvalidArgument("--calibration-data: input '" + in.name() + "' has " +
                             std::to_string(n) + " rows, '" + inputs[0].name() + "' " +
                             std::to_string(rows));
    }
    rows = n;
  }
  const RowSplit split = SplitRows(rows < 0 ? 0 : rows);
  if (split.held == 0) return split;
  for (const char* d : {"fit_in", "held_in"}) {
    std::error_code ec;
    fs::create_directories(tmp.Join(d), ec);
    if (ec) return IoError("temporary folder '" + tmp.Join(d) + "': " + ec.message());
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    runner::InputFile f = inputs[k], h = inputs[k];
    f.set_file(tmp.Join("fit_in/" + std::to_string(k) + ".npy"));
    h.set_file(tmp.Join("held_in/" + std::to_string(k) + ".npy"));
    KFC_RETURN_IF_ERROR(io::SplitNpyRows(inputs[k].file(), split.fit, f.file(), h.file()));
    fit->push_back(f);
    held->push_back(h);
  }
  return split;
}

// Hard links of every part's recordings of the probe's tensors into `dir` (holding the sidecar),
// named <stem>.p<part>.<batch>.npy so that the calibration loader reads them in row order.
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

// What auto may choose in this run: only with --ratio, and not the lambda of --allocation
// sensitivity (its measurement is of the whole set).
AutoSearch SearchFor(const Options& options, AutoSearch asked) {
  if (options.ratio <= 0 || options.allocation == AllocationObjective::kSensitivity) return {};
  return asked;
}

// auto: the candidates compressed from the fit part (parts[0]) and judged on the held-out part
// (parts[1]); `with_data` takes the winner's values. Without a split (too few rows) or when no
// candidate could be measured, `with_data` keeps the defaults and the report says why.
StatusOr<report::AutoSelection> SelectSettings(
    const std::string& input, const Options& options, const AutoSearch& search,
    const RowSplit& split, const std::vector<Part>& parts, const runner::Request& request,
    int first_output, size_t outputs, PassRunner* held_passes, const io::TempDir& tmp,
    std::chrono::steady_clock::time_point start, Options* with_data) {
  report::AutoSelection selection;
  if (!search.any()) return selection;
  selection.set_searched_allocation(search.allocation);
  selection.set_searched_regularization(search.regularization);
  selection.set_chosen(-1);
  std::vector<AutoCandidate> candidates = AutoCandidates(options, search);
  if (split.held == 0) {
    selection.set_note("no search: " + std::to_string(split.fit) +
                       " calibration rows, fewer than " + std::to_string(kAutoMinRows) +
                       "; the defaults are used");
  } else {
    HeldOut held{held_passes, {}, {}};
    for (int i = first_output; i < first_output + static_cast<int>(outputs); ++i) {
      held.outputs.push_back(request.record(i).tensor());
      held.original.push_back(FilesOf(parts[1].response, i, parts[1].dir));
    }
    Options fit = options;
    fit.calibration_dir = parts[0].dir;
    KFC_ASSIGN_OR_RETURN(selection,
                         SearchCandidates(input, fit, &candidates, held, tmp.Join("search")));
    selection.set_searched_allocation(search.allocation);
    selection.set_searched_regularization(search.regularization);
    selection.set_rows_fit(static_cast<double>(split.fit));
    selection.set_rows_held_out(static_cast<double>(split.held));
    if (selection.chosen() >= 0) {
      const AutoCandidate& c = candidates[static_cast<size_t>(selection.chosen())];
      *with_data = WithCandidate(*with_data, c);
      selection.set_note(CandidateName(c) + ": the least model output error on " +
                         std::to_string(split.held) + " held-out rows, fitted on " +
                         std::to_string(split.fit) + " (" + std::to_string(candidates.size()) +
                         " candidates); the model is then fitted on all rows");
    } else {
      selection.set_note("no candidate could be measured; the defaults are used");
    }
  }
  selection.set_allocation(AllocationName(with_data->allocation));
  selection.set_regularization(
      with_data->calibration_regularization.value_or(kron::kCalibrationRegularization));
  selection.set_seconds(SecondsSince(start));
  with_data->auto_selection = selection.note();
  Logger().info("auto: {} ({:.3f} s)", selection.note(), selection.seconds());
  return selection;
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
