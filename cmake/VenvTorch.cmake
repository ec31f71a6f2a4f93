# libtorch from the project venv's torch package — the very library the embedded ComfyUI imports,
# so one TensorImpl is shared by C++ and Python (DESIGN.md decision 1). We link the shared
# libraries directly instead of find_package(Torch): TorchConfig of a CUDA wheel insists on a
# matching CUDA toolkit, which a CPU machine need not have. The CPU API is all the C++ side uses.
if(NOT EXISTS "${DISCOMFORT_PYTHON}")
  message(FATAL_ERROR "No project venv Python at ${DISCOMFORT_PYTHON}: run scripts/setup first")
endif()
execute_process(
  COMMAND "${DISCOMFORT_PYTHON}" -c
    "import os, sys, sysconfig, torch, torch.utils; d = os.path.dirname(torch.__file__); print(';'.join([d, str(int(torch._C._GLIBCXX_USE_CXX11_ABI)), torch.__version__, sys.prefix, sys.base_prefix, sysconfig.get_paths()['include'], sysconfig.get_config_var('LDVERSION'), sysconfig.get_config_var('LIBDIR')]))"
  OUTPUT_VARIABLE _torch_query OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _torch_rc)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "${DISCOMFORT_PYTHON} cannot import torch: run scripts/setup")
endif()
list(GET _torch_query 0 TORCH_DIR)
list(GET _torch_query 1 TORCH_CXX11_ABI)
list(GET _torch_query 2 TORCH_VERSION)
list(GET _torch_query 3 DISCOMFORT_VENV_PREFIX)
list(GET _torch_query 4 DISCOMFORT_PYTHON_BASE_PREFIX)
list(GET _torch_query 5 DISCOMFORT_PYTHON_INCLUDE)
list(GET _torch_query 6 DISCOMFORT_PYTHON_LDVERSION)
list(GET _torch_query 7 DISCOMFORT_PYTHON_LIBDIR)
message(STATUS "libtorch ${TORCH_VERSION} from ${TORCH_DIR} (CXX11 ABI ${TORCH_CXX11_ABI})")

set(TORCH_LIB_DIR "${TORCH_DIR}/lib")
set(_torch_libs)
foreach(_name torch torch_cpu c10)
  find_library(_lib_${_name} NAMES ${_name} PATHS "${TORCH_LIB_DIR}" NO_DEFAULT_PATH REQUIRED)
  list(APPEND _torch_libs "${_lib_${_name}}")
endforeach()
find_library(_lib_torch_python NAMES torch_python PATHS "${TORCH_LIB_DIR}" NO_DEFAULT_PATH REQUIRED)

# torch/include also bundles its own fmt, which would shadow the system fmt that Debian's spdlog
# is built against; expose every torch include entry except fmt through a shim folder.
set(_torch_shim "${CMAKE_BINARY_DIR}/torch_include")
file(REMOVE_RECURSE "${_torch_shim}")
file(MAKE_DIRECTORY "${_torch_shim}")
file(GLOB _torch_include_entries RELATIVE "${TORCH_DIR}/include" "${TORCH_DIR}/include/*")
foreach(_entry ${_torch_include_entries})
  if(NOT _entry STREQUAL "fmt")
    file(CREATE_LINK "${TORCH_DIR}/include/${_entry}" "${_torch_shim}/${_entry}" SYMBOLIC)
  endif()
endforeach()

add_library(discomfort_torch INTERFACE)
target_include_directories(discomfort_torch SYSTEM INTERFACE
  "${_torch_shim}" "${TORCH_DIR}/include/torch/csrc/api/include")
target_compile_definitions(discomfort_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${TORCH_CXX11_ABI})
# libtorch.so exports its own copy of std::filesystem; with libtorch first among the NEEDED
# libraries our std::filesystem calls would bind to that copy (which crashes). libstdc++ first.
target_link_libraries(discomfort_torch INTERFACE stdc++ ${_torch_libs})
add_library(discomfort::torch ALIAS discomfort_torch)

# Embedded CPython (the venv's base interpreter) + torch's Python bindings and its bundled
# pybind11, so our casters and torch's agree on one pybind11 ABI.
find_library(_lib_python NAMES python${DISCOMFORT_PYTHON_LDVERSION}
  PATHS "${DISCOMFORT_PYTHON_LIBDIR}" NO_DEFAULT_PATH REQUIRED)
