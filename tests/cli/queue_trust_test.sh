#!/bin/sh
# The job queue against another local user and against its own leftovers:
# files and folders planted next to the socket in a shared sticky folder
# (as /tmp is), an impostor listening at the socket, a fresh database
# beside old output, idle connections and a client that opens too many.
#   queue_trust_test.sh VOW_BINARY
# The attacker is uid 65534, which needs root and setpriv; those cases
# are skipped otherwise.
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
in_queue_tmpdir
mkdir -m 1777 shared

as_other=
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  as_other="setpriv --reuid=65534 --regid=65534 --clear-groups"
fi

# Every daemon must be gone after its shutdown; planted files are left as
# they were.
if [ -n "$as_other" ]; then
  # 1. A database planted by another user, with a job queued in it.
  A=$T/shared/a.sock
  $as_other $VOW serve --socket "$A" -j 1
  $as_other $VOW submit --socket "$A" -- sleep 600.417 >/dev/null
  $as_other $VOW submit --socket "$A" -- touch "$T/shared/pwned" >/dev/null
  $as_other $VOW shutdown --socket "$A"
  $as_other cp "$A.db" "$T/shared/v.sock.db"
  $as_other chmod 666 "$T/shared/v.sock.db"
  $VOW submit --socket "$T/shared/v.sock" -- true >/dev/null 2>planted.txt
  check "a planted database: the submit fails" 255 $?
  check "... and says whose file it is" 1 \
    "$(grep -c 'v.sock.db belongs to uid 65534' planted.txt)"
  sleep 0.3
  check "... and none of its jobs ran" no \
    "$([ -e "$T/shared/pwned" ] && echo yes || echo no)"
  check "... and no daemon serves there" "" "$(daemon_pid "$T/shared/v.sock")"

  # The same for each file beside the socket: the lock, the log, the
  # database's write-ahead log and journal.
  for f in lock log db-wal db-journal; do
    rm -rf "$T"/shared/w.sock*
    $as_other sh -c "umask 0; : > '$T/shared/w.sock.$f'"
    $VOW serve --socket "$T/shared/w.sock" 2>planted.txt
    check "a planted .$f: refused" 255 $?
    check "... says so" 1 \
      "$(grep -c "w.sock.$f belongs to uid 65534" planted.txt)"
    rm -f "$T/shared/w.sock.$f"
  done

  # 2. An output folder planted by another user, 1.out a link to a file
  # of the victim's.
  echo precious >"$T/rc"
  $as_other mkdir -m 777 "$T/shared/o.sock.out"
  $as_other ln -s "$T/rc" "$T/shared/o.sock.out/1.out"
  $VOW submit --socket "$T/shared/o.sock" -- echo evil >/dev/null 2>planted.txt
  check "a planted output folder: the submit fails" 255 $?
  check "... says whose it is" 1 \
    "$(grep -c 'o.sock.out belongs to uid 65534' planted.txt)"
  sleep 0.3
  check "... and nothing is written through its link" precious "$(cat "$T/rc")"

  # 3. An impostor listening at the socket hears nothing from a client.
  $as_other /usr/bin/python3 - "$T/shared/f.sock" "$T/shared/heard" <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.listen(4)
s.settimeout(20)
open(sys.argv[2] + ".ready", "w").close()
heard = b""
try:
    c, _ = s.accept()
    c.settimeout(2)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            heard += b
    except OSError:
        pass
    c.close()
except OSError:
    pass
open(sys.argv[2], "wb").write(heard)
EOF
  imp=$!
  wait_for '[ -e "$T/shared/heard.ready" ]'
  SECRET_TOKEN=hunter2 $VOW submit --socket "$T/shared/f.sock" -- \
    echo classified 2>impostor.txt
  check "an impostor at the socket: the client refuses" 255 $?
  check "... says who listens" 1 \
    "$(grep -c 'the daemon at .*f.sock runs as uid 65534' impostor.txt)"
  wait $imp
  check "... and sends it nothing" 0 "$(wc -c <"$T/shared/heard" | tr -d ' ')"
else
  echo "skip: another user's files and impostor (needs root and setpriv)"
fi

# Our own files, but open to others or through a link, are refused too.
S=$T/mine.sock
: >"$S.db"
chmod 666 "$S.db"
$VOW serve --socket "$S" 2>own.txt
check "a database others may write: refused" 255 $?
check "... says so" 1 "$(grep -c 'mine.sock.db may be written by others' own.txt)"
rm -f "$S.db"
ln -s "$T/elsewhere.db" "$S.db"
$VOW serve --socket "$S" 2>own.txt
check "a database through a link: refused" 255 $?
check "... not followed" no "$([ -e "$T/elsewhere.db" ] && echo yes || echo no)"
rm -rf "$S".*
mkdir -m 755 "$S.out"
ln -s "$T/target" "$S.out/1.out"
id=$($VOW submit --socket "$S" -- echo through)
$VOW wait --socket "$S" "$id" >/dev/null 2>&1
check "a link in our own output folder is not followed" no \
  "$([ -e "$T/target" ] && echo yes || echo no)"
check "... and the job's output is not lost" through \
  "$($VOW output --socket "$S" "$id" 2>/dev/null)"
$VOW shutdown --socket "$S"
rm -rf "$S".*

