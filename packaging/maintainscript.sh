# The package's maintainer scripts (Debian postinst/prerm/postrm, RPM %post/%preun): the
# one source of both. `cargo xtask package` writes each script as this file plus one call
# (deb_postinst "$@", rpm_preun "$1", ...). POSIX sh, run as root with `set -e`.
#
# Installing starts nothing (the administrator runs `sysmon -accepteula -i`). Upgrading
# puts the new binaries into /opt/sysmon and restarts a daemon that runs; its config, the
# stored command line and the EventRecordID counter stay. Removing runs `sysmon -u` when a
# daemon is installed; purging (Debian only: RPM has no purge) removes /opt/sysmon and what
# `sysmon -i` wrote outside it, except the events already logged in /var/log/sysmon.log.
#
# DPKG_ROOT (dpkg --root with --force-script-chrootless; the package tests) prefixes every
# path, and becomes SYSMON_ROOT for the sysmon binary.

root="${DPKG_ROOT:-}"
state="$root/opt/sysmon"
if [ -n "$root" ]; then
    SYSMON_ROOT="$root"
    export SYSMON_ROOT
fi

systemd_runs() {
    [ -d "$root/run/systemd/system" ]
}

# Set up by `sysmon -i` (then removed by nothing but a purge).
daemon_installed() {
    [ -x "$state/sysmon" ]
}

# The daemon runs: its pid file names a live process called sysmon (as sysmon finds it).
daemon_running() {
    pid=$(cat "$root/run/sysmon.pid" 2>/dev/null) || return 1
    case "$pid" in
    '' | *[!0-9]*) return 1 ;;
    esac
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sysmon ]
}

# Replaces a file the daemon may be running from: a new inode, never a rewrite in place.
replace_binary() {
    [ -f "$root/usr/bin/$1" ] || return 0
    cp "$root/usr/bin/$1" "$state/$1.dpkg-new"
    chmod 0700 "$state/$1.dpkg-new"
    mv -f "$state/$1.dpkg-new" "$state/$1"
}

# After the new files are unpacked over an older version.
upgraded() {
    daemon_installed || return 0
    if systemd_runs; then
        replace_binary sysmon
        replace_binary sysmonLogView
        systemctl try-restart sysmon.service
    elif daemon_running; then
        "$root/usr/bin/sysmon" -u >/dev/null
        replace_binary sysmon
        replace_binary sysmonLogView
        # Returns once the daemon runs again, with the stored config and command line.
        "$state/sysmon" -service
    else
        replace_binary sysmon
        replace_binary sysmonLogView
    fi
}

# Before the package's files go: stop the daemon and disable the unit; /opt/sysmon stays.
removing() {
    daemon_installed || return 0
    "$root/usr/bin/sysmon" -u >/dev/null || "$root/usr/bin/sysmon" -u force >/dev/null
}

purged() {
    rm -rf "$state"
    rm -f "$root/run/sysmon.pid" "$root/etc/logrotate.d/sysmon"
    unit="$root/etc/systemd/system/sysmon.service"
    if [ -e "$unit" ]; then
        rm -f "$unit" "$root/etc/systemd/system/multi-user.target.wants/sysmon.service"
        if systemd_runs; then
            systemctl daemon-reload
        fi
    fi
    split="$root/etc/rsyslog.d/30-sysmon.conf"
    if [ -e "$split" ]; then
        rm -f "$split"
        if systemd_runs; then
            systemctl try-restart rsyslog.service
        fi
    fi
}

deb_postinst() {
    # `configure <version>`: the version configured before, empty on a first install.
    if [ "$1" = configure ] && [ -n "${2:-}" ]; then
        upgraded
    fi
}

deb_prerm() {
    if [ "$1" = remove ]; then
        removing
    fi
}

deb_postrm() {
    if [ "$1" = purge ]; then
        purged
    fi
}

# RPM passes the number of versions installed once the transaction is done.
rpm_post() {
    if [ "$1" -ge 2 ]; then
        upgraded
    fi
}

rpm_preun() {
    if [ "$1" -eq 0 ]; then
        removing
    fi
}
