#include "train/plot_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace hessgpt {
namespace {

struct Series {
  std::string label;
  std::string color;
  std::vector<std::pair<double, double>> points;
};

std::string fmt(double v) {
  char buf[32];
  if (v != 0 && (std::abs(v) < 1e-2 || std::abs(v) >= 1e5))
    std::snprintf(buf, sizeof buf, "%.2e", v);
  else
    std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// One chart: axes with min/max ticks and a legend; x is the step.
std::string panel(const std::string& title, const std::vector<Series>& series, double x0, double y0,
                  double w, double h) {
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      xmin = std::min(xmin, x), xmax = std::max(xmax, x);
      ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
  std::string out = "<g>\n";
  out += "<text x='" + fmt(x0) + "' y='" + fmt(y0 - 8) + "' font-size='14' font-weight='bold'>" +
         escape(title) + "</text>\n";
  out += "<rect x='" + fmt(x0) + "' y='" + fmt(y0) + "' width='" + fmt(w) + "' height='" + fmt(h) +
         "' fill='none' stroke='#999'/>\n";
  if (!std::isfinite(xmin)) return out + "<text x='" + fmt(x0 + 10) + "' y='" + fmt(y0 + 20) +
                                   "' font-size='12'>no data</text>\n</g>\n";
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1;
  auto px = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * w; };
  auto py = [&](double y) { return y0 + h - (y - ymin) / (ymax - ymin) * h; };
  for (const auto& s : series) {
    std::string pts;
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) pts += fmt(px(x)) + "," + fmt(py(y)) + " ";
    out += "<polyline fill='none' stroke='" + s.color + "' stroke-width='1.5' points='" + pts + "'/>\n";
    if (s.points.size() < 40)
      for (auto [x, y] : s.points)
        if (std::isfinite(y))
          out += "<circle cx='" + fmt(px(x)) + "' cy='" + fmt(py(y)) + "' r='2.5' fill='" + s.color + "'/>\n";
  }
  auto label = [&](double x, double y, const std::string& text, const char* anchor) {
    out += "<text x='" + fmt(x) + "' y='" + fmt(y) + "' font-size='11' text-anchor='" + anchor +
           "'>" + escape(text) + "</text>\n";
  };
  label(x0 - 4, y0 + 10, fmt(ymax), "end");
  label(x0 - 4, y0 + h, fmt(ymin), "end");
  label(x0, y0 + h + 14, "step " + fmt(xmin), "start");
  label(x0 + w, y0 + h + 14, "step " + fmt(xmax), "end");
  double ly = y0 + 14;
  for (const auto& s : series) {
    out += "<rect x='" + fmt(x0 + w - 150) + "' y='" + fmt(ly - 9) + "' width='10' height='10' fill='" +
           s.color + "'/>\n";
    label(x0 + w - 135, ly, s.label, "start");
    ly += 15;
  }
  return out + "</g>\n";
}

}  // namespace

std::string render_metrics_svg(const std::vector<nlohmann::json>& records, const std::string& title) {
  Series train{"train loss", "#1f77b4", {}}, val{"val loss (chunk)", "#d62728", {}},
      val_all{"val loss (all chunks)", "#ff7f0e", {}}, lr{"learning rate", "#2ca02c", {}},
      tps{"tokens/s", "#9467bd", {}};
  for (const auto& r : records) {
    if (!r.contains("step")) continue;
    const double step = r["step"].get<double>();
    auto get = [&](const char* key) {
      return r.contains(key) && r[key].is_number() ? r[key].get<double>() : std::nan("");
    };
    if (r.contains("loss")) train.points.emplace_back(step, get("loss"));
    if (r.contains("val_loss")) val.points.emplace_back(step, get("val_loss"));
    if (r.contains("val_loss_all_chunks")) val_all.points.emplace_back(step, get("val_loss_all_chunks"));
    if (r.contains("lr")) lr.points.emplace_back(step, get("lr"));
    if (r.contains("tokens_per_s")) tps.points.emplace_back(step, get("tokens_per_s"));
  }
  const double width = 900, ph = 220, left = 80, pw = 780;
  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" + fmt(width) +
                    "' height='860' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n";
  svg += "<text x='" + fmt(left) + "' y='24' font-size='16'>" + escape(title) + "</text>\n";
  std::vector<Series> loss_series{train};
  if (!val.points.empty()) loss_series.push_back(val);
  if (!val_all.points.empty()) loss_series.push_back(val_all);
  svg += panel("Loss", loss_series, left, 60, pw, ph);
  svg += panel("Learning rate", {lr}, left, 60 + ph + 60, pw, ph);
  svg += panel("Throughput", {tps}, left, 60 + 2 * (ph + 60), pw, ph);
  return svg + "</svg>\n";
}

}  // namespace hessgpt
