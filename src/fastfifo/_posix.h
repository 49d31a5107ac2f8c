/* C helpers of the compiled core (declared for Cython in _posix.pxd).
 *
 * Small wrappers over system calls whose availability or shape differs between Linux
 * and macOS, compiled to stubs where a feature is missing so the module always builds;
 * FASTFIFO_HAVE_TEE / FASTFIFO_HAVE_OFD tell the core what exists.
 */
#ifndef FASTFIFO_POSIX_H
#define FASTFIFO_POSIX_H

#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>
#include <stdint.h>

/* Sleep up to `us` microseconds or until `fd` is readable (1), 0 on timeout, -1 with
   errno (EINTR: a signal arrived).  Linux has ppoll() with a timespec; elsewhere poll()
   rounds up to whole milliseconds. */
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

/* Take back the SIGPIPE a failed write queued while SIGPIPE was blocked in this thread.
   macOS has no sigtimedwait(): there sigpending() says whether one is queued and
   sigwait() takes it without blocking.  (macOS writers also set F_SETNOSIGPIPE on the
   fd, so this is a second line of defence there.) */
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

/* Linux-only pieces: tee() to peek at a FIFO without consuming, splice() to consume
   without copying. */
#if defined(__linux__)
#  define FASTFIFO_HAVE_TEE 1
static Py_ssize_t fastfifo_tee(int in, int out, size_t n) {
    return tee(in, out, n, SPLICE_F_NONBLOCK);
}
static Py_ssize_t fastfifo_splice(int in, int out, size_t n) {
    return splice(in, NULL, out, NULL, n, 0);
}
/* Hand pages of this process's memory to the pipe (no copy): the pipe refers to them
   until a reader takes them, so they must not change until then (see
   WriterCore._burst_pages, which sends only from pages it will not touch again before
   the pipe has surely let them go). */
#  include <sys/uio.h>
#  define FASTFIFO_HAVE_VMSPLICE 1
static Py_ssize_t fastfifo_vmsplice(int fd, const struct iovec *iov, int count) {
    return vmsplice(fd, iov, (unsigned long)count, SPLICE_F_NONBLOCK);
}
/* Fault in the whole pages of [p, p + n) for writing, in one call (MADV_POPULATE_WRITE,
   Linux 5.14), before a read() fills them: a fresh message's pages are otherwise faulted
   one by one inside the copy, with the pipe's mutex held.  Best effort: a kernel without
   it (EINVAL) is not asked again; any other failure leaves the faults to the copy. */
