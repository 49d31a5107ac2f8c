# C declarations that Cython does not ship in posix.* / libc.* (poll.h, pipe
# sizing, flock, tee, signal masks, the timed PyThread lock).  Logic lives in
# _core.pyx; this file only names things.

from posix.types cimport sigset_t

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

cdef extern from "<time.h>" nogil:
    struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    enum:
        CLOCK_MONOTONIC

cdef extern from "<signal.h>" nogil:
    ctypedef struct siginfo_t:
        pass
    int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
    int sigtimedwait(const sigset_t *set, siginfo_t *info, const timespec *timeout)
    int sigemptyset(sigset_t *set)
    int sigaddset(sigset_t *set, int signo)
    int sigismember(const sigset_t *set, int signo)
    int sigpending(sigset_t *set)
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
