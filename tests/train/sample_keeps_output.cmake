# A `dmis sample` whose --grid (or --out) cannot be written stops before any work with exit 2,
# naming the option and the folder, and leaves the samples file it would replace as it was.
#   cmake -DDMIS=... -DEMA=... -DWORK=... -P sample_keeps_output.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(out ${WORK}/s.h5)
execute_process(COMMAND ${DMIS} sample ${EMA} --out ${out} --set sample.steps=2 --set sample.per_class=1
                RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dmis sample failed (${rc}):\n${o}\n${e}")
endif()
file(SHA256 ${out} before)
foreach(case "--grid;${WORK}/missing/g.png;--grid '[^']*missing/g.png': the folder '[^']*missing' does not exist"
             "--grid;${WORK}/;--grid '[^']*/': is a folder"
             "--grid;${WORK}/sub/;--grid '[^']*sub/': is a folder")
  list(GET case 0 opt)
  list(GET case 1 val)
  list(GET case 2 regex)
  # two images per class: a file that differs from the one in place
  execute_process(COMMAND ${DMIS} sample ${EMA} --out ${out} ${opt} ${val} --set sample.steps=2
                          --set sample.per_class=2
                  RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(NOT rc EQUAL 2 OR NOT e MATCHES "${regex}")
    message(FATAL_ERROR "sample ${opt} ${val}: exit ${rc}, expected 2 and '${regex}':\n${o}\n${e}")
  endif()
endforeach()
execute_process(COMMAND ${DMIS} sample ${EMA} --out ${WORK}/ --set sample.steps=2
                RESULT_VARIABLE rc ERROR_VARIABLE e)
if(NOT rc EQUAL 2 OR NOT e MATCHES "--out '[^']*/': is a folder")
  message(FATAL_ERROR "sample --out FOLDER/: exit ${rc}:\n${e}")
endif()
file(SHA256 ${out} after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "a failed dmis sample changed ${out}")
endif()
file(GLOB left ${WORK}/*.tmp ${WORK}/.tmp)
if(left)
  message(FATAL_ERROR "temporary files left behind: ${left}")
endif()
