# Why the agent cannot be stored or run in $base/$version, as facts for monitor-deploy to put
# in words (diagnose.rs): the deepest part of that directory that exists, what
# mkdir and creating a file there say when $write_test is 1, the free space and the mount that
# holds it with its options. Runs only after a failed upload or start, so it may start
# processes. C locale: the errors are matched by their English text.
LC_ALL=C
export LC_ALL
dir="$base/$version"
d=$dir
while [ ! -d "$d" ]; do d=${d%/*}; d=${d:-/}; done
if [ "$write_test" = 1 ]; then
  e=$(mkdir -p "$dir" 2>&1) || echo "mkdir_error=$e"
  t="$dir/.monitor-deploy-write-test"
  if e=$({ : > "$t"; } 2>&1); then rm -f "$t"; else echo "write_error=$e"; fi
  [ -d "$dir" ] && d=$dir
fi
echo "exists=$d"
# df -P: Filesystem 1024-blocks Used Available Capacity Mounted-on (which may hold spaces).
out=$(df -Pk "$d" 2>/dev/null | { read -r _; read -r _ _ _ a _ m; echo "$a $m"; })
echo "avail_kib=${out%% *}"
mnt=${out#* }
echo "mount=$mnt"
opts=""
while read -r _ m _ o _; do
  [ "$m" = "$mnt" ] && opts=$o
done < /proc/self/mounts
echo "mount_options=$opts"
exit 0
