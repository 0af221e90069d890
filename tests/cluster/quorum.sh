#!/usr/bin/env bash
# Membership and quorum of a real 3-node corosync cluster as nodes die, come
# back and are partitioned, seen through corosync-quorumtool and through our
# own `corowire quorum`, which must print the same thing.
#
#   cargo build --locked -p corowire-cli
#   tests/harness/with-cluster -- tests/cluster/quorum.sh
#
# COROWIRE_BIN overrides the corowire binary (default target/debug/corowire).
# Every wait is bounded (COROWIRE_CLUSTER_WAIT_TIMEOUT, default 60 s, per
# wait); a bound that runs out fails the test with the node's last status.
# Exit status 0 when every check held, 1 otherwise.

set -euo pipefail

readonly PROG=${0##*/}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
corowire=${COROWIRE_BIN:-$repo/target/debug/corowire}

fail() {
    echo "$PROG: FAILED: $*" >&2
    exit 1
}

[[ -n ${CLUSTER_CTL:-} ]] || fail "CLUSTER_CTL is not set: run this under tests/harness/with-cluster"
[[ $($CLUSTER_CTL nodes) == 3 ]] || fail "needs a 3-node cluster (with-cluster --nodes 3)"
[[ -x $corowire ]] || fail "no $corowire: build it first (cargo build --locked -p corowire-cli)"

ctl() {
    "$CLUSTER_CTL" "$@" || fail "$CLUSTER_CTL $* exited with status $?"
}

step() {
    echo "$PROG: $*"
}

# expect NODE QUORATE NODES EXPECTED TOTAL QUORUM: node NODE's
# `corosync-quorumtool -s` says exactly this, and `corowire quorum -s` prints
# the same text (but for the Date: line) with the same exit status.
expect() {
    local node=$1 quorate=$2 nodes=$3 expected=$4 total=$5 quorum=$6
    local c_out c_rc r_out r_rc
    c_out=$($CLUSTER_CTL exec "$node" corosync-quorumtool -s 2>&1) && c_rc=0 || c_rc=$?
    r_out=$($CLUSTER_CTL exec "$node" "$corowire" quorum -s 2>&1) && r_rc=0 || r_rc=$?
    local want_rc=0
    [[ $quorate == Yes ]] || want_rc=2
    local got
    got=$(awk -F': +' '
        $1 == "Quorate" { q = $2 } $1 == "Nodes" { n = $2 }
        $1 == "Expected votes" { e = $2 } $1 == "Total votes" { t = $2 }
        $1 == "Quorum" { split($2, w, " "); m = w[1] }
        END { printf "quorate %s, nodes %s, expected votes %s, total votes %s, quorum %s", q, n, e, t, m }
    ' <<<"$c_out")
    local want="quorate $quorate, nodes $nodes, expected votes $expected, total votes $total, quorum $quorum"
    if [[ $got != "$want" || $c_rc != "$want_rc" ]]; then
        printf '%s\n' "$c_out" >&2
        fail "node $node: corosync-quorumtool -s says '$got' (status $c_rc), wanted '$want' (status $want_rc)"
    fi
    if [[ $(grep -v '^Date:' <<<"$r_out") != "$(grep -v '^Date:' <<<"$c_out")" || $r_rc != "$c_rc" ]]; then
        diff <(printf '%s\n' "$c_out") <(printf '%s\n' "$r_out") >&2 || true
        fail "node $node: corowire quorum -s (status $r_rc) differs from corosync-quorumtool -s (status $c_rc)"
    fi
}

step "3 nodes up: all quorate"
for n in 1 2 3; do
    expect "$n" Yes 3 3 3 2
done

step "kill node 3: 2 of 3 votes are still a quorum"
ctl kill 3
ctl wait-members 1 2
ctl wait-members 2 2
expect 1 Yes 2 3 2 2
expect 2 Yes 2 3 2 2

step "kill node 2: node 1 alone is not quorate"
ctl kill 2
ctl wait-members 1 1
ctl wait-quorate 1 no
expect 1 No 1 3 1 2

step "restart nodes 2 and 3: 3 members, quorate again"
ctl start 2
ctl start 3
for n in 1 2 3; do
    ctl wait-members "$n" 3
    ctl wait-quorate "$n" yes
done
expect 1 Yes 3 3 3 2

step "partition 1 | 2,3: the majority side keeps quorum"
ctl partition 1 2,3
ctl wait-members 1 1
ctl wait-quorate 1 no
ctl wait-members 2 2
ctl wait-members 3 2
expect 1 No 1 3 1 2
expect 2 Yes 2 3 2 2
expect 3 Yes 2 3 2 2

step "heal: one partition of 3 again"
ctl heal
for n in 1 2 3; do
    ctl wait-members "$n" 3
    ctl wait-quorate "$n" yes
done
expect 1 Yes 3 3 3 2

step "pause node 2: the others drop it; resume: it rejoins"
ctl pause 2
ctl wait-members 1 2
expect 1 Yes 2 3 2 2
ctl resume 2
for n in 1 2 3; do
    ctl wait-members "$n" 3
done
expect 2 Yes 3 3 3 2

step "all checks passed"
