#!/bin/sh
# The job queue, driven for real: a real daemon on a real socket, started
# by the first client command; round trips, dependencies, priorities,
# concurrent clients, the daemon SIGKILLed and restarted, a client of
# another uid, hostile clients, a full disk and an unusable database.
#   queue_test.sh VOW_BINARY
set -u
# Jobs that must be found with pgrep sleep odd lengths (29.813, 60.731,
# ...): another test's or the machine's `sleep 30` is never taken for one.
. "$(dirname "$0")/check.sh"
VOW=$1
in_queue_tmpdir
S=$T/q.sock

q() {
  cmd=$1
  shift
  $VOW "$cmd" --socket "$S" "$@"
}
nl='
'

# Round trips; the first command starts the daemon, detached.
id1=$(q submit -- echo hello)
check "submit prints an id" 1 "$id1"
check "the daemon runs" 1 "$([ -n "$(daemon_pid "$S")" ] && echo 1)"
check "socket mode" 600 "$(stat -c %a "$S")"
check "database mode" 600 "$(stat -c %a "$S.db")"
id2=$(q submit --name three -- sh -c 'echo out; echo err >&2; exit 3')
q wait "$id1"
check "wait: status 0" 0 $?
q wait "$id2"
check "wait: the job's status" 3 $?
q wait "$id1" "$id2"
check "wait: first non-zero of several" 3 $?
check "output" "hello" "$(q output "$id1")"
check "output: stdout and stderr" "out|err" \
  "$(q output "$id2" 2>e.txt)|$(cat e.txt)"
check "status line" "failed" "$(q status "$id2" | awk 'NR == 2 {print $2}')"
check "status name" "three" "$(q status "$id2" | awk 'NR == 2 {print $4}')"
check "status --json" '"state":"failed"' \
  "$(q status --json "$id2" | grep -o '"state":"failed"')"
q wait 999 2>err.txt
check "wait for an unknown id" 255 $?
check "unknown id message" "vow: there is no job 999" "$(cat err.txt)"

# The job's directory and environment are the submitter's.
mkdir sub
out=$(cd sub && FOO=bar $VOW submit --socket "$S" -- sh -c 'echo $FOO; pwd')
q wait "$out" >/dev/null
check "cwd and env" "bar${nl}$T/sub" "$(q output "$out")"

# --follow prints output as it comes and exits with the job's status.
fl=$(q submit -- sh -c 'echo one; sleep 0.5; echo two >&2; sleep 0.5; echo three; exit 4')
q output --follow "$fl" > follow.out 2> follow.err
check "--follow: status" 4 $?
check "--follow: stdout" "one${nl}three" "$(cat follow.out)"
check "--follow: stderr" "two" "$(cat follow.err)"

# pause stops running jobs (SIGSTOP to their groups); resume continues.
pz=$(q submit -- sh -c 'sleep 1.093; echo woke')
wait_for '[ -n "$(mine "^sleep 1.093\$")" ]'
q pause
sleep 0.2
check "pause stops a running job" T \
  "$(ps -o stat= -p "$(mine '^sleep 1.093$' | head -1)" | cut -c1)"
q resume
q wait "$pz"
check "resume continues it" woke "$(q output "$pz")"

# Cancel: queued jobs never run, running ones get TERM then KILL to their
# whole process group.
long=$(q submit -- sh -c 'trap "" TERM; (trap "" TERM; sleep 60.731) & sleep 60.731')
wait_for '[ "$(count_mine "^sleep 60.731")" -ge 2 ]'
q cancel "$long" >/dev/null
q wait "$long"
check "cancel a running job: status" 125 $?
sleep 0.2
check "cancel kills its group" 0 "$(count_mine '^sleep 60.731')"
q pause
held=$(q submit -- touch ran.txt)
q cancel "$held" >/dev/null
q resume
q wait "$held"
check "cancel a queued job" 125 $?
check "a cancelled queued job never runs" no "$([ -e ran.txt ] && echo yes || echo no)"

# Timeouts and retries.
t=$(q submit --timeout 0.3 -- sleep 30)
q wait "$t"
check "timeout: status 124" 124 $?
r=$(q submit --retries 2 -- sh -c 'echo x >> tries; exit 1')
q wait "$r"
check "retries: last status" 1 $?
check "retries: three tries" 3 "$(wc -l < tries | tr -d ' ')"

# Dependencies.
a=$(q submit -- sh -c 'sleep 0.3; echo a >> order')
b=$(q submit --after "$a" -- sh -c 'echo b >> order')
q wait "$b"
check "--after runs after" "a${nl}b" "$(cat order)"
f=$(q submit -- false)
g=$(q submit --after "$f" -- touch never.txt)
q wait "$g"
check "--after a failed job: cancelled" 125 $?
check "--after a failed job: never ran" no "$([ -e never.txt ] && echo yes || echo no)"

# Priorities: a one-slot daemon, paused, then released: the higher
# priority starts first, equal ones in submission order.
P=$T/p.sock
$VOW serve --socket "$P" -j 1
$VOW pause --socket "$P"
rm -f order
for p in 1 5 1 9; do
  $VOW submit --socket "$P" --priority $p -- sh -c "echo $p >> order" >/dev/null
