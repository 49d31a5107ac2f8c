"""fastfifo's benchmark suite: fastfifo against its peers, with delivery checked on every run.

Run it with ``python bench/run.py --help``.  The modules are importable
(``bench.quick.run_quick()`` is the small subset a ``fastfifo bench`` command can
copy); nothing in ``src/fastfifo`` imports them.

Layout
------
messages   payloads that carry their own index, and the exactly-once/intact checks
peer       the interface every peer implements, and the monotonic clock used by all
peers_fifo fastfifo and the hand-written ``os.read`` frame reader (both over FIFOs)
peers_std  multiprocessing ``Queue``, ``SimpleQueue`` and ``Pipe``
peers_ext  faster-fifo, pyzmq PUSH/PULL over ``ipc://``, posix_ipc ``MessageQueue``
climit     the C writer/reader (``c/fifo_limit.c``), the limit
harness    runs one measurement in real processes, calibrates counts, repeats
workloads  the rows (workloads) and the peer list
report     markdown table, JSON, PNG plot, targets of issue 4, machine details
quick      the quick subset
run        the command line
"""
