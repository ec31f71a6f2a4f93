#include "tests/support/fault_injecting_filesystem.h"

#include <algorithm>
#include <cstring>

namespace discomfort::storage {

class FaultInjectingFileSystem::FaultyFile : public WritableFile {
 public:
  FaultyFile(FaultInjectingFileSystem* owner, std::unique_ptr<WritableFile> base)
      : owner_(owner), base_(std::move(base)) {}

  Status Append(const void* data, size_t size) override {
    Status fault;
    size_t allowed = owner_->Admit(size, &fault);
    if (allowed > 0) {
      DISCOMFORT_RETURN_IF_ERROR(base_->Append(data, allowed));
      owner_->bytes_written_ += allowed;
    }
    return fault;
  }

  Status Sync() override {
    if (owner_->sync_fails_) {
      ++owner_->faults_injected_;
      return Status(ErrorCode::kIO, "fsync: Input/output error (injected)");
    }
    return base_->Sync();
  }

  Status Close() override { return base_->Close(); }

 private:
  FaultInjectingFileSystem* owner_;
  std::unique_ptr<WritableFile> base_;
};

class FaultInjectingFileSystem::FaultyReader : public RandomAccessFile {
 public:
  FaultyReader(FaultInjectingFileSystem* owner, std::string path,
               std::unique_ptr<RandomAccessFile> base)
      : owner_(owner), path_(std::move(path)), base_(std::move(base)) {}

  uint64_t size() const override { return base_->size(); }

  Result<size_t> Read(uint64_t offset, size_t size, void* dest) override {
    ++owner_->reads_;
    if (!owner_->AdmitRead()) {
      return Status(ErrorCode::kIO, "read " + path_ + ": Input/output error (injected)");
    }
    const uint64_t readable = owner_->readable_bytes_.load();
    if (offset >= readable) return size_t{0};
    size = static_cast<size_t>(std::min<uint64_t>(size, readable - offset));
    const size_t limit = owner_->max_read_bytes_.load();
    return base_->Read(offset, limit > 0 ? std::min(size, limit) : size, dest);
  }

 private:
  FaultInjectingFileSystem* owner_;
  std::string path_;
  std::unique_ptr<RandomAccessFile> base_;
};

FaultInjectingFileSystem::FaultInjectingFileSystem(FileSystem* base) : base_(base) {}

void FaultInjectingFileSystem::FailReadsAfter(uint64_t successful_reads) {
  MutexLock lock(mu_);
  read_errors_armed_ = true;
  reads_before_error_ = successful_reads;
}

bool FaultInjectingFileSystem::AdmitRead() {
  MutexLock lock(mu_);
  if (!read_errors_armed_) return true;
  if (reads_before_error_ == 0) {
    ++faults_injected_;
    return false;
  }
  --reads_before_error_;
  return true;
}

void FaultInjectingFileSystem::SetFreeSpace(uint64_t bytes) {
  MutexLock lock(mu_);
  space_limited_ = true;
  free_bytes_ = bytes;
}

void FaultInjectingFileSystem::FailWritesAfter(uint64_t successful_appends) {
  MutexLock lock(mu_);
  write_errors_armed_ = true;
  appends_before_error_ = successful_appends;
}

void FaultInjectingFileSystem::ClearFaults() {
  MutexLock lock(mu_);
  space_limited_ = false;
  write_errors_armed_ = false;
  read_errors_armed_ = false;
  max_read_bytes_ = 0;
  readable_bytes_ = UINT64_MAX;
  rename_fails_ = false;
  sync_fails_ = false;
}

size_t FaultInjectingFileSystem::Admit(size_t size, Status* fault) {
  MutexLock lock(mu_);
  if (write_errors_armed_) {
    if (appends_before_error_ == 0) {
      ++faults_injected_;
      *fault = Status(ErrorCode::kIO, "write: Input/output error (injected)");
      return 0;
    }
    --appends_before_error_;
  }
  if (!space_limited_) return size;
  if (size <= free_bytes_) {
    free_bytes_ -= size;
    return size;
  }
  size_t fits = static_cast<size_t>(free_bytes_);
  free_bytes_ = 0;
  ++faults_injected_;
  *fault = Status(ErrorCode::kNoSpace, "write: No space left on device (injected)");
  return fits;
}

Result<std::unique_ptr<WritableFile>> FaultInjectingFileSystem::NewWritableFile(
    const std::string& path) {
  auto file = base_->NewWritableFile(path);
  if (!file.ok()) return file.TakeStatus();
  return std::unique_ptr<WritableFile>(new FaultyFile(this, std::move(file).value()));
}

Result<std::unique_ptr<WritableFile>> FaultInjectingFileSystem::OpenForWrite(
    const std::string& path, const WriteOpenOptions& options) {
  auto file = base_->OpenForWrite(path, options);
  if (!file.ok()) return file.TakeStatus();
  return std::unique_ptr<WritableFile>(new FaultyFile(this, std::move(file).value()));
}

Result<std::unique_ptr<WritableFile>> FaultInjectingFileSystem::NewAppendableFile(
    const std::string& path) {
  auto file = base_->NewAppendableFile(path);
  if (!file.ok()) return file.TakeStatus();
  return std::unique_ptr<WritableFile>(new FaultyFile(this, std::move(file).value()));
}

Result<std::shared_ptr<MappedFile>> FaultInjectingFileSystem::MapFile(const std::string& path) {
  return base_->MapFile(path);
}
Result<std::string> FaultInjectingFileSystem::ReadFile(const std::string& path) {
  return base_->ReadFile(path);
}
Result<std::unique_ptr<RandomAccessFile>> FaultInjectingFileSystem::OpenForRead(
    const std::string& path, const ReadOpenOptions& options) {
  auto file = base_->OpenForRead(path, options);
  if (!file.ok()) return file.TakeStatus();
  return std::unique_ptr<RandomAccessFile>(new FaultyReader(this, path, std::move(file).value()));
}
Result<uint64_t> FaultInjectingFileSystem::FileSize(const std::string& path) {
  return base_->FileSize(path);
}
bool FaultInjectingFileSystem::Exists(const std::string& path) { return base_->Exists(path); }
bool FaultInjectingFileSystem::IsSymlink(const std::string& path) { return base_->IsSymlink(path); }
Result<std::vector<std::string>> FaultInjectingFileSystem::ListDir(const std::string& path) {
  return base_->ListDir(path);
}
Status FaultInjectingFileSystem::CreateDir(const std::string& path) {
  return base_->CreateDir(path);
}
Status FaultInjectingFileSystem::RemoveFile(const std::string& path) {
  return base_->RemoveFile(path);
}
Status FaultInjectingFileSystem::RemoveAll(const std::string& path) {
  return base_->RemoveAll(path);
}
Status FaultInjectingFileSystem::Rename(const std::string& from, const std::string& to) {
  if (rename_fails_) {
    ++faults_injected_;
    return Status(ErrorCode::kIO,
                  "rename " + from + " to " + to + ": Input/output error (injected)");
  }
  return base_->Rename(from, to);
}
Status FaultInjectingFileSystem::ReplaceDir(const std::string& from, const std::string& to) {
  if (rename_fails_) {
    ++faults_injected_;
    return Status(ErrorCode::kIO,
                  "rename " + from + " to " + to + ": Input/output error (injected)");
  }
  return base_->ReplaceDir(from, to);
}
Status FaultInjectingFileSystem::SyncDir(const std::string& path) { return base_->SyncDir(path); }
bool FaultInjectingFileSystem::ProcessAlive(int pid) { return base_->ProcessAlive(pid); }

}  // namespace discomfort::storage
