// SPDX-License-Identifier: Apache-2.0
// The Python module kfc_compress: the CLI's two runs (tool/run.h) behind keyword arguments.
//
//   compress(model_bytes, rank=None, ratio=None, max_error=None, shape=None, **options)
//       -> (bytes, dict)
//   compress_file(input, output=None, **options) -> dict
//   write_calibration_probe(input, probe) -> str
//
// Keyword arguments are the CLI's long options in snake_case (max_error is --max-error). They are
// turned back into an argv and parsed by the CLI's own parser (tool/options.cc), so both entry
// points accept the same values and reject bad ones with the same messages. Errors: ValueError for
// what the CLI rejects as usage (exit code 2), RuntimeError for runtime failures (exit code 1),
// GateFailedError (its .report is the report dict) for a failed quality gate (exit code 3).
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "kfc/pipeline/compress.h"
#include "tool/options.h"
#include "tool/run.h"

namespace py = pybind11;

namespace {

enum class Kind {
  kValue,        // --name=VALUE (str(value): the CLI parses and checks it)
  kFlag,         // --name when True
  kList,         // --name=VALUE once per item (a str is one item)
  kFlagOrValue,  // --name when True, --name=VALUE for a str
};

struct Keyword {
  const char* name;  // the Python keyword
  const char* flag;  // the CLI option
  Kind kind;
  bool file_only;  // meaningful only for compress_file (paths next to the output, dry runs)
};

// Every CLI option with a meaning outside a terminal. Not here: input and --output (arguments),
// --json (the report is always returned as a dict), -q/-v (the library logs through the spdlog
// logger "kfc", which has no sink unless the host adds one), --calibration-probe
// (write_calibration_probe), --help and --version (kfc_compress.__version__).
constexpr Keyword kKeywords[] = {
    {"rank", "--rank", Kind::kValue, false},
    {"max_error", "--max-error", Kind::kValue, false},
    {"ratio", "--ratio", Kind::kValue, false},
    {"shape", "--shape", Kind::kValue, false},
    {"objective", "--objective", Kind::kValue, false},
    {"allow_slower_than_dense", "--allow-slower-than-dense", Kind::kFlag, false},
    {"node_cost", "--node-cost", Kind::kValue, false},
    {"plan", "--plan", Kind::kValue, false},
    {"calibration", "--calibration", Kind::kValue, false},
    {"fail_if_error_above", "--fail-if-error-above", Kind::kValue, false},
    {"fail_if_ratio_above", "--fail-if-ratio-above", Kind::kValue, false},
    {"fail_if_nothing_compressed", "--fail-if-nothing-compressed", Kind::kFlag, false},
    {"allocation", "--allocation", Kind::kValue, false},
    {"calibration_regularization", "--calibration-regularization", Kind::kValue, false},
    {"write_on_gate_failure", "--write-on-gate-failure", Kind::kFlag, false},
    {"include", "--include", Kind::kList, false},
    {"exclude", "--exclude", Kind::kList, false},
    {"min_params", "--min-params", Kind::kValue, false},
    {"threads", "--threads", Kind::kValue, false},
    {"dry_run", "--dry-run", Kind::kFlag, true},
    {"report", "--report", Kind::kValue, true},
    {"plan_out", "--plan-out", Kind::kValue, true},
    {"external_data", "--external-data", Kind::kFlagOrValue, true},
    {"external_data_threshold", "--external-data-threshold", Kind::kValue, true},
    {"calibration_data", "--calibration-data", Kind::kList, true},
    {"calibration_batch", "--calibration-batch", Kind::kValue, true},
    {"runner", "--runner", Kind::kValue, true},
    {"runner_timeout", "--runner-timeout", Kind::kValue, true},
    {"compensate", "--compensate", Kind::kFlag, true},
    {"fail_if_output_error_above", "--fail-if-output-error-above", Kind::kValue, true},
};

[[noreturn]] void ThrowValueError(const std::string& message) { throw py::value_error(message); }

// str for paths given as os.PathLike, str() of everything else (numbers print so that the CLI's
// parser reads back the same value: Python's float str is the shortest round-trip form).
std::string Text(const py::handle& value) {
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  const py::module_ os = py::module_::import("os");
  if (py::hasattr(value, "__fspath__"))
    return py::str(os.attr("fspath")(value)).cast<std::string>();
  return py::str(value).cast<std::string>();
}

bool Flag(const char* name, const py::handle& value) {
  if (!py::isinstance<py::bool_>(value)) {
    ThrowValueError(std::string(name) + ": expected True or False, got " +
                    py::repr(value).cast<std::string>());
  }
  return value.cast<bool>();
}

// Appends the options in `kwargs` to `args`; unknown names (all of them) are a ValueError.
void AppendOptions(const py::dict& kwargs, bool file_run, std::vector<std::string>* args) {
  std::string unknown;
  for (const auto& [key, value] : kwargs) {
    const std::string name = py::str(key).cast<std::string>();
    const Keyword* keyword = nullptr;
    for (const Keyword& k : kKeywords) {
      if (name == k.name && (file_run || !k.file_only)) keyword = &k;
    }
    if (keyword == nullptr) {
      unknown += (unknown.empty() ? "" : ", ") + name;
      continue;
    }
    if (value.is_none()) continue;
    const std::string flag = keyword->flag;
    switch (keyword->kind) {
      case Kind::kValue:
        args->push_back(flag + "=" + Text(value));
        break;
      case Kind::kFlag:
        if (Flag(keyword->name, value)) args->push_back(flag);
        break;
      case Kind::kList:
        if (py::isinstance<py::str>(value) || py::hasattr(value, "__fspath__")) {
          args->push_back(flag + "=" + Text(value));
        } else {
          for (const py::handle item : py::iter(value)) args->push_back(flag + "=" + Text(item));
        }
        break;
      case Kind::kFlagOrValue:
        if (py::isinstance<py::bool_>(value)) {
          if (value.cast<bool>()) args->push_back(flag);
        } else {
          args->push_back(flag + "=" + Text(value));
        }
        break;
    }
  }
  if (!unknown.empty()) {
    ThrowValueError(
        "unknown option" + std::string(unknown.find(',') == std::string::npos ? "" : "s") + ": " +
        unknown + (file_run ? "" : " (options that write files belong to compress_file)"));
  }
}

kfc::tool::CliOptions Parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  kfc::tool::ParseOutcome parsed =
      kfc::tool::ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  if (parsed.exit_now) {
    ThrowValueError(parsed.error.empty() ? "invalid options" : parsed.error);
  }
  return std::move(parsed.options);
}

