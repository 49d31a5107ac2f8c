# Declarations only: C names that Cython does not ship in posix.* / libc.* (poll.h,
# flock, signal masks, the timed PyThread lock) and the helpers in _posix.h.

from posix.types cimport sigset_t

cdef extern from "<time.h>" nogil:
    struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    enum:
        CLOCK_MONOTONIC

cdef extern from "<poll.h>" nogil:
    ctypedef unsigned long nfds_t
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, nfds_t nfds, int timeout)
    enum:
        POLLIN
        POLLOUT
        POLLERR
        POLLHUP
        POLLNVAL

cdef extern from "<signal.h>" nogil:
    int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
    int sigemptyset(sigset_t *set)
    int sigaddset(sigset_t *set, int signo)
    int sigismember(const sigset_t *set, int signo)
    enum:
        SIGPIPE
        SIG_BLOCK
        SIG_SETMASK

cdef extern from "pythread.h":
    ctypedef void *PyThread_type_lock
    ctypedef enum PyLockStatus:
        PY_LOCK_FAILURE
        PY_LOCK_ACQUIRED
        PY_LOCK_INTR
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock lock, long long microseconds,
                                             int intr_flag) nogil

cdef extern from "<sys/file.h>" nogil:
    int flock(int fd, int operation)
    enum:
        LOCK_EX
        LOCK_NB
        LOCK_UN

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    Py_ssize_t writev(int fd, const iovec *iov, int count)
    Py_ssize_t readv(int fd, const iovec *iov, int count)

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<fcntl.h>" nogil:
    enum:
        F_RDLCK
        F_WRLCK
        F_UNLCK

cdef extern from "_posix.h" nogil:
    enum:
        FASTFIFO_HAVE_TEE
        FASTFIFO_HAVE_OFD
        FASTFIFO_HAVE_VMSPLICE
    int fastfifo_sleep_on(int fd, long us)
    void fastfifo_consume_sigpipe()
    Py_ssize_t fastfifo_tee(int fd_in, int fd_out, size_t n)
    Py_ssize_t fastfifo_splice(int fd_in, int fd_out, size_t n)
    Py_ssize_t fastfifo_vmsplice(int fd, const iovec *iov, int count)
    void fastfifo_populate(char *p, size_t n)
    int fastfifo_ofd_lock(int fd, short type)
    int fastfifo_ofd_held(int fd)
    int fastfifo_select_in(int fd, int wake, int ms, int *fd_ready, int *wake_ready)
    int fastfifo_cpus()
    int fastfifo_ofd_lock_at(int fd, short type, long at)
    int fastfifo_ofd_held_at(int fd, long at, long len)
    Py_ssize_t fastfifo_bytes_waiting(int fd)
    Py_ssize_t fastfifo_pipe_size(int fd)
    int fastfifo_blocking_twin(int fd)
    int fastfifo_single_thread()
