#!/bin/sh
# The job queue as pueue and task-spooler users drive it: each command's
# own --help, --socket before or after the command, vow status without a
# daemon, start and run times, "waiting on", remove, clean, restart,
# parallel N at run time, groups with slots of their own, pause of one
# group, the --on-finish hook, the daemon's process name, and a database
# of the previous schema taken over.
#   queue_ops_test.sh VOW_BINARY
set -u
. "$(dirname "$0")/check.sh"
VOW=$1
in_queue_tmpdir
S=$T/q.sock
unset VOW_SOCKET VOW_ON_FINISH
q() {
  cmd=$1
  shift
  $VOW "$cmd" --socket "$S" "$@"
}
# The row of job $1 in vow status, as "STATE EXIT NAME GROUP".
row() { q status "$1" | awk 'NR == 2 {print $2, $3, $4, $5}'; }

# Each command has its own --help, naming itself.
for c in submit status wait output cancel remove clean restart parallel \
  pause resume shutdown serve; do
  check "vow $c --help" "usage: vow $c" "$($VOW $c --help | head -1 | cut -d' ' -f1-3)"
done
check "--help says where --socket goes" 1 \
  "$($VOW status --help | grep -c 'before or after the command')"

# vow status without a daemon starts none: it says so and exits 0.
q status >out 2>err
check "status, no daemon: exit 0" 0 $?
check "status, no daemon: says so" 1 "$(grep -c 'no daemon runs at' err)"
check "status, no daemon: none started" "|" "$(daemon_pid "$S")|$([ -e "$S" ] && echo there)"
check "status --json, no daemon" '"daemon":false' "$(q status --json | grep -o '"daemon":false')"

# --socket before the command, after it, or after its arguments.
id=$($VOW --socket "$S" submit -- echo one)
check "--socket before submit" 1 "$id"
check "the daemon's name: pgrep -x 'vow serve'" "$(daemon_pid "$S")" "$(pgrep -x 'vow serve' | grep -x "$(daemon_pid "$S")")"
$VOW wait "$id" --socket "$S"
check "--socket after the ids" 0 $?
check "--socket before status" "done 0 - default" "$($VOW --socket "$S" status "$id" | awk 'NR == 2 {print $2, $3, $4, $5}')"

# Start time, run time, and what a queued job waits on.
slow=$(q submit --name slow -- sleep 1.37)
after=$(q submit --after "$slow" -- echo later)
wait_for '[ "$(row "$slow" | cut -d" " -f1)" = running ]'
line=$(q status "$after" | awk 'NR == 2')
check "status: queued waits on its dependency" 1 \
  "$(printf '%s\n' "$line" | grep -c "(waiting on $slow)")"
q wait "$after"
line=$(q status "$slow" | awk 'NR == 2')
check "status: started at a time of day" 1 \
  "$(printf '%s\n' "$line" | awk '{print $6}' | grep -c '^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]$')"
check "status: the run time" "1.4s" "$(printf '%s\n' "$line" | awk '{print $7}')"
check "status --json: started, ended, waiting_on" 3 \
  "$(q status --json "$slow" | grep -o '"started":[0-9]\|"ended":[0-9]\|"waiting_on":\[\]' | wc -l | tr -d ' ')"

# remove: an ended job leaves the list (and its output); a queued one
# too, cancelling what waits on it; a running one is refused.
gone=$(q submit -- echo bye)
q wait "$gone"
check "remove: says how many" "1 removed" "$(q remove "$gone")"
check "remove: not in status" "" "$(q status | awk -v id="$gone" '$1 == id')"
check "remove: its output gone" "" "$(ls "$S.out" | grep "^$gone\.")"
blocker=$(q submit -- sleep 29.377)
queued=$(q submit --after "$blocker" -- echo never)
dep=$(q submit --after "$queued" -- echo never2)
q remove "$blocker" 2>err
check "remove a running job: refused" "255|1" "$?|$(grep -c 'is running: vow cancel it first' err)"
q wait "$queued" &
waiter=$!
sleep 0.3
q remove "$queued" >/dev/null
check "remove a queued job: what waited on it is cancelled" "cancelled 125" \
  "$(row "$dep" | cut -d' ' -f1,2)"
