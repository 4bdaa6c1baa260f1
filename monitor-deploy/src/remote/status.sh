# --status: whether the agent runs, its binary, version and command line; pending=<bytes>,
# the samples it has spooled and not delivered yet (the spool holds them from the byte offset
# in spool.head; more than 0 means it cannot reach monitord); when it last delivered a sample
# (last_sent, unix ms, with the host's clock now in seconds to measure it against); and the
# last line of its log. A detached agent writes agent.log, and so does one an @reboot line
# started (stderr on /dev/null); one a boot unit started (its cgroup says so) logs to the
# journal, the file then holds an earlier agent's lines, and journal= says where its log is
# instead. Needs alive.sh.
journal=""
p=$(cat "$base/$pid_file" 2>/dev/null)
if [ -n "$p" ] && alive_agent "$p"; then
  echo "pid=$p"
  exe=$(readlink "/proc/$p/exe")
  echo "exe=$exe"
  echo "version=$("$exe" --version 2>/dev/null | head -n 1)"
  echo "cmd=$(tr '\0' ' ' < "/proc/$p/cmdline") "
  case $(cat "/proc/$p/cgroup" 2>/dev/null) in
    */user@*/monitor-agent.service*) journal="journalctl --user -u monitor-agent.service";;
    */monitor-agent.service*) journal="journalctl -u monitor-agent.service";;
  esac
fi
if [ -f "$base/$spool_file" ]; then
  size=$(wc -c < "$base/$spool_file"); head=$(cat "$base/$spool_head_file" 2>/dev/null)
  case $head in ''|*[!0-9]*) head=0;; esac
  echo "pending=$((size - head))"
fi
[ -f "$base/$last_sent_file" ] && echo "last_sent=$(cat "$base/$last_sent_file")"
echo "now=$(date +%s)"
if [ -n "$journal" ]; then
  echo "journal=$journal"
elif [ -f "$base/$log_file" ]; then
  echo "log=$(tail -n 1 "$base/$log_file")"
fi
exit 0
