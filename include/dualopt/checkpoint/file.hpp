#pragma once
// Checkpoint files: an atomic replace that concurrent savers cannot corrupt, and open errors
// that say why. save(path) writes a temporary of its own, created exclusively (O_CREAT|O_EXCL,
// so neither another saver's file nor a planted symlink is ever opened), syncs it, renames it
// over path and syncs the directory: path always holds one complete checkpoint.
#include "../error.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <ostream>
#include <streambuf>
#include <string>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define DUALOPT_CHECKPOINT_POSIX 1
#endif

namespace dualopt::checkpoint::detail {

inline std::string errno_text(int e) { return std::generic_category().message(e); }

inline bool is_directory(const std::string& path) {
#ifdef DUALOPT_CHECKPOINT_POSIX
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
#else
  (void)path;
  return false;
#endif
}

#ifdef DUALOPT_CHECKPOINT_POSIX
// An ostream's buffer over a file descriptor; a failed write makes the stream fail (errno kept).
class FdBuf : public std::streambuf {
 public:
  explicit FdBuf(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof buf_); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (!flush_all()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return flush_all() ? 0 : -1; }

 private:
  bool flush_all() {
    const char* p = pbase();
    while (p < pptr()) {
      const ssize_t n = ::write(fd_, p, std::size_t(pptr() - p));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error_ = n < 0 ? errno : EIO;
        return false;
      }
      p += n;
    }
    setp(buf_, buf_ + sizeof buf_);
    return true;
  }
  int fd_;
  int error_ = 0;
  char buf_[1 << 16];
};

// Opens a new file next to path, exclusively, under a name no other saver (thread or process)
// uses: the pid, a per-process counter and the time, retried on the rare collision.
inline int create_temporary(const std::string& path, std::string& tmp) {
  static std::atomic<unsigned long> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    tmp = path + ".tmp." + std::to_string(long(::getpid())) + "." + std::to_string(counter++) + "." +
          std::to_string((unsigned long long)(now) % 1000000007ull);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

inline void sync_parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the new checkpoint is in place either way
  (void)::fsync(fd);
  ::close(fd);
}
#endif

// Writes a file at path through `write` (which throws dualopt::Error on a problem of its own),
// atomically as described at the top. A failed save leaves any previous file at path intact.
inline void replace_file(const std::string& path, const std::function<void(std::ostream&)>& write) {
  const std::string where = "checkpoint: cannot save to '" + path + "': ";
#ifdef DUALOPT_CHECKPOINT_POSIX
  std::string tmp;
  const int fd = create_temporary(path, tmp);
  if (fd < 0) {
    const int e = errno;
    throw Error(where + "cannot create a temporary file next to it: " + errno_text(e));
  }
  auto fail = [&](const std::string& why) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(where + why);
  };
  FdBuf buf(fd);
  std::ostream os(&buf);
  try {
    write(os);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  os.flush();
  if (!os || buf.error()) fail("writing '" + tmp + "' failed: " + errno_text(buf.error() ? buf.error() : EIO));
  if (::fsync(fd) != 0) {
    const int e = errno;
    fail("cannot sync '" + tmp + "' to disk: " + errno_text(e));
  }
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(where + "closing '" + tmp + "' failed: " + errno_text(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw Error(where + "cannot rename '" + tmp + "' over it: " + errno_text(e));
  }
  sync_parent_dir(path);
#else
  // Without POSIX: a fixed temporary name, so concurrent saves to one path are not safe here.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(where + "cannot open '" + tmp + "' for writing: " + errno_text(errno));
    try {
      write(f);
    } catch (...) {
      f.close();
      std::remove(tmp.c_str());
      throw;
    }
    f.close();
    if (f.fail()) {
      std::remove(tmp.c_str());
      throw Error(where + "writing '" + tmp + "' failed");
    }
  }
  std::remove(path.c_str());
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(where + "cannot rename '" + tmp + "' over it");
#endif
}

}  // namespace dualopt::checkpoint::detail