wait $waiter
check "a wait on a job removed meanwhile: 125" 125 $?
q wait "$queued" 2>err
check "a wait on a removed job: no such job" "255|1" "$?|$(grep -c "there is no job $queued" err)"
q cancel "$blocker" >/dev/null
q wait "$blocker"
new=$(q submit -- true)
check "ids are not reused after a removal" 1 "$([ "$new" -gt "$dep" ] && echo 1)"

# restart: a job that ended runs again as a new job.
r1=$(q submit --name again -- sh -c 'echo run; exit 5')
q wait "$r1"
r2=$(q restart "$r1")
check "restart: a new id" 1 "$([ "$r2" -gt "$r1" ] && echo 1)"
q wait "$r2"
check "restart: the same command, name and status" "failed 5 again|run" \
  "$(row "$r2" | cut -d' ' -f1-3)|$(q output "$r2")"
check "restart: the old job keeps its result" "failed 5 again" "$(row "$r1" | cut -d' ' -f1-3)"
# restart keeps dependencies: B after A, restarted together, waits for
# the new A; restarted alone, it waits for the old A (done: it runs).
a=$(q submit -- sh -c 'sleep 0.5; echo A >> deps')
b=$(q submit --after "$a" -- sh -c 'echo B >> deps')
q wait "$b"
rm deps
set -- $(q restart "$b" "$a")
check "restart A B: two new ids, in the order asked" 1 \
  "$([ "$#" = 2 ] && [ "$1" -gt "$2" ] && [ "$2" -gt "$b" ] && echo 1)"
check "... the new B waits on the new A" "$2" \
  "$(q status --json "$1" | grep -o '"waiting_on":\[[0-9]*\]' | grep -o '[0-9][0-9]*')"
q wait "$1" "$2"
check "... and runs after it" "A${nl}B" "$(cat deps)"
rm deps
b2=$(q restart "$b")
q wait "$b2"
check "restart B alone: after the old A, done, so it runs" "B" "$(cat deps)"
f=$(q submit -- false)
g=$(q submit --after "$f" -- touch never_g)
q wait "$g"
g2=$(q restart "$g")
q wait "$g2"
check "restart after a failed dependency: cancelled, as before" "125|no" \
  "$?|$([ -e never_g ] && echo yes || echo no)"
running=$(q submit -- sleep 29.378)
q restart "$running" 2>err
check "restart a running job: refused" "255|1" "$?|$(grep -c 'only a job that has ended restarts' err)"
q cancel "$running" >/dev/null

# clean: every ended job; --successful: those that succeeded.
q clean --successful >/dev/null
check "clean --successful: failures stay" "0|2" \
  "$(q status | grep -c ' done ')|$(q status | grep -c 'again')"
check "clean: says how many" 1 "$(q clean | grep -c ' removed$')"
check "clean: nothing ended is left" 1 "$(q status | wc -l | tr -d ' ')"

# parallel N at run time: 1 slot runs jobs one at a time, 3 all at once.
q parallel 1
for n in 1 2 3; do q submit -- sleep 29.379 >/dev/null; done
sleep 0.5
check "parallel 1: one runs" 1 "$(count_mine 'sleep 29.379')"
q parallel 3
wait_for '[ "$(count_mine "sleep 29.379")" -ge 3 ]'
check "parallel 3: three run" 3 "$(count_mine 'sleep 29.379')"
q parallel 0 2>err
check "parallel 0: refused" "255|1" "$?|$(grep -c 'whole number from 1' err)"
for id in $(q status | awk '$2 == "running" {print $1}'); do q cancel "$id" >/dev/null; done
wait_for '[ "$(count_mine "sleep 29.379")" -eq 0 ]'

# Groups: slots of their own (1 until set), beside the default group.
for n in 1 2; do q submit --group gpu -- sleep 29.381 >/dev/null; done
g=$(q submit -g gpu -- echo third)
sleep 0.5
check "a new group has 1 slot" 1 "$(count_mine 'sleep 29.381')"
check "status shows the group" "queued - - gpu" "$(row "$g")"
check "status: a line a group" 1 "$(q status | grep -c '^group gpu: 1 slot, 1 running, 2 ready$')"
check "status --group: that group's jobs" 3 "$(q status --group gpu | tail -n +2 | grep -c ' gpu ')"
q parallel 2 --group gpu
wait_for '[ "$(count_mine "sleep 29.381")" -ge 2 ]'
check "parallel 2 --group gpu" 2 "$(count_mine 'sleep 29.381')"
check "the default group runs beside it" 0 "$(q submit -- true | xargs $VOW wait --socket "$S"; echo $?)"
q pause --group gpu
check "pause --group: its running jobs stopped" "T T" \
  "$(for p in $(mine 'sleep 29.381'); do ps -o stat= -p $p | cut -c1; done | tr '\n' ' ' | sed 's/ $//')"
