# Instrumented builds for the reliability checks (scripts/check): one sanitizer set per build
# folder, every target of the project compiled with it.
#   -DDISCOMFORT_SANITIZE=address   AddressSanitizer + UndefinedBehaviorSanitizer (build/asan)
#   -DDISCOMFORT_SANITIZE=thread    ThreadSanitizer (build/tsan)
#   -DDISCOMFORT_SANITIZE=fuzzer    libFuzzer + ASan + UBSan; tests/fuzz adds the fuzz targets (build/fuzz)
# Use clang (CC=clang-14 CXX=clang++-14): libFuzzer is clang's. libtorch, CPython and the Debian
# libraries stay uninstrumented; tests/reliability/sanitizers/ holds the suppressions this needs.
set(DISCOMFORT_SANITIZE "" CACHE STRING "Sanitizer build: address, thread or fuzzer (empty: none)")
set_property(CACHE DISCOMFORT_SANITIZE PROPERTY STRINGS "" address thread fuzzer)

if(DISCOMFORT_SANITIZE STREQUAL "")
  return()
endif()

set(_discomfort_san_common -g -fno-omit-frame-pointer)
if(DISCOMFORT_SANITIZE STREQUAL "address")
  # vptr checks need every polymorphic type instrumented; libtorch's are not (false reports).
  set(_discomfort_san -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined)
  add_compile_options(${_discomfort_san_common} ${_discomfort_san})
  add_link_options(${_discomfort_san})
elseif(DISCOMFORT_SANITIZE STREQUAL "thread")
  add_compile_options(${_discomfort_san_common} -fsanitize=thread)
  add_link_options(-fsanitize=thread)
elseif(DISCOMFORT_SANITIZE STREQUAL "fuzzer")
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "DISCOMFORT_SANITIZE=fuzzer needs clang (CXX=clang++-14)")
  endif()
  set(_discomfort_san -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined)
  # fuzzer-no-link: coverage instrumentation everywhere, libFuzzer's main only in fuzz targets.
  add_compile_options(${_discomfort_san_common} -fsanitize=fuzzer-no-link ${_discomfort_san})
  add_link_options(${_discomfort_san})
else()
  message(FATAL_ERROR "DISCOMFORT_SANITIZE must be address, thread or fuzzer, not '${DISCOMFORT_SANITIZE}'")
endif()
message(STATUS "Sanitizer build: ${DISCOMFORT_SANITIZE}")