# 4. A fresh database beside old output: new ids, never mixed outputs.
N=$T/new.sock
first=$($VOW submit --socket "$N" -- echo first)
$VOW wait --socket "$N" "$first"
$VOW shutdown --socket "$N"
rm -f "$N.db"
second=$($VOW submit --socket "$N" -- echo second)
check "a deleted database: ids go on past the old output" 2 "$second"
$VOW wait --socket "$N" "$second"
check "... its output alone" second "$($VOW output --socket "$N" "$second")"
check "... the old output kept" first "$(cat "$N.out/1.out")"
$VOW shutdown --socket "$N"
: >"$N.db"
third=$($VOW submit --socket "$N" -- echo third)
check "an empty database: ids go on past the old output" 3 "$third"
$VOW wait --socket "$N" "$third"
check "... its output alone" third "$($VOW output --socket "$N" "$third")"
$VOW output --socket "$N" "$third" >/dev/full 2>lost.txt
check "vow output >/dev/full: status 255" 255 $?
check "... says so" 1 "$(grep -c 'writing standard output: No space left' lost.txt)"
$VOW shutdown --socket "$N"

# 11. A status of any size answers: two jobs with 9 MB commands, then
# 100,000 jobs (replies of 18 MB and more, past a frame's 16 MiB), paged.
B=$T/big.sock
$VOW serve --socket "$B"
$VOW pause --socket "$B"
python3 -c "
import sys
for i in range(2):
    sys.stdout.write('echo ' + 'x' * 9000000 + '\\n')" >big.txt
$VOW submit --socket "$B" --stdin <big.txt >/dev/null
timeout 120 $VOW status --socket "$B" --json >big.json 2>big.err
check "status of two 9 MB commands: answers" 0 $?
check "... valid JSON, both jobs, each command cut and said so" "2 1" \
  "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(len(d["jobs"]), sum("bytes in all]" in j["command"] for j in d["jobs"][:1]))' big.json)"
seq 1 100000 | sed 's/^/echo /' | $VOW submit --socket "$B" --stdin >/dev/null
timeout 120 $VOW status --socket "$B" >big.txt 2>big.err
check "status of 100,002 jobs: answers" 0 $?
check "... every job listed" 100002 "$(grep -c '^[0-9]' big.txt)"
check "... --json: every job" 100002 "$(timeout 120 $VOW status --json \
  --socket "$B" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["jobs"]))')"
$VOW cancel --socket "$B" $(seq 3 100002) >/dev/null
timeout 120 $VOW wait --socket "$B" $(seq 3 100002) 2>big.err
check "wait on 100,000 jobs: answers (cancelled: 125)" 125 $?
$VOW shutdown --socket "$B"

# 5. A full disk: a job whose output could not all be written is not
# done, whatever it exited with; wait, status and output say so. A tmpfs
# of 256 KiB where it can be mounted (as root), else a file size limit.
mkdir full
if mount -t tmpfs -o size=256k tmpfs full 2>/dev/null; then
  F=$T/full/q.sock
  limit=
else
  F=$T/fsize.sock
  limit=256
fi
(
  trap '' XFSZ
  [ -z "$limit" ] || ulimit -f "$limit"
  exec $VOW serve --socket "$F"
)
big=$($VOW submit --socket "$F" -- sh -c 'head -c 1000000 /dev/zero; exit 0')
$VOW wait --socket "$F" "$big"
check "full disk: wait is not 0" 1 $?
check "full disk: failed" failed \
  "$($VOW status --socket "$F" "$big" | awk 'NR == 2 {print $2}')"
check "full disk: status says why" 1 \
  "$($VOW status --socket "$F" "$big" | grep -c 'its output is incomplete: writing .*1.out')"
$VOW output --socket "$F" "$big" >/dev/null 2>lost.txt
check "full disk: output exits non-zero" 1 $?
check "full disk: output says so" 1 \
  "$(grep -c "job $big's output is incomplete" lost.txt)"
$VOW status --json --socket "$F" "$big" >lost.json
check "full disk: --json carries it" 1 "$(grep -c '"output_error":"writing' lost.json)"
$VOW shutdown --socket "$F"
mountpoint -q full && umount full

# Idle connections are closed; too many connections are refused while
# the daemon keeps the descriptors its jobs need.
I=$T/idle.sock
(ulimit -n 64 && exec $VOW serve --socket "$I" --idle-timeout 1)
slow=$($VOW submit --socket "$I" -- sh -c 'sleep 1.5; echo written')
python3 - "$I" <<'EOF' >hog.txt
import socket, sys, time
def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    return s
idle = conn()
t0 = time.monotonic()
idle.settimeout(10)
got = idle.recv(4096)
print("idle closed", 0.5 < time.monotonic() - t0 < 9, b"idle" in got)
hogs = [conn() for _ in range(200)]
time.sleep(0.3)
refused = 0
for s in hogs:
    s.settimeout(0.01)
    try:
        if b"too many" in s.recv(4096):
            refused += 1
    except socket.timeout:
        pass
print("some refused", refused > 0)
time.sleep(2)
for s in hogs:
    s.close()
EOF
check "an idle connection is closed, saying why" "idle closed True True" \
  "$(sed -n 1p hog.txt)"
check "connections past the limit are refused" "some refused True" \
  "$(sed -n 2p hog.txt)"
ids=$( (echo "echo early"; sleep 2.5; echo "echo late") | $VOW submit --socket "$I" --stdin)
check "--stdin across an idle close: both submitted" 2 "$(echo "$ids" | wc -l | tr -d ' ')"
$VOW wait --socket "$I" $ids
check "... and both ran" 0 $?
$VOW wait --socket "$I" "$slow"
check "a job's output is written while connections are many" written \
  "$($VOW output --socket "$I" "$slow")"
$VOW shutdown --socket "$I"

report
