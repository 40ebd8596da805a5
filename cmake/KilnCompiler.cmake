# Compiler set-up shared by every target: ccache, warnings, threads.

find_program(KILN_CCACHE ccache)
if(KILN_CCACHE)
  # Sloppiness lets ccache cache translation units that use precompiled headers; the base dir
  # makes paths relative, so a second clone or build folder hits the same cache.
  set(_launcher ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}
      ${KILN_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${_launcher})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_launcher})
  message(STATUS "kiln: using ccache (${KILN_CCACHE})")
endif()

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)

add_library(kiln_warnings INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(kiln_warnings INTERFACE -Wall -Wextra -Wno-unused-parameter)
endif()

# A precompiled header for LibTorch-heavy targets: one parse of <torch/torch.h> per target.
function(kiln_use_torch_pch target)
  target_precompile_headers(${target} PRIVATE <torch/torch.h>)
endfunction()
