# alive_agent PID: whether PID is a live process named monitor-agent. A zombie counts as gone:
# where nobody reaps orphans (containers) it would look alive forever. Shell builtins only:
# the probe runs it on every deploy, and stop_agent for every process of the user (all of
# root's).
alive_agent() {
  c=""; st=""
  { read -r c < "/proc/$1/comm"; } 2>/dev/null
  [ "$c" = "$agent_binary" ] || return 1
  { read -r st < "/proc/$1/stat"; } 2>/dev/null
  st=${st##*) }
  [ -n "$st" ] && [ "${st%% *}" != Z ]
}
