# Installs this source tree into a scratch prefix, then configures, builds and runs the
# consumer project against it, and reads the objects' symbols: under dualopt::dualopt_float the
# user's files hold no float optimizer step, the float instance file does, and the double code a
# file uses (a norm) is compiled in that file (no double instance file), and no instance file compiles
# Eigen's SVD. Any failing step fails the test.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
endfunction()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -G ${GENERATOR} -DDUALOPT_BUILD_TESTS=OFF
    -DDUALOPT_BUILD_BENCHMARKS=OFF -DDUALOPT_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/app -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=)
# Two jobs: the float instance file (most of this test's time) beside the user's files.
run(${CMAKE_COMMAND} --build ${WORK_DIR}/app --parallel 2)
run(${WORK_DIR}/app/consumer)
run(${WORK_DIR}/app/consumer_headers)

find_program(NM NAMES nm)
if(NOT NM)
  message(FATAL_ERROR "nm not found")
endif()
# has_step(result target object-name type): whether that object defines Optimizer<type>::step_where
# (or, for lib.cpp, which uses no optimizer, Norm::norm<type>: one of the instances' members too).
function(has_step result target object type)
  file(GLOB_RECURSE objs ${WORK_DIR}/app/CMakeFiles/${target}.dir/*${object}.o)
  list(LENGTH objs n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "expected one ${object}.o of ${target}, found: ${objs}")
  endif()
  execute_process(COMMAND ${NM} -C --defined-only ${objs} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "nm failed on ${objs}")
  endif()
  if(syms MATCHES "[TtWw] dualopt::Optimizer[^ (]*<${type}>::step_where\\(" OR
     syms MATCHES "[TtWw] ${type} dualopt::norms::Norm::norm<${type}>\\(")
    set(${result} ON PARENT_SCOPE)
  else()
    set(${result} OFF PARENT_SCOPE)
  endif()
endfunction()
file(GLOB_RECURSE double_objs ${WORK_DIR}/app/CMakeFiles/consumer.dir/*double.cpp.o)
if(double_objs)
  message(FATAL_ERROR "dualopt::dualopt_float compiled the double instances: ${double_objs}")
endif()
foreach(check "main.cpp float OFF" "lib.cpp double ON" "float.cpp float ON")
  string(REPLACE " " ";" check "${check}")
  list(GET check 0 object)
  list(GET check 1 type)
  list(GET check 2 expected)
  has_step(found consumer ${object} ${type})
  if(NOT found STREQUAL expected)
    message(FATAL_ERROR "consumer's ${object}.o: Optimizer<${type}>::step_where defined is ${found}, expected ${expected}")
  endif()
endforeach()
# Eigen's SVD (the exact polar factor) compiles only in files that include norms/exact_spectral.hpp:
# never in the instance file, which once took more than half its build time for it.
file(GLOB_RECURSE float_objs ${WORK_DIR}/app/CMakeFiles/consumer.dir/*float.cpp.o)
execute_process(COMMAND ${NM} -C --defined-only ${float_objs} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
if(rc OR NOT syms MATCHES "step_where")
  message(FATAL_ERROR "nm failed on the float instance object: ${float_objs}")
endif()
if(syms MATCHES "Eigen::(BDCSVD|JacobiSVD)<")
  message(FATAL_ERROR "the float instance file compiled Eigen's SVD, which only norms/exact_spectral.hpp asks for")
endif()
message(STATUS "installed dualopt consumed through find_package: the user's files link to the float instance file")
