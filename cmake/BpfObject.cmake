# bpf_object(NAME SOURCE [DEPENDS hdr...])
#   Compiles SOURCE with clang -target bpf (CO-RE, pinned vmlinux.h), generates
#   the skeleton NAME.skel.h with bpftool, and defines the INTERFACE library
#   NAME_skel whose include directory holds the skeleton. A function, so no
#   state leaks from one call to the next.
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

function(bpf_object NAME SOURCE)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(_out ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(_obj ${_out}/${NAME}.bpf.o)
  set(_skel ${_out}/${NAME}.skel.h)
  set(_vmlinux ${PROJECT_SOURCE_DIR}/vmlinux/${VMLINUX_ARCH})
  get_filename_component(_srcdir ${SOURCE} DIRECTORY)
  add_custom_command(
    OUTPUT ${_obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_out}
    COMMAND ${BPF_CLANG} -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_${BPF_ARCH}
            -I${_vmlinux} -I${_srcdir} -c ${SOURCE} -o ${_obj}
    DEPENDS ${SOURCE} ${ARG_DEPENDS} ${_vmlinux}/vmlinux.h
    COMMENT "BPF ${NAME}.bpf.o"
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
