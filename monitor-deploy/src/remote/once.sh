# Runs $version once in the foreground (settings on stdin); a running agent is left alone.
exec "$base/$version/$agent_binary" --once
