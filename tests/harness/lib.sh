# shellcheck shell=bash
# lib.sh: what the harness scripts (with-cluster; with-corosync can use it
# too) share: messages, package installation, and re-executing the calling
# script inside fresh namespaces.  Source it; it defines PROG (the caller's
# name) and HARNESS_FAILURE (the exit status of a harness failure, 125).

PROG=${0##*/}
readonly PROG
readonly HARNESS_FAILURE=125

die() {
    echo "$PROG: error: $*" >&2
    exit "$HARNESS_FAILURE"
}

note() {
    if [[ ${COROWIRE_HARNESS_VERBOSE:-0} == 1 ]]; then
        echo "$PROG: $*" >&2
    fi
}

# apt_install PACKAGE...: install with apt-get (stdout to stderr), running
# `apt-get update` first if the install fails.  Needs the real network, so
# call it before entering any namespace.
apt_install() {
    echo "$PROG: installing $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "$@" >&2 ||
        { apt-get update >&2 && apt-get install -y "$@" >&2; } ||
        die "could not install $*"
}

# reexec_in_namespaces MARKER TEMPLATE SCRIPT [ARGS...]: runs `bash SCRIPT
# ARGS...` as PID 1 of fresh network, mount and pid namespaces, with the
# variable named MARKER exported and set to a new scratch directory
# (`mktemp -d $TMPDIR/TEMPLATE`, on the host filesystem).  Afterwards removes
# that directory (unless COROWIRE_KEEP_WORKDIR=1) and exits with SCRIPT's
# status.  Never returns.
#
# The chain of parent-death signals makes a SIGKILL of the caller take the
# whole namespace down: setpriv --pdeathsig KILL for unshare, and unshare
# --kill-child for SCRIPT (PID 1 there), which takes everything in the
# namespace with it.  Only the scratch directory is left behind in that case.
# SIGINT, SIGTERM and SIGHUP are passed on to SCRIPT, which should clean up
# and exit.
reexec_in_namespaces() {
    local marker=$1 template=$2
    shift 2
    # Bash starts background jobs of a non-interactive shell with SIGINT
    # ignored, and a signal ignored on entry cannot be trapped: the trap below
    # would be a no-op and a `kill -INT` of a backgrounded harness would be
    # dropped.  Start over (as the same outer copy) with SIGINT back to its
    # default, which lets the trap take it.
    if sigint_ignored; then
        exec env --default-signal=INT -- "$BASH" "$@"
    fi
    local workdir
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/$template")
    export "$marker=$workdir"
    # Whatever ends this shell from here on (the end below, a failure under
    # set -e, a signal the traps below turn into an exit), the scratch
    # directory goes with it.  Only a SIGKILL leaves it behind.
    # shellcheck disable=SC2064  # expand the path now
    trap "remove_workdir '$workdir'" EXIT
    local pdeathsig=()
    if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then
        pdeathsig=(setpriv --pdeathsig KILL --)
    fi
    # '<&0': a background job would otherwise get /dev/null as stdin.  Bash
    # starts background jobs with SIGINT ignored, and a signal ignored on
    # entry cannot be trapped, so SCRIPT would never see a forwarded SIGINT
    # without --default-signal.
    env --default-signal=INT -- "${pdeathsig[@]}" \
        unshare --net --mount --pid --fork --mount-proc --kill-child \
        -- "$BASH" "$@" <&0 &
    local unshare_pid=$!
    # unshare --fork ignores SIGINT/SIGTERM while it waits: pass them on.
    local sig
    for sig in INT TERM HUP; do
        # shellcheck disable=SC2064  # expand the pid now
        trap "pkill --signal $sig -P $unshare_pid 2>/dev/null || true" "$sig"
    done
    # A trapped signal interrupts 'wait' (status > 128, child not reaped);
    # keep waiting until unshare is gone.
    local status=$HARNESS_FAILURE
    while kill -0 "$unshare_pid" 2>/dev/null; do
        wait "$unshare_pid" && status=0 || status=$?
    done
    exit "$status"
}

# remove_workdir DIR: the EXIT trap of reexec_in_namespaces; keeps DIR if
# COROWIRE_KEEP_WORKDIR=1.
remove_workdir() {
    if [[ ${COROWIRE_KEEP_WORKDIR:-0} == 1 ]]; then
        echo "$PROG: kept $1" >&2
    else
        rm -rf --one-file-system -- "$1"
    fi
}

# sigint_ignored: whether this shell started with SIGINT ignored (bit 2 of
# the SigIgn mask in /proc/$$/status).
sigint_ignored() {
    local mask
    mask=$(awk '$1 == "SigIgn:" { print $2 }' "/proc/$$/status" 2>/dev/null) || return 1
    [[ -n $mask ]] && (((16#$mask & 2) != 0))
}
