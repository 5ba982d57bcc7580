# Build speed (figures: docs/BENCHMARKS.md, "Build times"). Each knob is an option so that a
# measurement can turn it off: cmake -DKILN_CCACHE=OFF -DKILN_FAST_LINKER=OFF ...

# ccache, when installed and no launcher was given (CMAKE_CXX_COMPILER_LAUNCHER, also read from
# the environment, wins). The precompiled headers are cacheable only with this sloppiness.
option(KILN_CCACHE "compile through ccache when it is installed" ON)
if(KILN_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(KILN_CCACHE_PROGRAM ccache)
  if(KILN_CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${KILN_CCACHE_PROGRAM})
  endif()
endif()

# mold (else lld) links the test binary several times faster than GNU ld.
option(KILN_FAST_LINKER "link with mold or lld when available" ON)
if(KILN_FAST_LINKER)
  include(CheckLinkerFlag)
  check_linker_flag(CXX -fuse-ld=mold KILN_HAVE_MOLD)
  if(KILN_HAVE_MOLD)
    add_link_options(-fuse-ld=mold)
  else()
    check_linker_flag(CXX -fuse-ld=lld KILN_HAVE_LLD)
    if(KILN_HAVE_LLD)
      add_link_options(-fuse-ld=lld)
    endif()
  endif()
endif()

# RelWithDebInfo with line tables and function names only (-g1): backtraces, perf and gdb's
# `bt` keep working, a debugger shows no local variables. A quarter less compile time, a third
# of the object size.
option(KILN_FULL_DEBUG_INFO "full -g debug info in RelWithDebInfo builds" OFF)
if(NOT KILN_FULL_DEBUG_INFO)
  add_compile_options($<$<CONFIG:RelWithDebInfo>:-g1>)
endif()
