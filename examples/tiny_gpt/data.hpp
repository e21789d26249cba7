// Character-level corpus for the tiny GPT: Debian's fortune cookies (or any text file/dir),
// a byte vocabulary, a deterministic train/val split and seeded batch sampling.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "rng.hpp"

namespace tiny_gpt {

inline constexpr const char* kDefaultFortuneDir = "/usr/share/games/fortunes";

struct Corpus {
  std::vector<std::string> files;       // what was read, in reading order
  std::vector<unsigned char> id_to_byte;  // sorted set of bytes seen: the vocabulary
  std::array<int, 256> byte_to_id{};      // -1 for bytes not in the vocabulary
  std::vector<int> train;                 // token ids
  std::vector<int> val;
  std::size_t total_bytes = 0;

  int vocab_size() const { return static_cast<int>(id_to_byte.size()); }

  std::string decode(const std::vector<int>& ids) const {
    std::string s;
    s.reserve(ids.size());
    for (int id : ids) s.push_back(static_cast<char>(id_to_byte.at(static_cast<std::size_t>(id))));
    return s;
  }
  // Bytes outside the vocabulary are dropped rather than mapped to a fake token.
  std::vector<int> encode(const std::string& s) const {
    std::vector<int> ids;
    for (unsigned char c : s)
      if (byte_to_id[c] >= 0) ids.push_back(byte_to_id[c]);
    return ids;
  }
};

namespace detail {

inline std::string read_file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("tiny_gpt: cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Fortune directories hold each collection as a plain file plus `.dat` (strfile index) and
// `.u8` (symlink to the same text); only the extension-less files are text we want once.
inline std::vector<std::filesystem::path> text_files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    if (e.path().filename().string().find('.') != std::string::npos) continue;
    out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());  // directory order is not portable
  return out;
}

}  // namespace detail

// Reads `path` (a file, or a directory of extension-less text files; empty means the Debian
// fortune directory). Each file contributes its first `train_fraction` bytes to train and the
// rest to val, so both halves sample every collection instead of val being the last files.
inline Corpus load_corpus(const std::string& path, double train_fraction = 0.9) {
  namespace fs = std::filesystem;
  const bool default_dir = path.empty();
  const fs::path root = default_dir ? fs::path(kDefaultFortuneDir) : fs::path(path);
  const std::string hint =
      default_dir ? " (install the text with: apt-get install fortunes fortunes-min, or pass --data FILE_OR_DIR)"
                  : "";

  std::error_code ec;
  std::vector<fs::path> paths;
  if (fs::is_directory(root, ec)) {
    paths = detail::text_files_in(root);
  } else if (fs::is_regular_file(root, ec)) {
    paths.push_back(root);
  } else {
    throw std::runtime_error("tiny_gpt: no text at " + root.string() + hint);
  }
  if (paths.empty()) throw std::runtime_error("tiny_gpt: no extension-less text files in " + root.string() + hint);

  std::vector<std::string> texts;
  std::array<bool, 256> seen{};
  Corpus c;
  for (const auto& p : paths) {
    texts.push_back(detail::read_file_bytes(p));
    for (unsigned char ch : texts.back()) seen[ch] = true;
    c.files.push_back(p.string());
    c.total_bytes += texts.back().size();
  }

  c.byte_to_id.fill(-1);
  for (int b = 0; b < 256; ++b) {
    if (!seen[static_cast<std::size_t>(b)]) continue;
    c.byte_to_id[static_cast<std::size_t>(b)] = static_cast<int>(c.id_to_byte.size());
    c.id_to_byte.push_back(static_cast<unsigned char>(b));
  }

  for (const auto& t : texts) {
    const auto cut = static_cast<std::size_t>(static_cast<double>(t.size()) * train_fraction);
    for (std::size_t i = 0; i < t.size(); ++i)
      (i < cut ? c.train : c.val).push_back(c.byte_to_id[static_cast<unsigned char>(t[i])]);
  }
  return c;
}

// A batch of B windows of T tokens; targets are the inputs shifted by one.
struct Batch {
  int B = 0;
  int T = 0;
  std::vector<int> inputs;   // [B*T]
  std::vector<int> targets;  // [B*T]
};

inline void fill_window(const std::vector<int>& data, std::size_t start, int T, int* x, int* y) {
  for (int t = 0; t < T; ++t) {
    x[t] = data[start + static_cast<std::size_t>(t)];
    y[t] = data[start + static_cast<std::size_t>(t) + 1];
  }
}

// Seeded random windows: the same seed gives every optimizer the same batch sequence.
class BatchSampler {
 public:
  BatchSampler(const std::vector<int>& data, int B, int T, std::uint64_t seed)
      : data_(&data), B_(B), T_(T), rng_(seed) {
    if (data.size() < static_cast<std::size_t>(T) + 2)
      throw std::runtime_error("tiny_gpt: split has " + std::to_string(data.size()) +
                               " tokens, too few for context " + std::to_string(T));
  }

  void next(Batch& b) {
    b.B = B_;
    b.T = T_;
    b.inputs.resize(static_cast<std::size_t>(B_) * static_cast<std::size_t>(T_));
    b.targets.resize(b.inputs.size());
    const std::size_t starts = data_->size() - static_cast<std::size_t>(T_);  // last start leaves room for y
    for (int i = 0; i < B_; ++i) {
      const auto off = static_cast<std::size_t>(i) * static_cast<std::size_t>(T_);
      fill_window(*data_, rng_.below(starts), T_, b.inputs.data() + off, b.targets.data() + off);
    }
  }

 private:
  const std::vector<int>* data_;
  int B_;
  int T_;
  SplitMix64 rng_;
};

// Fixed evaluation set: `n_batches` batches of windows spread evenly over the split, so the
// validation loss covers all collections and is identical for every optimizer and eval step.
inline std::vector<Batch> evenly_spaced_batches(const std::vector<int>& data, int n_batches, int B, int T) {
  const std::size_t windows = static_cast<std::size_t>(n_batches) * static_cast<std::size_t>(B);
  if (data.size() < static_cast<std::size_t>(T) + 2)
    throw std::runtime_error("tiny_gpt: validation split too small for context " + std::to_string(T));
  const std::size_t span = data.size() - static_cast<std::size_t>(T) - 1;
  std::vector<Batch> out(static_cast<std::size_t>(n_batches));
  for (std::size_t w = 0; w < windows; ++w) {
    Batch& b = out[w / static_cast<std::size_t>(B)];
    b.B = B;
    b.T = T;
    b.inputs.resize(static_cast<std::size_t>(B) * static_cast<std::size_t>(T));
    b.targets.resize(b.inputs.size());
    const auto off = (w % static_cast<std::size_t>(B)) * static_cast<std::size_t>(T);
    fill_window(data, span * w / windows, T, b.inputs.data() + off, b.targets.data() + off);
  }
  return out;
}

}  // namespace tiny_gpt
