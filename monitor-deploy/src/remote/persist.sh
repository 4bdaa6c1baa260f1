# How the agent comes back after a reboot, chosen on the host in this order: a system unit
# when the SSH user is root and systemd runs; a user unit when the user lingers; an @reboot
# crontab line; else nothing (persist=none, the summary warns). Each starts the agent in the
# foreground with </dev/null, so it reads the settings file the deploy left. persist prints
# persist=<how> and removes the other hooks an earlier deploy may have installed, so only one
# starts an agent at boot (with unpersist.sh's functions).

# In a unit's ExecStart systemd reads % as a specifier (%% is one %) everywhere, and in the
# arguments also $ as a variable ($$ is one $) and \ " as escapes inside "". The program's
# path gets no variables and may not hold \ " ' at all: unit_safe says whether it can be used.
unit_program() { printf '%s' "$1" | sed 's/%/%%/g'; }
unit_arg() { printf '%s' "$1" | sed -e 's/[\\"]/\\&/g' -e 's/%/%%/g' -e 's/[$]/$$/g'; }
unit_safe() {
  case $1 in *[\\\"\']*) return 1;; esac
}
unit_text() {
  printf '[Unit]\nDescription=monitord agent (installed by monitor-deploy)\nWants=network-online.target\nAfter=network-online.target\n\n'
  printf '[Service]\nExecStart="%s" --interval %s --dir "%s"\nStandardInput=null\nRestart=on-failure\nRestartSec=10\n\n' "$(unit_program "$1")" "$2" "$(unit_arg "$base")"
  printf '[Install]\nWantedBy=%s\n' "$3"
}
# A path as one word of a crontab command: single-quoted for sh, and \% for cron, which
# would cut the command at a bare %.
cron_word() { printf "'%s'" "$(printf '%s' "$1" | sed -e "s/'/'\\\\''/g" -e 's/%/\\%/g')"; }
cron_line() {
  printf '@reboot %s --interval %s --dir %s </dev/null >/dev/null 2>&1 # monitor-agent\n' "$(cron_word "$1")" "$2" "$(cron_word "$base")"
}
persist() {
  how=none
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && unit_safe "$1"; then
    if [ "$(id -u)" = 0 ]; then
      unit_text "$1" "$2" multi-user.target > /etc/systemd/system/monitor-agent.service &&
        systemctl daemon-reload && systemctl enable monitor-agent.service >/dev/null 2>&1 &&
        how=systemd
    elif [ "$(loginctl show-user "$(id -un)" -p Linger --value 2>/dev/null)" = yes ]; then
      mkdir -p "$HOME/.config/systemd/user" &&
        unit_text "$1" "$2" default.target > "$HOME/.config/systemd/user/monitor-agent.service" &&
        systemctl --user daemon-reload && systemctl --user enable monitor-agent.service >/dev/null 2>&1 &&
        how=user-unit
    fi
  fi
  if [ $how = none ] && command -v crontab >/dev/null 2>&1; then
    { crontab_without_agent; cron_line "$1" "$2"; } | crontab - && how="crontab"
  fi
  # One hook only: one an earlier deploy chose (before lingering was switched on, say) would
  # start a second agent at boot. With none installed now, the old one is better than nothing.
  if [ $how != none ]; then
    [ $how = systemd ] || unpersist_system >/dev/null
    [ $how = user-unit ] || unpersist_user >/dev/null
    [ $how = crontab ] || unpersist_crontab >/dev/null
  fi
  echo "persist=$how"
}
