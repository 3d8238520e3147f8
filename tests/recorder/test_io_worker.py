"""The I/O worker that keeps a hung disk's write off the recording thread: a call that does not return within the
stall bound fails with WriteStalled and is abandoned (its daemon thread left where it is), later calls fail at once
rather than queue behind it, and once it returns the worker releases what it held and takes jobs again. The
hang here is a thread blocked on an event (tests/recorder/test_disk_hang.py hangs a real block device)."""
from __future__ import annotations

import errno
import threading
import time

import pytest

from recorder.errors import StorageError
from recorder.io_worker import IoWorker, WriteStalled
from support.waiting import wait_for

STALL_S = 0.3


def test_a_call_returns_its_result_or_raises_its_error_in_the_caller():
    worker = IoWorker("test", stall_s=5)
    assert worker.call(lambda x, y: x + y, 2, 3) == 5
    with pytest.raises(StorageError, match="no room"):
        worker.call(lambda: (_ for _ in ()).throw(StorageError(errno.ENOSPC, "no room")))
    assert worker.call(threading.current_thread) is not threading.current_thread()
    assert worker.call(lambda: threading.current_thread().daemon)
    worker.close()


def test_a_call_that_hangs_is_abandoned_after_the_bound_and_the_worker_comes_back_when_it_returns():
    worker, device = IoWorker("disk X", stall_s=STALL_S), threading.Event()
    released = []
    began = time.monotonic()
    with pytest.raises(WriteStalled, match=r"writes hang: no write finished in \d+ s \(disk X\)") as caught:
        worker.call(device.wait)
    assert caught.value.errno == errno.ETIMEDOUT
    assert time.monotonic() - began < STALL_S + 5  # bounded (the margin is for a loaded machine)
    assert worker.stuck
    began = time.monotonic()
    with pytest.raises(WriteStalled):
        worker.call(lambda: "never run")  # fails at once: no second thread waits behind the stuck one
    assert time.monotonic() - began < STALL_S
    assert worker.after_stall(lambda: released.append(threading.current_thread().name))

    device.set()  # the device answers again
    wait_for(lambda: not worker.stuck, what="the stuck call to return")
    wait_for(lambda: released, what="the release to run")
    assert released == ["io disk X"]  # on the worker's thread, after the stuck call
    assert worker.call(lambda: "again") == "again"
    assert not worker.after_stall(lambda: None)  # nothing stuck: the caller releases things itself
    worker.close()


def test_queued_jobs_run_in_order_and_a_full_queue_waits_while_the_disk_moves_then_a_hang_drops_it():
    worker, device, order = IoWorker("disk Y", stall_s=STALL_S, max_queued=2), threading.Event(), []
    worker.submit(order.append, 1)
    worker.submit(order.append, 2)
    assert [ok for ok, _ in worker.wait_all()] == [True, True] and order == [1, 2]

    worker.submit(device.wait)  # the disk stops answering with this one
    wait_for(lambda: worker._busy_since is not None, what="the hanging job to start")
    worker.submit(order.append, 3)
    worker.submit(order.append, 4)  # the queue (2) is full now
    began = time.monotonic()
    with pytest.raises(WriteStalled):
        worker.submit(order.append, 5)  # waits for room while the disk might move, then gives up
    assert STALL_S * 0.5 <= time.monotonic() - began < STALL_S + 5
    assert worker.stuck and worker.settle() == []  # what was queued behind the hang is dropped
    device.set()
    wait_for(lambda: not worker.stuck, what="the hung job to return")
    assert worker.call(lambda: "after") == "after" and order == [1, 2]  # the dropped jobs never ran
    worker.close()
