#!/bin/sh
# vow map beside a line that kills its worker: every other line succeeds
# (no retries asked, none needed), and with the result it has in a run
# where nothing fails: a line's seed depends on the run's seed and the
# line alone, not on what failed around it.
#   map_faults_test.sh VOW_BINARY PLUGIN EXAMPLES_DIR
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
EXAMPLES=$3
in_tmpdir

cat >mod.py <<'EOF'
import os, signal
from vow.worker import seed

def f(x):
    if x == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # in its first instant
    return [x, seed()]
EOF
WORKER="python3 $EXAMPLES/python/vow_worker.py $T/mod.py"

seq 1 2000 >clean.jsonl
sed '1000s/.*/"die"/' clean.jsonl >dies.jsonl
$VOW map --worker "$WORKER" f --seed 7 -j 2 <clean.jsonl >clean.out 2>clean.err
check "a clean run succeeds" 0 $?
$VOW map --worker "$WORKER" f --seed 7 -j 2 <dies.jsonl >dies.out 2>dies.err
check "one line kills its worker: only it fails" 1 $?
check "... its line says so" 1 \
  "$(sed -n 1000p dies.out | grep -c '"line":1000,"error":"worker died')"
check "... every other line has its clean run's result, seed included" \
  "$(sed 1000d clean.out)" "$(sed 1000d dies.out)"

# A result no frame can carry fails its own line, saying why, and the
# worker lives on (the lines around it come from the same process).
# Through a launcher, which keeps the channel: a local worker's big
# result goes by shared memory, past the frame's bytes (below).
cat >big.py <<'EOF'
import os

def f(x):
    if x == "bytes":
        return "x" * (65 << 20)
    if x == "objects":
        return [None] * 1100000
    return os.getpid()
EOF
printf '"a"\n"bytes"\n"objects"\n"b"\n' |
  $VOW map -j 1 --launcher 1/env \
    --worker "python3 $EXAMPLES/python/vow_worker.py $T/big.py" f \
    >big.out 2>big.err
check "Python: results too big fail their lines" 2 $?
check "... past the bytes, saying so" 1 \
  "$(sed -n 2p big.out | grep -c 'result too big (68157445 bytes, limit 67108800)')"
check "... past the objects, saying so" 1 \
  "$(sed -n 3p big.out | grep -c 'result too big (more than 1048512 objects')"
check "... and the worker lives on" "$(sed -n 1p big.out)" "$(sed -n 4p big.out)"
printf '[1]\n[68157440]\n[1100000]\n[1]\n' >cbig.jsonl
$VOW map -j 1 --launcher 1/env "$PLUGIN" big <cbig.jsonl | cut -c1-120 \
  >cbig.out 2>/dev/null
check "C: a result past the bytes fails its line, saying so" 1 \
  "$(sed -n 2p cbig.out | grep -c 'result too big')"
# A local worker: past the frame's bytes by shared memory.
$VOW map -j 1 "$PLUGIN" big <cbig.jsonl >cbig.local 2>/dev/null
check "C, local: a result past a frame's bytes comes back whole" \
  "$(((68157440 + 2) / 3 * 4 + 2))" "$(sed -n 2p cbig.local | tr -d '\n' | wc -c)"

# The same for a C plugin, lines of a group that fails rerun alone: the
# seeds do not move.
seq 1 3000 | sed 's/.*/[&]/' >nums.jsonl
$VOW map "$PLUGIN" seed --seed 11 <nums.jsonl >seeds_a.out
sed '1500s/.*/not json/' nums.jsonl | $VOW map "$PLUGIN" seed --seed 11 \
  >seeds_b.out 2>/dev/null
check "seeds do not move beside a line that is not JSON" \
  "$(sed 1500d seeds_a.out)" "$(sed 1500d seeds_b.out)"

# --resume runs the rest with the seeds they would have had.
head -c 0 /dev/null >jl
$VOW map "$PLUGIN" seed --seed 11 --joblog jl <nums.jsonl >/dev/null
awk 'NR == 1 || $1 % 3 != 0' jl >jl.part
$VOW map "$PLUGIN" seed --seed 11 --joblog jl.part --resume <nums.jsonl \
  >resumed.out
check "--resume: the rest with their own seeds" \
  "$(awk 'NR % 3 == 0' seeds_a.out)" "$(cat resumed.out)"

report
