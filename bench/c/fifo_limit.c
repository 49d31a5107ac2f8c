/*
 * fifo_limit.c: the C limit for fastfifo's benchmark suite.
 *
 * The same wire format as the hand-written os.read baseline in bench/: each
 * message is a 4-byte little-endian length followed by the payload.  The
 * payload layout is bench/messages.py's: an 8-byte little-endian index at the
 * start and at the end, and a fixed filler between (byte j = (j * 7 + 0x5A) & 0xFF).
 *
 * usage:
 *   fifo_limit write PATH COUNT SIZE FIRST MODE
 *       send messages FIRST .. FIRST+COUNT-1; MODE is
 *         single   one write() per message
 *         packed   frames packed into 64 KiB writes (one writer only)
 *         atomic   frames packed into writes of at most PIPE_BUF (safe with many writers)
 *   fifo_limit read PATH COUNT SIZE
 *       read()s 1 MiB at a time, parses COUNT frames and checks that every index
 *       in [0, COUNT) arrived exactly once and intact
 *   fifo_limit pong REQ RESP COUNT SIZE         echo COUNT messages back
 *   fifo_limit ping REQ RESP COUNT SIZE WARMUP  send, wait for the echo, time each round trip
 *
 * Every mode prints one line of key=value pairs on stdout: start/end (CLOCK_MONOTONIC,
 * ns), status (ok or what went wrong) and, for ping, the round-trip median and p99.
 * Readers open their FIFO O_RDWR first (never blocks, never sees EOF), writers open
 * O_WRONLY after, so the open order cannot deadlock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (1 << 20)
#define PACK_CHUNK (1 << 16)
#define PIPE_SIZE (1 << 20)

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
    printf("status=%s:%s\n", what, strerror(errno));
    exit(1);
}

static int open_fifo(const char *path, int flags) {
    int fd;
    do {
        fd = open(path, flags | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        die("open");
#ifdef F_SETPIPE_SZ
    /* A 1 MiB pipe (the unprivileged maximum) roughly doubles bulk throughput; ignore failure. */
    (void)fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE);
#endif
    return fd;
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        p += r;
        n -= (size_t)r;
    }
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* A frame template: length prefix + filler; write_frame() stamps the index in. */
static uint8_t *make_template(size_t size) {
    uint8_t *t = malloc(size + 4);
    if (!t)
        die("malloc");
    put_u32(t, (uint32_t)size);
    for (size_t j = 0; j < size; j++)
        t[4 + j] = (uint8_t)((j * 7 + 0x5A) & 0xFF);
    return t;
}

static void write_frame(uint8_t *dst, const uint8_t *tmpl, size_t size, uint64_t index) {
    memcpy(dst, tmpl, size + 4);
    put_u64(dst + 4, index);
    put_u64(dst + 4 + size - 8, index);
}

static int do_write(const char *path, uint64_t count, size_t size, uint64_t first,
                    const char *mode) {
    size_t frame = size + 4;
    size_t limit = strcmp(mode, "atomic") == 0 ? PIPE_BUF : PACK_CHUNK;
    int single = strcmp(mode, "single") == 0;
    if (!single && frame > limit)
        limit = frame;  /* a message larger than the pack size goes out alone */
    uint8_t *tmpl = make_template(size);
    uint8_t *buf = malloc(limit > frame ? limit : frame);
    if (!buf)
        die("malloc");
    int fd = open_fifo(path, O_WRONLY);
    int64_t start = now_ns();
    size_t used = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (single) {
            write_frame(buf, tmpl, size, first + i);
            write_all(fd, (const char *)buf, frame);
            continue;
        }
        if (used + frame > limit) {
            write_all(fd, (const char *)buf, used);
            used = 0;
        }
        write_frame(buf + used, tmpl, size, first + i);
        used += frame;
    }
    if (used)
        write_all(fd, (const char *)buf, used);
    int64_t end = now_ns();
    close(fd);
    printf("status=ok start=%lld end=%lld\n", (long long)start, (long long)end);
    return 0;
}

/* Checks one payload; returns NULL or what is wrong with it. */
static const char *check(const uint8_t *p, size_t len, size_t size, const uint8_t *tmpl,
                         uint64_t count, uint8_t *seen) {
    if (len != size)
        return "wrong-length";
    uint64_t head = get_u64(p), tail = get_u64(p + size - 8);
    if (head != tail)
        return "torn(head!=tail)";
    if (size > 16 && memcmp(p + 8, tmpl + 4 + 8, size - 16) != 0)
        return "corrupt-filler";
    if (head >= count)
        return "unknown-index";
    if (seen[head])
        return "duplicate";
    seen[head] = 1;
    return NULL;
}

