// SPDX-License-Identifier: Apache-2.0
#include "tool/options.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>

#include "kfc/report/format.h"
#include "kfc/runner/runner.h"

namespace kfc::tool {
namespace {

constexpr const char* kFooter = R"(
Exit codes:
  0  success (layers left uncompressed are listed in the report with the reason)
  1  runtime failure: unreadable, corrupt or invalid model, unwritable output, numerical failure
  2  usage error: bad or missing options, or an unreadable or invalid --plan file
  3  a quality gate (--fail-if-error-above, --fail-if-ratio-above, --fail-if-output-error-above,
     --fail-if-nothing-compressed)
     failed: the report says which and by how much; no model is written unless
     --write-on-gate-failure

The report goes to stdout (a table, or JSON with --json); logs go to stderr.
Nothing is written on failure: the output is written to a temporary file and renamed into place.)";

// Whole decimal number that fits int64; false on anything else (sign allowed, no spaces).
bool ParseInt64(const std::string& text, int64_t* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

// A finite decimal number, whole text (no spaces, no hex, no inf/nan).
bool ParseDouble(const std::string& text, double* out) {
  if (text.empty() || text.find_first_not_of("0123456789.eE+-") != std::string::npos) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(*out);
}

// Help without the "{/}" that marks --external-data's value-less default.
class Formatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, positional);
    if (const size_t at = name.find("{/}"); at != std::string::npos) name.erase(at, 3);
    return name;
  }
};

}  // namespace

