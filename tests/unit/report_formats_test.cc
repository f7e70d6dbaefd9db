// SPDX-License-Identifier: Apache-2.0
// The --report renderers other than text and JSON (report/format.h, markdown.h, html.h,
// charts.h) and the size-error curve behind the HTML chart (pipeline/size_error_curve.h).
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/size_error_curve.h"
#include "kfc/report/charts.h"
#include "kfc/report/format.h"
#include "kfc/report/html.h"
#include "kfc/report/markdown.h"
#include "kfc/report/render.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

using report::ReportFormat;

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Two compressed layers (one with a spectrum), one skipped, a hostile name, a gate and a curve.
report::Report SampleReport() {
  report::Report r;
  r.set_report_schema_version(report::kSchemaVersion);
  r.set_tool_version("0.1.0");
  r.set_input("in.onnx");
  r.set_output("out.onnx");
  r.set_mode("max_error");
  r.set_max_error(0.1);
  r.set_shape_policy("auto");
  auto* a = r.add_layers();
  a->set_node_name("fc1");
  a->set_op_type("Gemm");
  a->set_graph("main");
  a->set_k(64);
  a->set_n(64);
  a->set_compressed(true);
  a->set_k1(8);
  a->set_n1(8);
  a->set_k2(8);
  a->set_n2(8);
  a->set_rank(2);
  a->set_params_before(4096);
  a->set_params_after(256);
  a->set_macs_before(4096);
  a->set_macs_after(2048);
  a->set_relative_error(0.05);
  for (double v : {0.9, 0.4, 0.15, 0.05, 0.01}) a->mutable_spectrum()->add_values(v);
  a->mutable_spectrum()->set_complete(true);
  auto* b = r.add_layers();
  b->set_node_name("a|b <script>*x*_y_");
  b->set_op_type("MatMul");
  b->set_graph("main/loop_body");
  b->set_k(32);
  b->set_n(32);
  b->set_compressed(true);
  b->set_k1(32);
  b->set_n1(1);
  b->set_k2(1);
  b->set_n2(32);
  b->set_rank(3);
  b->set_params_before(1024);
  b->set_params_after(192);
  b->set_relative_error(0.2);
  auto* c = r.add_layers();
  c->set_node_name("head");
  c->set_op_type("Gemm");
  c->set_graph("main");
  c->set_k(16);
  c->set_n(10);
  c->set_params_before(160);
  c->set_params_after(160);
  c->set_skip_reason("below_min_params");
  c->set_skip_detail("160 < 4096 parameters");
  r.mutable_totals()->set_layers_found(3);
  r.mutable_totals()->set_layers_compressed(2);
  r.mutable_totals()->set_model_params_before(5280);
  r.mutable_totals()->set_model_params_after(608);
  r.mutable_totals()->set_compressible_params_before(5120);
  r.mutable_totals()->set_compressible_params_after(448);
  auto* g = r.add_gates();
  g->set_gate("fail_if_error_above");
  g->set_threshold(0.1);
  g->set_value(0.2);
  g->set_passed(false);
  g->set_detail("worst layer error 0.2 exceeds 0.1 by 0.1");
  return r;
}

TEST(ReportFormatTest, ChosenByExtensionIgnoringCase) {
  EXPECT_EQ(report::FormatForPath("r.json"), ReportFormat::kJson);
  EXPECT_EQ(report::FormatForPath("r"), ReportFormat::kJson);
  EXPECT_EQ(report::FormatForPath("dir.md/report"), ReportFormat::kJson);
  EXPECT_EQ(report::FormatForPath("r.txt"), ReportFormat::kJson);
  EXPECT_EQ(report::FormatForPath("out/r.md"), ReportFormat::kMarkdown);
  EXPECT_EQ(report::FormatForPath("R.MarkDown"), ReportFormat::kMarkdown);
  EXPECT_EQ(report::FormatForPath("r.html"), ReportFormat::kHtml);
  EXPECT_EQ(report::FormatForPath("r.HTM"), ReportFormat::kHtml);
  EXPECT_STREQ(report::FormatName(ReportFormat::kMarkdown), "markdown");
}

