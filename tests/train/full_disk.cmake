# A full disk during training (a 2.4 MB tmpfs as run.out_dir, a checkpoint every step): the run
# stops with exit 2 and says the disk is full; every HDF5 file under its final name opens and
# carries its digest, no temporary file is left, every stats.jsonl record is whole; with space
# freed, run.resume latest continues from the last good checkpoint. Needs root to mount a tmpfs;
# elsewhere it prints "full-disk test skipped" (reported as skipped).
#   cmake -DDMIS=... -DDECK=... -DDATA=... -DWORK=... -DPYTHON=... -P full_disk.cmake
set(mnt ${WORK}/mnt)
execute_process(COMMAND umount ${mnt} OUTPUT_QUIET ERROR_QUIET)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${mnt})
execute_process(COMMAND mount -t tmpfs -o size=2400k tmpfs ${mnt} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message("full-disk test skipped: cannot mount a tmpfs here (${err})")
  return()
endif()
set(failure "")
set(common ${DECK} --set data.path=${DATA} --set run.out_dir=${mnt} --set run.name=full
           --set run.checkpoint_every=1 --set run.log_every=1)
execute_process(COMMAND ${DMIS} train ${common} --set train.steps=8
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "no space left on device")
  set(failure "training onto a full disk: exit ${rc}, expected 2 and 'no space left on device':\n${out}\n${err}")
endif()
if(NOT failure)
  # every file under a final name reads and verifies; nothing temporary is left
  execute_process(COMMAND ${PYTHON} -c "
import glob, json, sys, h5py
d = sys.argv[1]
assert not glob.glob(d + '/*.tmp'), glob.glob(d + '/*.tmp')
for p in sorted(glob.glob(d + '/*.h5')):
    with h5py.File(p, 'r') as f:
        if 'ckpt-' in p or 'ema-' in p:
            assert 'digest' in f.attrs, p + ': no digest'
        for k in f: f[k]
for line in open(d + '/stats.jsonl'):
    json.loads(line)
print(len(glob.glob(d + '/ckpt-*.h5')), 'checkpoints')
" ${mnt}/full RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    set(failure "files left by the full disk: ${out}\n${err}")
  endif()
endif()
if(NOT failure)
  execute_process(COMMAND mount -o remount,size=16m ${mnt})
  execute_process(COMMAND ${DMIS} train ${common} --set train.steps=8 --set run.resume=latest
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "resumed from [^ ]*ckpt-[0-9]+.h5")
    set(failure "resume after freeing space: exit ${rc}:\n${out}\n${err}")
  endif()
endif()
execute_process(COMMAND umount ${mnt})
if(failure)
  message(FATAL_ERROR "${failure}")
endif()