ParseOutcome ParseCommandLine(int argc, char** argv) {
  ParseOutcome outcome;
  CliOptions& o = outcome.options;
  CLI::App app{
      "kfc-compress: compress the fully-connected (Gemm/MatMul) layers of an ONNX model as sums of "
      "Kronecker products (KFC layers, Zhou & Wu 2015).",
      "kfc-compress"};
  app.footer(kFooter);
  app.formatter(std::make_shared<Formatter>());
  app.set_version_flag("--version", std::string("kfc-compress ") + KFC_VERSION);
  app.add_option("input", o.input, "ONNX model to compress")->required()->type_name("INPUT.onnx");
  std::string rank_text, min_params_text = std::to_string(pipeline::kDefaultMinParams);
  std::string max_error_text, ratio_text, gate_error_text, gate_ratio_text;
  std::string& plan_path = o.plan_path;
  auto* mode = app.add_option_group("mode", "how much to compress: exactly one of");
  mode->add_option("-r,--rank", rank_text,
                   "Kronecker terms per layer (>= 1); clamped per layer to min(k1*n1, k2*n2)")
      ->type_name("R");
  mode->add_option("--max-error", max_error_text,
                   "per layer, the fewest parameters whose relative error is <= E (0..1); layers "
                   "that cannot meet it with a saving are skipped")
      ->type_name("E");
  mode->add_option("--ratio", ratio_text,
                   "the compressible weights end at <= F of their parameters (0 < F <= 1), "
                   "spread across layers to minimize the size-weighted squared error")
      ->type_name("F");
  std::string allocation_text;
  auto* allocation_option =
      app.add_option("--allocation", allocation_text,
                     "with --ratio, what the allocation across layers minimizes: auto (default: "
                     "with --calibration-data, size-weighted or uniform, whichever gives the "
                     "least model output error on held-out calibration rows; otherwise "
                     "size-weighted), size-weighted (sum K*N*e^2), per-layer (sum e^2), uniform "
                     "(the same fraction of "
                     "every layer), sensitivity (the model outputs' error, each layer's effect "
                     "measured through the runner: needs --calibration-data; docs/allocation.md)")
          ->type_name("A");
  app.add_option("--plan", plan_path,
                 "per-layer plan (proto/kfc_plan.proto; JSON if *.json, else text format); "
                 "with a plan, the mode is optional and applies to layers the plan does not name")
      ->type_name("FILE");
  app.add_option("--plan-out", o.plan_out,
                 "write the plan this run used (shape and rank per layer) to FILE, e.g. with "
                 "--dry-run, to edit and pin it with --plan")
      ->type_name("FILE");
  app.add_option("--calibration", o.pipeline.calibration_dir,
                 "minimize each layer's error on its recorded inputs in DIR (.npy files and "
                 "kfc_calibration.json: run the --calibration-probe model on your data, e.g. "
                 "with tests/ort/run_probe.js; docs/calibration.md)")
      ->type_name("DIR");
  std::vector<std::string> calibration_data;
  app.add_option("--calibration-data", calibration_data,
                 "calibrate in one command: the runner (tool/kfc-runner.js on onnxruntime-node, "
                 "or --runner) runs the model on these inputs (one .npy per model input, rows "
                 "along the first axis; INPUT= may be left out for a single-input model), records "
                 "each layer's input, and, before writing, measures each model output's error "
                 "(repeatable)")
      ->type_name("[INPUT=]FILE.npy")
      ->allow_extra_args(false);
  std::string regularization_text;
  app.add_option("--calibration-regularization", regularization_text,
                 "with calibration: lambda of the regularized covariance C + lambda * mean(diag "
                 "C) * I, or auto (default: with --calibration-data and --ratio, 10 or 0.1, "
                 "whichever gives the least model output error on held-out calibration rows, "
                 "searched with --allocation auto; otherwise 10; docs/allocation.md). Small values "
                 "such as 0.1 whiten more, which helps models whose activations have a few large "
                 "channels, e.g. PP-OCRv4 (docs/calibration.md)")
      ->type_name("LAMBDA");
  app.add_flag("--compensate", o.pipeline.compensate,
               "with --calibration-data: compress in stages in graph order, fitting each layer "
               "to the inputs it receives once the layers before it are compressed, to reproduce "
               "the original outputs (one more runner pass per stage; docs/compensation.md)");
  app.add_option("--runner", o.runner_command,
                 "the program that runs models for --calibration-data, speaking the protocol in "
                 "docs/runner.md (split at spaces; quotes group); default: $KFC_RUNNER, else "
                 "node kfc-runner.js")
      ->type_name("CMD");
  std::string calibration_batch_text, gate_output_text, runner_timeout_text;
  app.add_option("--calibration-batch", calibration_batch_text,
                 "rows per run of the model in the runner (default 256)")
      ->type_name("ROWS");
  app.add_option("--runner-timeout", runner_timeout_text,
                 "seconds the runner may take to start, or to answer one request, before it is "
                 "killed and the run fails (default 600; 0: no limit)")
      ->type_name("SECONDS");
  app.add_option("--calibration-probe", o.calibration_probe,
                 "write a copy of the model that also outputs every candidate layer's input "
                 "(and PROBE.calib.json), then exit; run it on calibration data")
      ->type_name("PROBE.onnx");
  app.add_option("--fail-if-error-above", gate_error_text,
                 "quality gate: exit 3 and write no model if any compressed layer's relative "
                 "error is above E")
      ->type_name("E");
  app.add_option("--fail-if-ratio-above", gate_ratio_text,
                 "quality gate: exit 3 and write no model if the whole model's parameter ratio "
                 "(totals.param_ratio: all initializers, after / before) is above F")
      ->type_name("F");
  app.add_option("--fail-if-output-error-above", gate_output_text,
                 "quality gate (with --calibration-data): exit 3 and write no model if any model "
                 "output's relative error on the calibration inputs, original vs compressed, is "
                 "above E")
      ->type_name("E");
  app.add_flag("--fail-if-nothing-compressed", o.pipeline.fail_if_nothing_compressed,
               "quality gate: exit 3 and write no model if no layer was compressed");
  app.add_flag("--write-on-gate-failure", o.pipeline.write_on_gate_failure,
               "write the model even when a gate fails (the exit code is still 3)");
  app.add_option("-o,--output", o.output, "where to write the compressed model")
      ->type_name("OUTPUT.onnx");
  // A flag whose value needs '=': a separate word after it stays the positional input.
  std::string external_data;
  auto* external_flag = app.add_flag(
      "--external-data{/}", external_data,
      "write initializers of at least --external-data-threshold bytes to FILE (a plain file name, "
      "written next to the output; default <output file name>.data), at 4096-byte aligned "
      "offsets; without it, external data is used only when the model would exceed 2 GiB");
  external_flag->type_name("[=FILE]");
  std::string threshold_text = std::to_string(io::kDefaultExternalDataThreshold);
  app.add_option("--external-data-threshold", threshold_text,
                 "initializers with at least this many bytes go to the external data file")
      ->default_val(io::kDefaultExternalDataThreshold)
      ->type_name("BYTES");
  app.add_option("--report", o.report_path,
                 "also write the report to FILE: Markdown if it ends in .md (a table for CI job "
                 "summaries), a self-contained HTML page with charts if .html, else JSON "
                 "(docs/reports.md)")
      ->type_name("FILE.json|.md|.html");
  app.add_flag("--json", o.json, "print the report as JSON on stdout (nothing else goes there)");
  app.add_flag("--dry-run", o.dry_run, "match, factorize and report, but write no model");
  app.add_option("--include", o.pipeline.include,
                 "only compress layers whose node or weight name matches this regex (repeatable)")
      ->type_name("REGEX")
      ->allow_extra_args(false);  // one value per flag, so a later positional is not swallowed
  app.add_option("--exclude", o.pipeline.exclude,
                 "leave layers whose node or weight name matches this regex alone (repeatable)")
      ->type_name("REGEX")
      ->allow_extra_args(false);  // one value per flag, so a later positional is not swallowed
  app.add_option("--min-params", min_params_text, "leave layers with fewer weight elements alone")
      ->default_val(pipeline::kDefaultMinParams)
      ->type_name("N");
  std::string threads_text = "0";
  app.add_option("-j,--threads", threads_text,
                 "threads that read, decide and factorize layers (0: one per core); the output "
                 "is the same bytes for any value")
      ->default_val(0)
      ->type_name("N");
  std::string shape;
  app.add_option("--shape", shape,
                 "'balanced' (default with -r): fewest parameters per term, ties broken by least "
                 "error; 'lowrank': K x 1 (x) 1 x N, plain truncated SVD; 'auto' (default with "
                 "--max-error and --ratio): every divisor pair, within the parameters balanced "
                 "uses at -r; k1xn1 (e.g. 16x32): this A-factor shape where k1 divides K and n1 "
                 "divides N")
      ->type_name("balanced|lowrank|auto|k1xn1");
  std::string objective;
  app.add_option("--objective", objective,
                 "'params' (default): per layer, the fewest parameters; 'macs': the fewest "
                 "multiply-accumulates per input row at the same --max-error target. Either way no "
                 "compressed layer costs more MACs per row than the dense layer (skip reason "
                 "slower_than_dense) unless --allow-slower-than-dense")
      ->type_name("params|macs");
  app.add_flag("--allow-slower-than-dense", o.pipeline.allow_slower,
               "allow compressed layers that cost more MACs per input row than the dense layer "
               "(fewer parameters, slower inference)");
  o.pipeline.node_cost_macs = kron::kNodeCostMacs;
  app.add_option("--node-cost", o.pipeline.node_cost_macs,
                 "MACs per input row that each node a compressed layer adds to the dense one "
                 "counts as when judging slower than dense (at batch 1 in ONNX Runtime: 8192, the "
                 "default); 0: MACs alone")
      ->type_name("MACS")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}));
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "log errors only");
  app.add_flag("-v,--verbose", o.verbosity, "log each layer's decision (-vv: also trace)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    outcome.exit_now = true;
    outcome.exit_code = app.exit(e);
    return outcome;
  } catch (const CLI::CallForVersion& e) {
    outcome.exit_now = true;
    outcome.exit_code = app.exit(e);
    return outcome;
  } catch (const CLI::ParseError& e) {
    outcome.exit_now = true;
    outcome.exit_code = kExitUsage;
    outcome.error = e.what();
    return outcome;
  }
  if (quiet) o.verbosity = -1;
  o.pipeline.record_candidates = o.dry_run || o.verbosity > 0;
  o.pipeline.record_charts =
      !o.report_path.empty() && report::FormatForPath(o.report_path) == report::ReportFormat::kHtml;

  auto fail = [&](const std::string& message) {
    outcome.exit_now = true;
    outcome.exit_code = kExitUsage;
    outcome.error = message;
    return outcome;
  };
  // Integers are parsed here, not by CLI11, which saturates out-of-range values silently.
  if (!rank_text.empty() && !ParseInt64(rank_text, &o.pipeline.rank)) {
    return fail("--rank: expected a whole number, got '" + rank_text + "'");
  }
  if (!rank_text.empty() && o.pipeline.rank == 0) return fail("rank must be at least 1, got 0");
  // Each number is checked here, when given: the pipeline's -1 "unset" sentinel is never reachable
  // from the command line (--ratio -1 is out of range, like --ratio -2).
  struct Number {
    const char* flag;
    const std::string* text;
    double* value;
    double lo, hi;
    bool lo_open;
  };
  const double kInf = std::numeric_limits<double>::infinity();
  const Number numbers[] = {
      {"--max-error", &max_error_text, &o.pipeline.max_error, 0.0, 1.0, false},
      {"--ratio", &ratio_text, &o.pipeline.ratio, 0.0, 1.0, true},
      {"--fail-if-error-above", &gate_error_text, &o.pipeline.fail_if_error_above, 0.0, 1.0, false},
      {"--fail-if-ratio-above", &gate_ratio_text, &o.pipeline.fail_if_ratio_above, 0.0, kInf,
       true}};
  for (const Number& n : numbers) {
    if (n.text->empty()) continue;
    std::optional<double> value;
    if (double v = 0; ParseDouble(*n.text, &v)) value = v;
    if (!value) return fail(std::string(n.flag) + ": expected a number, got '" + *n.text + "'");
    const bool in_range = (n.lo_open ? *value > n.lo : *value >= n.lo) && *value <= n.hi;
    if (!in_range) {
      const std::string range = n.hi == kInf
                                    ? std::string("above 0")
                                    : std::string("in ") + (n.lo_open ? "(" : "[") + "0, 1]";
      return fail(std::string(n.flag + 2) + " must be " + range + ", got " + *n.text);
    }
    *n.value = *value;
  }
  if (!ParseInt64(min_params_text, &o.pipeline.min_params)) {
    return fail("--min-params: expected a whole number, got '" + min_params_text + "'");
  }
  int64_t threads = 0;
  if (!ParseInt64(threads_text, &threads) || threads < 0 || threads > 1024) {
    return fail("--threads: expected a whole number from 0 to 1024, got '" + threads_text + "'");
  }
  o.pipeline.threads = static_cast<int>(threads);
  if (!ParseInt64(threshold_text, &o.pipeline.save.threshold) || o.pipeline.save.threshold < 0) {
    return fail("--external-data-threshold: expected a whole number >= 0, got '" + threshold_text +
                "'");
  }
  if (external_flag->count() > 0) {
    o.pipeline.save.external_data = true;
    if (external_data != "/") {
      if (Status s = io::ValidateDataFileName(external_data); !s.ok()) {
        return fail("--external-data: " + s.message());
      }
      if (external_data == std::filesystem::path(o.output).filename().string()) {
        return fail("--external-data: '" + external_data + "' is the output's own name");
      }
      o.pipeline.save.data_file = external_data;
    }
  }
  if (!shape.empty()) {
    auto policy = pipeline::ShapePolicy::Parse(shape);
    if (!policy.ok()) return fail("--" + policy.status().message());
    o.pipeline.shape = *policy;
  }
  if (objective == "macs") {
    o.pipeline.objective = pipeline::Objective::kMacs;
  } else if (!objective.empty() && objective != "params") {
    return fail("--objective: expected 'params' or 'macs', got '" + objective + "'");
  }
  if (!plan_path.empty()) {
    auto plan = pipeline::Plan::Load(plan_path);
    if (!plan.ok()) return fail(plan.status().message());
    o.pipeline.plan = std::move(*plan);
  }
  // --calibration-data and the options that only make sense with it.
  for (const auto& text : calibration_data) {
    o.runner.inputs.push_back(pipeline::CalibrationInput::Parse(text));
  }
  if (!calibration_batch_text.empty() &&
      !ParseInt64(calibration_batch_text, &o.runner.batch_size)) {
    return fail("--calibration-batch: expected a whole number, got '" + calibration_batch_text +
                "'");
  }
  if (!runner_timeout_text.empty() &&
      (!ParseDouble(runner_timeout_text, &o.runner.timeout_seconds) ||
       !(o.runner.timeout_seconds >= 0 && std::isfinite(o.runner.timeout_seconds)))) {
    return fail("--runner-timeout: expected a number of seconds >= 0 (0: no limit), got '" +
                runner_timeout_text + "'");
  }
  if (!gate_output_text.empty() &&
      !ParseDouble(gate_output_text, &o.runner.fail_if_output_error_above)) {
    return fail("--fail-if-output-error-above: expected a number, got '" + gate_output_text + "'");
  }
  // The runner options use -1 for "no gate": a negative value given here must not switch it off.
  if (!gate_output_text.empty() && o.runner.fail_if_output_error_above < 0) {
    return fail("fail-if-output-error-above must be >= 0, got " + gate_output_text);
  }
  if (calibration_data.empty()) {
    const std::pair<bool, const char*> needs_data[] = {
        {!o.runner_command.empty(), "--runner"},
        {!calibration_batch_text.empty(), "--calibration-batch"},
        {!runner_timeout_text.empty(), "--runner-timeout"},
        {!gate_output_text.empty(), "--fail-if-output-error-above"}};
    for (const auto& [given, flag] : needs_data) {
      if (given) return fail(std::string(flag) + " needs --calibration-data");
    }
    if (o.pipeline.compensate) {
      return fail(
          "--compensate needs --calibration-data: it runs the partly compressed model in the "
          "runner to record each stage's inputs (--calibration DIR holds only the original "
          "model's)");
    }
  } else {
    if (!o.runner_command.empty()) {
      if (auto split = runner::SplitCommand(o.runner_command); !split.ok()) {
        return fail("--runner: " + split.status().message());
      }
    }
    if (!o.pipeline.calibration_dir.empty()) {
      return fail("--calibration-data and --calibration exclude each other");
    }
    if (!o.calibration_probe.empty()) {
      return fail("--calibration-data and --calibration-probe exclude each other");
    }
    if (Status s = pipeline::ValidateRunnerOptions(o.runner); !s.ok()) return fail(s.message());
  }
  o.runner.search.regularization = regularization_text.empty() || regularization_text == "auto";
  o.runner.search.allocation = allocation_option->count() == 0 || allocation_text == "auto";
  if (!regularization_text.empty() && regularization_text != "auto") {
    double v = 0;
    if (!ParseDouble(regularization_text, &v) || !(v > 0) || !std::isfinite(v)) {
      return fail("calibration-regularization must be a number above 0, got " +
                  regularization_text);
    }
    if (o.pipeline.calibration_dir.empty() && calibration_data.empty()) {
      return fail("--calibration-regularization needs --calibration DIR or --calibration-data");
    }
    o.pipeline.calibration_regularization = v;
  }
  if (regularization_text == "auto" && o.pipeline.calibration_dir.empty() &&
      calibration_data.empty()) {
    return fail("--calibration-regularization needs --calibration DIR or --calibration-data");
  }
  if (allocation_option->count() > 0) {
    const std::pair<const char*, pipeline::AllocationObjective> kinds[] = {
        {"size-weighted", pipeline::AllocationObjective::kSizeWeighted},
        {"per-layer", pipeline::AllocationObjective::kPerLayer},
        {"uniform", pipeline::AllocationObjective::kUniform},
        {"sensitivity", pipeline::AllocationObjective::kSensitivity}};
    bool known = allocation_text == "auto";  // size-weighted unless the runner's search runs
    for (const auto& [name, kind] : kinds) {
      if (allocation_text == name) {
        o.pipeline.allocation = kind;
        known = true;
      }
    }
    if (!known) {
      return fail(
          "--allocation must be auto, size-weighted, per-layer, uniform or sensitivity, got '" +
          allocation_text + "'");
    }
    if (ratio_text.empty()) return fail("--allocation needs --ratio");
    if (o.pipeline.allocation == pipeline::AllocationObjective::kSensitivity &&
        calibration_data.empty()) {
      return fail("--allocation sensitivity needs --calibration-data (it runs the model)");
    }
  }
  if (!o.calibration_probe.empty()) return outcome;  // no compression options needed
  if (o.output.empty() && !o.dry_run) return fail("--output is required (or use --dry-run)");
  if (Status s = pipeline::ValidateOptions(o.pipeline); !s.ok()) return fail(s.message());
  return outcome;
}

}  // namespace kfc::tool