py::object ReportDict(const std::string& json) {
  return py::module_::import("json").attr("loads")(json);
}

[[noreturn]] void ThrowStatus(const kfc::Status& status) {
  throw std::runtime_error(kfc::tool::OneLine(status.message()));
}

// A failed gate, as the CLI reports it on stderr ("gate failed: GATE: DETAIL"), one per gate.
void RaiseGateFailed(const kfc::report::Report& report, const std::string& json) {
  std::string message;
  for (const auto& g : report.gates()) {
    if (g.passed()) continue;
    message +=
        (message.empty() ? "" : "; ") + std::string("gate failed: ") + g.gate() + ": " + g.detail();
  }
  py::object error_type = py::module_::import("kfc_compress").attr("GateFailedError");
  py::object error = error_type(message);
  error.attr("report") = ReportDict(json);
  PyErr_SetObject(error_type.ptr(), error.ptr());
  throw py::error_already_set();
}

py::tuple Compress(const py::object& model_bytes, const py::object& rank, const py::object& ratio,
                   const py::object& max_error, const py::object& shape, const py::kwargs& kwargs) {
  py::dict options;
  options["rank"] = rank;
  options["ratio"] = ratio;
  options["max_error"] = max_error;
  options["shape"] = shape;
  for (const auto& [key, value] : kwargs) options[key] = value;
  // Placeholders for the input and output the parser wants; the run never opens them.
  std::vector<std::string> args = {"kfc-compress", "--output=<memory>"};
  AppendOptions(options, /*file_run=*/false, &args);
  args.push_back("--");
  args.push_back("<memory>");
  const kfc::tool::CliOptions cli = Parse(std::move(args));

  // bytes, bytearray, memoryview or any other buffer; copied, since a mutable buffer could change
  // once the GIL is released.
  if (py::isinstance<py::str>(model_bytes) || !PyObject_CheckBuffer(model_bytes.ptr())) {
    throw py::type_error(
        "model_bytes: expected bytes (a serialized ONNX model), got " +
        py::str(py::type::handle_of(model_bytes).attr("__name__")).cast<std::string>());
  }
  std::string input;
  if (py::isinstance<py::bytes>(model_bytes)) {
    input = model_bytes.cast<std::string>();
  } else {
    const auto copy = py::reinterpret_steal<py::bytes>(PyBytes_FromObject(model_bytes.ptr()));
    if (!copy) throw py::error_already_set();
    input = copy.cast<std::string>();
  }
  kfc::StatusOr<kfc::tool::BytesRun> run = kfc::InvalidArgument("not run");
  {
    py::gil_scoped_release release;
    run = kfc::tool::RunBytes(input, cli.pipeline);
  }
  if (!run.ok()) ThrowStatus(run.status());
  if (!run->report.gates_passed() && !cli.pipeline.write_on_gate_failure) {
    RaiseGateFailed(run->report, run->json);
  }
  return py::make_tuple(py::bytes(run->model), ReportDict(run->json));
}