done
$VOW resume --socket "$P"
last=$($VOW submit --socket "$P" --priority -1 -- true)
$VOW wait --socket "$P" "$last"
check "priorities" "9${nl}5${nl}1${nl}1" "$(cat order)"
$VOW shutdown --socket "$P"

# Task functions on the worker pool.
if [ -n "${VOW_TEST_PLUGIN:-}" ]; then
  m=$(q submit --map "$VOW_TEST_PLUGIN" add '[2, 3]')
  q wait "$m"
  check "--map: status" 0 $?
  check "--map: result" 5 "$(q output "$m")"
  m=$(q submit --map "$VOW_TEST_PLUGIN" fail '[7]')
  q wait "$m"
  check "--map: a failing task" 1 $?
fi

# 1,000 jobs from 10 concurrent clients, all accounted for.
rm -f many
i=0
while [ $i -lt 10 ]; do
  (
    k=0
    while [ $k -lt 100 ]; do
      q submit -- sh -c "echo $i-$k >> many" >>ids.$i
      k=$((k + 1))
    done
  ) &
  i=$((i + 1))
done
wait
cat ids.* | sort -n > all_ids
check "1,000 ids" 1000 "$(sort -u all_ids | wc -l | tr -d ' ')"
q wait $(cat all_ids)
check "1,000 jobs: all succeeded" 0 $?
check "1,000 jobs: each ran once" "1000 1000" \
  "$(wc -l < many | tr -d ' ') $(sort -u many | wc -l | tr -d ' ')"

# The same through one connection: commands on stdin.
seq 1 200 | sed 's/^/echo /' | q submit --stdin > stdin_ids
check "--stdin: 200 ids" 200 "$(sort -u stdin_ids | wc -l | tr -d ' ')"
q wait $(cat stdin_ids)
check "--stdin: all succeeded" 0 $?
sid=$(printf '%s\n' "echo a b | tr a-b x-y" 'printf "%s|" one "two words"' | q submit --stdin)
q wait $sid
check "--stdin: shell lines" "x y|one|two words||" \
  "$(for i in $sid; do q output $i; echo "|"; done | tr -d '\n')"

