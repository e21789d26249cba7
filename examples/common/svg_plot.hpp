// Line plots of Curves as standalone SVG: frame, grid, ticks, axis labels, title, legend,
// and one polyline per curve, with an optional logarithmic y axis.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "curve.hpp"

namespace examples {

struct PlotOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label = "value";
  bool log_y = false;
  std::vector<double> x_markers;  // dotted vertical lines, e.g. epoch boundaries
  std::string marker_label;       // named once, at the first marker
  std::vector<std::pair<double, std::string>> y_lines;  // labelled horizontal reference lines
  int width = 900;
  int height = 540;
};

namespace svg_detail {

struct Axis {
  double lo = 0.0, hi = 1.0;   // in plotted space (log10 of the value when logarithmic)
  std::vector<double> ticks;   // in plotted space
  std::vector<std::string> labels;
};

inline std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

inline std::string format_number(double v, const char* fmt) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// 1, 2 or 5 times a power of ten, the smallest such step giving at most `target` intervals.
inline double nice_step(double span, int target) {
  const double raw = span / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw * (1.0 - 1e-9)) return m * mag;
  return 10.0 * mag;
}

inline Axis linear_axis(double lo, double hi, int target) {
  if (!(hi > lo)) {  // single value (or nothing): open a small window around it
    const double pad = lo == 0.0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  Axis a;
  const double step = nice_step(hi - lo, target);
  a.lo = std::floor(lo / step + 1e-9) * step;
  a.hi = std::ceil(hi / step - 1e-9) * step;
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  const std::string fmt = "%." + std::to_string(decimals) + "f";
  const long n = std::lround((a.hi - a.lo) / step);
  for (long i = 0; i <= n; ++i) {
    const double t = a.lo + static_cast<double>(i) * step;
    a.ticks.push_back(t);
    a.labels.push_back(format_number(std::abs(t) < step * 1e-6 ? 0.0 : t, fmt.c_str()));
  }
  return a;
}

// Ticks at 1x/2x/5x decades, densified to every integer multiple when the range is narrow.
inline Axis log_axis(double lo, double hi) {  // lo, hi are positive data values
  if (!(hi > lo)) {
    lo /= 2.0;
    hi *= 2.0;
  }
  Axis a;
  const double pad = 0.03 * (std::log10(hi) - std::log10(lo));
  a.lo = std::log10(lo) - pad;
  a.hi = std::log10(hi) + pad;
  const int d0 = static_cast<int>(std::floor(a.lo)), d1 = static_cast<int>(std::ceil(a.hi));
  for (const std::vector<double>& mult :
       {std::vector<double>{1}, std::vector<double>{1, 2, 5},
        std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9}}) {
    a.ticks.clear();
    a.labels.clear();
    for (int d = d0; d <= d1; ++d)
      for (double m : mult) {
        const double v = m * std::pow(10.0, d);
        const double lv = std::log10(v);
        if (lv >= a.lo && lv <= a.hi) {
          a.ticks.push_back(lv);
          a.labels.push_back(format_number(v, "%g"));
        }
      }
    if (a.ticks.size() >= 4) break;
  }
  return a;
}

}  // namespace svg_detail

// One colour and dash pattern per optimizer in every figure. Okabe-Ito colours (safe for
// colour-blind readers) and a distinct dash pattern each, so lines stay apart in greyscale
// and where two curves overlap.
struct LineStyle {
  const char* color;
  const char* dash;  // SVG stroke-dasharray, "" = solid
};

inline LineStyle line_style(const std::string& key, std::size_t index) {
  if (key == "adamw") return {"#0072B2", ""};
  if (key == "laprop") return {"#E69F00", "9,5"};
  if (key == "muon") return {"#D55E00", "12,3,2,3"};
  if (key == "mango") return {"#009E73", "4,3"};
  if (key == "soap_muon") return {"#000000", "1.5,3"};
  static const LineStyle others[] = {{"#CC79A7", ""}, {"#56B4E9", "9,5"}, {"#999999", "4,3"}};
  return others[index % 3];
}

inline std::string dash_attr(const LineStyle& st) {
  return *st.dash ? std::string(" stroke-dasharray=\"") + st.dash + "\"" : std::string();
}

