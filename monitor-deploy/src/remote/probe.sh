# Everything a deploy needs to know about the host, in one round trip, including $HOME: the
# upload goes to that absolute path, as SFTP's start directory need not be the home
# (internal-sftp -d). On an unchanged host it starts no process but the shell: what the last
# deploy started is read from the deployed stamp (written by start.sh) and the agents' hashes
# from the monitor-agent.sha256 recorded at upload, with shell builtins; sha256sum runs only
# for a binary newer than its recorded hash (or without one), and date only when samples are
# spooled. Prints key=value lines (remote.rs parses them). Needs alive.sh; $resolve, when not
# empty, is monitord's host name to resolve here.
set -f
p=""; { read -r p < "$base/$pid_file"; } 2>/dev/null
if [ -n "$p" ] && alive_agent "$p"; then
  echo "running=$p"
  # The running agent is what the last deploy started: same process, binary and settings.
  d=""; { read -r d < "$base/$deployed_file"; } 2>/dev/null
  # shellcheck disable=SC2086 # split into its four words on purpose
  set -- $d
  # shellcheck disable=SC3013 # test -ef/-nt: POSIX since 2024, and in every sh (dash, bash, busybox, ksh)
  if [ $# = 4 ] && [ "$1" = "$p" ] && [ "/proc/$p/exe" -ef "$base/$2/$agent_binary" ] &&
    ! [ "$base/$settings_file" -nt "$base/$deployed_file" ]; then
    echo "deployed=$2 $3 $4"
  fi
  if [ -s "$base/$spool_file" ]; then
    echo "spooled=1"
    l=""; { read -r l < "$base/$last_sent_file"; } 2>/dev/null
    echo "last_sent=$l"
    echo "now=$(date +%s)"
  fi
fi
m=""; { read -r m < /proc/sys/kernel/arch; } 2>/dev/null
echo "machine=${m:-$(uname -m)}"
echo "conn=${SSH_CONNECTION:-}"
echo "home=$HOME"
set +f
for f in "$base"/*/"$agent_binary"; do
  [ -f "$f" ] || continue
  h=""
  recorded="${f%/*}/$binary_sha256_file"
  # shellcheck disable=SC3013 # test -ef/-nt: POSIX since 2024, and in every sh (dash, bash, busybox, ksh)
  if [ -f "$recorded" ] && ! [ "$f" -nt "$recorded" ]; then
    { read -r h < "$recorded"; } 2>/dev/null
  fi
  [ -n "$h" ] || h=$(sha256sum "$f" 2>/dev/null | cut -d' ' -f1)
  echo "have=$h $f"
done
if [ -n "$resolve" ]; then
  getent ahosts "$resolve" | while read -r a t _; do [ "$t" = STREAM ] && echo "addr=$a"; done
fi
exit 0
