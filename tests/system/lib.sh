# tests/system/lib.sh — scaffolding for the systemd system test, sourced by tests/system/run.
#
# Everything the test makes lives in names starting with "md-" and in one temp dir, and
# `sys_teardown` (run from an EXIT trap) removes all of it even when a step fails:
# - a network of its own: a bridge inside network namespace md-br, and one namespace per
#   host (md-server for the booted container, md-web1, md-web2 for client hosts with their
#   own sshd, md-smtp for the SMTP server), addresses from 192.0.2.0/24 (TEST-NET-1, never
#   routed anywhere), so no test traffic touches the machine's own network;
# - a Debian bookworm container booted with systemd-nspawn from a debootstrap rootfs cached
#   outside the clone (SYS_CACHE), copied per run so the cache stays pristine.
#
# PID 1 on these machines is not systemd: nspawn runs with --register=no --keep-unit inside
# cgroups of its own, which teardown removes.

SYS_CACHE=${SYS_CACHE:-/var/cache/monitord}
SYS_ROOTFS_CACHE=$SYS_CACHE/rootfs-bookworm
# What the container needs besides minbase: systemd to boot, and what the .deb Depends on.
SYS_ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,openssh-client,adduser,procps,iproute2,sqlite3,ca-certificates,cron
SYS_NET=192.0.2
SYS_CGROUP=monitord-systest-$$
SYS_WORK=
SYS_NSPAWN_PID=
SYS_USERS=()

