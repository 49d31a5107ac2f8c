# Included by _core.pyx (one extension module; see its docstring for the layout).
# Receive buffers (_Chunk) and zero-copy batches (MessageBatch).

# ---------------------------------------------------------------- reader

cdef class _Chunk:
    """A receive buffer that counts its exports (read-only views handed to users).

    While any view is alive the Reader never moves, reuses or frees these bytes:
    it switches to a fresh chunk instead, and this one is freed with its last view.
    """
    cdef char *data
    cdef Py_ssize_t size
    cdef Py_ssize_t exports

    def __cinit__(self, Py_ssize_t size):
        self.data = <char *>malloc(size)
        if self.data == NULL:
            raise MemoryError()
        self.size = size

    def __dealloc__(self):
        free(self.data)

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.data, self.size, 1, flags)
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self.exports -= 1


cdef class MessageBatch:
    """Messages from ``Reader.get_batch()``, received without copying them.

    ``batch[i]`` and iteration give read-only memoryviews into the Reader's
    receive buffer, made only when asked for.  The bytes stay valid and unchanged
    while the batch (or any view from it) is alive: the Reader reads into a fresh
    buffer meanwhile.  ``tolist()`` copies them out as bytes.
    """
    cdef _Chunk chunk
    cdef Py_ssize_t n, room
    cdef Py_ssize_t *offs
    cdef Py_ssize_t *lens
    cdef dict whole           # index -> bytes for messages that arrived in fragments
    cdef object base

    def __dealloc__(self):
        free(self.offs)
        free(self.lens)
        if self.chunk is not None:
            self.chunk.exports -= 1

    cdef int _reserve(self) except -1:
        cdef Py_ssize_t *o
        cdef Py_ssize_t *ln
        if self.n < self.room:
            return 0
        self.room = max(64, self.room * 2)
        o = <Py_ssize_t *>realloc(self.offs, self.room * sizeof(Py_ssize_t))
        if o == NULL:
            raise MemoryError()
        self.offs = o
        ln = <Py_ssize_t *>realloc(self.lens, self.room * sizeof(Py_ssize_t))
        if ln == NULL:
            raise MemoryError()
        self.lens = ln
        return 0

    cdef int _add(self, _Chunk chunk, Py_ssize_t off, Py_ssize_t length) except -1:
        if self.chunk is None:
            self.chunk = chunk
            chunk.exports += 1
        elif self.chunk is not chunk:  # _get_many never lets the buffer move mid-batch
            raise RuntimeError("fastfifo internal error: a batch spans two buffers")
        self._reserve()
        self.offs[self.n] = off
        self.lens[self.n] = length
        self.n += 1
        return 0

    cdef int _add_bytes(self, object msg) except -1:
        if self.whole is None:
            self.whole = {}
        self._reserve()
        self.whole[self.n] = msg
        self.offs[self.n] = self.lens[self.n] = 0
        self.n += 1
        return 0

    def __len__(self):
        return self.n

    def __getitem__(self, Py_ssize_t i):
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("MessageBatch index out of range")
        if self.whole is not None and i in self.whole:
            return memoryview(self.whole[i])
        if self.base is None:
            self.base = memoryview(self.chunk)
        return self.base[self.offs[i]:self.offs[i] + self.lens[i]]

    def __iter__(self):
        cdef Py_ssize_t i
        for i in range(self.n):
            yield self[i]

    def tolist(self):
        """The messages as a list of bytes (copies)."""
        cdef Py_ssize_t i
        return [bytes(self[i]) for i in range(self.n)]

    def __repr__(self):
        return f"<fastfifo.MessageBatch of {self.n} messages>"
