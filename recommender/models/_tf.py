"""TensorFlow process set-up: thread pools and a quiet start (package-internal).

TensorFlow is imported only through :func:`configure_tensorflow`, so that
importing :mod:`recommender.models` stays cheap.  Its C++ start-up chatter
(the oneDNN notice, CUDA probing on machines without a GPU) goes to fd 2 and
cannot be switched off from Python; inside a :func:`quiet_startup` block it
is sent to ``/dev/null`` while TensorFlow is imported and initialised.

Nothing here changes process state at import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

from .._utils import cpu_count

__all__ = ["configure_tensorflow", "quiet_startup", "quiet_startup_active"]

logger = logging.getLogger(__name__)

_quiet_depth = 0
_quiet_lock = threading.Lock()


@contextlib.contextmanager
def quiet_startup(enabled: bool = True):
    """Silence TensorFlow's C++ start-up output while the block runs.

    Used by the CLI around a command (and by worker processes when their parent
    was quiet).  The redirection is of file descriptor 2, which is process-wide;
    so is this switch while a block is open.  Nested and concurrent blocks are
    counted; Python exceptions still propagate.

    Parameters
    ----------
    enabled : bool
        ``False`` makes the block a no-op (convenient for ``with quiet_startup(flag):``).
    """
    global _quiet_depth
    if not enabled:
        yield
        return
    with _quiet_lock:
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1


def quiet_startup_active() -> bool:
    """Whether a :func:`quiet_startup` block is open (passed on to worker processes)."""
    return _quiet_depth > 0


@contextlib.contextmanager
def _quiet_stderr(enabled: bool):
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def configure_tensorflow(threads=None):
    """Import TensorFlow; set its thread pools if it is not initialised yet.

    Parameters
    ----------
    threads : int, optional
        Intra-op threads (default: the CPUs this process may use,
        :func:`recommender._utils.cpu_count`); inter-op threads are 2.  Only
        applied if TensorFlow's runtime is not yet initialised.

    Returns
    -------
    module
        The ``tensorflow`` module.
    """
    quiet = quiet_startup_active()
    with _quiet_stderr(quiet):
        import tensorflow as tf

        intra = cpu_count() if threads is None else int(threads)
        try:
            if tf.config.threading.get_intra_op_parallelism_threads() == 0:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            if tf.config.threading.get_inter_op_parallelism_threads() == 0:
                tf.config.threading.set_inter_op_parallelism_threads(2)
        except RuntimeError:  # runtime already initialised by the caller: keep its settings
            logger.debug("TensorFlow already initialised; thread settings left as they are")
        if quiet:
            tf.config.list_logical_devices()  # initialise the runtime (and its device probing) now
    return tf
