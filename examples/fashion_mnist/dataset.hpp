// Loads Fashion-MNIST from its four IDX files into normalized float images and byte labels.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/idx_reader.hpp"

namespace examples {

// Where Debian's dataset-fashion-mnist package installs the files.
inline const char* const kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";
inline constexpr std::size_t kFashionMnistPixels = 28 * 28;

struct LabeledImages {
  std::size_t count = 0;
  std::size_t pixels = 0;           // per image (28 * 28)
  std::vector<float> x;             // count x pixels, row-major, standardized
  std::vector<std::uint8_t> y;      // count labels in [0, 10)
};

struct FashionMnist {
  LabeledImages train, test;
};

namespace fmnist_detail {

inline std::string require_file(const std::string& dir, const std::string& name) {
  const std::string path = (std::filesystem::path(dir) / name).string();
  if (!std::filesystem::exists(path))
    throw std::runtime_error("Fashion-MNIST file not found: " + path +
                             "\n  install the data with: apt-get install dataset-fashion-mnist"
                             "\n  or point --data at a directory holding the four *-ubyte.gz files");
  return path;
}

inline LabeledImages load_split(const std::string& dir, const std::string& prefix,
                                std::size_t max_items) {
  const IdxArray images = read_idx_gz(require_file(dir, prefix + "-images-idx3-ubyte.gz"), max_items);
  const IdxArray labels = read_idx_gz(require_file(dir, prefix + "-labels-idx1-ubyte.gz"), max_items);
  if (images.dims.size() != 3 || labels.dims.size() != 1)
    throw std::runtime_error("unexpected IDX ranks for Fashion-MNIST split " + prefix);
  if (images.count() != labels.count())
    throw std::runtime_error("Fashion-MNIST " + prefix + ": " + std::to_string(images.count()) +
                             " images but " + std::to_string(labels.count()) + " labels");
  for (auto label : labels.data)
    if (label >= 10) throw std::runtime_error("Fashion-MNIST " + prefix + ": label out of range");

  LabeledImages s;
  s.count = images.count();
  s.pixels = images.item_size();
  s.x.assign(images.data.begin(), images.data.end());
  s.y = labels.data;
  return s;
}

}  // namespace fmnist_detail

// subset > 0 keeps only the first `subset` images of each split.
// Pixels are standardized with the training split's mean and standard deviation, so the
// test split sees exactly the transform fitted on training data.
inline FashionMnist load_fashion_mnist(const std::string& dir, std::size_t subset = 0) {
  FashionMnist d;
  d.train = fmnist_detail::load_split(dir, "train", subset);
  d.test = fmnist_detail::load_split(dir, "t10k", subset);
  if (d.train.pixels != d.test.pixels)
    throw std::runtime_error("Fashion-MNIST train and test image sizes differ");

  double sum = 0.0, sum_sq = 0.0;
  for (float v : d.train.x) {
    sum += v;
    sum_sq += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(d.train.x.size());
  const double mean = n > 0 ? sum / n : 0.0;
  const double var = n > 0 ? sum_sq / n - mean * mean : 1.0;
  const double inv_std = var > 0 ? 1.0 / std::sqrt(var) : 1.0;
  for (auto* split : {&d.train, &d.test})
    for (float& v : split->x) v = static_cast<float>((v - mean) * inv_std);
  return d;
}

}  // namespace examples
