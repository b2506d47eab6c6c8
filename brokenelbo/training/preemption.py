"""Preemption: SIGTERM stops training at the next step boundary, after a checkpoint.

Schedulers (Slurm, Kubernetes, most cloud managers) send SIGTERM some seconds before they
kill a job. While `StopOnSigterm` is active, SIGTERM does not end the process: it sets a
flag, and a `tf.Variable` that the compiled training loop reads before every step, so that a
compiled call of many steps returns after the step in progress. The training loop then
saves a checkpoint and raises `errors.Preempted` (exit status 75); rerunning the same command
continues from that step exactly.

Python runs signal handlers only between bytecodes of the main thread, which sits in
TensorFlow's C++ during a compiled call; the signal therefore wakes a watcher thread
(through `signal.set_wakeup_fd`), which sets the flag and the variable at once. The Python
handler itself does nothing: called in the main thread at an arbitrary point (possibly
inside TensorFlow's Python code, under its locks), it must not run TensorFlow ops or take
locks.
"""

import os
import signal
import threading

from absl import logging

_SHUTDOWN = b'\0'  # Written by `__exit__` to end the watcher; no signal has number 0.


class StopOnSigterm:
  """Within the block, SIGTERM requests a stop instead of ending the process.

  Outside the main thread (where Python cannot install handlers) it does nothing and
  `requested` stays false.

  Attributes:
    requested: `threading.Event`, set once SIGTERM arrived.
  """

  def __init__(self):
    self.requested = threading.Event()
    self._variables = []
    self._lock = threading.Lock()
    self._active = False

  def attach(self, variable):
    """`variable` (a boolean `tf.Variable`) is set to true on a request, now if one came."""
    with self._lock:
      self._variables.append(variable)
      if self.requested.is_set():
        variable.assign(True)

  def _request(self):
    with self._lock:
      if not self.requested.is_set():
        logging.warning('SIGTERM: stopping at the next step boundary, after a checkpoint.')
      self.requested.set()
      for variable in self._variables:
        variable.assign(True)

  def _watch(self):
    while True:
      data = os.read(self._read_fd, 16)
      if not data or _SHUTDOWN in data:
        return
      if bytes([signal.SIGTERM]) in data:
        self._request()

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self
    self._read_fd, self._write_fd = os.pipe()
    os.set_blocking(self._write_fd, False)
    # A Python handler must be set for the wakeup fd to be written; the watcher acts.
    self._previous_handler = signal.signal(signal.SIGTERM, lambda *_: None)
    self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
    self._watcher = threading.Thread(target=self._watch, name='sigterm-watcher', daemon=True)
    self._watcher.start()
    self._active = True
    return self

  def __exit__(self, *exc_info):
    if not self._active:
      return
    signal.set_wakeup_fd(self._previous_wakeup_fd)
    signal.signal(signal.SIGTERM, self._previous_handler)
    os.write(self._write_fd, _SHUTDOWN)
    self._watcher.join()
    os.close(self._read_fd)
    os.close(self._write_fd)
    self._active = False