TEST(ReportFormatTest, JsonFormatIsRenderJson) {
  const report::Report r = SampleReport();
  auto as = report::RenderAs(r, ReportFormat::kJson);
  auto json = report::RenderJson(r);
  ASSERT_TRUE(as.ok() && json.ok());
  EXPECT_EQ(*as, *json);
}

TEST(MarkdownTest, EscapesTableBreakersAndHtml) {
  EXPECT_EQ(report::MarkdownEscape("a|b"), "a\\|b");
  EXPECT_EQ(report::MarkdownEscape("<b>&"), "&lt;b&gt;&amp;");
  EXPECT_EQ(report::MarkdownEscape("x_y*z`"), "x\\_y\\*z\\`");
  EXPECT_EQ(report::MarkdownEscape("two\nlines"), "two lines");
}

TEST(MarkdownTest, OneTableRowPerLayerAndGateOutcomes) {
  const std::string md = report::RenderMarkdown(SampleReport());
  EXPECT_EQ(md.rfind("### kfc-compress 0.1.0: in.onnx", 0), 0u) << md;
  EXPECT_NE(md.find("| fc1 | Gemm |"), std::string::npos) << md;
  EXPECT_NE(md.find("main/loop\\_body/a\\|b &lt;script&gt;\\*x\\*\\_y\\_"), std::string::npos)
      << md;
  EXPECT_NE(md.find("skipped: `below_min_params`"), std::string::npos) << md;
  EXPECT_NE(md.find("**FAILED**"), std::string::npos) << md;
  EXPECT_EQ(md.find("<script>"), std::string::npos);
  // Header row, alignment row, three layers; every table row has the header's column count.
  size_t table_rows = 0;
  size_t start = 0;
  while (start < md.size()) {
    const size_t end = md.find('\n', start);
    const std::string line = md.substr(start, end - start);
    if (line.rfind("| ", 0) == 0 || line.rfind("|:", 0) == 0) {
      std::string unescaped;
      for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '\\') {
          ++i;
          continue;
        }
        unescaped += line[i];
      }
      if (Count(unescaped, "|") == 9) ++table_rows;
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  EXPECT_EQ(table_rows, 5u) << md;
  EXPECT_EQ(report::RenderMarkdown(SampleReport()), md);
}

