# ours PID: whether PID is an agent of ours: a live monitor-agent (alive_agent, alive.sh) that
# agent.pid or the deployed stamp names ($named), or whose binary is one under $base (one
# started by a boot hook, or left by an older deploy). Another program named monitor-agent
# (the user's own build, a copy somewhere else) is not.
# shellcheck disable=SC3013 # test -ef/-nt: POSIX since 2024, and in every sh (dash, bash, busybox, ksh)
ours() {
  alive_agent "$1" || return 1
  case " $named " in *" $1 "*) return 0;; esac
  for f in "$base"/*/"$agent_binary"; do
    [ "/proc/$1/exe" -ef "$f" ] && return 0
  done
  return 1
}

# stop_agent: stops this user's agents (ours), so a restart never leaves two: SIGTERM, up to
# 5 s, then SIGKILL; prints stopped=<pids> when it stopped any.
stop_agent() {
  named=""; { read -r named < "$base/$pid_file"; } 2>/dev/null
  d=""; { read -r d < "$base/$deployed_file"; } 2>/dev/null
  named="$named ${d%% *}"
  found=""
  for p in $named $(for d in /proc/[0-9]*; do [ -O "$d" ] && echo "${d#/proc/}"; done); do
    case $p in ''|*[!0-9]*) continue;; esac
    case " $found " in *" $p "*) continue;; esac
    ours "$p" && kill "$p" 2>/dev/null && found="$found $p"
  done
  for p in $found; do
    i=0
    while alive_agent "$p" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    alive_agent "$p" && kill -9 "$p" 2>/dev/null
  done
  rm -f "$base/$pid_file" "$base/$deployed_file"
  [ -z "$found" ] || echo "stopped=${found# }"
}
