# The build's shape: one static library per module, linked only downward, and the precompiled
# header only where LibTorch is compiled.
#
#   starft_module(NAME [DIR folder] [DEPENDS module...])
#     Library starft_<NAME> from <folder>/*.cpp (default src/<NAME>), linked PUBLIC to the
#     DEPENDS modules' libraries (or to starft_deps, the third-party libraries, for the lowest).
#     Records the module, its folder and its transitive DEPENDS for cmake/check_layering.cmake.
#   starft_unity_build(TARGET)
#     Compiles TARGET's sources in unity batches when STARFT_UNITY_BUILD is on.
#   starft_use_pch(TARGET)
#     Reuses starft_pch's precompiled header (LibTorch) in TARGET's sources that reach a LibTorch
#     header through the project's includes; the others skip it. Loading the 600+ MB header costs
#     a translation unit 10-20 s, more than compiling a file that never includes LibTorch.

# Does `file` reach <torch/...>, <ATen/...> or <c10/...> through its quoted includes? Quoted
# includes are looked up in src/, the source root and the file's own folder. Memoised.
function(_starft_reaches_torch file out)
  get_property(known GLOBAL PROPERTY "_starft_torch_${file}" SET)
  if(known)
    get_property(value GLOBAL PROPERTY "_starft_torch_${file}")
    set(${out} ${value} PARENT_SCOPE)
    return()
  endif()
  set_property(GLOBAL PROPERTY "_starft_torch_${file}" OFF)  # guards include cycles
  file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include")
  get_filename_component(here "${file}" DIRECTORY)
  set(result OFF)
  foreach(inc IN LISTS includes)
    if(inc MATCHES "<(torch|ATen|c10)/")
      set(result ON)
      break()
    elseif(inc MATCHES "\"([^\"]+)\"")
      set(name ${CMAKE_MATCH_1})
      foreach(candidate "${CMAKE_SOURCE_DIR}/src/${name}" "${CMAKE_SOURCE_DIR}/${name}" "${here}/${name}")
        if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
          get_filename_component(candidate "${candidate}" REALPATH)
          _starft_reaches_torch("${candidate}" sub)
          if(sub)
            set(result ON)
          endif()
          break()
        endif()
      endforeach()
      if(result)
        break()
      endif()
    endif()
  endforeach()
  set_property(GLOBAL PROPERTY "_starft_torch_${file}" ${result})
  set(${out} ${result} PARENT_SCOPE)
endfunction()

function(starft_use_pch target)
  get_target_property(sources ${target} SOURCES)
  get_target_property(source_dir ${target} SOURCE_DIR)
  set(any OFF)
  foreach(src IN LISTS sources)
    if(NOT src MATCHES "\\.cpp$")
      continue()
    endif()
    get_filename_component(path "${src}" ABSOLUTE BASE_DIR "${source_dir}")
    get_source_file_property(skip "${path}" SKIP_PRECOMPILE_HEADERS)
    _starft_reaches_torch("${path}" torch)
    if(torch AND NOT skip)
      set(any ON)
    else()
      set_source_files_properties("${path}" PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    endif()
  endforeach()
  if(any)
    target_precompile_headers(${target} REUSE_FROM starft_pch)
  endif()
endfunction()

# Batches TARGET's sources into unity files of 8 when STARFT_UNITY_BUILD is on. Sources with
# their own compile options (src/train/adamw_kernel.cpp) are left out by CMake itself.
function(starft_unity_build target)
  if(STARFT_UNITY_BUILD)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 8)
  endif()
endfunction()

set_property(GLOBAL PROPERTY STARFT_LAYERS "")
function(starft_module name)
  cmake_parse_arguments(M "" "DIR" "DEPENDS" ${ARGN})
  if(NOT M_DIR)
    set(M_DIR src/${name})
  endif()
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${M_DIR}/*.cpp)
  # Sources that need a CUDA LibTorch end in _cuda.cpp; the NCCL core ends in _nccl.cpp.
  foreach(kind cuda nccl)
    set(extra ${sources})
    list(FILTER sources EXCLUDE REGEX ".*_${kind}\\.cpp$")
    list(FILTER extra INCLUDE REGEX ".*_${kind}\\.cpp$")
    if((kind STREQUAL "cuda" AND STARFT_TORCH_CUDA) OR (kind STREQUAL "nccl" AND STARFT_NCCL))
      list(APPEND sources ${extra})
    endif()
  endforeach()
  add_library(starft_${name} STATIC ${sources})
  set(closure)
  if(M_DEPENDS)
    foreach(d IN LISTS M_DEPENDS)
      target_link_libraries(starft_${name} PUBLIC starft_${d})
      get_property(below GLOBAL PROPERTY "STARFT_MODULE_CLOSURE_${d}")
      list(APPEND closure ${d} ${below})
    endforeach()
    list(REMOVE_DUPLICATES closure)
  else()
    target_link_libraries(starft_${name} PUBLIC starft_deps)
  endif()
  set_property(GLOBAL PROPERTY "STARFT_MODULE_CLOSURE_${name}" "${closure}")
  string(JOIN " " line ${name} ${M_DIR} ${closure})
  set_property(GLOBAL APPEND PROPERTY STARFT_LAYERS "${line}")
  set_property(GLOBAL APPEND PROPERTY STARFT_MODULES ${name})
  set_property(GLOBAL APPEND PROPERTY STARFT_MODULE_DIRS ${M_DIR})
  starft_use_pch(starft_${name})
  starft_unity_build(starft_${name})
endfunction()

# Writes the layers file and the build step that checks it; every module library waits for that
# step. Call after the last starft_module().
function(starft_layering_check)
  get_property(layers GLOBAL PROPERTY STARFT_LAYERS)
  list(JOIN layers "\n" text)
  file(WRITE ${CMAKE_BINARY_DIR}/generated/layers.txt.in "${text}\n")
  configure_file(${CMAKE_BINARY_DIR}/generated/layers.txt.in ${CMAKE_BINARY_DIR}/generated/layers.txt COPYONLY)
  get_property(names GLOBAL PROPERTY STARFT_MODULES)
  get_property(dirs GLOBAL PROPERTY STARFT_MODULE_DIRS)
  set(files)
  foreach(dir IN LISTS dirs)
    file(GLOB_RECURSE f CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${dir}/*.h ${CMAKE_SOURCE_DIR}/${dir}/*.cpp)
    list(APPEND files ${f})
  endforeach()
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/generated/layering.ok
    COMMAND ${CMAKE_COMMAND} -DROOT=${CMAKE_SOURCE_DIR} -DLAYERS=${CMAKE_BINARY_DIR}/generated/layers.txt
            -DSTAMP=${CMAKE_BINARY_DIR}/generated/layering.ok -P ${CMAKE_SOURCE_DIR}/cmake/check_layering.cmake
    DEPENDS ${files} ${CMAKE_BINARY_DIR}/generated/layers.txt ${CMAKE_SOURCE_DIR}/cmake/check_layering.cmake
    COMMENT "Checking that no module includes a higher one (cmake/check_layering.cmake)")
  add_custom_target(starft_layering DEPENDS ${CMAKE_BINARY_DIR}/generated/layering.ok)
  foreach(name IN LISTS names)
    add_dependencies(starft_${name} starft_layering)  # a wrong include fails the build first
  endforeach()
endfunction()