TEST(HtmlTest, SelfContainedWithEveryLayerAndTheCharts) {
  const std::string html = report::RenderHtml(SampleReport());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_NE(html.find(">fc1<"), std::string::npos);
  EXPECT_NE(html.find(">head<"), std::string::npos);
  EXPECT_NE(html.find("main/loop_body/a|b &lt;script&gt;*x*_y_"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos) << "a name must not become markup";
  EXPECT_EQ(html.find("src="), std::string::npos) << "self-contained: nothing to fetch";
  EXPECT_EQ(html.find("href="), std::string::npos);
  // The layer chart and fc1's spectrum; no curve without points.
  EXPECT_EQ(Count(html, "<svg "), 2u);
  EXPECT_EQ(Count(html, "</svg>"), 2u);
  EXPECT_NE(html.find("id=\"spectra\""), std::string::npos);
  EXPECT_EQ(html.find("id=\"curve\""), std::string::npos);
  EXPECT_NE(html.find("FAILED"), std::string::npos);
}

TEST(HtmlTest, CurveChartWhenTheReportHasACurve) {
  report::Report r = SampleReport();
  pipeline::SetSizeErrorCurve(pipeline::CurveFromSpectra(r), "chosen_shapes", &r);
  ASSERT_GT(r.size_error_curve().points_size(), 1);
  const std::string html = report::RenderHtml(r);
  EXPECT_NE(html.find("id=\"curve\""), std::string::npos);
  EXPECT_EQ(Count(html, "<svg "), 3u);
  EXPECT_NE(html.find("chosen shape"), std::string::npos) << "says what the curve is";
  EXPECT_EQ(report::RenderHtml(r), html);
}

// The sample with what --calibration-data and the validations add: output errors, the checks
// that ran, and nodes no schema covered (one op with a hostile name, one with more nodes than
// are listed).
report::Report SampleWithChecksAndOutputs() {
  report::Report r = SampleReport();
  r.set_calibration("runner");
  r.set_calibration_rows(512);
  r.set_runner("onnxruntime-node 1.30.0");
  auto* e = r.add_output_errors();
  e->set_name("probabilities");
  e->set_relative_error(0.0123456789);
  e->set_max_abs_error(0.25);
  auto* c1 = r.mutable_checks()->add_ran();
  c1->set_model("input");
  c1->set_check("structure");
  c1->set_nodes(7);
  c1->set_detail("whole model");
  auto* c2 = r.mutable_checks()->add_ran();
  c2->set_model("input");
  c2->set_check("onnx_checker");
  c2->set_nodes(5);
  c2->set_detail("node by node");
  auto* c3 = r.mutable_checks()->add_ran();
  c3->set_model("output");
  c3->set_check("emitted_nodes");
  c3->set_nodes(12);
  auto* u = r.mutable_checks()->add_unchecked();
  u->set_model("input");
  u->set_op_type("com.microsoft.FusedMatMul");
  u->set_reason("custom_domain");
  u->set_detail("no schema for domain 'com.microsoft'");
  for (const char* n : {"fm0", "fm1", "fm2", "fm3"}) u->add_nodes(n);
  auto* v = r.mutable_checks()->add_unchecked();
  v->set_model("output");
  v->set_op_type("x.<b>Op|1</b>");
  v->set_reason("op_newer_than_library");
  v->add_nodes("#3 in graph");
  return r;
}

TEST(MarkdownTest, ChecksAndOutputErrors) {
  const std::string md = report::RenderMarkdown(SampleWithChecksAndOutputs());
  EXPECT_NE(md.find("| output (512 calibration rows, run by onnxruntime-node 1.30.0) | relative "
                    "error | max abs error |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| probabilities | 0.012346 | 0.250000 |"), std::string::npos) << md;
  EXPECT_NE(md.find("**Checks**: input: structure (7 nodes, whole model), onnx\\_checker (5 "
                    "nodes, node by node); output: emitted\\_nodes (12 nodes)\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| not checked by a schema | op | nodes | reason | which |\n|:--|:--|--:|:--|"
                    ":--|\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| input | com.microsoft.FusedMatMul | 4 | `custom_domain` no schema for "
                    "domain 'com.microsoft' | fm0, fm1, fm2, ... |\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| output | x.&lt;b&gt;Op\\|1&lt;/b&gt; | 1 | `op_newer_than_library` | "
                    "\\#3 in graph |\n"),
            std::string::npos)
      << md;
  EXPECT_EQ(md.find("<b>"), std::string::npos);
  // The checks come before the note that no model was written.
  report::Report r = SampleWithChecksAndOutputs();
  r.set_output_written(false);
  const std::string unwritten = report::RenderMarkdown(r);
  EXPECT_LT(unwritten.find("**Checks**"), unwritten.find("No model was written."));
  // No checks ran (an old report): no section.
  EXPECT_EQ(report::RenderMarkdown(SampleReport()).find("Checks"), std::string::npos);
}

TEST(HtmlTest, ChecksAndOutputErrors) {
  const std::string html = report::RenderHtml(SampleWithChecksAndOutputs());
  EXPECT_NE(html.find("<section id=\"outputs\">"), std::string::npos);
  EXPECT_NE(html.find("<td>probabilities</td><td class=\"n\">0.012346</td><td "
                      "class=\"n\">0.250000</td>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("On 512 calibration rows, run by onnxruntime-node 1.30.0."),
            std::string::npos);
  const size_t checks = html.find("<section id=\"checks\">");
  ASSERT_NE(checks, std::string::npos) << html;
  EXPECT_NE(html.find("input: structure (7 nodes, whole model), onnx_checker (5 nodes, node by "
                      "node); output: emitted_nodes (12 nodes)",
                      checks),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<tr><td>input</td><td>com.microsoft.FusedMatMul</td><td "
                      "class=\"n\">4</td><td>custom_domain (no schema for domain "
                      "&#39;com.microsoft&#39;)</td><td>fm0, fm1, fm2, fm3</td></tr>",
                      checks),
            std::string::npos)
      << html.substr(checks);
  EXPECT_NE(html.find("<td>x.&lt;b&gt;Op|1&lt;/b&gt;</td>", checks), std::string::npos)
      << html.substr(checks);
  EXPECT_EQ(html.find("<b>Op"), std::string::npos);
  EXPECT_EQ(report::RenderHtml(SampleReport()).find("id=\"checks\""), std::string::npos);
}

// RenderJson prints the layers one at a time (memory): the bytes must be those of printing the
// whole report at once, with every primitive field, nested messages and repeated fields included.
TEST(JsonTest, LayerByLayerIsTheWholeMessagePrintedAtOnce) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  report::Report with_candidates = SampleWithChecksAndOutputs();
  auto* cand = with_candidates.mutable_layers(0)->add_candidates();
  cand->set_k1(4);
  cand->set_error_upper(0.125);
  with_candidates.mutable_layers(1)->set_skip_detail("a \"quoted\"\nline");
  report::Report no_layers = SampleReport();
  no_layers.clear_layers();
  for (const report::Report& r : {SampleReport(), with_candidates, no_layers, report::Report()}) {
    std::string whole;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(r, &whole, options).ok());
    if (whole.back() != '\n') whole += "\n";
    auto json = report::RenderJson(r);
    ASSERT_TRUE(json.ok()) << json.status().message();
    EXPECT_EQ(*json, whole);
  }
}