# Hostile clients: garbage, a frame over the limit, an unknown op; each is
# answered with an error and dropped, and the daemon serves on.
python3 - "$S" <<'EOF' > hostile.txt
import socket, struct, sys
def talk(payload):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    return b"error" in data
print(talk(b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1"))
print(talk(struct.pack(">I", 0x7fffffff) + b"\x80"))
print(talk(bytes(range(256)) * 64))
print(talk(struct.pack(">I", 12) + b"\x82\xa1v\x01\xa2op\xa4nope"))
EOF
check "hostile clients get errors" "True${nl}True${nl}True${nl}True" "$(cat hostile.txt)"
ok=$(q submit -- echo still)
q wait "$ok"
check "serves on after hostile clients" still "$(q output "$ok")"

# A client of another uid is refused, root included: the daemon runs as
# nobody, root connects (file modes do not stop root).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  mkdir -m 1777 other
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    $VOW serve --socket "$T/other/q.sock"
  $VOW status --socket "$T/other/q.sock" 2>refused.txt
  check "another uid: refused" 255 $?
  check "another uid: the client says why" 1 \
    "$(grep -c 'runs as uid 65534.*refusing to send it anything' refused.txt)"
  python3 - "$T/other/q.sock" >refused.txt <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(10)
print(s.recv(4096))
EOF
  check "another uid: the daemon says why" 1 \
    "$(grep -c 'refused: uid 0 is not this daemon.s uid 65534' refused.txt)"
  check "another uid: logged" 2 "$(grep -c 'refused a client of uid 0' "$T/other/q.sock.log")"
  kill "$(daemon_pid "$T/other/q.sock")" 2>/dev/null
else
  echo "skip: another uid (needs root and setpriv)"
fi

# SIGKILL the daemon mid-run, restart it: queued jobs still queued and
# run, finished ones keep their results, running ones are killed with
# their process groups and marked interrupted (or rerun with --retries),
# and nothing runs twice unasked.
K=$T/k.sock
$VOW serve --socket "$K" -j 2
done1=$($VOW submit --socket "$K" -- echo finished)
$VOW wait --socket "$K" "$done1"
r1=$($VOW submit --socket "$K" -- sh -c 'echo start r1 >> runs; sleep 30.417; echo end r1 >> runs')
r2=$($VOW submit --socket "$K" --retries 1 -- sh -c 'echo start r2 >> runs; sleep 3; echo end r2 >> runs')
q1=$($VOW submit --socket "$K" -- sh -c 'echo start q1 >> runs')
q2=$($VOW submit --socket "$K" -- sh -c 'echo start q2 >> runs')
wait_for '[ -n "$(mine "^sleep 30.417")" ] && grep -q "start r2" runs 2>/dev/null'
kill -9 "$(daemon_pid "$K")"
sleep 0.2
check "jobs outlive a SIGKILLed daemon" 1 "$(count_mine '^sleep 30.417')"
$VOW serve --socket "$K" -j 2
check "restart kills the dead daemon's jobs" 0 "$(count_mine '^sleep 30.417')"
$VOW wait --socket "$K" "$r1"
check "running job: interrupted" 125 $?
check "interrupted says so" interrupted \
  "$($VOW status --socket "$K" "$r1" | awk 'NR == 2 {print $2}')"
$VOW wait --socket "$K" "$r2" "$q1" "$q2"
check "retried and queued jobs complete" 0 $?
check "finished job kept its output" finished "$($VOW output --socket "$K" "$done1")"
check "runs: nothing twice unasked" \
  "end r2${nl}start q1${nl}start q2${nl}start r1${nl}start r2${nl}start r2" \
  "$(sort runs)"
$VOW shutdown --socket "$K"
check "shutdown: daemon gone" "" "$(daemon_pid "$K")"

# shutdown --drain finishes what is queued first.
D=$T/d.sock
$VOW serve --socket "$D" -j 1
for n in 1 2 3; do $VOW submit --socket "$D" -- sh -c "sleep 0.1; echo $n >> drained" >/dev/null; done
$VOW shutdown --socket "$D" --drain
check "--drain ran everything" "1${nl}2${nl}3" "$(cat drained)"
check "--drain: daemon gone" "" "$(daemon_pid "$D")"
$VOW serve --socket "$D" -j 1
check "after --drain: results kept" 3 \
  "$($VOW status --socket "$D" | grep -c ' done ')"
$VOW shutdown --socket "$D"

# An unusable database and a full disk give clear errors.
mkdir bad.sock.db
$VOW serve --socket "$T/bad.sock" --foreground 2>bad.txt
check "unusable database: status" 255 $?
check "unusable database: says so" 1 "$(grep -c 'bad.sock.db is not a regular file' bad.txt)"
mkdir full
if mount -t tmpfs -o size=200k tmpfs full 2>/dev/null; then
  F=$T/full/q.sock
  $VOW serve --socket "$F"
  n=0
  while [ $n -lt 400 ]; do
    $VOW submit --socket "$F" --name "$(printf '%0500d' $n)" -- true 2>full.txt >/dev/null || break
    n=$((n + 1))
  done
  check "full disk: a submit is refused" 1 "$([ $n -lt 400 ] && echo 1)"
  check "full disk: says why" 1 "$(grep -c 'not accepted.*full' full.txt)"
  $VOW status --socket "$F" >/dev/null
  check "full disk: the daemon lives on" 0 $?
  $VOW shutdown --socket "$F"
  umount full
else
  echo "skip: full disk (cannot mount a tmpfs here)"
fi

# A --socket path must be a socket of ours in a place only we control:
# nothing else there is deleted, nothing is followed through a link.
echo "precious" > notasocket
$VOW serve --socket "$T/notasocket" --foreground 2>place.txt
check "--socket at a file: refused" 255 $?
check "--socket at a file: says why" 1 "$(grep -c 'not a socket: refusing' place.txt)"
check "--socket at a file: the file is kept" "precious" "$(cat notasocket)"
VOW_SOCKET=$T/notasocket $VOW serve --foreground 2>place.txt
check "VOW_SOCKET at a file: refused" 255 $?
check "VOW_SOCKET at a file: the file is kept" "precious" "$(cat notasocket)"
mkdir open && chmod 777 open
$VOW serve --socket "$T/open/q.sock" --foreground 2>place.txt
check "--socket in a directory others may write: refused" 255 $?
check "... says why" 1 "$(grep -c 'others may write to its directory' place.txt)"
mkdir sticky && chmod 1777 sticky
$VOW serve --socket "$T/sticky/q.sock"
check "--socket in a sticky directory (like /tmp): served" 0 $?
$VOW shutdown --socket "$T/sticky/q.sock"
ln -s "$T/lock-target" link.sock.lock
$VOW serve --socket "$T/link.sock" --foreground 2>place.txt
check "a planted link at PATH.lock: refused" 255 $?
check "... and not followed" 0 "$([ -e "$T/lock-target" ] && echo 1 || echo 0)"

# A job whose leader exited is reaped at once even while something it
# left (in a session of its own) holds its output for the 1 s grace: its
# timeout (0.8 s, inside that grace) cannot fire on it any more, so it
# ends done, not "timed out", and no signal goes to its group id, which
# the kernel may hand to another process. The leader waits 0.3 s so that
# the left-behind process has its own session before the group is killed.
t=$(q submit --timeout 0.8 -- sh -c 'setsid sleep 2.917 & sleep 0.3; exit 0')
q wait "$t"
check "reaped job: not timed out by a later timer" 0 $?
check "reaped job: done" "done" "$(q status "$t" | awk 'NR == 2 {print $2}')"

# Daemons log to PATH.log: a sanitizer's report (ASan build) lands there.
$VOW shutdown --socket "$S" >/dev/null 2>&1
check "no sanitizer report in any daemon's log" "" \
  "$(grep -l 'Sanitizer\|runtime error' "$T"/*.log "$T"/*/*.log 2>/dev/null)"

report
