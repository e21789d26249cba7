#pragma once
// A Google Benchmark reporter that passes every run on to the normal display and keeps the
// fastest time per benchmark, for the ratio summaries the benchmark programs print at the end.
#include <benchmark/benchmark.h>

#include <limits>
#include <map>
#include <string>
#include <vector>

class BestTimes : public benchmark::BenchmarkReporter {
 public:
  explicit BestTimes(benchmark::BenchmarkReporter* display) : display_(display) {}
  bool ReportContext(const Context& c) override { return display_->ReportContext(c); }
  void ReportRuns(const std::vector<Run>& runs) override {
    display_->ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred || (r.run_type == Run::RT_Aggregate && r.aggregate_name != "min")) continue;
      const double s = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
      auto it = best_.find(r.run_name.function_name);
      if (it == best_.end() || s < it->second) best_[r.run_name.function_name] = s;
    }
  }
  void Finalize() override { display_->Finalize(); }
  // Seconds per iteration, or NaN if that benchmark did not run (filtered out).
  double seconds(const std::string& name) const {
    auto it = best_.find(name);
    return it == best_.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
  }

 private:
  benchmark::BenchmarkReporter* display_;
  std::map<std::string, double> best_;
};