TEST(ChartsTest, SpectrumMarksTheKeptValues) {
  const report::Report r = SampleReport();
  const std::string svg = report::SpectrumSvg(r.layers(0));
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos) << "the rank line";
  EXPECT_EQ(Count(svg, "<circle"), 5u);
  EXPECT_EQ(report::SpectrumSvg(r.layers(1)), "") << "no values, no chart";
}

TEST(SizeErrorCurveTest, HullPointsAreOptimalForTheirSize) {
  // Brute force over every combination: each point's cost is the least cost at its size or less.
  pipeline::CurveInput in;
  in.groups = {{{{10, 50.0}, {20, 20.0}, {30, 15.0}, {40, 2.0}, {100, 0.0}}},
               {{{5, 9.0}, {15, 1.0}, {25, 0.5}, {60, 0.0}}},
               {{{8, 4.0}, {12, 3.9}, {30, 0.0}}}};
  in.fixed_params = 7;
  in.fixed_cost = 1.0;
  in.total_weight = 190;
  const std::vector<report::CurvePoint> pts = pipeline::SizeErrorPoints(in);
  ASSERT_GE(pts.size(), 3u);
  EXPECT_EQ(pts.front().params(), 7 + 10 + 5 + 8);
  EXPECT_EQ(pts.back().params(), 7 + 100 + 60 + 30);
  EXPECT_NEAR(pts.back().error(), std::sqrt(1.0 / 190), 1e-9);
  for (size_t i = 1; i < pts.size(); ++i) {
    EXPECT_GT(pts[i].params(), pts[i - 1].params());
    EXPECT_LT(pts[i].error(), pts[i - 1].error());
  }
  for (const auto& p : pts) {
    double best = 1e300;
    std::function<void(size_t, double, double)> walk = [&](size_t g, double params, double cost) {
      if (g == in.groups.size()) {
        if (params <= p.params()) best = std::min(best, cost);
        return;
      }
      for (const auto& o : in.groups[g].options) walk(g + 1, params + o.params, cost + o.cost);
    };
    walk(0, in.fixed_params, in.fixed_cost);
    EXPECT_NEAR(p.error(), std::sqrt(best / in.total_weight), 1e-9) << p.params();
  }
}

TEST(SizeErrorCurveTest, ThinnedToMaxPointsKeepingBothEnds) {
  pipeline::CurveInput in;
  in.total_weight = 1000;
  pipeline::AllocGroup g;
  for (int r = 1; r < 100; ++r) g.options.push_back({r * 10, 1000.0 / (r * r)});
  g.options.push_back({1000, 0.0});
  in.groups = {g};
  const auto all = pipeline::SizeErrorPoints(in, 100000);
  const auto thin = pipeline::SizeErrorPoints(in, 16);
  ASSERT_GT(all.size(), 16u);
  ASSERT_EQ(thin.size(), 16u);
  EXPECT_EQ(thin.front().params(), all.front().params());
  EXPECT_EQ(thin.back().params(), all.back().params());
}

