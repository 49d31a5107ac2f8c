"""The logging cookbook's recipe for several processes, with fastfifo.Queue in it.

``logging.handlers.QueueHandler`` calls ``put_nowait``; with the queue 1 MiB behind that
used to raise ``Full``, logging printed "--- Logging error ---" and the record was gone
(10,017-11,130 of 20,000 records handled).  multiprocessing.Queue loses none; neither
may fastfifo.Queue.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing

import fastfifo

RECORDS = 20_000


class Keep(logging.Handler):
    """The listener's handler: keeps every message, in the order it is handled."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _logger(name: str, q: fastfifo.Queue) -> logging.Logger:
    logger = logging.getLogger(f"fastfifo-test.{name}")
    logger.handlers[:] = [logging.handlers.QueueHandler(q)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def test_no_record_is_lost_from_one_process(capsys):
    q = fastfifo.Queue()
    keep = Keep()
    listener = logging.handlers.QueueListener(q, keep)
    listener.start()
    logger = _logger("one", q)
    for i in range(RECORDS):
        logger.info("record %d of %s", i, "one process", extra={"payload": "p" * 200})
    listener.stop()  # puts the sentinel, then waits for the listener to handle everything
    assert keep.messages == [f"record {i} of one process" for i in range(RECORDS)]
    assert "Logging error" not in capsys.readouterr().err
    q.close()


def _worker(q: fastfifo.Queue, n: int) -> None:
    # The cookbook's worker_configurer + worker_process.
    logger = _logger(multiprocessing.current_process().name, q)
    for i in range(RECORDS // 4):
        logger.warning("worker %d record %d", n, i, extra={"payload": "w" * 200})


def test_no_record_is_lost_from_four_processes(capsys):
    ctx = multiprocessing.get_context("fork")
    q = fastfifo.Queue()
    keep = Keep()
    listener = logging.handlers.QueueListener(q, keep)
    listener.start()
    workers = [ctx.Process(target=_worker, args=(q, n)) for n in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0  # each one waited at exit for its feeder, if it had one
    listener.stop()
    assert len(keep.messages) == RECORDS
    for n in range(4):  # every record, and each worker's in the order it logged them
        mine = [m for m in keep.messages if m.startswith(f"worker {n} ")]
        assert mine == [f"worker {n} record {i}" for i in range(RECORDS // 4)]
    assert "Logging error" not in capsys.readouterr().err
    q.close()
