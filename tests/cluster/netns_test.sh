#!/bin/sh
# Hosts that fail the ways real ones do, for real: two network namespaces
# on this machine, each joined to ours by a veth pair with IPv6 ULA
# addresses (in fd00:766f:7700::/40, nothing routed) and each running an
# sshd of its own; vow map runs its workers on both over ssh. Then: a
# host killed (every process in it), its sshd killed, its link cut for
# good, its link flapping. Each time every line settles exactly once with
# its result, in bounded time, and a host back from a partition rejoins.
#   netns_test.sh VOW_BINARY PLUGIN.so
set -u
. "$(dirname "$0")/../cli/check.sh"
VOW=$1
PLUGIN=$2
if [ "$(id -u)" != 0 ] || [ ! -x /usr/sbin/sshd ] || ! command -v ip >/dev/null ||
  ! command -v ssh >/dev/null; then
  echo "skip: needs root, iproute2, sshd and ssh; .ci/run installs them"
  exit 77
fi
T=$(mktemp -d)
tag=$$
hosts="1 2"
ns() { echo "vow$tag-h$1"; }
# Host H's /64, from our pid too, so two runs on one machine never meet.
net() { printf 'fd00:766f:77%02x:%x:' "$1" $((tag % 65535)); }
addr() { echo "$(net "$1"):2"; }
ours() { echo "$(net "$1"):1"; }
cleanup() {
  for h in $hosts; do
    for p in $(ip netns pids "$(ns "$h")" 2>/dev/null); do kill -9 "$p"; done
    ip netns del "$(ns "$h")" 2>/dev/null
    ip link del "v$tag-$h" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
if ! ip netns add "$(ns 1)" 2>/dev/null; then
  echo "skip: cannot make network namespaces here"
  exit 77
fi
ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$T/userkey"
cp "$T/userkey.pub" "$T/authorized_keys"
mkdir -p /run/sshd "$T/home"

# host H: namespace, veth (ours v<tag>-H, its eth0), its /64 (net H),
# sshd on port 22 of its address.
start_sshd() {
  h=$1
  cat > "$T/sshd$h.conf" <<CONF
Port 22
ListenAddress $(addr "$h")
HostKey $T/hostkey
AuthorizedKeysFile $T/authorized_keys
PidFile $T/sshd$h.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
ClientAliveInterval 0
# The sessions' HOME is ours: the machine's own login scripts (root's
# .bashrc) are not what is tested, and a host killed mid-login must not
# leave them stuck for the next session.
SetEnv HOME=$T/home
CONF
  ip netns exec "$(ns "$h")" /usr/sbin/sshd -f "$T/sshd$h.conf" -E "$T/sshd$h.log"
}
make_host() {
  h=$1
  [ "$h" = 1 ] || ip netns add "$(ns "$h")"
  ip link add "v$tag-$h" type veth peer name eth0 netns "$(ns "$h")"
  ip netns exec "$(ns "$h")" sysctl -qw net.ipv6.conf.all.disable_ipv6=0
  ip netns exec "$(ns "$h")" ip link set lo up
  ip netns exec "$(ns "$h")" ip addr add "$(addr "$h")/64" dev eth0 nodad
  ip netns exec "$(ns "$h")" ip link set eth0 up
  ip addr add "$(ours "$h")/64" dev "v$tag-$h" nodad
  ip link set "v$tag-$h" up
  start_sshd "$h"
}
for h in $hosts; do make_host "$h"; done
opts="-i $T/userkey -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=3"
ssh_to() { echo "ssh -T $opts root@$(addr "$1")"; }
i=0
until [ "$($(ssh_to 1) echo ok 2>/dev/null)" = ok ] && [ "$($(ssh_to 2) echo ok 2>/dev/null)" = ok ]; do
  i=$((i + 1))
  if [ $i -gt 50 ]; then
    echo "FAIL: the hosts' sshds do not answer"
    tail -n 5 "$T"/sshd*.log
    exit 1
  fi
  sleep 0.2
done
check "two hosts answer over ssh" ok "$($(ssh_to 2) echo ok)"
check "... in their own namespaces" "$(ns 2)" \
  "$($(ssh_to 2) ip netns identify 2>/dev/null || ip netns identify "$(cat "$T/sshd2.pid")")"

# 60 lines of 0.2 s on 2 workers a host: about 3 s whole.
seq 0 59 | awk '{print "[" $1 ", 1, 200000]"}' > "$T/in.jsonl"
want=$(seq 1 60)
# run NAME FAULT...: vow map over both hosts; FAULT runs 1.5 s in.
run() {
  name=$1
  shift
  start=$(date +%s)
  VOW_DEBUG=$T/$name.trace timeout 150 $VOW map --liveness 3 --retries 3 \
    --launcher "2/$(ssh_to 1)" --launcher "2/$(ssh_to 2)" "$PLUGIN" add_after \
    < "$T/in.jsonl" > "$T/$name.out" 2> "$T/$name.err" &
  map=$!
  sleep 1.5
  "$@"
  wait $map
  status=$?
  took=$(( $(date +%s) - start ))
  check "$name: status" 0 $status
  check "$name: every line once, with its result" "$want" "$(cat "$T/$name.out")"
  check "$name: within 120 s (took $took)" yes "$([ $took -lt 120 ] && echo yes)"
}

kill_host() {
  for p in $(ip netns pids "$(ns 1)"); do kill -9 "$p"; done
}
run "host killed" kill_host
start_sshd 1

kill_sshd() { kill -9 "$(cat "$T/sshd1.pid")"; }
run "its sshd killed" kill_sshd
start_sshd 1

# A partition: host 1 drops everything it would send us (a blackhole
# route there), so no RST, no FIN, no error reaches our side, only
# silence; our side's interface stays up, as across a broken switch.
partition() { ip netns exec "$(ns 1)" ip -6 route add blackhole "$(ours 1)/128"; }
heal() { ip netns exec "$(ns 1)" ip -6 route del blackhole "$(ours 1)/128"; }
run "link cut for good" partition
check "link cut: its workers were lost for their silence" yes \
  "$(grep -q 'silent for 3000 ms' "$T/link cut for good.trace" && echo yes)"
heal
for p in $(pgrep -f "sshd: root" ); do
  [ "$(ip netns identify "$p" 2>/dev/null)" = "$(ns 1)" ] && kill -9 "$p"
done

before=$(grep -c 'Accepted publickey' "$T/sshd1.log")
flap() {
  partition
  sleep 5
  heal
}
seq 0 119 | awk '{print "[" $1 ", 1, 200000]"}' > "$T/in.jsonl"
want=$(seq 1 120)
run "link flapping" flap
check "link flapping: lost for its silence" yes \
  "$(grep -q 'silent for 3000 ms' "$T/link flapping.trace" && echo yes)"
check "link flapping: the host rejoined (a new login there)" yes \
  "$([ "$(grep -c 'Accepted publickey' "$T/sshd1.log")" -gt $((before + 2)) ] && echo yes)"

grep -c 'Accepted publickey' "$T/sshd1.log" > "$T/before1"
grep -c 'Accepted publickey' "$T/sshd2.log" > "$T/before2"
# docs/cluster.md's ssh command, exactly as written, with hostA and hostB
# being our two hosts: in a mount namespace of its own, root's home is a
# directory of ours whose .ssh/config names them (the machine's own
# ~/.ssh is neither read nor touched).
home=$(getent passwd root | cut -d: -f6)
mkdir -p "$T/roothome/.ssh" "$T/docs"
cat > "$T/roothome/.ssh/config" <<CONF
Host hostA
  HostName $(addr 1)
Host hostB
  HostName $(addr 2)
Host *
  User root
  IdentityFile $T/userkey
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 5
CONF
chmod 600 "$T/roothome/.ssh/config"
awk '
  /^```sh$/ { inblock = 1; text = ""; next }
  /^```$/ && inblock { inblock = 0; if (text ~ /ssh -T hostA/ && !done) { printf "%s", text; done = 1 } ; next }
  inblock { text = text $0 "\n" }
' "$(dirname "$0")/../../docs/cluster.md" > "$T/docs/hosts.sh"
check "docs/cluster.md has its ssh command" 1 "$(grep -c 'ssh -T hostA' "$T/docs/hosts.sh")"
build=$(dirname "$VOW")
ln -s "$build" "$T/docs/build"
for i in $(seq 1 40); do
  echo "{\"f\": \"sin\", \"a\": 0, \"b\": $i, \"n\": 20000}"
done > "$T/docs/jobs.jsonl"
(cd "$T/docs" && $VOW map build/examples/integrate.so integrate < jobs.jsonl > want.jsonl)
unshare -m sh -c 'mount --bind "$1" "$2" && cd "$3" && PATH="$4:$PATH" timeout 120 sh hosts.sh' \
  - "$T/roothome" "$home" "$T/docs" "$build" 2> "$T/docs/err"
status=$?
head -n 5 "$T/docs/err" | sed 's/^/  | /'
check "docs/cluster.md's ssh command: status" 0 $status
check "... its results are a local run's" "$(cat "$T/docs/want.jsonl")" \
  "$(cat "$T/docs/results.jsonl" 2>/dev/null)"
check "... its 12 workers logged in on the two hosts" 12 \
  "$(( $(grep -c 'Accepted publickey' "$T/sshd1.log") - $(cat "$T/before1") + $(grep -c 'Accepted publickey' "$T/sshd2.log") - $(cat "$T/before2") ))"
report
