# Replaces a running agent with $version in continuous mode every $interval seconds (the
# settings, whose hash is $settings_sha256, on stdin); once its first sample is stored, makes
# it come back after a reboot (persist.sh), and records in the deployed stamp what runs (pid,
# version, interval, settings hash) for the next probe. Exits with the agent's exit code.
# Needs alive.sh, stop_agent.sh and persist.sh.
stop_agent >/dev/null
exe="$base/$version/$agent_binary"
"$exe" --interval "$interval" --detach
rc=$?
# Unavailable: the agent keeps the sample and goes on retrying in the background, so it must
# come back after a reboot all the same.
[ $rc = "$exit_stored" ] || [ $rc = "$exit_unavailable" ] || exit $rc
p=""; { read -r p < "$base/$pid_file"; } 2>/dev/null
[ -z "$p" ] || echo "$p $version $interval $settings_sha256" > "$base/$deployed_file"
persist "$exe" "$interval"
exit $rc