TEST(SizeErrorCurveTest, FromSpectraPassesThroughTheChosenRank) {
  const report::Report r = SampleReport();
  const pipeline::CurveInput in = pipeline::CurveFromSpectra(r);
  ASSERT_EQ(in.groups.size(), 1u) << "only fc1 has a spectrum";
  // fc1 at rank 2 (256 params) has error 0.05: cost 4096 * 0.0025; rank 1 adds 0.4^2.
  bool at_rank2 = false, at_rank1 = false;
  for (const auto& o : in.groups[0].options) {
    if (o.params == 256) at_rank2 = std::abs(o.cost - 4096 * 0.0025) < 1e-9;
    if (o.params == 128) at_rank1 = std::abs(o.cost - 4096 * (0.0025 + 0.16)) < 1e-9;
  }
  EXPECT_TRUE(at_rank2 && at_rank1);
  // The layer without a spectrum is a constant: its cost, and its parameters.
  EXPECT_NEAR(in.fixed_cost, 1024 * 0.04, 1e-9);
  EXPECT_EQ(in.fixed_params, 448 - 256);
}

// The pipeline fills the chart data only when asked, so JSON reports stay as they were.
TEST(ChartDataTest, RecordedOnlyWhenAsked) {
  auto model = io::LoadModel(KFC_SOURCE_DIR "/testdata/digits_mlp.onnx");
  ASSERT_TRUE(model.ok()) << model.status().message();
  for (const char* mode : {"rank", "ratio"}) {
    pipeline::Options options = kfc::testing::ToyOptions();
    if (std::string(mode) == "rank") options.rank = 4;
    if (std::string(mode) == "ratio") options.ratio = 0.2;
    auto plain = pipeline::CompressModel(*model, options);
    options.record_charts = true;
    auto charts = pipeline::CompressModel(*model, options);
    ASSERT_TRUE(plain.ok() && charts.ok());
    EXPECT_FALSE(plain->report.has_size_error_curve());
    auto json = report::RenderJson(plain->report);
    ASSERT_TRUE(json.ok());
    EXPECT_EQ(json->find("spectrum"), std::string::npos) << mode;
    EXPECT_EQ(json->find("size_error_curve"), std::string::npos) << mode;
    const report::SizeErrorCurve& c = charts->report.size_error_curve();
    EXPECT_EQ(c.basis(), std::string(mode) == "ratio" ? "ratio_allocation" : "chosen_shapes");
    ASSERT_GE(c.points_size(), 2) << mode;
    EXPECT_EQ(c.points(c.points_size() - 1).params(), c.params_dense());
    EXPECT_EQ(c.points(c.points_size() - 1).error(), 0.0);
    EXPECT_EQ(c.chosen().params(), charts->report.totals().compressible_params_after());
    int with_spectrum = 0;
    for (const auto& l : charts->report.layers()) {
      if (!l.compressed()) continue;
      ASSERT_GE(l.spectrum().values_size(), l.rank()) << l.node_name();
      ++with_spectrum;
      // The kept values give the reported error: e^2 = 1 - sum of kept s_t^2 (relative).
      if (l.spectrum().complete()) {
        double kept = 0;
        for (int t = 0; t < l.rank(); ++t) kept += std::pow(l.spectrum().values(t), 2);
        EXPECT_NEAR(std::sqrt(std::max(0.0, 1 - kept)), l.relative_error(), 1e-4);
      }
    }
    EXPECT_GT(with_spectrum, 0);
    // On the --ratio curve, this run's point lies on or above the hull: the first hull point
    // with at least its parameters is optimal for that size, and this run's choice fits there.
    if (c.basis() == "ratio_allocation") {
      double hull_at = -1.0;
      for (const auto& p : c.points()) {
        if (p.params() >= c.chosen().params()) {
          hull_at = p.error();
          break;
        }
      }
      ASSERT_GE(hull_at, 0.0);
      EXPECT_GE(c.chosen().error(), hull_at * (1 - 1e-6));
    }
  }
}

}  // namespace
}  // namespace kfc
