#!/bin/sh
# vow map as a stream, and the Python worker as users meet it: results
# before the input ends, memory bounded by a window, --bar for any input,
# a Python exception's type and traceback, numpy values, values that
# cannot be sent, and a python3 without the msgpack module.
#   map_stream_test.sh VOW_BINARY PLUGIN.so EXAMPLES_DIR
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
EXAMPLES=$3
in_tmpdir
WORKER="$EXAMPLES/python/vow_worker.py"
PY="/usr/bin/python3 $WORKER $EXAMPLES/python/tasks.py"
echo() { printf '%s\n' "$*"; } # dash's echo would read \n in JSON

# A result is out as soon as its line is done, before the input ends:
# the second line is sent only once the first result is out.
rm -f timed
(echo 3; await_output timed >seen; echo 4) |
  $VOW map --worker "$PY" square >timed
check "stream: the first result, before the input ends" "1|9" \
  "$(cat seen)|$(head -1 timed)"
check "stream: then the rest" 16 "$(sed -n 2p timed)"

# A closed stdin is an empty input, a closed stdout a discarded one: no
# crash either way.
$VOW map "$PLUGIN" echo <&-
check "map, stdin closed: no lines, status 0" 0 $?
echo 1 | $VOW map "$PLUGIN" echo >&-
check "map, stdout closed: status 0" 0 $?

# Memory holds a window of lines, not the input: 2M lines through a file
# and through a pipe, every result right, in order.
seq 2000000 >big
hwm=$(PEAK_IN=big PEAK_OUT=out peak_kb $VOW map "$PLUGIN" echo)
check "2M lines: status" 0 "$(cat peak.status)"
check "2M lines: every result, in order" "$(cksum <big)" "$(cksum <out)"
check_rss "2M lines: peak RSS under 48 MB" 49152 "$hwm"
check "2M lines through a pipe: in order" "$(cksum <big)" \
  "$(cat big | $VOW map "$PLUGIN" echo | cksum)"
check "--unordered: every result" "$(cksum <big)" \
  "$($VOW map --unordered "$PLUGIN" echo <big | sort -n | cksum)"
rm -f big out

# --bar, --eta, --progress: on a terminal, for 3 lines as for many; never
# inside a result line; nothing off a terminal.
if command -v script >/dev/null 2>&1; then
  printf '1\n2\n3\n' >three
  script -qc "$VOW map --bar $PLUGIN echo <three" /dev/null >tty.txt
  check "--bar: 3 lines reach 100%" 1 "$(grep -c '100% 3:0=' tty.txt)"
  check "--bar: the results whole" "1 2 3" \
    "$(tr '\r' '\n' <tty.txt | sed 's/\x1b\[K//g' | grep -x '[0-9]' | tr '\n' ' ' | sed 's/ $//')"
  seq 20000 >many
  script -qc "$VOW map --eta $PLUGIN echo <many" /dev/null >tty.txt
  check "--eta on a terminal" 1 "$([ "$(grep -c 'ETA: [0-9]*s Left: 0' tty.txt)" -ge 1 ] && echo 1)"
  script -qc "seq 5 | $VOW map --progress $PLUGIN echo" /dev/null >tty.txt
  check "--progress, input from a pipe" 1 "$([ "$(grep -c 'local:0/5/100%' tty.txt)" -ge 1 ] && echo 1)"
fi
check "--bar off a terminal: stderr silent" "1|" \
  "$(echo 1 | $VOW map --bar "$PLUGIN" echo 2>err)|$(cat err)"

# vow_worker.seed() is each task's own seed, the same however many
# workers share the lines.
printf 'import vow_worker\n\n\ndef seed(x):\n    return vow_worker.seed()\n' >seeds.py
one=$(seq 6 | $VOW map --worker "/usr/bin/python3 $WORKER seeds.py" seed -j 1 --seed 9)
two=$(seq 6 | $VOW map --worker "/usr/bin/python3 $WORKER seeds.py" seed -j 2 --seed 9)
check "python seed(): a seed a task" 6 "$(printf '%s\n' "$one" | sort -u | wc -l | tr -d ' ')"
check "python seed(): the same with 1 or 2 workers" "$one" "$two"

