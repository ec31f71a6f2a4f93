#include "storage/filesystem.h"

#include "storage/posix_writable_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

// No std::filesystem here: the venv's libtorch.so exports its own broken copies of those
// functions, and they win symbol resolution in our process (remove_all crashed).

namespace discomfort::storage {

Status ErrnoStatus(const std::string& what, const std::string& path, int error_number) {
  ErrorCode code = ErrorCode::kIO;
  if (error_number == ENOSPC || error_number == EDQUOT) code = ErrorCode::kNoSpace;
  if (error_number == ENOENT) code = ErrorCode::kNotFound;
  return Status(code, what + " " + path + ": " + std::strerror(error_number));
}

namespace {

class PosixMappedFile : public MappedFile {
 public:
  PosixMappedFile(void* addr, size_t size) : addr_(addr), size_(size) {}
  ~PosixMappedFile() override {
    if (addr_ != nullptr) ::munmap(addr_, size_);
  }
  uint8_t* data() const override { return static_cast<uint8_t*>(addr_); }
  size_t size() const override { return size_; }

 private:
  void* addr_;
  size_t size_;
};

bool Aligned(uint64_t value) { return value % kDirectIOAlignment == 0; }

// pread through the page cache, or with O_DIRECT where the range is aligned and not cached
// (what the page cache holds is copied from there: faster than the disk, and O_DIRECT would
// first write back any dirty pages of a file spilled moments ago).
class PosixRandomAccessFile : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd, int direct_fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), direct_fd_(direct_fd), size_(size) {
    if (direct_fd_ >= 0 && size_ > 0) {
      // Only for mincore (page-cache residency); never touched, so it reads nothing.
      void* addr = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
      if (addr != MAP_FAILED) residency_map_ = addr;
    }
  }
  ~PosixRandomAccessFile() override {
    if (residency_map_ != nullptr) ::munmap(residency_map_, size_);
    if (direct_fd_ >= 0) ::close(direct_fd_);
    ::close(fd_);
  }

  uint64_t size() const override { return size_; }

  Result<size_t> Read(uint64_t offset, size_t size, void* dest) override {
    const bool direct = direct_fd_ >= 0 && direct_works_.load(std::memory_order_relaxed) &&
                        Aligned(offset) && Aligned(size) &&
                        Aligned(reinterpret_cast<uintptr_t>(dest)) && !MostlyCached(offset, size);
    while (true) {
      ssize_t n = ::pread(direct ? direct_fd_ : fd_, dest, size, static_cast<off_t>(offset));
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      if (direct && errno == EINVAL) {
        // A device with larger blocks, or a file system that refuses O_DIRECT reads.
        direct_works_ = false;
        return Read(offset, size, dest);
      }
      return ErrnoStatus("read", path_, errno);
    }
  }

 private:
  // Whether at least half the pages of the range are in the page cache.
  bool MostlyCached(uint64_t offset, size_t size) const {
    if (residency_map_ == nullptr || offset >= size_) return false;
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t begin = offset / page * page;
    const uint64_t end = std::min<uint64_t>(offset + size, size_);
    const size_t pages = static_cast<size_t>((end - begin + page - 1) / page);
    std::vector<unsigned char> resident(pages);
    if (::mincore(static_cast<uint8_t*>(residency_map_) + begin, end - begin, resident.data()) !=
        0) {
      return false;
    }
    size_t cached = 0;
    for (unsigned char flags : resident) cached += flags & 1;
    return cached * 2 >= pages;
  }

  std::string path_;
  int fd_;
  int direct_fd_;
  uint64_t size_;
  void* residency_map_ = nullptr;
  std::atomic<bool> direct_works_{true};
};

