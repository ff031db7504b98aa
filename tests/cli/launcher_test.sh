#!/bin/sh
# Workers through a launcher, for real: an sshd of our own on 127.0.0.1
# (a spare port, a throw-away host key and user key, a config of its own),
# and vow map running its workers through `ssh -T`. Also a launcher that
# cannot connect (its slot is given up, the rest go on) and an ssh
# connection killed mid-task (a worker death).
#   launcher_test.sh VOW_BINARY PLUGIN
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
PLUGIN=$2
if [ ! -x /usr/sbin/sshd ] || [ "$(id -u)" != 0 ] || ! command -v ssh >/dev/null; then
  echo "skip: needs root, sshd (openssh-server) and ssh; .ci/run installs them"
  exit 0
fi
T=$(mktemp -d)
cleanup() {
  [ -f "$T/sshd.pid" ] && kill "$(cat "$T/sshd.pid")" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
nl='
'

. "$(dirname "$0")/../../scripts/loopback-sshd.sh"
start_loopback_sshd "$T"
check "sshd started" 0 $?
BAD=$BAD_SSH
check "ssh works" ok "$($SSH echo ok 2>&1)"

# 200 tasks on two workers, each behind its own ssh connection.
cd "$T"
seq 0 199 | awk '{print "[" $1 ", 1]"}' > in.jsonl
$VOW map --launcher "2/$SSH" "$PLUGIN" add < in.jsonl > out.jsonl 2> err.txt
check "through ssh: status" 0 $?
check "through ssh: results" "$(seq 1 200)" "$(cat out.jsonl)"
check "through ssh: the workers ran under sshd (and the check above)" 3 \
  "$(grep -c 'Accepted publickey' "$T/sshd.log")"

# A launcher that cannot connect, and one whose key the host refuses:
# each slot is given up with its reason, the good one does the work. The
# lines take a second in all, so the bad slots use up their tries first.
for i in $(seq 1 10); do echo '[100]'; done > slow10.jsonl
$VOW map --launcher "1/$BAD" --launcher "1/$SSH" "$PLUGIN" sleep < slow10.jsonl > out2.jsonl 2> err2.txt
check "a dead host: status" 0 $?
check "a dead host: every result" "$(for i in $(seq 1 10); do echo 100; done)" "$(cat out2.jsonl)"
check "a dead host: its slot is given up" 1 "$(grep -c 'slot given up' err2.txt)"
ssh-keygen -q -t ed25519 -N '' -f "$T/strangerkey"
REFUSED=$(echo "$SSH" | sed "s|-i $T/userkey|-i $T/strangerkey|")
$VOW map --launcher "1/$REFUSED" --launcher "1/$SSH" "$PLUGIN" sleep < slow10.jsonl > out4.jsonl 2> err4.txt
check "auth refused: status" 0 $?
check "auth refused: every result" "$(for i in $(seq 1 10); do echo 100; done)" "$(cat out4.jsonl)"
check "auth refused: its slot is given up, saying why" 1 \
  "$(grep 'slot given up' err4.txt | grep -c 'Permission denied')"

# Killing an ssh connection mid-task is a worker death: the pool starts a
# new worker through a new connection, vow map runs the lines of the
# failed chunk again one by one, every line gets its result, and no
# worker is left running anywhere.
# Ours: the workers that our own sshd started (ssh passes no environment,
# so they are found by their ancestry, never by what they look like).
under_our_sshd() {
  q=$1
  sshd=$(cat "$T/sshd.pid")
  while [ -n "$q" ] && [ "$q" -gt 1 ]; do
    [ "$q" = "$sshd" ] && return 0
    q=$(sed 's/.*) //' "/proc/$q/stat" 2>/dev/null | awk '{print $2}')
  done
  return 1
}
remote_workers() {
  for p in $(pgrep -f "vow-worker $PLUGIN"); do
    under_our_sshd "$p" && echo "$p"
  done | wc -l | tr -d ' '
}
# Waits (up to 10 s) until the count of remote workers stands as TEST says
# ("-lt 2": while fewer than 2), and leaves the tenths it took in $tries.
wait_remote() {
  tries=0
  while [ "$(remote_workers)" $1 ] && [ $tries -lt 100 ]; do
    sleep 0.1
    tries=$((tries + 1))
  done
}
printf '[1500]\n[1500]\n[1500]\n[1500]\n' > slow.jsonl
# The workers of the runs before are gone first: counted as this run's,
# they would let the kill below come before its ssh clients exist.
wait_remote "-gt 0"
before=$(grep -c 'Accepted publickey' "$T/sshd.log")
$VOW map --launcher "2/$SSH" "$PLUGIN" sleep < slow.jsonl > out3.jsonl 2> err3.txt &
map=$!
wait_remote "-lt 2"
check "ssh: two workers run over there" 2 "$(remote_workers)"
sleep 0.3 # into their first tasks
victim=$(pgrep -P $map -f "^ssh -T -p $SSH_PORT -i" | head -1)
check "ssh killed: a client of this run to kill" yes \
  "$([ -n "$victim" ] && echo yes || echo "none among pid $map's children")"
[ -n "$victim" ] && kill -9 "$victim"
wait $map
check "ssh killed: status" 0 $?
check "ssh killed: every line" "1500${nl}1500${nl}1500${nl}1500" "$(cat out3.jsonl)"
check "ssh killed: a new connection replaced it" 3 \
  "$(( $(grep -c 'Accepted publickey' "$T/sshd.log") - before ))"
sleep 0.5
check "ssh killed: no worker left" 0 "$(remote_workers)"

# The parent SIGKILLed while its remote workers are busy in long tasks:
# each sees its channel hang up and goes then, not at its task's end.
printf '[60000]\n[60000]\n' > long.jsonl
$VOW map --launcher "2/$SSH" "$PLUGIN" sleep < long.jsonl > /dev/null 2>&1 &
map=$!
wait_remote "-lt 2"
sleep 0.3 # into their tasks
kill -9 $map
wait_remote "-gt 0"
wait $map 2>/dev/null
check "parent killed: its remote workers go (not after their minute)" 0 \
  "$(remote_workers)"
echo "# remote workers gone within $tries tenths of a second"

# Liveness: a host that goes silent without a word (here its worker is
# frozen with SIGSTOP: the connection stays up, no byte comes) is lost
# within --liveness; its tasks run on the other worker, its slot starts
# again, every line gets its result once.
seq 0 39 | awk '{print "[" $1 ", 1, 200000]"}' > slow40.jsonl
wait_remote "-gt 0"
start=$(date +%s)
VOW_DEBUG=$T/frozen.trace timeout 90 $VOW map --launcher "2/$SSH" \
  --liveness 2 "$PLUGIN" add_after < slow40.jsonl > out5.jsonl 2> err5.txt &
map=$!
wait_remote "-lt 2"
sleep 0.5 # into their tasks
frozen=""
for p in $(pgrep -f "vow-worker $PLUGIN"); do
  under_our_sshd "$p" && frozen=$p && break
done
check "frozen host: a worker of this run to freeze" yes \
  "$([ -n "$frozen" ] && echo yes || echo none)"
[ -n "$frozen" ] && kill -STOP "$frozen"
wait $map
check "frozen host: status" 0 $?
check "frozen host: every line once, in order" "$(seq 1 40)" "$(cat out5.jsonl)"
check "frozen host: lost for its silence" 1 \
  "$(grep -c 'silent for 2000 ms with .* tasks on it: lost' "$T/frozen.trace")"
took=$(( $(date +%s) - start ))
check "frozen host: done in bounded time (${took} s; 40 x 0.2 s on 2 workers, 2 s lost)" \
  yes "$([ "$took" -lt 60 ] && echo yes)"
[ -n "$frozen" ] && kill -9 "$frozen" 2>/dev/null

# A task that runs longer than the bound without a word of its own is not
# a silent host: the worker's heartbeat thread speaks for it.
echo '[1, 2, 3000000]' > busy.jsonl
VOW_DEBUG=$T/busy.trace $VOW map --launcher "1/$SSH" --liveness 1 "$PLUGIN" \
  add_after < busy.jsonl > out6.jsonl 2> err6.txt
check "busy 3 s under --liveness 1: its result" 3 "$(cat out6.jsonl)"
check "... and no worker was lost" 0 "$(grep -c 'lost' "$T/busy.trace")"
check "... it heard the heartbeats" yes \
  "$([ "$(grep -c '<- PONG' "$T/busy.trace")" -ge 3 ] && echo yes)"
report
