# Weights that are not finite in an EMA snapshot or a checkpoint, or a negative step: dmis sample stops
# with exit 2, naming the file and the dataset (it sampled NaN images with exit 0).
#   cmake -DDMIS=... -DRUN=<a finished run directory> -DWORK=... -DPYTHON=... -P nan_weights.cmake
# The edits are made on purpose, so each file's whole-file digest is rewritten after them
# (tests/hostile/resign.py): the NaN meets the check behind the digest.
function(resign file)
  execute_process(COMMAND ${PYTHON} ${RESIGN} ${file} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "could not resign ${file} (${rc}): ${err}")
  endif()
endfunction()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
file(GLOB emas ${RUN}/ema-*.h5)
file(GLOB ckpts ${RUN}/ckpt-*.h5)
list(GET emas -1 ema)
list(GET ckpts -1 ckpt)
foreach(pair "${ema};/ema" "${ckpt};/params")
  list(GET pair 0 src)
  list(GET pair 1 ds)
  get_filename_component(name ${src} NAME)
  set(bad ${WORK}/${name})
  file(COPY ${src} DESTINATION ${WORK})
  execute_process(COMMAND ${PYTHON} -c
    "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); d = f[sys.argv[2]]; v = d[...]; v.flat[3] = float('nan'); d[...] = v; f.close()"
    ${bad} ${ds} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "could not patch ${bad} (${rc}): ${err}")
  endif()
  resign(${bad})
  execute_process(COMMAND ${DMIS} sample ${bad} --out ${WORK}/s.h5 --set sample.steps=2 --set sample.per_class=1
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(want "checkpoint '[^']*${name}': ${ds} holds 1 of [0-9]+ values that are not finite \\(NaN or inf\\), the first at index 3")
  if(NOT rc EQUAL 2 OR NOT err MATCHES "${want}")
    message(FATAL_ERROR "sample from ${name} with a NaN in ${ds}: exit ${rc}, expected 2 and '${want}':\n${out}\n${err}")
  endif()
  if(EXISTS ${WORK}/s.h5)
    message(FATAL_ERROR "a sample file was written from NaN weights")
  endif()
endforeach()
# a negative step attribute: the same, naming the file (it was an internal error)
get_filename_component(name ${ema} NAME)
file(REMOVE ${WORK}/${name})
file(COPY ${ema} DESTINATION ${WORK})
execute_process(COMMAND ${PYTHON} -c
  "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); f.attrs.modify('step', -5); f.close()"
  ${WORK}/${name} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "could not patch ${WORK}/${name} (${rc}): ${err}")
endif()
resign(${WORK}/${name})
execute_process(COMMAND ${DMIS} sample ${WORK}/${name} --out ${WORK}/s.h5 --set sample.steps=2
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "checkpoint '[^']*${name}': root attributes step -5 and images_seen [0-9.e+]+, expected both >= 0")
  message(FATAL_ERROR "sample from a negative step: exit ${rc}:\n${out}\n${err}")
endif()
