# A checkpoint edited or damaged after it was written (here: its DMIS logit scale negated, the
# kind of change no parser notices) does not match its digest: run.resume latest skips it,
# says so and continues from the newest one that verifies; where none does, it stops with exit 2
# naming each file, and leaves the run as it was.
#   cmake -DDMIS=... -DDECK=... -DDATA=... -DWORK=... -DPYTHON=... -DRESIGN=resign.py -P damaged_checkpoint.cmake
file(REMOVE_RECURSE ${WORK})
set(negate "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); d = f['/method/logit_scale']; d[...] = -d[...]; f.close()")
function(train dir)
  execute_process(COMMAND ${DMIS} train ${DECK} --set data.path=${DATA} --set run.out_dir=${WORK}
                          --set run.name=${dir} ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(rc ${rc} PARENT_SCOPE)
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()
# damage(file [resign]): with resign, the whole-file digest is rewritten after the edit, so
# that the edit meets the second check, the digest of the contents (format 2's, kept in 3)
function(damage file)
  execute_process(COMMAND ${PYTHON} -c "${negate}" ${file} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "could not patch ${file} (${rc}): ${err}")
  endif()
  if(ARGN)
    execute_process(COMMAND ${PYTHON} ${RESIGN} ${file} RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "could not resign ${file} (${rc}): ${err}")
    endif()
  endif()
endfunction()

# the only checkpoint damaged: exit 2, the file and the cause named, nothing changed
train(one --set train.steps=8)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dmis train failed (${rc}):\n${out}\n${err}")
endif()
set(ck ${WORK}/one/ckpt-00000008.h5)
damage(${ck} resign)
file(SHA256 ${ck} before)
file(SHA256 ${WORK}/one/stats.jsonl stats_before)
train(one --set train.steps=12 --set run.resume=latest)
if(NOT rc EQUAL 2 OR NOT err MATCHES "none of the 1 checkpoints of '[^']*one' can be read:.*skipping [^ ]*ckpt-00000008.h5: checkpoint '[^']*ckpt-00000008.h5' is damaged: its contents do not match its digest")
  message(FATAL_ERROR "resuming from a damaged checkpoint: exit ${rc}, expected 2 and the file named:\n${out}\n${err}")
endif()
file(SHA256 ${ck} after)
file(SHA256 ${WORK}/one/stats.jsonl stats_after)
if(NOT before STREQUAL after OR NOT stats_before STREQUAL stats_after)
  message(FATAL_ERROR "the failed resume changed the run's files")
endif()

# the newest damaged, an older one intact: resume falls back to it and says so
train(two --set train.steps=16)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dmis train failed (${rc}):\n${out}\n${err}")
endif()
damage(${WORK}/two/ckpt-00000016.h5)
train(two --set train.steps=20 --set run.resume=latest)
if(NOT rc EQUAL 0 OR NOT out MATCHES "skipping [^ ]*ckpt-00000016.h5: checkpoint [^\n]*damaged.*resumed from [^ ]*ckpt-00000008.h5 at step 8")
  message(FATAL_ERROR "resume past a damaged newest checkpoint: exit ${rc}:\n${out}\n${err}")
endif()
