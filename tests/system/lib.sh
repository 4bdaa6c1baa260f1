# shellcheck shell=bash
# tests/system/lib.sh — scaffolding for the systemd system test, sourced by tests/system/run.
#
# Everything the test makes lives in names starting with "md-" and in one temp dir, and
# `sys_teardown` (run from an EXIT trap) removes all of it even when a step fails:
# - a network of its own: a bridge inside network namespace md-br, and one namespace per
#   host (md-server and md-client for the booted containers, md-web1, md-web2 for client
#   hosts with their own sshd, md-smtp for the SMTP server), addresses from 192.0.2.0/24
#   (TEST-NET-1, never routed anywhere), so no test traffic touches the machine's own network;
# - Debian bookworm containers booted with systemd-nspawn from a debootstrap rootfs cached
#   outside the clone (SYS_CACHE), each booting its own copy so the cache stays pristine and
#   a container rebooted keeps its disk.
#
# PID 1 on these machines is not systemd: nspawn runs with --register=no --keep-unit, each
# boot in a cgroup of its own under $SYS_CGROUP, which teardown empties and removes.

SYS_CACHE=${SYS_CACHE:-/var/cache/monitord}
SYS_ROOTFS_CACHE=$SYS_CACHE/rootfs-bookworm
# What the containers need besides minbase: systemd to boot, what the .deb Depends on, and
# for the container that is a client host of monitor-deploy sshd and pam_systemd (without
# it a lingering user's systemd --user fails: no XDG_RUNTIME_DIR; every stock Debian has it).
SYS_ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,openssh-client,adduser,procps,iproute2,sqlite3,ca-certificates,cron,openssh-server,libpam-systemd
# Held shared while a rootfs is copied from the cache, exclusively while the cache is rebuilt,
# so a run that rebuilds it never pulls it from under another run's copy.
SYS_ROOTFS_LOCK=$SYS_CACHE/rootfs-bookworm.lock
SYS_NET=192.0.2
SYS_CGROUP=monitord-systest-$$
SYS_WORK=
declare -A SYS_NSPAWN_PIDS=()  # machine name (server, client) -> pid of its systemd-nspawn
SYS_BOOTS=0
SYS_USERS=()

