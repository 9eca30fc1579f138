# Finds dmis' dependencies the CMake way. Point CMake at your own builds with Kokkos_ROOT,
# KokkosKernels_ROOT, HDF5_ROOT, MPI_HOME / MPI_CXX_COMPILER, yaml-cpp_DIR, GTest_ROOT.

# A Kokkos_ROOT given on a later configure must win over the Kokkos_DIR cached by an earlier one
# (CMake would otherwise keep using the old installation).
foreach(_pkg Kokkos KokkosKernels)
  if(${_pkg}_ROOT AND ${_pkg}_DIR)
    get_filename_component(_root "${${_pkg}_ROOT}" REALPATH)
    get_filename_component(_dir "${${_pkg}_DIR}" REALPATH)
    string(FIND "${_dir}" "${_root}/" _at)
    if(NOT _at EQUAL 0)
      message(STATUS "dmis: ${_pkg}_ROOT=${${_pkg}_ROOT} replaces the cached ${_pkg}_DIR=${${_pkg}_DIR}")
      unset(${_pkg}_DIR CACHE)
    endif()
  endif()
endforeach()

# ---- Kokkos ------------------------------------------------------------------------------------
find_package(Kokkos REQUIRED CONFIG)
set(_dmis_required_backends "")
foreach(_backend SERIAL OPENMP CUDA HIP SYCL)
  if(DMIS_REQUIRE_${_backend})
    list(APPEND _dmis_required_backends ${_backend})
  endif()
endforeach()
if(_dmis_required_backends)
  # kokkos_check stops configuration with a clear message if a required backend is missing.
  kokkos_check(DEVICES ${_dmis_required_backends})
endif()
message(STATUS "dmis: Kokkos ${Kokkos_VERSION} from ${Kokkos_DIR}, backends: ${Kokkos_DEVICES}")
if(Kokkos_VERSION VERSION_LESS 3.4)
  message(FATAL_ERROR "dmis needs Kokkos >= 3.4.01; found ${Kokkos_VERSION} in ${Kokkos_DIR}")
endif()

# ---- Kokkos Kernels ----------------------------------------------------------------------------
find_package(KokkosKernels CONFIG QUIET)
if(NOT KokkosKernels_FOUND)
  # Trilinos installs Kokkos Kernels under another name and target.
  find_package(KokkosKernels CONFIG NAMES KokkosKernels Trilinos QUIET)
endif()
if(TARGET Kokkos::kokkoskernels)
  set(DMIS_KOKKOSKERNELS_TARGET Kokkos::kokkoskernels)
elseif(TARGET trilinos_kokkoskernels)
  set(DMIS_KOKKOSKERNELS_TARGET trilinos_kokkoskernels)
elseif(TARGET kokkoskernels)
  set(DMIS_KOKKOSKERNELS_TARGET kokkoskernels)
else()
  message(FATAL_ERROR "dmis: Kokkos Kernels not found. Set KokkosKernels_ROOT to the prefix of a "
                      "Kokkos Kernels built against the Kokkos in ${Kokkos_DIR}.")
endif()
message(STATUS "dmis: Kokkos Kernels ${KokkosKernels_VERSION} (${DMIS_KOKKOSKERNELS_TARGET})")

# ---- MPI ---------------------------------------------------------------------------------------
if(DMIS_ENABLE_MPI)
  find_package(MPI REQUIRED COMPONENTS CXX)
  set(DMIS_MPI_TARGET MPI::MPI_CXX)
endif()

# ---- HDF5 --------------------------------------------------------------------------------------
if(DMIS_ENABLE_HDF5)
  find_package(HDF5 REQUIRED COMPONENTS C)
  if(TARGET HDF5::HDF5)
    set(DMIS_HDF5_TARGET HDF5::HDF5)
  else()
    add_library(dmis_hdf5 INTERFACE)
    target_include_directories(dmis_hdf5 INTERFACE ${HDF5_INCLUDE_DIRS})
    target_link_libraries(dmis_hdf5 INTERFACE ${HDF5_LIBRARIES})
    target_compile_definitions(dmis_hdf5 INTERFACE ${HDF5_DEFINITIONS})
    set(DMIS_HDF5_TARGET dmis_hdf5)
  endif()
  message(STATUS "dmis: HDF5 ${HDF5_VERSION}")
endif()

# ---- yaml-cpp (0.7 exports `yaml-cpp`, 0.8 `yaml-cpp::yaml-cpp`) -----------------------------
find_package(yaml-cpp REQUIRED)
if(TARGET yaml-cpp::yaml-cpp)
  set(DMIS_YAML_TARGET yaml-cpp::yaml-cpp)
elseif(TARGET yaml-cpp)
  set(DMIS_YAML_TARGET yaml-cpp)
else()
  message(FATAL_ERROR "dmis: yaml-cpp was found in ${yaml-cpp_DIR} but exports no known target")
endif()

# ---- GoogleTest --------------------------------------------------------------------------------
if(DMIS_ENABLE_TESTS)
  find_package(GTest 1.10 REQUIRED)
endif()

# ---- PNG (sample grids) --------------------------------------------------------------------------
find_package(PNG QUIET)
