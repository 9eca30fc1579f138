# dmis eval end to end on a few hundred Fashion-MNIST images: train an evaluator for a few
# steps, make a samples file from real test images, compute every metric, check the JSON.
#   cmake -DDMIS=... -DDATA=fmnist.h5 -DWORK=dir -DPYTHON=python3 -DMAKE_SAMPLES=make_samples.py
#         -P cli_check.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 77)
    message(STATUS "${what}: skipped (${err})")
    set(SKIPPED 1 PARENT_SCOPE)
    return()
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} exited with ${rc}:\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
  set(ERR "${err}" PARENT_SCOPE)
endfunction()

run("train-evaluator" ${DMIS} eval train-evaluator --data ${DATA} --out ${WORK}/ev.h5
    --limit 640 --test-limit 300 --epochs 1 --batch 64 --seed 1)
foreach(re "train-evaluator: epoch 1/1 \\| step 10/10 \\| loss [0-9.]+ \\| acc [0-9.]+ \\| [0-9]+ img/s.*ETA"
        "test accuracy [0-9.]+ % on 300 test images \\(labels\\)" "wrote ${WORK}/ev.h5")
  if(NOT OUT MATCHES "${re}")
    message(FATAL_ERROR "train-evaluator output does not match '${re}':\n${OUT}")
  endif()
endforeach()
if(NOT EXISTS ${WORK}/ev.h5 OR EXISTS ${WORK}/ev.h5.tmp)
  message(FATAL_ERROR "no ${WORK}/ev.h5, or a leftover .tmp")
endif()

run("make_samples" ${PYTHON} ${MAKE_SAMPLES} ${DATA} ${WORK}/samples.h5 --per-class 12 --noise 0.1)
if(SKIPPED)
  message(STATUS "no numpy/h5py: the metrics part is skipped")
  return()
endif()
run("eval metrics" ${DMIS} eval metrics ${WORK}/samples.h5 --evaluator ${WORK}/ev.h5 --data ${DATA}
    --test-limit 400 --cas-steps 4 --cas-batch 32 --json ${WORK}/metrics.jsonl)
string(REGEX MATCHALL "[^\n]+" lines "${OUT}")
list(LENGTH lines n)
if(NOT n EQUAL 4)
  message(FATAL_ERROR "expected 4 JSON lines on stdout, found ${n}:\n${OUT}\nstderr:\n${ERR}")
endif()
set(common "\"samples\": \"${WORK}/samples.h5\", \"evaluator\": \"${WORK}/ev.h5\", \"evaluator_test_accuracy\": [0-9.e-]+, \"n_generated\": 120, \"n_real\": 400")
set(want
  "^{\"metric\": \"accuracy\", ${common}, \"accuracy\": [0-9.e-]+, \"per_class\": \\[[0-9.e, -]+\\]}$"
  "^{\"metric\": \"fd\", ${common}, \"fd\": [0-9.e-]+, \"cw_fd\": [0-9.e-]+, \"cw_fd_classes\": 10, \"per_class\": \\[[0-9.e, -]+\\]}$"
  "^{\"metric\": \"density_coverage\", ${common}, \"k\": 3, \"density\": [0-9.e-]+, \"coverage\": [0-9.e-]+}$"
  "^{\"metric\": \"cas\", ${common}, \"cas\": [0-9.e-]+, \"per_class\": \\[.*\\], \"steps\": 4, \"batch\": 32, \"seed\": 0, \"train_seconds\": [0-9.e-]+}$")
foreach(i RANGE 3)
  list(GET lines ${i} line)
  list(GET want ${i} re)
  if(NOT line MATCHES "${re}")
    message(FATAL_ERROR "JSON line ${i} does not match\n  ${re}\n  ${line}")
  endif()
endforeach()
file(READ ${WORK}/metrics.jsonl appended)
if(NOT appended STREQUAL "${OUT}")
  message(FATAL_ERROR "--json file differs from stdout:\n${appended}")
endif()
if(NOT ERR MATCHES "dmis eval: 120 generated images .* against 400 test images")
  message(FATAL_ERROR "no progress on stderr:\n${ERR}")
endif()

# bad input: a samples file with the wrong image shape, a dataset given as the evaluator
run("make bad samples" ${PYTHON} -c
    "import h5py, numpy as np
f = h5py.File('${WORK}/bad.h5', 'w')
f['images'] = np.zeros((4, 1, 32, 32), np.float32)
f['labels'] = np.zeros(4, np.int32)
f.close()")
execute_process(COMMAND ${DMIS} eval ${WORK}/bad.h5 --evaluator ${WORK}/ev.h5 --data ${DATA}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "samples file '${WORK}/bad.h5': /images has shape \\(4, 1, 32, 32\\), expected \\(N, 1, 28, 28\\)")
  message(FATAL_ERROR "bad samples: rc ${rc}, expected 2 and a message naming the shape:\n${err}")
endif()
execute_process(COMMAND ${DMIS} eval metrics ${WORK}/samples.h5 --evaluator ${DATA} --data ${DATA}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "is not a dmis evaluator \\(its root attribute 'format' is 'dmis-dataset'")
  message(FATAL_ERROR "dataset as evaluator: rc ${rc}, expected 2 and a message:\n${err}")
endif()
message(STATUS "ok")
