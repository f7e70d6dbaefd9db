#include "tool/options.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <regex>

namespace kfc::tool {
namespace {

constexpr const char* kFooter = R"(
Exit codes:
  0  success (layers left uncompressed are listed in the report with the reason)
  1  runtime failure: unreadable, corrupt or invalid model, unwritable output, numerical failure
  2  usage error: bad or missing options

The report goes to stdout (a table, or JSON with --json); logs go to stderr.
Nothing is written on failure: the output is written to a temporary file and renamed into place.)";

int UsageError(const std::string& message) {
  std::fprintf(stderr, "kfc-compress: error: %s\nRun 'kfc-compress --help' for usage.\n",
               message.c_str());
  return kExitUsage;
}

// Whole decimal number that fits int64; false on anything else (sign allowed, no spaces).
bool ParseInt64(const std::string& text, int64_t* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

}  // namespace

ParseOutcome ParseCommandLine(int argc, char** argv) {
  ParseOutcome outcome;
  CliOptions& o = outcome.options;
  CLI::App app{
      "kfc-compress: compress the fully-connected (Gemm/MatMul) layers of an ONNX model as sums of "
      "Kronecker products (KFC layers, Zhou & Wu 2015).",
      "kfc-compress"};
  app.footer(kFooter);
  app.set_version_flag("--version", std::string("kfc-compress ") + KFC_VERSION);
  app.add_option("input", o.input, "ONNX model to compress")->required()->type_name("INPUT.onnx");
  std::string rank_text, min_params_text = std::to_string(pipeline::kDefaultMinParams);
  app.add_option("-r,--rank", rank_text,
                 "Kronecker terms per layer (>= 1); clamped per layer to min(k1*n1, k2*n2)")
      ->required()
      ->type_name("R");
  app.add_option("-o,--output", o.output, "where to write the compressed model")
      ->type_name("OUTPUT.onnx");
  app.add_option("--report", o.report_path, "also write the JSON report to this file")
      ->type_name("FILE.json");
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
  std::string shape = "balanced";
  app.add_option("--shape", shape,
                 "'balanced' (default): fewest parameters per term, ties broken by least error; "
                 "'auto': the least-error shape and rank over all divisor pairs within the "
                 "parameters balanced uses at -r; k1xn1 (e.g. 16x32): this A-factor shape where "
                 "k1 divides K and n1 divides N")
      ->type_name("balanced|auto|k1xn1");
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
    outcome.exit_code = UsageError(e.what());
    return outcome;
  }
  if (quiet) o.verbosity = -1;
  o.pipeline.record_candidates = o.dry_run || o.verbosity > 0;

  auto fail = [&](const std::string& message) {
    outcome.exit_now = true;
    outcome.exit_code = UsageError(message);
    return outcome;
  };
  // Integers are parsed here, not by CLI11, which saturates out-of-range values silently.
  if (!ParseInt64(rank_text, &o.pipeline.rank)) {
    return fail("--rank: expected a whole number, got '" + rank_text + "'");
  }
  if (!ParseInt64(min_params_text, &o.pipeline.min_params)) {
    return fail("--min-params: expected a whole number, got '" + min_params_text + "'");
  }
  if (shape == "auto") {
    o.pipeline.auto_shape = true;
  } else if (shape != "balanced" && shape != "default") {
    std::smatch m;
    static const std::regex kShape("^([0-9]{1,9})x([0-9]{1,9})$");
    if (!std::regex_match(shape, m, kShape)) {
      return fail("--shape: expected 'balanced', 'auto' or k1xn1 (e.g. 16x32), got '" + shape +
                  "'");
    }
    o.pipeline.forced_shape = std::make_pair(std::stoll(m[1]), std::stoll(m[2]));
  }
  if (o.output.empty() && !o.dry_run) return fail("--output is required (or use --dry-run)");
  if (Status s = pipeline::ValidateOptions(o.pipeline); !s.ok()) return fail(s.message());
  return outcome;
}

}  // namespace kfc::tool