class PosixFileSystem : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return OpenPosixWritableFile(path, O_TRUNC, WriteOpenOptions());
  }

  Result<std::unique_ptr<WritableFile>> OpenForWrite(const std::string& path,
                                                     const WriteOpenOptions& options) override {
    return OpenPosixWritableFile(path, O_TRUNC, options);
  }

  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return OpenPosixWritableFile(path, O_APPEND, WriteOpenOptions());
  }

  Result<std::shared_ptr<MappedFile>> MapFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus("stat", path, err);
    }
    size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {
      ::close(fd);
      return Status(ErrorCode::kParse, "cannot map the empty file " + path);
    }
    // MAP_PRIVATE + PROT_WRITE: a caller may modify the tensor in place; its pages are then
    // copied privately instead of faulting, and the file is never changed.
    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (addr == MAP_FAILED) return ErrnoStatus("mmap", path, err);
    return std::shared_ptr<MappedFile>(std::make_shared<PosixMappedFile>(addr, size));
  }

  Result<std::string> ReadFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    std::string out;
    char buffer[1 << 16];
    while (true) {
      ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        return ErrnoStatus("read", path, err);
      }
      if (n == 0) break;
      out.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  Result<std::unique_ptr<RandomAccessFile>> OpenForRead(const std::string& path,
                                                        const ReadOpenOptions& options) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus("stat", path, err);
    }
    // Through /proc/self/fd: the same file even if `path` is renamed or removed meanwhile.
    int direct_fd = -1;
    if (options.direct_io) {
      direct_fd =
          ::open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    }
    return std::unique_ptr<RandomAccessFile>(
        new PosixRandomAccessFile(path, fd, direct_fd, static_cast<uint64_t>(st.st_size)));
  }

  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  bool IsSymlink(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return ErrnoStatus("list", path, errno);
    std::vector<std::string> names;
    while (struct dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    ::closedir(dir);
    return names;
  }

  Status CreateDir(const std::string& path) override {
    // Each prefix ending before a '/', then the whole path.
    for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
      const std::string prefix = path.substr(0, slash);
      if (!prefix.empty() && ::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus("mkdir", prefix, errno);
      }
      if (slash == std::string::npos) break;
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("mkdir", path, errno);
    if (!S_ISDIR(st.st_mode)) return ErrnoStatus("mkdir", path, ENOTDIR);
    return Status::Ok();
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("remove", path, errno);
    return Status::Ok();
  }

  Status RemoveAll(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      return errno == ENOENT ? Status::Ok() : ErrnoStatus("stat", path, errno);
    }
    if (S_ISDIR(st.st_mode)) {
      auto names = ListDir(path);
      if (!names.ok()) return names.TakeStatus();
      for (const std::string& name : *names) {
        DISCOMFORT_RETURN_IF_ERROR(RemoveAll(path + "/" + name));
      }
      if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("remove", path, errno);
      return Status::Ok();
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("remove", path, errno);
    return Status::Ok();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus("rename " + from + " to", to, errno);
    }
    return Status::Ok();
  }

  Status ReplaceDir(const std::string& from, const std::string& to) override {
    if (!Exists(to)) return Rename(from, to);
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) == 0) {
      return RemoveAll(from);  // `from` now holds the old directory
    }
    if (errno != EINVAL && errno != ENOSYS) {
      return ErrnoStatus("exchange " + from + " with", to, errno);
    }
    // A file system without RENAME_EXCHANGE: move the old one aside first. A crash between
    // the two renames leaves the old snapshot at `to`.old.
    const std::string aside = to + ".old";
    DISCOMFORT_RETURN_IF_ERROR(RemoveAll(aside));
    DISCOMFORT_RETURN_IF_ERROR(Rename(to, aside));
    DISCOMFORT_RETURN_IF_ERROR(Rename(from, to));
    return RemoveAll(aside);
  }

  Status SyncDir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus("fsync", path, err);
    return Status::Ok();
  }

  bool ProcessAlive(int pid) override {
    if (pid <= 0) return false;
    struct stat st;
    if (::stat("/proc/self", &st) == 0) {
      return ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0;
    }
    // No /proc: signal 0 probes without sending anything.
    return ::kill(pid, 0) == 0 || errno == EPERM;
  }
};

}  // namespace

namespace {

// Reads by copying out of a mapping: for file systems that provide only MapFile.
class MappedReader : public RandomAccessFile {
 public:
  explicit MappedReader(std::shared_ptr<MappedFile> mapping) : mapping_(std::move(mapping)) {}
  uint64_t size() const override { return mapping_->size(); }
  Result<size_t> Read(uint64_t offset, size_t size, void* dest) override {
    if (offset >= mapping_->size()) return size_t{0};
    size_t n = static_cast<size_t>(std::min<uint64_t>(size, mapping_->size() - offset));
    std::memcpy(dest, mapping_->data() + offset, n);
    return n;
  }

 private:
  std::shared_ptr<MappedFile> mapping_;
};

}  // namespace

Result<std::unique_ptr<RandomAccessFile>> FileSystem::OpenForRead(const std::string& path,
                                                                  const ReadOpenOptions&) {
  auto mapped = MapFile(path);
  if (!mapped.ok()) return mapped.TakeStatus();
  return std::unique_ptr<RandomAccessFile>(new MappedReader(std::move(mapped).value()));
}

FileSystem* FileSystem::Default() {
  static PosixFileSystem* const kPosix = new PosixFileSystem();
  return kPosix;
}

Result<std::unique_ptr<WritableFile>> FileSystem::OpenForWrite(const std::string& path,
                                                               const WriteOpenOptions&) {
  return NewWritableFile(path);
}

Result<std::unique_ptr<WritableFile>> FileSystem::NewAppendableFile(const std::string& path) {
  return Status(ErrorCode::kInvalidArgument, "this file system cannot append to " + path);
}

Status WriteWholeFile(FileSystem& fs, const std::string& path, std::string_view bytes, bool sync) {
  auto file = fs.NewWritableFile(path);
  if (!file.ok()) return file.TakeStatus();
  DISCOMFORT_RETURN_IF_ERROR((*file)->Append(bytes.data(), bytes.size()));
  if (sync) DISCOMFORT_RETURN_IF_ERROR((*file)->Sync());
  return (*file)->Close();
}

Status WriteFileAtomically(FileSystem& fs, const std::string& path, std::string_view bytes,
                           bool sync) {
  static std::atomic<uint64_t> sequence{0};
  const std::string tmp =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(sequence.fetch_add(1));
  Status st = WriteWholeFile(fs, tmp, bytes, sync);
  if (st.ok()) st = fs.Rename(tmp, path);
  if (!st.ok()) {
    fs.RemoveFile(tmp).IgnoreError();  // a partial temporary is garbage; the old file stays
    return st;
  }
  if (!sync) return Status::Ok();
  const size_t slash = path.find_last_of('/');
  return fs.SyncDir(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)));
}

}  // namespace discomfort::storage