#  include <sys/mman.h>
#  ifndef MADV_POPULATE_WRITE
#    define MADV_POPULATE_WRITE 23
#  endif
static int fastfifo_populate_off = 0;
static void fastfifo_populate(char *p, size_t n) {
    static uintptr_t page = 0;
    uintptr_t lo, hi;
    int saved = errno;
    if (fastfifo_populate_off)
        return;
    if (page == 0) {
        long ps = sysconf(_SC_PAGESIZE);
        page = ps > 0 ? (uintptr_t)ps : 4096;
    }
    lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    hi = ((uintptr_t)p + n) & ~(page - 1);
    if (hi > lo && madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
        fastfifo_populate_off = 1;
    errno = saved;
}
#else
#  define FASTFIFO_HAVE_TEE 0
#  define FASTFIFO_HAVE_VMSPLICE 0
static void fastfifo_populate(char *p, size_t n) { (void)p; (void)n; }
struct iovec;
static Py_ssize_t fastfifo_tee(int in, int out, size_t n) { errno = ENOSYS; return -1; }
static Py_ssize_t fastfifo_splice(int in, int out, size_t n) { errno = ENOSYS; return -1; }
static Py_ssize_t fastfifo_vmsplice(int fd, const struct iovec *iov, int count) {
    errno = ENOSYS; return -1;
}
#endif

/* Open-file-description locks: released when the holder dies, and independent of
   flock(), so the readers' and the writers' locks never interact. */
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

/* A lock of `type` (F_RDLCK, F_WRLCK, F_UNLCK) on byte `at`; non-blocking. */
static int fastfifo_ofd_lock_at(int fd, short type, off_t at) {
    struct flock fl = {0};
    fl.l_type = type; fl.l_whence = SEEK_SET; fl.l_start = at; fl.l_len = 1;
    return fcntl(fd, FASTFIFO_SETLK, &fl);
}

/* 1 if some open file description holds the write lock, 0 if not, -1 on error. */
static int fastfifo_ofd_held(int fd) {
    struct flock fl = {0};
    fl.l_type = F_WRLCK; fl.l_whence = SEEK_SET; fl.l_start = 0; fl.l_len = 1;
    if (fcntl(fd, FASTFIFO_GETLK, &fl) < 0) return -1;
    return fl.l_type != F_UNLCK;
}

/* Wait until `fd` is readable (data, or on macOS the last writer closed) or `wake` is:
   select(), because macOS's poll() and kqueue never report that the last writer of a
   FIFO left, while select() does (XNU fifo_select -> soo_select sees SS_CANTRCVMORE).
   ms < 0 waits for ever.  Returns select()'s result with *fd_ready / *wake_ready set,
   -1 with errno, or -2 when a descriptor is too large for an fd_set (FD_SETSIZE), where
   the caller must fall back to poll(). */
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

/* 1 if another open file description holds a lock on bytes [at, at + len) (len 0: to
   the end), 0 if not, -1 on error. */
static int fastfifo_ofd_held_at(int fd, off_t at, off_t len) {
    struct flock fl = {0};
    fl.l_type = F_WRLCK; fl.l_whence = SEEK_SET; fl.l_start = at; fl.l_len = len;
    if (fcntl(fd, FASTFIFO_GETLK, &fl) < 0) return -1;
    return fl.l_type != F_UNLCK;
}

/* Bytes waiting in the pipe behind `fd` (FIONREAD), or -1. */
#include <sys/ioctl.h>
static Py_ssize_t fastfifo_bytes_waiting(int fd) {
    int n = 0;
    return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

/* The pipe's capacity in bytes now (F_GETPIPE_SZ: another process may have changed it
   since this one opened the FIFO), or -1 where the kernel does not tell it. */
static Py_ssize_t fastfifo_pipe_size(int fd) {
#ifdef F_GETPIPE_SZ
    return fcntl(fd, F_GETPIPE_SZ);
#else
    (void)fd;
    return -1;
#endif
}

/* How many CPUs this thread may run on (its affinity; the online CPUs where there is no
   affinity API): with one, a reader that spins waiting for a writer only steals the CPU
   the writer needs. */
#if defined(__linux__)
#include <sched.h>
static int fastfifo_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
    return CPU_COUNT(&set);
}
#else
static int fastfifo_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
#endif

/* A second open file description of the FIFO behind `fd`, for reading, in blocking mode
   (Linux: /proc/self/fd re-opens the inode); -1 with errno where that cannot be had.
   The reader's own description stays non-blocking, and so does every description
   another process shares with it: only this private one ever blocks. */
static int fastfifo_blocking_twin(int fd) {
#if defined(__linux__)
    char path[64];
    int twin, flags;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    twin = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (twin < 0)
        return -1;
    flags = fcntl(twin, F_GETFL);
    if (flags < 0 || fcntl(twin, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        int err = errno;
        close(twin);
        errno = err;
        return -1;
    }
    return twin;
#else
    (void)fd;
    errno = ENOSYS;
    return -1;
#endif
}

/* Whether this interpreter has one thread state: no other Python thread can then call
   close() on an endpoint while this one waits. */
static int fastfifo_single_thread(void) {
    PyThreadState *head = PyInterpreterState_ThreadHead(PyInterpreterState_Get());
    return head != NULL && PyThreadState_Next(head) == NULL;
}

#endif /* FASTFIFO_POSIX_H */