add_library(discomfort_torch_python INTERFACE)
target_include_directories(discomfort_torch_python SYSTEM INTERFACE "${DISCOMFORT_PYTHON_INCLUDE}")
target_link_libraries(discomfort_torch_python INTERFACE discomfort_torch "${_lib_torch_python}")
add_library(discomfort::torch_python ALIAS discomfort_torch_python)
# Only programs that embed the interpreter link libpython; an extension module must not (Debian's
# python3 has the interpreter linked in statically, a second libpython would be a second runtime).
# Programs embed the static, non-PIC libpython where the installation ships one (Debian's
# libpython3.X-dev does), linked into a non-PIE executable that exports the interpreter's symbols
# to extension modules, as /usr/bin/python3 itself is built: the shared libpython (PIC, calls
# through the PLT) ran pure-Python code 1.22x slower here (median of 8 interleaved pairs), and
# ComfyUI's executor is mostly interpreter time. DISCOMFORT_STATIC_LIBPYTHON=OFF keeps the shared one.
option(DISCOMFORT_STATIC_LIBPYTHON "embed the static libpython when available" ON)
execute_process(COMMAND "${DISCOMFORT_PYTHON}" -c
  "import sysconfig as s; print(';'.join(str(s.get_config_var(k) or '') for k in ('LIBPL', 'LIBRARY', 'LIBS', 'SYSLIBS', 'MODLIBS')))"
  OUTPUT_VARIABLE _python_static_query OUTPUT_STRIP_TRAILING_WHITESPACE)
list(GET _python_static_query 0 _python_libpl)
list(GET _python_static_query 1 _python_library)
set(_lib_python_static "${_python_libpl}/${_python_library}")
add_library(discomfort_python_embed INTERFACE)
set(_python_static_ok OFF)
if(DISCOMFORT_STATIC_LIBPYTHON AND _python_library MATCHES "\\.a$" AND EXISTS "${_lib_python_static}")
  list(SUBLIST _python_static_query 2 3 _python_static_deps)
  string(JOIN " " _python_static_deps ${_python_static_deps})
  separate_arguments(_python_static_deps UNIX_COMMAND "${_python_static_deps}")
  list(REMOVE_DUPLICATES _python_static_deps)
  # Another installation's static library may need what its sysconfig does not list, or be
  # PIC-only: link a tiny embedding program first, and fall back to the shared library if it fails.
  include(CheckCSourceCompiles)
  set(CMAKE_REQUIRED_INCLUDES "${DISCOMFORT_PYTHON_INCLUDE}")
  set(CMAKE_REQUIRED_LIBRARIES "-Wl,--whole-archive" "${_lib_python_static}" "-Wl,--no-whole-archive"
      ${_python_static_deps})
  set(CMAKE_REQUIRED_LINK_OPTIONS -no-pie "LINKER:-export-dynamic")
  set(CMAKE_REQUIRED_QUIET ON)
  check_c_source_compiles("#include <Python.h>
int main(void) { Py_Initialize(); return Py_FinalizeEx(); }" DISCOMFORT_STATIC_LIBPYTHON_LINKS)
  unset(CMAKE_REQUIRED_INCLUDES)
  unset(CMAKE_REQUIRED_LIBRARIES)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
  unset(CMAKE_REQUIRED_QUIET)
  set(_python_static_ok ${DISCOMFORT_STATIC_LIBPYTHON_LINKS})
endif()
if(_python_static_ok)
  target_link_libraries(discomfort_python_embed INTERFACE
    "-Wl,--whole-archive" "${_lib_python_static}" "-Wl,--no-whole-archive" ${_python_static_deps})
  target_link_options(discomfort_python_embed INTERFACE -no-pie "LINKER:-export-dynamic")
  message(STATUS "Embedding the static ${_lib_python_static} (non-PIE executables)")
else()
  target_link_libraries(discomfort_python_embed INTERFACE "${_lib_python}")
  message(STATUS "Embedding the shared ${_lib_python}")
endif()
add_library(discomfort::python_embed ALIAS discomfort_python_embed)
# Shared libraries that embed the interpreter (the C++ SDK) link the shared libpython: a static,
# non-PIC libpython cannot go into a shared object.
add_library(discomfort_python_shared INTERFACE)
target_link_libraries(discomfort_python_shared INTERFACE "${_lib_python}")
add_library(discomfort::python_shared ALIAS discomfort_python_shared)
set(DISCOMFORT_PYTHON_EXT_SUFFIX "" CACHE INTERNAL "")
execute_process(COMMAND "${DISCOMFORT_PYTHON}" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"
  OUTPUT_VARIABLE DISCOMFORT_PYTHON_EXT_SUFFIX OUTPUT_STRIP_TRAILING_WHITESPACE)

set(CMAKE_BUILD_RPATH "${TORCH_LIB_DIR}")
set(CMAKE_INSTALL_RPATH "${TORCH_LIB_DIR}")