log() { printf '[system-test %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# Builds the cached rootfs when it is missing or lacks a package of SYS_ROOTFS_PACKAGES (the
# cache is keyed on that list: add a package there and the next run rebuilds it; a run with an
# older, shorter list is content with the newer cache).
sys_rootfs() {
    mkdir -p "$SYS_CACHE"
    (
        flock -x 9
        sys_rootfs_complete && exit 0
        [ -x "$SYS_ROOTFS_CACHE/lib/systemd/systemd" ] &&
            log "the rootfs cache lacks some of: $SYS_ROOTFS_PACKAGES; rebuilding it"
        log "building the debootstrap rootfs cache in $SYS_ROOTFS_CACHE (once)"
        rm -rf "$SYS_ROOTFS_CACHE.tmp"
        debootstrap --variant=minbase --include="$SYS_ROOTFS_PACKAGES" bookworm \
            "$SYS_ROOTFS_CACHE.tmp" http://deb.debian.org/debian >"$SYS_CACHE/debootstrap.log" 2>&1 \
            || die "debootstrap failed, see $SYS_CACHE/debootstrap.log"
        rm -rf "$SYS_ROOTFS_CACHE"
        mv "$SYS_ROOTFS_CACHE.tmp" "$SYS_ROOTFS_CACHE"
    ) 9>"$SYS_ROOTFS_LOCK" || exit 1
}

# Whether every package of the list is installed in the cache ("ii"; `dpkg-query -W` alone
# also succeeds for a package dpkg merely knows of, state "un").
sys_rootfs_complete() {
    [ -x "$SYS_ROOTFS_CACHE/lib/systemd/systemd" ] || return 1
    local states
    # shellcheck disable=SC2046,SC2016 # one word per package; a dpkg-query format, not shell
    states=$(chroot "$SYS_ROOTFS_CACHE" dpkg-query -W -f '${db:Status-Abbrev}\n' \
        $(tr , ' ' <<<"$SYS_ROOTFS_PACKAGES") 2>/dev/null) || return 1
    ! grep -qv '^ii' <<<"$states"
}

# sys_rootfs_copy NAME: the root directory of machine NAME, $SYS_WORK/NAME/root, a fresh copy
# of the cache. Kept for the whole run, so the machine can be booted again from it.
sys_rootfs_copy() {
    local dir="$SYS_WORK/$1/root"
    mkdir -p "$dir"
    flock -s "$SYS_ROOTFS_LOCK" cp -a "$SYS_ROOTFS_CACHE/." "$dir/"
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

# sys_boot_start NAME: boots machine md-NAME in network namespace md-NAME from its root
# directory (sys_rootfs_copy), in the background; sys_boot_wait NAME waits for it. Each boot
# gets a cgroup of its own (a machine booted again does not inherit the last boot's subtree).
sys_boot_start() {
    local name=$1 cgroup h
    SYS_BOOTS=$((SYS_BOOTS + 1))
    cgroup="$SYS_CGROUP/$name.$SYS_BOOTS"
    for h in systemd unified; do
        mkdir -p "/sys/fs/cgroup/$h/$cgroup"
    done
    (
        for h in systemd unified; do
            echo "$BASHPID" >"/sys/fs/cgroup/$h/$cgroup/cgroup.procs"
        done
        exec systemd-nspawn --boot --register=no --keep-unit --quiet \
            --machine="md-$name" --network-namespace-path="/run/netns/md-$name" \
            --bind-ro="$SYS_WORK/share:/mnt/share" -D "$SYS_WORK/$name/root" \
            </dev/null >>"$SYS_WORK/$name/console.log" 2>&1
    ) &
    SYS_NSPAWN_PIDS[$name]=$!
}

sys_boot_wait() {
    local name=$1 state
    for _ in $(seq 1 120); do
        state=$(sys_in_on "$name" systemctl is-system-running 2>/dev/null || true)
        if [ "$state" = running ] || [ "$state" = degraded ]; then
            log "md-$name booted ($state)"
            return
        fi
        kill -0 "${SYS_NSPAWN_PIDS[$name]}" 2>/dev/null ||
            die "systemd-nspawn of md-$name exited; console: $(tail -n 20 "$SYS_WORK/$name/console.log")"
        sleep 0.5
    done
    die "md-$name did not boot within 60 s; console: $SYS_WORK/$name/console.log"
}

# sys_poweroff NAME: `systemctl poweroff` in md-NAME, then waits (30 s at most) for its
# systemd-nspawn to exit, as it does when the machine halts or reboots.
sys_poweroff() {
    local name=$1 pid=${SYS_NSPAWN_PIDS[$1]}
    sys_in_on "$name" systemctl poweroff || die "systemctl poweroff failed in md-$name"
    for _ in $(seq 1 120); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            unset "SYS_NSPAWN_PIDS[$name]"
            return
        fi
        sleep 0.25
    done
    die "md-$name did not power off within 30 s; console: $(tail -n 20 "$SYS_WORK/$name/console.log")"
}

# The PID of machine NAME's init, found as the child of its systemd-nspawn.
sys_init_pid() {
    local top=${SYS_NSPAWN_PIDS[$1]:-} nspawn
    [ -n "$top" ] || return 1
    nspawn=$(pgrep -P "$top" -x systemd-nspawn || echo "$top")
    pgrep -P "$nspawn" | head -n 1
}

# sys_in_on NAME CMD…: runs a command inside booted machine md-NAME; sys_in CMD…: in md-server.
sys_in_on() {
    local pid
    pid=$(sys_init_pid "$1") || return 1
    [ -n "$pid" ] || return 1
    shift
    nsenter --target "$pid" --mount --uts --ipc --net --pid -- env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

sys_in() { sys_in_on server "$@"; }

# sys_wait_port NS IP PORT: until a TCP connect from namespace md-NS succeeds (10 s at most).
sys_wait_port() {
    local ns=$1 ip=$2 port=$3
    for _ in $(seq 1 50); do
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

# Every process in this run's cgroups (both hierarchies: the machines' systemd may use either).
sys_cgroup_pids() {
    local h
    for h in systemd unified; do
        [ -d "/sys/fs/cgroup/$h/$SYS_CGROUP" ] &&
            find "/sys/fs/cgroup/$h/$SYS_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null
    done
    return 0
}

sys_teardown() {
    local rc=$?
    set +e
    local name pid
    # SIGTERM: nspawn halts the machine (SIGRTMIN+3 to its systemd); whatever is left in our
    # cgroups after 10 s is killed there, by cgroup, never by name.
    for name in "${!SYS_NSPAWN_PIDS[@]}"; do
        kill "${SYS_NSPAWN_PIDS[$name]}" 2>/dev/null
    done
    for _ in $(seq 1 40); do
        local alive=
        for name in "${!SYS_NSPAWN_PIDS[@]}"; do
            kill -0 "${SYS_NSPAWN_PIDS[$name]}" 2>/dev/null && alive=1
        done
        [ -n "$alive" ] || break
        sleep 0.25
    done
    for _ in $(seq 1 20); do
        [ -z "$(sys_cgroup_pids)" ] && break
        sys_cgroup_pids | xargs -r kill -KILL 2>/dev/null
        sleep 0.25
    done
    for pid in "${SYS_NSPAWN_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
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
