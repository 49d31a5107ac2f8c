# C declarations that Cython does not ship in posix.* / libc.* (poll.h, pipe
# sizing, flock, tee, signal masks, the timed PyThread lock).  Logic lives in
# _core.pyx; this file only names things.

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
    /* Sleep up to `us` microseconds or until `fd` is readable (1), 0 on timeout. Linux
       has ppoll() with a timespec; elsewhere poll() rounds up to whole milliseconds. */
    #include <poll.h>
    static int fastfifo_sleep_on(int fd, long us) {
        struct pollfd p;
        p.fd = fd; p.events = POLLIN; p.revents = 0;
    #if defined(__linux__)
        struct timespec ts;
        ts.tv_sec = us / 1000000; ts.tv_nsec = (us % 1000000) * 1000;
        return ppoll(&p, 1, &ts, NULL);
    #else
        return poll(&p, 1, (int)((us + 999) / 1000));
    #endif
    }
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
    int fastfifo_sleep_on(int fd, long us) nogil

cdef extern from "<sys/file.h>" nogil:
    int flock(int fd, int operation)
    enum:
        LOCK_EX
        LOCK_NB
        LOCK_UN

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from *:
    """
    #include <fcntl.h>
    #include <errno.h>
    #include <unistd.h>
    /* Linux-only pieces, compiled to stubs elsewhere so the module still builds:
       tee() to peek at a FIFO without consuming, splice() to consume without
       copying, and open-file-description locks (released when the holder dies,
       independent of flock).  FASTFIFO_HAVE_TEE / _OFD tell the core what exists. */
    #if defined(__linux__)
    #  define FASTFIFO_HAVE_TEE 1
    static Py_ssize_t fastfifo_tee(int in, int out, size_t n) {
        return tee(in, out, n, SPLICE_F_NONBLOCK);
    }
    static Py_ssize_t fastfifo_splice(int in, int out, size_t n) {
        return splice(in, NULL, out, NULL, n, 0);
    }
    #else
    #  define FASTFIFO_HAVE_TEE 0
    static Py_ssize_t fastfifo_tee(int in, int out, size_t n) { errno = ENOSYS; return -1; }
    static Py_ssize_t fastfifo_splice(int in, int out, size_t n) { errno = ENOSYS; return -1; }
    #endif
    #if defined(F_OFD_SETLK)
    #  define FASTFIFO_HAVE_OFD 1
    #  define FASTFIFO_SETLK F_OFD_SETLK
    #  define FASTFIFO_GETLK F_OFD_GETLK
    #else
    #  define FASTFIFO_HAVE_OFD 0
    #  define FASTFIFO_SETLK F_SETLK
    #  define FASTFIFO_GETLK F_GETLK
    #endif
    /* Write lock on byte 0 (type F_WRLCK) or unlock it (F_UNLCK); non-blocking. */
    static int fastfifo_ofd_lock(int fd, short type) {
        struct flock fl = {0};
        fl.l_type = type; fl.l_whence = SEEK_SET; fl.l_start = 0; fl.l_len = 1;
        return fcntl(fd, FASTFIFO_SETLK, &fl);
    }
    /* 1 if some open file description holds the write lock, 0 if not, -1 on error. */
    static int fastfifo_ofd_held(int fd) {
        struct flock fl = {0};
        fl.l_type = F_WRLCK; fl.l_whence = SEEK_SET; fl.l_start = 0; fl.l_len = 1;
        if (fcntl(fd, FASTFIFO_GETLK, &fl) < 0) return -1;
        return fl.l_type != F_UNLCK;
    }
    """
    enum:
        FASTFIFO_HAVE_TEE
        FASTFIFO_HAVE_OFD
        F_WRLCK
        F_UNLCK
    Py_ssize_t fastfifo_tee(int fd_in, int fd_out, size_t n) nogil
    Py_ssize_t fastfifo_splice(int fd_in, int fd_out, size_t n) nogil
    int fastfifo_ofd_lock(int fd, short type) nogil
    int fastfifo_ofd_held(int fd) nogil

cdef extern from *:
    """
    #include <sys/select.h>
    /* Wait until `fd` is readable (data, or on macOS the last writer closed) or `wake`
       is: select(), because macOS's poll() and kqueue never report that the last writer
       of a FIFO left, while select() does (XNU fifo_select -> soo_select sees
       SS_CANTRCVMORE).  ms < 0 waits for ever.  Returns select()'s result with
       *fd_ready / *wake_ready set, -1 with errno, or -2 when a descriptor is too large
       for an fd_set (FD_SETSIZE), where the caller must fall back to poll(). */
    static int fastfifo_select_in(int fd, int wake, int ms, int *fd_ready, int *wake_ready) {
        fd_set rfds;
        struct timeval tv, *tvp = NULL;
        int r;
        if (fd < 0 || wake < 0 || fd >= FD_SETSIZE || wake >= FD_SETSIZE) return -2;
        FD_ZERO(&rfds);
        FD_SET(fd, &rfds);
        FD_SET(wake, &rfds);
        if (ms >= 0) {
            tv.tv_sec = ms / 1000;
            tv.tv_usec = (ms % 1000) * 1000;
            tvp = &tv;
        }
        r = select((fd > wake ? fd : wake) + 1, &rfds, NULL, NULL, tvp);
        *fd_ready = r > 0 && FD_ISSET(fd, &rfds);
        *wake_ready = r > 0 && FD_ISSET(wake, &rfds);
        return r;
    }
    """
    int fastfifo_select_in(int fd, int wake, int ms, int *fd_ready, int *wake_ready) nogil
