// Reader for gzip-compressed IDX files (the MNIST family's container format).
//
// Layout: two zero bytes, a type code, the number of dimensions, then each dimension as a
// big-endian uint32, then the row-major payload. Only unsigned-byte payloads (type 0x08) are
// supported, which is what image and label files use.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

struct IdxArray {
  std::vector<std::size_t> dims;    // dims[0] is the item count (possibly truncated on read)
  std::vector<std::uint8_t> data;   // row-major, dims product bytes

  std::size_t count() const { return dims.empty() ? 0 : dims[0]; }
  // Bytes per item: the product of all dimensions after the first.
  std::size_t item_size() const {
    std::size_t n = 1;
    for (std::size_t i = 1; i < dims.size(); ++i) n *= dims[i];
    return n;
  }
};

namespace detail {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

// gzread takes an unsigned count, so large payloads are read in bounded chunks.
inline void gz_read_exact(gzFile f, void* dst, std::size_t bytes, const std::string& path) {
  auto* out = static_cast<unsigned char*>(dst);
  while (bytes > 0) {
    const unsigned chunk = bytes > (1u << 30) ? (1u << 30) : static_cast<unsigned>(bytes);
    const int got = gzread(f, out, chunk);
    if (got <= 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      throw std::runtime_error("IDX file " + path + " is truncated or corrupt" +
                               (errnum != Z_OK && msg ? std::string(" (zlib: ") + msg + ")" : ""));
    }
    out += got;
    bytes -= static_cast<std::size_t>(got);
  }
}

}  // namespace detail

// Reads an IDX file (gzip or plain: zlib passes uncompressed input through).
// max_items > 0 keeps only the first max_items entries along the first dimension.
inline IdxArray read_idx_gz(const std::string& path, std::size_t max_items = 0) {
  detail::GzHandle file(gzopen(path.c_str(), "rb"));
  if (!file) throw std::runtime_error("cannot open IDX file " + path);

  unsigned char magic[4];
  detail::gz_read_exact(file.get(), magic, 4, path);
  if (magic[0] != 0 || magic[1] != 0)
    throw std::runtime_error("not an IDX file (bad magic): " + path);
  if (magic[2] != 0x08)
    throw std::runtime_error("IDX file " + path + " has element type " +
                             std::to_string(magic[2]) + "; only unsigned bytes (8) are supported");
  const unsigned rank = magic[3];
  if (rank == 0) throw std::runtime_error("IDX file " + path + " has zero dimensions");

  IdxArray out;
  out.dims.resize(rank);
  for (auto& d : out.dims) {
    unsigned char be[4];
    detail::gz_read_exact(file.get(), be, 4, path);
    d = (std::size_t{be[0]} << 24) | (std::size_t{be[1]} << 16) | (std::size_t{be[2]} << 8) |
        std::size_t{be[3]};
  }
  if (max_items > 0 && max_items < out.dims[0]) out.dims[0] = max_items;

  out.data.resize(out.count() * out.item_size());
  detail::gz_read_exact(file.get(), out.data.data(), out.data.size(), path);
  return out;
}

}  // namespace examples