# A Python exception: its type in the error, its traceback as "detail",
# and with --traceback on stderr as Python prints it.
out=$(printf '"boom"\n' | $VOW map --worker "$PY" fail 2>err)
check "python: the exception's type" 1 "$(printf '%s\n' "$out" | grep -c '"error":"task error: ValueError: boom')"
check "python: the traceback as detail" 1 \
  "$(printf '%s\n' "$out" | grep -c '"detail":"Traceback (most recent call last):.*raise ValueError(message)')"
check "python: no traceback on stderr unasked" "" "$(cat err)"
printf '"boom"\n' | $VOW map --traceback --worker "$PY" fail >/dev/null 2>err
check "--traceback: on stderr" "vow: line 1: task error: ValueError: boom" "$(head -1 err | sed 's/ \[.*//')"
check "--traceback: the frames" 1 "$(grep -c '^    raise ValueError(message)$' err)"
check "--traceback: its last line" "ValueError: boom" "$(tail -1 err)"

# numpy values go as lists and numbers; a value with no msgpack form fails
# its own task, naming its type, and the worker goes on.
cat >values.py <<'EOF'
def echo(x):
    return x


def a_set(x):
    return {x}


def too_big(x):
    return 1 << 70


def arange(n):
    import numpy
    return numpy.arange(n)


def half(n):
    import numpy
    return numpy.float64(n) / 2


def eye(n):
    import numpy
    return numpy.eye(n, dtype=numpy.int32)
EOF
VW="/usr/bin/python3 $WORKER values.py"
out=$(printf '1\n2\n' | $VOW map --worker "$VW" a_set -j 1)
check "a set: fails, naming its type" 2 \
  "$(echo "$out" | grep -c 'the result of a_set(): a value of type set cannot be sent')"
check "an int past 64 bits: fails, saying so" 1 \
  "$(echo 1 | $VOW map --worker "$VW" too_big | grep -c 'does not fit in 64 bits')"
check "the worker lives on after a value it cannot send" "1${nl}2" \
  "$(printf '1\n2\n' | $VOW map --worker "$VW" echo -j 1)"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  check "numpy array" "[0,1,2]" "$(echo 3 | $VOW map --worker "$VW" arange)"
  check "numpy scalar" "1.5" "$(echo 3 | $VOW map --worker "$VW" half)"
  check "numpy 2-d array" "[[1,0],[0,1]]" "$(echo 2 | $VOW map --worker "$VW" eye)"
else
  echo "skip: numpy is not installed for /usr/bin/python3"
fi

# A python3 without the msgpack module (-S: no site-packages) runs the
# worker's built-in codec: the same bytes both ways, and a note on stderr
# that says how to install msgpack.
cat >vals <<'EOF'
3
-5
1.5
-1e-300
"h\u00e9llo"
[1,[2,{"a":null,"b":[true,false]}]]
{"k":[0.25,-0.0]}
9223372036854775807
-9223372036854775808
-33
127
128
65535
65536
""
[]
{}
EOF
awk 'BEGIN { s = ""; for (i = 0; i < 70000; i++) s = s "x"; printf "\"%s\"\n", s }' >>vals
with=$($VOW map --worker "/usr/bin/python3 $WORKER values.py" echo <vals)
without=$($VOW map --worker "/usr/bin/python3 -S $WORKER values.py" echo <vals 2>err)
check "built-in codec: the same results as msgpack's" "$with" "$without"
check "built-in codec: the values themselves" "$(head -17 vals | sed 's/\\u00e9/é/')" \
  "$(printf '%s\n' "$without" | head -17)"
check "built-in codec: says how to install msgpack" 1 \
  "$([ "$(grep -c 'apt-get install python3-msgpack, or pip install msgpack' err)" -ge 1 ] && echo 1)"
check "built-in codec: a failure's type and traceback" 1 \
  "$(echo '"x"' | $VOW map --worker "/usr/bin/python3 -S $EXAMPLES/python/vow_worker.py $EXAMPLES/python/tasks.py" fail 2>/dev/null | grep -c 'ValueError: x.*"detail":"Traceback')"
check "built-in codec: VOW_WORKER_QUIET=1 silences the note" "" \
  "$(echo 1 | VOW_WORKER_QUIET=1 $VOW map --worker "/usr/bin/python3 -S $WORKER values.py" echo 2>&1 >/dev/null)"

report
