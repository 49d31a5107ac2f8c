#!/bin/sh
# Shell tools and fastfifo on the same FIFOs.
#
#   sh examples/shell_pipeline.sh
#
# Uses the `fastfifo` command if it is on PATH, else `$PYTHON -m fastfifo` (PYTHON
# defaults to python3). Everything happens in a private temporary directory.
set -eu

if command -v fastfifo >/dev/null 2>&1; then
    ff() { fastfifo "$@"; }
else
    ff() { "${PYTHON:-python3}" -m fastfifo "$@"; }
fi

dir=$(mktemp -d)                      # mode 0700: only we can reach the FIFOs in it
trap 'rm -rf "$dir"' EXIT INT TERM

echo "1. shell writers -> fastfifo reader (lines framing)"
ff mkfifo "$dir/in"                   # mode 0600
# recv --until-eof ends like cat once the writer has left. One redirection for the
# whole group: each `> fifo` is one writer, and the reader's stream ends when it closes.
ff recv "$dir/in" --framing lines --until-eof >"$dir/got" &
{
    echo "hello from echo"
    printf 'two\nlines from printf\n'
} >"$dir/in"
wait
sed 's/^/   recv printed: /' "$dir/got"

echo "2. fastfifo writer -> shell reader (cat)"
ff mkfifo "$dir/out"
seq 1 100 | ff send "$dir/out" --framing lines &   # one message per line of stdin
# (send lingers until cat has read everything, then leaves; cat then sees the end)
sum=$(cat "$dir/out" | awk '{ s += $1 } END { print s }')
wait
echo "   cat + awk summed the 100 messages: $sum"

echo "3. a queue that outlives its processes (frames framing)"
ff mkfifo "$dir/jobs"
# The kernel drops what is in a FIFO when the last process closes it. Holding it open
# read-write (fd 3) keeps the queue and its messages while senders and receivers come
# and go, and lets `send` start at once; --linger 0: send need not wait for the queue
# to be worked off, fd 3 keeps it.
exec 3<>"$dir/jobs"
ff send "$dir/jobs" --linger 0 "resize a.jpg" "resize b.jpg" "resize c.jpg"
ff stat "$dir/jobs" --json | grep '"buffered_bytes"' | sed 's/^ */   stat: /'
# --count 1 takes exactly one message and leaves the others in the FIFO;
# --timeout 0 returns at once, with exit status 3 when the queue is empty (--quiet:
# without saying so on stderr, since that is how this loop ends).
while job=$(ff recv "$dir/jobs" --count 1 --timeout 0 --quiet); do
    echo "   worker got: $job"
done
echo "   queue empty (recv exit status 3)"
exec 3>&-

echo "4. binary messages survive a round trip through hex"
ff mkfifo "$dir/bin"
exec 3<>"$dir/bin"
printf '00ff0a41\n' | ff send "$dir/bin" --hex --linger 0   # the bytes 00 ff 0a 41
ff recv "$dir/bin" --count 1 --hex | sed 's/^/   recv --hex: /'
exec 3>&-
echo "done"
