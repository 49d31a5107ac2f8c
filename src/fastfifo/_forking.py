"""multiprocessing's pickling (``ForkingPickler``), as ``fastfifo.Queue`` uses it by default.

``ForkingPickler.dumps(obj)`` makes a ``BytesIO``, a pickler and a copy of its dispatch
table for every object: for a small object that costs four times the pickling itself.
``forking_dumps`` keeps one pickler per thread and gives the same bytes:

* the same pickler: ``ForkingPickler`` is ``pickle.Pickler`` (the C one) plus a dispatch
  table, with no ``reducer_override`` or ``persistent_id`` of its own;
* the same protocol: ``pickle.DEFAULT_PROTOCOL`` (``ForkingPickler.dumps``' default);
* the same dispatch table: ``copyreg.dispatch_table`` overlaid by the reducers
  registered with ``ForkingPickler.register`` (``multiprocessing.reduction.register``),
  looked up when each object is pickled (a live view, so later registrations count);
* a fresh memo for every object (``clear_memo()``), so each message stands alone.

tests/test_queue_pickling.py compares the bytes with ``ForkingPickler.dumps``.
"""

from __future__ import annotations

import collections
import pickle
import threading
from collections.abc import Callable, Iterable
from multiprocessing.reduction import ForkingPickler
from typing import Any

__all__ = ["forking_dumps", "forking_dumps_many"]


class _Sink:
    """The pickler's file: what it writes is kept, as bytes, until taken."""

    __slots__ = ("write",)
    write: Callable[[bytes], object]


class _ThisThread(threading.local):
    # (the reducers table it was made with, its output, clear_memo, dump, [in use])
    tools: tuple[Any, list[bytes], Callable[[], None], Callable[[Any], None], list[bool]] | None
    tools = None


_state = _ThisThread()


def _tools() -> tuple[Any, list[bytes], Callable[[], None], Callable[[Any], None], list[bool]]:
    out: list[bytes] = []
    sink = _Sink()
    sink.write = out.append
    p = pickle.Pickler(sink)  # ForkingPickler.dumps' protocol (None: DEFAULT_PROTOCOL)
    extra = ForkingPickler._extra_reducers  # type: ignore[attr-defined]
    p.dispatch_table = collections.ChainMap(
        extra,
        ForkingPickler._copyreg_dispatch_table,  # type: ignore[attr-defined]
    )
    _state.tools = tools = (extra, out, p.clear_memo, p.dump, [False])
    return tools


def forking_dumps(obj: Any) -> bytes:
    """``bytes(multiprocessing.reduction.ForkingPickler.dumps(obj))``, without its set-up cost."""
    tools = _state.tools
    if tools is None or tools[0] is not ForkingPickler._extra_reducers:  # type: ignore[attr-defined]
        tools = _tools()
    _, out, clear_memo, dump, busy = tools
    if busy[0]:  # re-entered: a __reduce__ that puts into a queue, in this thread
        return bytes(ForkingPickler.dumps(obj))
    busy[0] = True
    try:
        clear_memo()
        dump(obj)
        data = out[0] if len(out) == 1 else b"".join(out)
        return data
    except BaseException:
        _state.tools = None  # never reuse a pickler that a failure interrupted
        raise
    finally:
        out.clear()
        busy[0] = False


def forking_dumps_many(objs: Iterable[Any]) -> list[bytes]:
    """``[forking_dumps(o) for o in objs]``, paying the per-thread set-up once."""
    tools = _state.tools
    if tools is None or tools[0] is not ForkingPickler._extra_reducers:  # type: ignore[attr-defined]
        tools = _tools()
    _, out, clear_memo, dump, busy = tools
    if busy[0]:
        return [bytes(ForkingPickler.dumps(o)) for o in objs]
    busy[0] = True
    result: list[bytes] = []
    append = result.append
    join = b"".join
    try:
        for obj in objs:
            clear_memo()
            dump(obj)
            append(out[0] if len(out) == 1 else join(out))
            out.clear()
        return result
    except BaseException:
        _state.tools = None
        raise
    finally:
        out.clear()
        busy[0] = False
