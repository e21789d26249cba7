// Console and file reporting for the training examples: a throttled progress line on stderr,
// an aligned text table, and CSV output of curves and tables.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "curve.hpp"

namespace examples {

// Fixed-point formatting without touching stream state.
inline std::string fmt(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Shortest-ish general formatting, good for learning rates like 3e-04.
inline std::string fmt_g(double v, int significant = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", significant, v);
  return buf;
}

// One status line per run on stderr: smoothed loss, speed and time left. Alone on a terminal
// it redraws in place; otherwise (a log file, or several runs printing at once) it prints a
// fresh line every `log_interval` seconds, under one lock so lines never interleave.
class ProgressLine {
 public:
  using Clock = std::chrono::steady_clock;

  ProgressLine(std::string label, std::size_t total_steps, bool shared_console = false,
               double log_interval = 5.0)
      : label_(std::move(label)),
        total_(total_steps),
        tty_(isatty(STDERR_FILENO) != 0 && !shared_console),
        interval_(tty_ ? 0.25 : log_interval),
        start_(Clock::now()),
        last_print_(start_) {}

  // Call once per step; prints only when the interval has passed or on the last step.
  void update(std::size_t step, double loss) {
    // Exponential moving average with bias correction: readable from the first step on.
    ema_ = kBeta * ema_ + (1 - kBeta) * loss;
    weight_ = kBeta * weight_ + (1 - kBeta);
    const auto now = Clock::now();
    if (step < total_ && seconds(last_print_, now) < interval_) return;
    last_print_ = now;
    print(step, now);
  }

  // Ends the line (on a terminal) so the next output starts cleanly.
  void finish(std::size_t step) {
    if (step != last_step_) print(step, Clock::now());
    if (tty_) std::cerr << '\n';
    std::cerr.flush();
  }

  double elapsed_seconds() const { return seconds(start_, Clock::now()); }

  // The console lock shared by every progress line and by callers' own status output.
  static std::mutex& console_mutex() {
    static std::mutex m;
    return m;
  }

 private:
  static constexpr double kBeta = 0.98;  // about the last 50 steps

  static double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }

  static std::string minutes_seconds(double s) {
    const long t = std::lround(std::max(0.0, s));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
  }

  void print(std::size_t step, Clock::time_point now) {
    last_step_ = step;
    const double t = seconds(start_, now);
    const double rate = t > 0 ? static_cast<double>(step) / t : 0.0;
    const double left = rate > 0 ? static_cast<double>(total_ - std::min(step, total_)) / rate : 0.0;
    std::string line = label_ + "  step " + std::to_string(step) + "/" + std::to_string(total_) +
                       "  loss(avg) " + fmt(weight_ > 0 ? ema_ / weight_ : 0.0, 4) + "  " +
                       fmt(rate, 1) + " steps/s  " + minutes_seconds(t) +
                       (step < total_ ? "  ETA " + minutes_seconds(left) : std::string("  done"));
    const std::lock_guard<std::mutex> lock(console_mutex());
    if (tty_) {
      // Pad to overwrite leftovers of a longer previous line.
      if (line.size() < width_) line.append(width_ - line.size(), ' ');
      width_ = std::max(width_, line.size());
      std::cerr << '\r' << line << std::flush;
    } else {
      std::cerr << line << '\n';
    }
  }

  std::string label_;
  std::size_t total_;
  bool tty_;
  double interval_;
  Clock::time_point start_, last_print_;
  double ema_ = 0.0, weight_ = 0.0;
  std::size_t width_ = 0;
  std::size_t last_step_ = static_cast<std::size_t>(-1);
};

// Plain text table with per-column alignment; numbers are expected pre-formatted.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}

  void add_row(std::vector<std::string> row) {
    if (row.size() != header_.size())
      throw std::invalid_argument("table row has " + std::to_string(row.size()) +
                                  " cells, header has " + std::to_string(header_.size()));
    rows_.push_back(std::move(row));
  }

  const std::vector<std::string>& header() const { return header_; }
  const std::vector<std::vector<std::string>>& rows() const { return rows_; }

  // First column left-aligned (names), the rest right-aligned (numbers).
  void print(std::ostream& os) const {
    std::vector<std::size_t> w(header_.size());
    for (std::size_t c = 0; c < w.size(); ++c) {
      w[c] = header_[c].size();
      for (const auto& r : rows_) w[c] = std::max(w[c], r[c].size());
    }
    const auto line = [&](const std::vector<std::string>& r) {
      for (std::size_t c = 0; c < r.size(); ++c) {
        const std::string pad(w[c] - r[c].size(), ' ');
        os << (c ? "  " : "") << (c ? pad + r[c] : r[c] + pad);
      }
      os << '\n';
    };
    line(header_);
    std::size_t total = 0;
    for (auto x : w) total += x;
    os << std::string(total + 2 * (w.size() - 1), '-') << '\n';
    for (const auto& r : rows_) line(r);
  }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// RFC 4180 quoting, only when a field needs it.
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Long format: one row per point, "step,<series_column>,<value_column>".
inline void write_curves_csv(const std::string& path, const std::vector<Curve>& curves,
                             const std::string& series_column, const std::string& value_column) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path);
  f << "step," << csv_field(series_column) << ',' << csv_field(value_column) << '\n';
  char xs[32], ys[32];
  for (const auto& c : curves) {
    const std::string name = csv_field(c.name);
    for (const auto& [x, y] : c.points) {
      std::snprintf(xs, sizeof xs, "%.10g", x);
      std::snprintf(ys, sizeof ys, "%.8g", y);
      f << xs << ',' << name << ',' << ys << '\n';
    }
  }
  if (!f) throw std::runtime_error("error while writing " + path);
}

inline void write_table_csv(const std::string& path, const Table& table) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path);
  const auto line = [&](const std::vector<std::string>& r) {
    for (std::size_t c = 0; c < r.size(); ++c) f << (c ? "," : "") << csv_field(r[c]);
    f << '\n';
  };
  line(table.header());
  for (const auto& r : table.rows()) line(r);
  if (!f) throw std::runtime_error("error while writing " + path);
}

}  // namespace examples
