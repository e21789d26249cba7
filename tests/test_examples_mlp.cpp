// Tests for the Fashion-MNIST example's building blocks: MLP gradients, IDX parsing and the
// dataset loader, all on small data made here so no download is needed.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include <catch2/catch.hpp>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/idx_reader.hpp"
#include "common/portable_rng.hpp"
#include "fashion_mnist/dataset.hpp"
#include "fashion_mnist/mlp.hpp"

namespace test_examples_mlp {  // a namespace per file: the test files are compiled together (unity build)

namespace fs = std::filesystem;
using examples::Mlp;
using examples::Rng;

namespace {

// A fresh directory per test case, removed on scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    Rng rng(std::hash<std::string>{}(tag));
    path = fs::temp_directory_path() / ("dualopt_examples_" + tag + "_" + std::to_string(rng()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<unsigned char> idx_header(unsigned char type, const std::vector<std::uint32_t>& dims) {
  std::vector<unsigned char> h = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) h.push_back(static_cast<unsigned char>(d >> shift));
  return h;
}

void write_gz(const fs::path& file, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(file.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void write_idx(const fs::path& file, const std::vector<std::uint32_t>& dims,
               const std::vector<unsigned char>& payload) {
  auto bytes = idx_header(0x08, dims);
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  write_gz(file, bytes);
}

}  // namespace

TEST_CASE("MLP backward matches central finite differences", "[examples][mlp]") {
  const std::size_t batch = 3;
  Mlp<double> model({5, 7, 6, 4}, /*seed=*/42);
  Rng rng(7);
  std::vector<double> x(batch * 5);
  for (auto& v : x) v = examples::standard_normal(rng);
  const std::vector<std::uint8_t> labels = {2, 0, 3};

  model.forward_backward(x.data(), labels.data(), batch);
  auto params = model.parameters();
  REQUIRE(params.size() == 6);

  const double eps = 1e-6;
  std::size_t checked = 0;
  for (auto& p : params) {
    std::size_t n = 1;
    for (auto d : p.shape) n *= d;
    const std::vector<double> analytic(p.g, p.g + n);
    for (std::size_t i = 0; i < n; ++i) {
      const double saved = p.w[i];
      p.w[i] = saved + eps;
      const double up = model.loss(x.data(), labels.data(), batch);
      p.w[i] = saved - eps;
      const double down = model.loss(x.data(), labels.data(), batch);
      p.w[i] = saved;
      const double numeric = (up - down) / (2 * eps);
      INFO(p.name << "[" << i << "] analytic " << analytic[i] << " numeric " << numeric);
      CHECK(std::abs(numeric - analytic[i]) <= 1e-7 + 1e-5 * std::abs(numeric));
      ++checked;
    }
  }
  CHECK(checked == model.num_parameters());
}

TEST_CASE("MLP exposes PyTorch-layout parameters and overwrites gradients", "[examples][mlp]") {
  Mlp<float> model({4, 3, 2}, 1);
  auto params = model.parameters();
  REQUIRE(params.size() == 4);
  CHECK(params[0].name == "fc1.weight");
  CHECK(params[0].shape == std::vector<std::size_t>{3, 4});
  CHECK(params[0].is_matrix);
  CHECK(params[1].name == "fc1.bias");
  CHECK(params[1].shape == std::vector<std::size_t>{3});
  CHECK_FALSE(params[1].is_matrix);
  CHECK(params[3].name == "fc2.bias");

  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 0.25f};
  const std::vector<std::uint8_t> y = {1};
  model.forward_backward(x.data(), y.data(), 1);
  const std::vector<float> first(params[0].g, params[0].g + 12);
  model.forward_backward(x.data(), y.data(), 1);
  CHECK(std::equal(first.begin(), first.end(), params[0].g));
}

TEST_CASE("MLP with zero weights predicts uniformly", "[examples][mlp]") {
  Mlp<double> model({3, 5, 4}, 3);
  for (auto& p : model.parameters()) {
    std::size_t n = 1;
    for (auto d : p.shape) n *= d;
    std::fill(p.w, p.w + n, 0.0);
  }
  const std::vector<double> x = {1, 2, 3, -1, 0, 4};
  const std::vector<std::uint8_t> y = {0, 3};
  CHECK(model.loss(x.data(), y.data(), 2) == Approx(std::log(4.0)));
  const auto eval = model.evaluate(x.data(), y.data(), 2, /*chunk=*/1);
  CHECK(eval.loss == Approx(std::log(4.0)));
}

TEST_CASE("MLP init is reproducible from the seed", "[examples][mlp]") {
  Mlp<float> a({10, 8, 3}, 123), b({10, 8, 3}, 123), c({10, 8, 3}, 124);
  const auto pa = a.parameters(), pb = b.parameters(), pc = c.parameters();
  CHECK(std::equal(pa[0].w, pa[0].w + 80, pb[0].w));
  CHECK_FALSE(std::equal(pa[0].w, pa[0].w + 80, pc[0].w));
  const float bound = 1.0f / std::sqrt(10.0f);
  CHECK(std::all_of(pa[0].w, pa[0].w + 80, [&](float v) { return std::abs(v) <= bound; }));
}

TEST_CASE("IDX reader parses gzip files with big-endian dimensions", "[examples][idx]") {
  TempDir dir("idx");
  std::vector<unsigned char> payload(2 * 3 * 300);  // 300 > 255 exercises multi-byte dims
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<unsigned char>(i * 7);
  const auto file = dir.path / "cube-idx3-ubyte.gz";
  write_idx(file, {2, 3, 300}, payload);

  const auto all = examples::read_idx_gz(file.string());
  CHECK(all.dims == std::vector<std::size_t>{2, 3, 300});
  CHECK(all.count() == 2);
  CHECK(all.item_size() == 900);
  CHECK(all.data == payload);

  const auto first = examples::read_idx_gz(file.string(), /*max_items=*/1);
  CHECK(first.dims == std::vector<std::size_t>{1, 3, 300});
  CHECK(std::equal(first.data.begin(), first.data.end(), payload.begin()));
  CHECK(first.data.size() == 900);
}

TEST_CASE("IDX reader rejects malformed input", "[examples][idx]") {
  TempDir dir("idx_bad");
  CHECK_THROWS_WITH(examples::read_idx_gz((dir.path / "missing.gz").string()),
                    Catch::Contains("cannot open"));

  const auto bad_magic = dir.path / "bad_magic.gz";
  write_gz(bad_magic, {1, 2, 8, 1, 0, 0, 0, 0});
  CHECK_THROWS_WITH(examples::read_idx_gz(bad_magic.string()), Catch::Contains("bad magic"));

  const auto floats = dir.path / "floats.gz";
  write_gz(floats, idx_header(0x0D, {1}));
  CHECK_THROWS_WITH(examples::read_idx_gz(floats.string()), Catch::Contains("element type"));

  const auto truncated = dir.path / "truncated.gz";
  write_idx(truncated, {10}, {1, 2, 3});
  CHECK_THROWS_WITH(examples::read_idx_gz(truncated.string()), Catch::Contains("truncated"));
}

TEST_CASE("Fashion-MNIST loader standardizes with training statistics", "[examples][idx]") {
  TempDir dir("fmnist");
  const auto make_split = [&](const std::string& prefix, std::uint32_t n, unsigned char base) {
    std::vector<unsigned char> px(n * 2 * 2), lab(n);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(base + 10 * i);
    for (std::size_t i = 0; i < n; ++i) lab[i] = static_cast<unsigned char>(i % 10);
    write_idx(dir.path / (prefix + "-images-idx3-ubyte.gz"), {n, 2, 2}, px);
    write_idx(dir.path / (prefix + "-labels-idx1-ubyte.gz"), {n}, lab);
  };
  make_split("train", 5, 0);
  make_split("t10k", 3, 5);

  const auto d = examples::load_fashion_mnist(dir.path.string());
  REQUIRE(d.train.count == 5);
  REQUIRE(d.test.count == 3);
  CHECK(d.train.pixels == 4);
  double sum = 0, sq = 0;
  for (float v : d.train.x) {
    sum += v;
    sq += double(v) * v;
  }
  CHECK(sum / 20 == Approx(0.0).margin(1e-6));
  CHECK(sq / 20 == Approx(1.0).epsilon(1e-5));
  CHECK(d.test.y == std::vector<std::uint8_t>{0, 1, 2});
  // The test split gets the training split's transform, not its own: pixel j of the test
  // images was 5 + 10 j, the training pixels 0, 10, ..., 190 (mean 95, variance 3325).
  REQUIRE(d.test.x.size() == 12);
  const double train_mean = 95.0, train_sd = std::sqrt(3325.0);
  for (std::size_t j = 0; j < d.test.x.size(); ++j) {
    INFO("test pixel " << j);
    CHECK(d.test.x[j] == Approx((5.0 + 10.0 * j - train_mean) / train_sd).epsilon(1e-6));
  }

  const auto sub = examples::load_fashion_mnist(dir.path.string(), /*subset=*/2);
  CHECK(sub.train.count == 2);
  CHECK(sub.test.count == 2);

  fs::remove(dir.path / "t10k-labels-idx1-ubyte.gz");
  CHECK_THROWS_WITH(examples::load_fashion_mnist(dir.path.string()),
                    Catch::Contains("apt-get install dataset-fashion-mnist"));
}

}  // namespace test_examples_mlp
