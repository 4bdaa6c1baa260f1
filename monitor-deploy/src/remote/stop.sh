# --stop: removes the boot hooks (unpersist.sh) and stops the agent (stop_agent.sh).
unpersist_system
unpersist_user
unpersist_crontab
stop_agent
exit 0
