#include "sdk/libtorch_check.h"

#include <dlfcn.h>

#include <filesystem>

#include <ATen/Parallel.h>

namespace discomfort {

Status CompareLibtorch(const std::string& loaded_library, const std::string& built_dir) {
  namespace fs = std::filesystem;
  std::error_code ec1, ec2;
  const fs::path loaded_dir = fs::canonical(fs::path(loaded_library).parent_path(), ec1);
  const fs::path built = fs::canonical(built_dir, ec2);
  if (!ec1 && !ec2 && loaded_dir == built) return Status::Ok();
  return Status(
      ErrorCode::kPython,
      "this process loaded libtorch from " + fs::path(loaded_library).parent_path().string() +
          ", but Discomfort was built against the libtorch in " + built_dir +
          ": two libtorch copies in one process cannot share tensors. Build and run the program "
          "against Discomfort's (find_package(Discomfort) links it, with its venv's torch)");
}

Status CheckProcessLibtorch() {
  Dl_info info{};
  // A function defined in libtorch_cpu itself: where the dynamic linker resolved it is the copy
  // this process uses.
  if (dladdr(reinterpret_cast<void*>(&at::get_num_threads), &info) == 0 ||
      info.dli_fname == nullptr) {
    return Status(ErrorCode::kPython, "cannot tell which libtorch this process loaded");
  }
  return CompareLibtorch(info.dli_fname, DISCOMFORT_TORCH_LIB_DIR);
}

}  // namespace discomfort