log() { printf '[system-test %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# Builds the cached rootfs when it is missing or lacks a package of SYS_ROOTFS_PACKAGES (the
# cache is keyed on that list: add a package there and the next run rebuilds it).
sys_rootfs() {
    local wanted
    wanted=$(tr , ' ' <<<"$SYS_ROOTFS_PACKAGES")
    if [ -x "$SYS_ROOTFS_CACHE/lib/systemd/systemd" ]; then
        # shellcheck disable=SC2086 # one word per package
        if chroot "$SYS_ROOTFS_CACHE" dpkg-query -W $wanted >/dev/null 2>&1; then
            return
        fi
        log "the rootfs cache lacks some of: $wanted; rebuilding it"
    fi
    log "building the debootstrap rootfs cache in $SYS_ROOTFS_CACHE (once)"
    mkdir -p "$SYS_CACHE"
    rm -rf "$SYS_ROOTFS_CACHE.tmp"
    debootstrap --variant=minbase --include="$SYS_ROOTFS_PACKAGES" bookworm \
        "$SYS_ROOTFS_CACHE.tmp" http://deb.debian.org/debian >"$SYS_CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap failed, see $SYS_CACHE/debootstrap.log"
    rm -rf "$SYS_ROOTFS_CACHE"
    mv "$SYS_ROOTFS_CACHE.tmp" "$SYS_ROOTFS_CACHE"
}

# sys_host NAME LAST_OCTET: a network namespace md-NAME on the test bridge at $SYS_NET.OCTET.
sys_host() {
    local name=$1 octet=$2
    ip netns add "md-$name"
    ip -n md-br link add "v-$name" type veth peer name eth0 netns "md-$name"
    ip -n md-br link set "v-$name" master br0 up
    ip -n "md-$name" addr add "$SYS_NET.$octet/24" dev eth0
    ip -n "md-$name" link set eth0 up
    ip -n "md-$name" link set lo up
}

sys_network() {
    ip netns add md-br
    ip -n md-br link add br0 type bridge
    ip -n md-br link set br0 up
}

# Boots the container in namespace md-server; its root is a fresh copy of the cache.
sys_boot() {
    mkdir -p "$SYS_WORK/root"
    cp -a "$SYS_ROOTFS_CACHE/." "$SYS_WORK/root/"
    local h
    for h in systemd unified; do
        mkdir -p "/sys/fs/cgroup/$h/$SYS_CGROUP"
    done
    (
        for h in systemd unified; do
            echo "$BASHPID" >"/sys/fs/cgroup/$h/$SYS_CGROUP/cgroup.procs"
        done
        exec systemd-nspawn --boot --register=no --keep-unit --quiet \
            --machine=md-server --network-namespace-path=/run/netns/md-server \
            --bind-ro="$SYS_WORK/share:/mnt/share" -D "$SYS_WORK/root" \
            </dev/null >"$SYS_WORK/console.log" 2>&1
    ) &
    SYS_NSPAWN_PID=$!
    local i
    for i in $(seq 1 120); do
        if sys_in systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'; then
            log "container booted ($(sys_in systemctl is-system-running))"
            return
        fi
        sleep 0.5
    done
    die "the container did not boot within 60 s; console: $SYS_WORK/console.log"
}

# The PID of the container's init, found as the child of systemd-nspawn.
sys_init_pid() {
    local nspawn
    nspawn=$(pgrep -P "$SYS_NSPAWN_PID" -x systemd-nspawn || echo "$SYS_NSPAWN_PID")
    pgrep -P "$nspawn" | head -n 1
}

# sys_in CMD…: runs a command inside the booted container.
sys_in() {
    local pid
    pid=$(sys_init_pid)
    [ -n "$pid" ] || return 1
    nsenter --target "$pid" --mount --uts --ipc --net --pid -- env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# sys_wait_port NS IP PORT: until a TCP connect from namespace md-NS succeeds (10 s at most).
sys_wait_port() {
    local ns=$1 ip=$2 port=$3 i
    for i in $(seq 1 50); do
        if ip netns exec "md-$ns" timeout 2 bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# sys_user NAME: a fresh account on this machine with its home under $SYS_WORK, for key login
# only ('*': no password, yet not locked, which sshd without PAM would refuse). One account per
# client host, so two agents on this one filesystem never share ~/.cache/monitor-agent.
sys_user() {
    local name=$1
    if getent passwd "$name" >/dev/null; then
        userdel --force "$name" 2>/dev/null || true  # left over from a run that was killed
    fi
    mkdir -p "$SYS_WORK/home"
    useradd --create-home --home-dir "$SYS_WORK/home/$name" --shell /bin/sh "$name"
    usermod -p '*' "$name"
    SYS_USERS+=("$name")
}

# sys_sshd HOST OCTET USER PUBKEY: this machine's sshd on port 22 of namespace md-HOST
# ($SYS_NET.OCTET) with a throwaway host key, letting USER in with PUBKEY only.
sys_sshd() {
    local host=$1 octet=$2 user=$3 pubkey=$4
    local dir="$SYS_WORK/sshd-$host"
    mkdir -p "$dir/authorized_keys" /run/sshd
    ssh-keygen -q -t ed25519 -N '' -C "md-$host host key" -f "$dir/host_key"
    cp "$pubkey" "$dir/authorized_keys/$user"
    cat >"$dir/sshd_config" <<EOF_SSHD
ListenAddress $SYS_NET.$octet:22
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys/%u
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF_SSHD
    ip netns exec "md-$host" /usr/sbin/sshd -D -e -f "$dir/sshd_config" \
        </dev/null 2>"$dir/sshd.log" &
    disown  # teardown kills it with its namespace; no "Killed" job notice then
    sys_wait_port "$host" "$SYS_NET.$octet" 22 ||
        die "sshd in md-$host is not listening; its log: $(cat "$dir/sshd.log")"
}

# sys_smtp OCTET: a real SMTP server (aiosmtpd's own command line and its Mailbox handler) on
# port 25 of namespace md-smtp; every accepted message lands in the maildir $SYS_WORK/mail.
sys_smtp() {
    local octet=$1
    ip netns exec md-smtp python3 -m aiosmtpd -n -l "$SYS_NET.$octet:25" \
        -c aiosmtpd.handlers.Mailbox "$SYS_WORK/mail" </dev/null >"$SYS_WORK/smtp.log" 2>&1 &
    disown
    sys_wait_port smtp "$SYS_NET.$octet" 25 ||
        die "the SMTP server is not listening; its log: $(cat "$SYS_WORK/smtp.log")"
}

sys_teardown() {
    local rc=$?
    set +e
    if [ -n "$SYS_NSPAWN_PID" ]; then
        kill "$SYS_NSPAWN_PID" 2>/dev/null
        pkill -TERM -f "systemd-nspawn.*--machine=md-server" 2>/dev/null
        for _ in $(seq 1 40); do pgrep -f "systemd-nspawn.*--machine=md-server" >/dev/null || break; sleep 0.25; done
        pkill -KILL -f "systemd-nspawn.*--machine=md-server" 2>/dev/null
    fi
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '/^md-/ {print $1}'); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
        ip netns delete "$ns"
    done
    local u
    for u in "${SYS_USERS[@]}"; do
        crontab -r -u "$u" 2>/dev/null  # monitor-deploy's @reboot line for the agent
        userdel --force "$u" 2>/dev/null
    done
    local h
    for h in systemd unified; do
        [ -d "/sys/fs/cgroup/$h/$SYS_CGROUP" ] &&
            find "/sys/fs/cgroup/$h/$SYS_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    [ -n "$SYS_WORK" ] && rm -rf "$SYS_WORK"
    exit "$rc"
}
