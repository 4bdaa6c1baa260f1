# Removing the boot hooks persist.sh installs, one function each, printing
# unpersisted=<how> for each removed: the system unit, the user unit, the @reboot crontab line
# (the whole crontab when our line was all it held, as before the deploy).
crontab_without_agent() {
  crontab -l 2>/dev/null | grep -v '# monitor-agent$'
}
unpersist_system() {
  if [ -f /etc/systemd/system/monitor-agent.service ] && [ "$(id -u)" = 0 ]; then
    systemctl disable monitor-agent.service >/dev/null 2>&1
    rm -f /etc/systemd/system/monitor-agent.service && systemctl daemon-reload 2>/dev/null
    echo unpersisted=systemd
  fi
}
unpersist_user() {
  if [ -f "$HOME/.config/systemd/user/monitor-agent.service" ]; then
    systemctl --user disable monitor-agent.service >/dev/null 2>&1
    rm -f "$HOME/.config/systemd/user/monitor-agent.service"
    echo unpersisted=user-unit
  fi
}
unpersist_crontab() {
  if command -v crontab >/dev/null 2>&1 && crontab -l 2>/dev/null | grep -q '# monitor-agent$'; then
    rest=$(crontab_without_agent)
    # Ours was the only line: no crontab at all then, as before the deploy.
    if printf '%s\n' "$rest" | grep -q '[^[:space:]]'; then
      printf '%s\n' "$rest" | crontab - && echo unpersisted=crontab
    else
      crontab -r && echo unpersisted=crontab
    fi
  fi
}