check "pause --group: the others go on" 0 "$(q submit -- true | xargs $VOW wait --socket "$S"; echo $?)"
q pause --group nosuch 2>err
check "pause of a group that does not exist" "255|1" "$?|$(grep -c 'there is no group "nosuch"' err)"
q resume --group gpu
for id in $(q status --group gpu | awk '$2 == "running" {print $1}'); do q cancel "$id" >/dev/null; done
q wait "$g"
check "resume --group: its queued job ran" 0 $?

# The daemon keeps slots and groups across a restart; -j N at start
# overrides the default group's.
q shutdown
q submit -- true >/dev/null
check "slots and groups kept across a restart" "group default: 3 slots|group gpu: 2 slots" \
  "$(q status | grep -o '^group [a-z]*: [0-9]* slots' | tr '\n' '|' | sed 's/|$//')"
q shutdown

# --on-finish CMD (or $VOW_ON_FINISH): the job in its environment.
H=$T/h.sock
VOW_ON_FINISH='echo "$VOW_JOB_ID|$VOW_JOB_NAME|$VOW_JOB_GROUP|$VOW_JOB_STATE|$VOW_JOB_STATUS|$VOW_JOB_COMMAND|$(cat "$VOW_JOB_STDOUT")" >>'"$T/hook.txt" \
  $VOW submit --socket "$H" --name hooked -g hg -- sh -c 'echo out; exit 6' >/dev/null
wait_for '[ -s "$T/hook.txt" ]'
check "--on-finish: the job's facts" "1|hooked|hg|failed|6|sh -c 'echo out; exit 6'|out" "$(cat "$T/hook.txt")"
$VOW shutdown --socket "$H"
$VOW serve --socket "$T/h2.sock" --on-finish "echo \$VOW_JOB_STATE >>$T/hook2.txt"
id=$($VOW submit --socket "$T/h2.sock" -- true)
$VOW wait --socket "$T/h2.sock" "$id"
wait_for '[ -s "$T/hook2.txt" ]'
check "serve --on-finish" "done" "$(cat "$T/hook2.txt")"
$VOW shutdown --socket "$T/h2.sock"

# A database of schema 1 (before groups) is taken over: its jobs kept,
# in the default group, and new ids follow theirs.
O=$T/old.sock
python3 - "$O.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript("""
CREATE TABLE meta(key TEXT PRIMARY KEY, value);
CREATE TABLE jobs(id INTEGER PRIMARY KEY, name TEXT, kind INTEGER NOT NULL,
 argv BLOB, cwd TEXT, env_id INTEGER, lib TEXT, fn TEXT, arg TEXT,
 priority INTEGER NOT NULL, timeout REAL NOT NULL, retries INTEGER NOT NULL,
 attempts INTEGER NOT NULL, after BLOB, state INTEGER NOT NULL, pgid INTEGER,
 start_ticks INTEGER, boot_id TEXT, exit_status INTEGER, term_signal INTEGER,
 result TEXT, error TEXT, submitted REAL, started REAL, ended REAL);
CREATE TABLE envs(id INTEGER PRIMARY KEY, env BLOB);
INSERT INTO meta VALUES('schema', 1);
INSERT INTO meta VALUES('paused', 0);
""")
argv = b"\x92\xa4echo\xa3old"  # msgpack ["echo", "old"]
db.execute("INSERT INTO jobs VALUES(7, 'legacy', 0, ?, '/', NULL, NULL, NULL,"
           " NULL, 0, 0, 0, 1, ?, 2, 0, 0, NULL, 0, 0, NULL, NULL, 1, 1, 2)",
           (argv, b"\x90"))
db.commit()
EOF
id=$($VOW submit --socket "$O" -- echo new)
check "schema 1: taken over, ids after the old ones" 8 "$id"
check "schema 1: its job kept, in the default group" "done 0 legacy default" \
  "$($VOW status --socket "$O" 7 | awk 'NR == 2 {print $2, $3, $4, $5}')"
$VOW shutdown --socket "$O"

report
