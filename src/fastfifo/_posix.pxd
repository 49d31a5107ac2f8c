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

cdef extern from *:
    """
    #include <signal.h>
    #include <time.h>
    /* Take back the SIGPIPE a failed write queued while SIGPIPE was blocked in this
       thread.  macOS has no sigtimedwait(): there sigpending() says whether one is
       queued and sigwait() takes it without blocking.  (macOS writers also set
       F_SETNOSIGPIPE on the fd, so this is a second line of defence there.) */
    static void fastfifo_consume_sigpipe(void) {
        sigset_t only;
        sigemptyset(&only);
        sigaddset(&only, SIGPIPE);
    #if defined(__APPLE__)
        sigset_t pending;
        int sig;
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
            sigwait(&only, &sig);
    #else
        struct timespec zero = {0, 0};
        sigtimedwait(&only, NULL, &zero);
    #endif
    }
    """
    void fastfifo_consume_sigpipe() nogil