inline std::string render_svg(const std::vector<Curve>& curves, const PlotOptions& opt) {
  using namespace svg_detail;
  const auto plottable = [&](double y) { return std::isfinite(y) && (!opt.log_y || y > 0.0); };

  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
  double ymin = xmin, ymax = -xmin;
  for (const auto& c : curves)
    for (const auto& [x, y] : c.points) {
      if (!std::isfinite(x) || !plottable(y)) continue;
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  if (!std::isfinite(xmin)) {  // nothing to draw: still produce a valid, empty frame
    xmin = 0.0;
    xmax = 1.0;
    ymin = opt.log_y ? 0.1 : 0.0;
    ymax = 1.0;
  }

  const Axis ax = linear_axis(xmin, xmax, 8);
  const Axis ay = opt.log_y ? log_axis(ymin, ymax) : linear_axis(ymin, ymax, 6);

  // The legend sits right of the frame so it can never hide data.
  std::size_t longest = 0;
  for (const auto& c : curves) longest = std::max(longest, c.name.size());
  const double legend_w = curves.empty() ? 0.0 : 48.0 + 6.8 * static_cast<double>(longest);
  const double left = 70, top = opt.title.empty() ? 20 : 44, bottom = 56;
  const double right = 20 + legend_w;
  const double pw = std::max(50.0, opt.width - left - right);
  const double ph = std::max(50.0, opt.height - top - bottom);
  const auto px = [&](double x) { return left + (x - ax.lo) / (ax.hi - ax.lo) * pw; };
  const auto py = [&](double y) {
    const double v = opt.log_y ? std::log10(y) : y;
    return top + ph - (v - ay.lo) / (ay.hi - ay.lo) * ph;
  };
  const auto ty = [&](double t) { return top + ph - (t - ay.lo) / (ay.hi - ay.lo) * ph; };

  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << opt.width << "\" height=\""
    << opt.height << "\" viewBox=\"0 0 " << opt.width << ' ' << opt.height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!opt.title.empty())
    s << "<text x=\"" << left + pw / 2 << "\" y=\"26\" text-anchor=\"middle\" font-size=\"15\">"
      << escape_xml(opt.title) << "</text>\n";

  // Grid and ticks.
  s << "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
  for (double t : ax.ticks)
    s << "<line x1=\"" << px(t) << "\" y1=\"" << top << "\" x2=\"" << px(t) << "\" y2=\""
      << top + ph << "\"/>\n";
  for (double t : ay.ticks)
    s << "<line x1=\"" << left << "\" y1=\"" << ty(t) << "\" x2=\"" << left + pw << "\" y2=\""
      << ty(t) << "\"/>\n";
  s << "</g>\n<g fill=\"#333\">\n";
  for (std::size_t i = 0; i < ax.ticks.size(); ++i)
    s << "<text x=\"" << px(ax.ticks[i]) << "\" y=\"" << top + ph + 18
      << "\" text-anchor=\"middle\">" << ax.labels[i] << "</text>\n";
  for (std::size_t i = 0; i < ay.ticks.size(); ++i)
    s << "<text x=\"" << left - 8 << "\" y=\"" << ty(ay.ticks[i]) + 4
      << "\" text-anchor=\"end\">" << ay.labels[i] << "</text>\n";
  s << "<text x=\"" << left + pw / 2 << "\" y=\"" << opt.height - 14
    << "\" text-anchor=\"middle\">" << escape_xml(opt.x_label) << "</text>\n"
    << "<text transform=\"translate(18," << top + ph / 2
    << ") rotate(-90)\" text-anchor=\"middle\">" << escape_xml(opt.y_label)
    << (opt.log_y ? " (log scale)" : "") << "</text>\n</g>\n";

  // Markers under the curves; the label sits inside the frame's top edge.
  bool labelled = false;
  for (double m : opt.x_markers) {
    if (!(m > ax.lo && m < ax.hi)) continue;
    s << "<line x1=\"" << px(m) << "\" y1=\"" << top << "\" x2=\"" << px(m) << "\" y2=\"" << top + ph
      << "\" stroke=\"#888\" stroke-width=\"1\" stroke-dasharray=\"2,3\"/>\n";
    if (!labelled && !opt.marker_label.empty()) {
      s << "<text x=\"" << px(m) + 4 << "\" y=\"" << top + 14 << "\" fill=\"#666\">"
        << escape_xml(opt.marker_label) << "</text>\n";
      labelled = true;
    }
  }

  for (const auto& [v, label] : opt.y_lines) {
    if (!plottable(v) || ty(opt.log_y ? std::log10(v) : v) < top || ty(opt.log_y ? std::log10(v) : v) > top + ph) continue;
    const double y = ty(opt.log_y ? std::log10(v) : v);
    s << "<line x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << left + pw << "\" y2=\"" << y
      << "\" stroke=\"#888\" stroke-width=\"1\" stroke-dasharray=\"6,4\"/>\n<text x=\"" << left + 6 << "\" y=\""
      << y - 5 << "\" fill=\"#666\">" << escape_xml(label) << "</text>\n";
  }

  // Curves, clipped to the frame; non-plottable points split a curve into separate polylines.
  s << "<clipPath id=\"frame\"><rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw
    << "\" height=\"" << ph << "\"/></clipPath>\n<g clip-path=\"url(#frame)\" fill=\"none\" "
    << "stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n";
  for (std::size_t ci = 0; ci < curves.size(); ++ci) {
    const LineStyle st = line_style(curves[ci].style, ci);
    std::ostringstream seg;
    seg.setf(std::ios::fixed);
    seg.precision(1);
    std::size_t n = 0;
    const auto flush = [&] {
      if (n > 0)
        s << "<polyline stroke=\"" << st.color << "\"" << dash_attr(st) << " points=\"" << seg.str()
          << "\"/>\n";
      seg.str("");
      n = 0;
    };
    for (const auto& [x, y] : curves[ci].points) {
      if (!std::isfinite(x) || !plottable(y)) {
        flush();
        continue;
      }
      seg << (n++ ? " " : "") << px(x) << ',' << py(y);
    }
    flush();
  }
  s << "</g>\n<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\""
    << ph << "\" fill=\"none\" stroke=\"#333\"/>\n";

  // Legend.
  for (std::size_t ci = 0; ci < curves.size(); ++ci) {
    const double y = top + 10 + 20.0 * static_cast<double>(ci);
    const double x = left + pw + 14;
    const LineStyle st = line_style(curves[ci].style, ci);
    s << "<line x1=\"" << x << "\" y1=\"" << y << "\" x2=\"" << x + 30 << "\" y2=\"" << y
      << "\" stroke=\"" << st.color << "\"" << dash_attr(st)
      << " stroke-width=\"2.5\" stroke-linecap=\"round\"/>\n<text x=\"" << x + 36 << "\" y=\"" << y + 4 << "\">"
      << escape_xml(curves[ci].name) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

inline void write_svg(const std::string& path, const std::vector<Curve>& curves,
                      const PlotOptions& opt) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path);
  f << render_svg(curves, opt);
  if (!f) throw std::runtime_error("error while writing " + path);
}

}  // namespace examples
