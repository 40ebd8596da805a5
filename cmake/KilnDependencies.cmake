# Every dependency comes from Debian's packages and is found with find_package.
# A CUDA LibTorch 2.x is accepted through CMAKE_PREFIX_PATH.

find_package(Torch REQUIRED)
# LibTorch 2.13 and later refuse to compile as anything older than C++20.
if(Torch_VERSION VERSION_GREATER_EQUAL 2.13 AND CMAKE_CXX_STANDARD LESS 20)
  message(STATUS "kiln: LibTorch ${Torch_VERSION} needs C++20; building as C++20")
  set(CMAKE_CXX_STANDARD 20)
endif()
find_package(nlohmann_json 3.9 REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)                    # options of kiln and of the benchmark programs
find_package(ICU REQUIRED COMPONENTS uc i18n)   # Unicode classes, NFC/NFKC for the CLIP tokenizer
find_package(ZLIB REQUIRED)                     # the CLIP BPE vocabulary ships gzip-compressed
find_package(OpenSSL REQUIRED COMPONENTS Crypto)  # SHA-256: LoRA and model hashes; TLS for the remote daemon

if(NOT KILN_ENGINE_ONLY)
  find_package(Boost 1.74 REQUIRED)             # Asio and Interprocess are header-only
  find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs objdetect dnn)
  find_package(PNG REQUIRED)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)  # socket activation and the journal
  find_package(libzip REQUIRED)                 # `kiln plugins install` unpacks the plugin bundles
  find_package(OpenSSL REQUIRED COMPONENTS Crypto SSL)  # the remote daemon's TLS (boost::asio::ssl)
  find_package(zstd REQUIRED)                   # optional compression of images sent to a remote daemon
endif()
if(KILN_TESTS)
  find_package(GTest REQUIRED)
endif()

set(KILN_HAS_CUDA OFF)
if(KILN_CUDA STREQUAL "ON" OR (KILN_CUDA STREQUAL "AUTO" AND TORCH_CUDA_LIBRARIES))
  set(KILN_HAS_CUDA ON)
endif()
message(STATUS "kiln: LibTorch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}, CUDA ${KILN_HAS_CUDA}")

# tcmalloc (Debian libgoogle-perftools-dev, run time libtcmalloc-minimal4) for every program that runs
# the engine. Glibc hands each block over 32 MiB back to the kernel when it is freed, so every large
# activation is fresh memory whose first touch faults page by page; on the 2-core VMs we measure on
# that made a SiLU over a 512² VAE activation 20× slower than the arithmetic (bench/README.md).
# tcmalloc keeps freed spans for reuse. Optional: a GPU machine's engine-only build goes without.
find_library(KILN_TCMALLOC NAMES tcmalloc_minimal libtcmalloc_minimal.so.4)
add_library(kiln_allocator INTERFACE)
if(KILN_TCMALLOC)
  # --no-as-needed: nothing calls tcmalloc by name, it replaces malloc by being linked first.
  target_link_libraries(kiln_allocator INTERFACE "-Wl,--push-state,--no-as-needed" ${KILN_TCMALLOC} "-Wl,--pop-state")
  message(STATUS "kiln: engine programs use tcmalloc (${KILN_TCMALLOC})")
else()
  message(STATUS "kiln: tcmalloc not found; engine programs use glibc's malloc (install libgoogle-perftools-dev)")
endif()
