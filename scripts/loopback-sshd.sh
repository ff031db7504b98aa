# Sourced: start_loopback_sshd DIR starts an sshd of its own on 127.0.0.1
# (a spare port, a throw-away host key and user key, a config of its own,
# all in DIR); sets SSH to the ssh command that reaches it, SSH_PORT to
# its port, and BAD_SSH to an ssh aimed at a port where nothing listens.
# Needs root and openssh-server; returns non-zero if sshd would not
# start. The caller kills "$(cat DIR/sshd.pid)" when done.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_loopback_sshd() {
  _d=$1
  _port=$(free_port)
  _bad=$(free_port)
  ssh-keygen -q -t ed25519 -N '' -f "$_d/hostkey" || return 1
  ssh-keygen -q -t ed25519 -N '' -f "$_d/userkey" || return 1
  cp "$_d/userkey.pub" "$_d/authorized_keys"
  cat > "$_d/sshd_config" <<CONFIG
Port $_port
ListenAddress 127.0.0.1
HostKey $_d/hostkey
AuthorizedKeysFile $_d/authorized_keys
PidFile $_d/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 100:30:200
CONFIG
  mkdir -p /run/sshd
  _opts="-i $_d/userkey -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
  SSH_PORT=$_port
  SSH="ssh -T -p $_port $_opts 127.0.0.1"
  BAD_SSH="ssh -T -p $_bad $_opts -o ConnectTimeout=2 127.0.0.1"
  /usr/sbin/sshd -f "$_d/sshd_config" -E "$_d/sshd.log"
}