py::object CompressFile(const py::object& input, const py::object& output,
                        const py::kwargs& kwargs) {
  std::vector<std::string> args = {"kfc-compress"};
  if (!output.is_none()) args.push_back("--output=" + Text(output));
  AppendOptions(kwargs, /*file_run=*/true, &args);
  args.push_back("--");
  args.push_back(Text(input));
  const kfc::tool::CliOptions cli = Parse(std::move(args));

  kfc::StatusOr<kfc::tool::FileRun> run = kfc::InvalidArgument("not run");
  {
    py::gil_scoped_release release;
    kfc::io::RunFiles files;
    kfc::tool::AddRunReads(cli, &files);
    kfc::io::CommitGroup outputs;
    run = kfc::tool::RunFile(cli, cli.pipeline, &files, &outputs, /*need_json=*/true);
    if (run.ok()) {
      if (auto s = outputs.Commit(); !s.ok()) run = s;
    }
  }
  if (!run.ok()) ThrowStatus(run.status());
  if (!run->report.gates_passed()) RaiseGateFailed(run->report, run->json);
  return ReportDict(run->json);
}

std::string WriteCalibrationProbe(const py::object& input, const py::object& probe) {
  const std::string in = Text(input), out = Text(probe);
  kfc::StatusOr<std::string> summary = kfc::InvalidArgument("not run");
  {
    py::gil_scoped_release release;
    summary = kfc::pipeline::WriteCalibrationProbe(in, out);
  }
  if (!summary.ok()) ThrowStatus(summary.status());
  return *summary;
}

}  // namespace

PYBIND11_MODULE(kfc_compress, m) {
  m.doc() =
      "Compress the Gemm/MatMul layers of ONNX models as sums of Kronecker products "
      "(kfc-compress's library, with the CLI's options as keyword arguments).";
  m.attr("__version__") = KFC_VERSION;
  py::object gate_failed = py::reinterpret_steal<py::object>(
      PyErr_NewExceptionWithDoc("kfc_compress.GateFailedError",
                                "A quality gate (fail_if_error_above, fail_if_ratio_above) failed: "
                                "no model was returned or written; .report is the report.",
                                PyExc_Exception, nullptr));
  m.attr("GateFailedError") = gate_failed;

  m.def("compress", &Compress, py::arg("model_bytes"), py::arg("rank") = py::none(),
        py::arg("ratio") = py::none(), py::arg("max_error") = py::none(),
        py::arg("shape") = py::none(),
        R"(compress(model_bytes, rank=None, ratio=None, max_error=None, shape=None, **options)
    -> (bytes, dict)

Compresses a serialized ONNX model in memory and returns the compressed model's bytes (the same
bytes `kfc-compress` writes with the same options) and the report (what `kfc-compress --json`
prints). Exactly one of rank, max_error, ratio (unless plan= is given). Options: the CLI's long
options in snake_case: objective, allow_slower_than_dense, node_cost, plan, calibration,
fail_if_error_above, fail_if_ratio_above,
write_on_gate_failure, include, exclude (a str or a list of str), min_params, threads.
Weights in external data files are skipped (use compress_file).
Raises ValueError (bad or unknown options), RuntimeError (invalid model, numerical failure),
GateFailedError (a gate failed and write_on_gate_failure is not set).)");
  m.def("compress_file", &CompressFile, py::arg("input"), py::arg("output") = py::none(),
        R"(compress_file(input, output=None, **options) -> dict

Does what `kfc-compress INPUT -o OUTPUT` does with the same options and returns the report.
Options: those of compress() plus dry_run, report, plan_out, external_data (True or a file name),
external_data_threshold. Nothing is written on failure.
Raises ValueError, RuntimeError or GateFailedError as compress() does.)");
  m.def("write_calibration_probe", &WriteCalibrationProbe, py::arg("input"), py::arg("probe"),
        R"(write_calibration_probe(input, probe) -> str

What `kfc-compress INPUT --calibration-probe PROBE` does: writes the probe model and its sidecar,
returns the summary line.)");
}
