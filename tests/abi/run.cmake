# The instances recipe's link-time check (dualopt/abi.hpp): code compiled with one set of vector
# flags links with code compiled with the same flags (also twice over), and fails to link with
# code compiled with others. Arguments: -DCXX=compiler -DSRC=this folder -DDUALOPT_INCLUDE=.. -DEIGEN_INCLUDE=..
# -DWORK=scratch folder.
file(MAKE_DIRECTORY ${WORK})
set(flags -std=c++17 -I${SRC} -I${DUALOPT_INCLUDE} -I${EIGEN_INCLUDE})
function(build out)  # build(out.o file.cpp extra flags...)
  execute_process(COMMAND ${CXX} ${flags} ${ARGN} -c -o ${WORK}/${out} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "compiling ${ARGN} failed: ${err}")
  endif()
endfunction()
build(define_sse2.o ${SRC}/define.cpp -mno-avx)
build(use_sse2.o ${SRC}/use.cpp -mno-avx)
build(use_avx.o ${SRC}/use.cpp -mavx)
execute_process(COMMAND ${CXX} ${WORK}/define_sse2.o ${WORK}/use_sse2.o -o ${WORK}/same RESULT_VARIABLE same)
# Two targets that both link dualopt::dualopt each compile the instances: two objects with the
# same explicit instantiations must link (they are weak, COMDAT symbols), one copy kept.
build(define_sse2_copy.o ${SRC}/define.cpp -mno-avx)
execute_process(COMMAND ${CXX} ${WORK}/define_sse2.o ${WORK}/define_sse2_copy.o ${WORK}/use_sse2.o -o ${WORK}/twice
                RESULT_VARIABLE twice ERROR_VARIABLE twice_err)
execute_process(COMMAND ${CXX} ${WORK}/define_sse2.o ${WORK}/use_avx.o -o ${WORK}/mixed RESULT_VARIABLE mixed
                ERROR_VARIABLE mixed_err)
if(same)
  message(FATAL_ERROR "files compiled with the same vector flags did not link")
endif()
if(twice)
  message(FATAL_ERROR "two objects with the same explicit instantiations did not link: ${twice_err}")
endif()
if(NOT mixed)
  message(FATAL_ERROR "files compiled with -mno-avx and -mavx linked: the vector-flags tag is missing")
endif()
if(NOT mixed_err MATCHES "abi:vec_avx")
  message(FATAL_ERROR "the link error does not name the flags: ${mixed_err}")
endif()
message(STATUS "same flags link; -mno-avx with -mavx fails: ${mixed_err}")