static int do_read(const char *path, uint64_t count, size_t size) {
    uint8_t *tmpl = make_template(size);
    uint8_t *seen = calloc(count ? count : 1, 1);
    size_t cap = READ_CHUNK + size + 4;
    uint8_t *buf = malloc(cap);
    if (!seen || !buf)
        die("malloc");
    int fd = open_fifo(path, O_RDWR);
    const char *bad = NULL;
    uint64_t got = 0, bad_count = 0;
    size_t have = 0;
    int64_t start = now_ns();
    while (got < count) {
        ssize_t r = read(fd, buf + have, READ_CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        have += (size_t)r;
        size_t pos = 0;
        while (have - pos >= 4) {
            size_t len = get_u32(buf + pos);
            if (len > size) {
                bad = "bad-length-prefix";
                goto done;
            }
            if (have - pos - 4 < len)
                break;
            const char *why = check(buf + pos + 4, len, size, tmpl, count, seen);
            if (why) {
                bad = why;
                bad_count++;
            }
            pos += 4 + len;
            got++;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
done:;
    int64_t end = now_ns();
    close(fd);
    if (bad)
        printf("status=FAIL:%s(%llu) start=%lld end=%lld received=%llu\n", bad,
               (unsigned long long)bad_count, (long long)start, (long long)end,
               (unsigned long long)got);
    else
        printf("status=ok start=%lld end=%lld received=%llu\n", (long long)start,
               (long long)end, (unsigned long long)got);
    return 0;
}

/* Reads one whole frame into buf (which holds size + 4 bytes); returns the payload length. */
static size_t read_frame(int fd, uint8_t *buf, size_t size) {
    size_t have = 0, want = 4;
    while (have < want) {
        ssize_t r = read(fd, buf + have, size + 4 - have);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        have += (size_t)r;
        if (have >= 4) {
            want = 4 + get_u32(buf);
            if (want > size + 4) {
                errno = EPROTO;
                die("bad-length-prefix");
            }
        }
    }
    return want - 4;
}

static int do_pong(const char *req, const char *resp, uint64_t count, size_t size) {
    uint8_t *buf = malloc(size + 4);
    if (!buf)
        die("malloc");
    int in = open_fifo(req, O_RDWR);
    int out = open_fifo(resp, O_WRONLY);
    for (uint64_t i = 0; i < count; i++) {
        size_t len = read_frame(in, buf, size);
        write_all(out, (const char *)buf, len + 4);
    }
    printf("status=ok\n");
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int do_ping(const char *req, const char *resp, uint64_t count, size_t size,
                   uint64_t warmup) {
    uint8_t *tmpl = make_template(size);
    uint8_t *out_buf = malloc(size + 4), *in_buf = malloc(size + 4);
    int64_t *rtt = malloc(sizeof(int64_t) * (count ? count : 1));
    if (!out_buf || !in_buf || !rtt)
        die("malloc");
    int in = open_fifo(resp, O_RDWR);
    int out = open_fifo(req, O_WRONLY);
    const char *bad = NULL;
    int64_t start = now_ns();
    for (uint64_t i = 0; i < warmup + count; i++) {
        write_frame(out_buf, tmpl, size, i);
        int64_t t0 = now_ns();
        write_all(out, (const char *)out_buf, size + 4);
        size_t len = read_frame(in, in_buf, size);
        int64_t t1 = now_ns();
        if (len != size || memcmp(in_buf, out_buf, size + 4) != 0)
            bad = "echo-differs";
        if (i >= warmup)
            rtt[i - warmup] = t1 - t0;
    }
    int64_t end = now_ns();
    qsort(rtt, count, sizeof(int64_t), cmp_i64);
    printf("status=%s start=%lld end=%lld median_ns=%lld p99_ns=%lld\n", bad ? bad : "ok",
           (long long)start, (long long)end, (long long)rtt[count / 2],
           (long long)rtt[(count * 99) / 100]);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 7 && strcmp(argv[1], "write") == 0)
        return do_write(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                        strtoull(argv[5], NULL, 10), argv[6]);
    if (argc == 5 && strcmp(argv[1], "read") == 0)
        return do_read(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
    if (argc == 6 && strcmp(argv[1], "pong") == 0)
        return do_pong(argv[2], argv[3], strtoull(argv[4], NULL, 10),
                       strtoull(argv[5], NULL, 10));
    if (argc == 7 && strcmp(argv[1], "ping") == 0)
        return do_ping(argv[2], argv[3], strtoull(argv[4], NULL, 10),
                       strtoull(argv[5], NULL, 10), strtoull(argv[6], NULL, 10));
    fprintf(stderr, "usage: see the comment at the top of fifo_limit.c\n");
    return 2;
}
