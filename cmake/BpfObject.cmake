# bpf_object(NAME SOURCES src... [DEPENDS hdr...])
#   Compiles each source with clang -target bpf (CO-RE, pinned vmlinux.h),
#   links them into one object NAME.bpf.o with bpftool gen object (maps and
#   knobs are __weak in a shared header, so the linker keeps one of each),
#   generates the skeleton NAME.skel.h, and defines the INTERFACE library
#   NAME_skel whose include directories hold the skeleton and the shared
#   header. A function, so no state leaks from one call to the next.
find_program(BPF_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

execute_process(COMMAND ${BPF_CLANG} -dumpversion OUTPUT_VARIABLE _bpf_clang_version
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(_bpf_clang_version VERSION_LESS 11)
  message(FATAL_ERROR "clang >= 11 is needed for BPF CO-RE (found ${_bpf_clang_version})")
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|amd64")
  set(BPF_ARCH x86)
  set(VMLINUX_ARCH x86_64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(BPF_ARCH arm64)
  set(VMLINUX_ARCH aarch64)
else()
  message(FATAL_ERROR "no pinned vmlinux.h for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

function(bpf_object NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS" ${ARGN})
  set(_out ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(_obj ${_out}/${NAME}.bpf.o)
  set(_skel ${_out}/${NAME}.skel.h)
  set(_vmlinux ${PROJECT_SOURCE_DIR}/vmlinux/${VMLINUX_ARCH})
  list(GET ARG_SOURCES 0 _first)
  get_filename_component(_srcdir ${_first} DIRECTORY)
  set(_units)
  foreach(_src IN LISTS ARG_SOURCES)
    get_filename_component(_stem ${_src} NAME_WE)
    set(_unit ${_out}/units/${_stem}.bpf.o)
    add_custom_command(
      OUTPUT ${_unit}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${_out}/units
      COMMAND ${BPF_CLANG} -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_${BPF_ARCH}
              -I${_vmlinux} -I${_srcdir} -c ${_src} -o ${_unit}
      DEPENDS ${_src} ${ARG_DEPENDS} ${_vmlinux}/vmlinux.h
      COMMENT "BPF ${_stem}.bpf.o"
      VERBATIM)
    list(APPEND _units ${_unit})
  endforeach()
  add_custom_command(
    OUTPUT ${_obj}
    COMMAND ${BPFTOOL} gen object ${_obj} ${_units}
    DEPENDS ${_units}
    COMMENT "BPF link ${NAME}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${_skel}
    COMMAND ${BPFTOOL} gen skeleton ${_obj} name ${NAME}_bpf > ${_skel}
    DEPENDS ${_obj}
    COMMENT "BPF skeleton ${NAME}.skel.h"
    VERBATIM)
  add_custom_target(${NAME}_skel_gen DEPENDS ${_skel})
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  target_include_directories(${NAME}_skel INTERFACE ${_out} ${_srcdir})
endfunction()
