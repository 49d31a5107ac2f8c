/*
 * claim_limit.c: what C reaches when several readers share one FIFO and each read
 * takes exactly one message (the "4->4 64 B, one at a time" row of bench/run.py),
 * with three ways of making each message go to exactly one reader.
 *
 *   flock   fastfifo's claim: flock(LOCK_EX) on the FIFO, tee() the 8-byte header
 *           into a private pipe, read it back, read() exactly that frame, flock(LOCK_UN).
 *           Five system calls; works with any writer whose writes are atomic (shell
 *           tools too); a reader killed at any point leaves the stream whole.
 *   mutex   the same claim under a robust process-shared pthread mutex in shared
 *           memory instead of flock: no system call when the mutex is free.  Here the
 *           memory is an anonymous mapping inherited through fork(); a named FIFO
 *           would need a home every reader of any user finds (DESIGN.md section 4).
 *   packet  writers set O_DIRECT (packet mode), readers read(fd, buf, 4096) with no
 *           lock: each read returns one writer's write.  One system call, but one
 *           writer without O_DIRECT (echo, cat, printf) makes reads split its data.
 *
 * usage: claim_limit MODE READERS WRITERS COUNT_PER_WRITER SIZE
 *
 * Each message is an 8-byte header (u32 payload length, u32 index) and SIZE bytes of
 * payload; writers send indices w*COUNT .. w*COUNT+COUNT-1 with one write() each.
 * Readers add up the count and the indices they took in shared memory; the run is
 * "ok" only if every index arrived exactly once (count and sum) and every frame was
 * whole.  Prints one line: mode, readers, writers, messages, seconds, rate, status.
 * The clock runs from the moment every process is ready to the last reader's exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { FLOCK, MUTEX, PACKET };

struct shared {
    pthread_mutex_t mutex;
    atomic_long taken;
    atomic_ullong index_sum;
    atomic_int ready;
    atomic_int bad;
};

static struct shared *sh;
static int mode, parties;
static long total;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    printf("status=%s:%s\n", what, strerror(errno));
    exit(1);
}

static void meet(void) {
    atomic_fetch_add(&sh->ready, 1);
    while (atomic_load(&sh->ready) < parties)
        ;
}

static void writer(const char *path, long first, long count, uint32_t size) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        die("open writer");
    if (mode == PACKET && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_DIRECT) != 0)
        die("O_DIRECT");
    size_t frame = 8 + (size_t)size;
    char *msg = calloc(1, frame);
    memcpy(msg, &size, 4);
    meet();
    for (long i = first; i < first + count; i++) {
        uint32_t index = (uint32_t)i;
        memcpy(msg + 4, &index, 4);
        if (write(fd, msg, frame) != (ssize_t)frame)
            die("write");
    }
    exit(0);
}

static void lock(int fd) {
    if (mode == FLOCK) {
        while (flock(fd, LOCK_EX) != 0)
            if (errno != EINTR)
                die("flock");
    } else if (pthread_mutex_lock(&sh->mutex) == EOWNERDEAD) {
        pthread_mutex_consistent(&sh->mutex);  /* the stream is whole: see flock above */
    }
}

static void unlock(int fd) {
    if (mode == FLOCK)
        flock(fd, LOCK_UN);
    else
        pthread_mutex_unlock(&sh->mutex);
}

static void took(const char *frame, ssize_t got, uint32_t size) {
    uint32_t length, index;
    memcpy(&length, frame, 4);
    memcpy(&index, frame + 4, 4);
    if (got != (ssize_t)(8 + size) || length != size)
        atomic_store(&sh->bad, 1);
    atomic_fetch_add(&sh->index_sum, index);
    atomic_fetch_add(&sh->taken, 1);
}

static void reader(const char *path, uint32_t size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int peek[2];
    if (fd < 0 || pipe2(peek, O_NONBLOCK | O_CLOEXEC) != 0)
        die("open reader");
    char buf[8192];
    meet();
    while (atomic_load(&sh->taken) < total && !atomic_load(&sh->bad)) {
        if (mode == PACKET) {
            ssize_t got = read(fd, buf, 4096);
            if (got > 0) {
                took(buf, got, size);
                continue;
            }
        } else {
            lock(fd);
            ssize_t seen = tee(fd, peek[1], 8, SPLICE_F_NONBLOCK);
            if (seen == 8 && read(peek[0], buf, 8) == 8) {
                uint32_t length;
                memcpy(&length, buf, 4);
                ssize_t got = read(fd, buf, 8 + (size_t)length);
                unlock(fd);
                took(buf, got, size);
                continue;
            }
            if (seen > 0 && read(peek[0], buf, (size_t)seen) != seen)
                die("drain");
            unlock(fd);
        }
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 10);
    }
    exit(0);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s flock|mutex|packet READERS WRITERS COUNT SIZE\n", argv[0]);
        return 2;
    }
    mode = !strcmp(argv[1], "flock") ? FLOCK : !strcmp(argv[1], "mutex") ? MUTEX : PACKET;
    int readers = atoi(argv[2]), writers = atoi(argv[3]);
    long count = atol(argv[4]);
    uint32_t size = (uint32_t)atol(argv[5]);
    if (8 + size > 4096) {
        fprintf(stderr, "SIZE must be at most 4088 (one atomic write)\n");
        return 2;
    }
    parties = readers + writers;
    total = count * writers;

    char dir[] = "/tmp/claim-limit-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp");
    char path[64];
    snprintf(path, sizeof path, "%s/q", dir);
    if (mkfifo(path, 0600) != 0)
        die("mkfifo");
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->mutex, &attr);
    int keep = open(path, O_RDWR | O_CLOEXEC);  /* never blocks; keeps the pipe alive */
    if (keep < 0)
        die("open keep");
    fcntl(keep, F_SETPIPE_SZ, 1 << 20);  /* as fastfifo asks; ignore failure */

    for (int r = 0; r < readers; r++)
        if (fork() == 0)
            reader(path, size);
    for (int w = 0; w < writers; w++)
        if (fork() == 0)
            writer(path, (long)w * count, count, size);
    while (atomic_load(&sh->ready) < parties)
        ;
    double start = now();
    int failed = 0, status;
    for (int i = 0; i < parties; i++)
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    double seconds = now() - start;
    unlink(path);
    rmdir(dir);

    unsigned long long want = (unsigned long long)(total - 1) * (unsigned long long)total / 2;
    const char *verdict = failed ? "a process failed"
                          : atomic_load(&sh->bad) ? "a torn frame"
                          : atomic_load(&sh->taken) != total ? "wrong count"
                          : atomic_load(&sh->index_sum) != want ? "lost or duplicated"
                                                                 : "ok";
    printf("mode=%s readers=%d writers=%d messages=%ld seconds=%.6f rate=%.0f status=%s\n",
           argv[1], readers, writers, total, seconds, (double)total / seconds, verdict);
    return strcmp(verdict, "ok") != 0;
}
