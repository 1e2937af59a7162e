#!/usr/bin/env bash
# Several hosts on one machine, for the multi-host tests (tests/multihost/README.md).
#
#   cluster.sh run --hosts K [--keep-going] -- COMMAND [ARGS...]
#       Creates K hosts as network namespaces, each with its own hostname (unshare --uts), a veth
#       link to a bridge in the calling namespace and an address on a private /24 made for this
#       run; runs COMMAND with
#         STARFT_MH_STATE  the run's state directory (hostfile, rsh agent, logs),
#         STARFT_MH_MPIRUN an mpirun that starts ranks across the hosts with Open MPI over TCP
#                          (one orted per host, through an rsh agent that enters the namespace),
#         STARFT_MH_HOSTS  the hosts' names, space separated, and STARFT_MH_CLUSTER this script;
#       then removes every namespace, link and process it made, also when COMMAND fails or the
#       script is interrupted. Exits with COMMAND's status, or 77 (skip) with a message where
#       namespaces cannot be made (not root, no iproute2, no CAP_SYS_ADMIN).
#   cluster.sh cut HOST | restore HOST   the host's link down (packets dropped, no reset) / up again
#   cluster.sh kill HOST                 SIGKILL to every process in the host (orted and ranks)
#   cluster.sh pids HOST                 the host's starft processes, one pid a line
#   cluster.sh cleanup-stale             removes what runs whose script has died left behind
# HOST is a host's name or its index (0-based). The control commands read $STARFT_MH_STATE.
#
# Everything is named sfmh<pid>...: the pid of the `run` that made it, so concurrent runs do not
# meet, and a later run removes what a killed one (SIGKILL leaves no trap) left behind.
# Only the addresses made here and loopback are used.
set -uo pipefail

die() { echo "cluster.sh: $*" >&2; exit 1; }
skip() { echo "SKIP: cluster.sh: $* -- the multi-host tests need root with CAP_SYS_ADMIN and iproute2 (ip netns, veth, bridge)" >&2; exit 77; }

# --- control commands on a running cluster ----------------------------------------------------
state_var() { sed -n "s/^$1=//p" "${STARFT_MH_STATE:?STARFT_MH_STATE is not set}/env"; }
host_index() {
  local h=$1 i=0
  case "$h" in ''|*[!0-9]*) ;; *) echo "$h"; return ;; esac
  for name in $(state_var hosts); do
    [ "$name" = "$h" ] && { echo $i; return; }
    i=$((i + 1))
  done
  die "no host '$h' (hosts: $(state_var hosts))"
}
ns_of() { echo "$(state_var prefix)h$(host_index "$1")"; }
veth_of() { echo "$(state_var prefix)v$(host_index "$1")"; }
starft_pids() {
  local pid
  for pid in $(ip netns pids "$1" 2>/dev/null); do
    [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = starft ] && echo "$pid"
  done
}

# Removes one run's namespaces (with their processes), links and bridge; idempotent.
remove_run() {
  local prefix=$1 ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}h"); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}h"); do
    # wait (bounded) for the killed processes to be gone, then remove the namespace
    for _ in $(seq 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
    ip netns del "$ns" 2>/dev/null
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^${prefix}"); do
    ip link del "$link" 2>/dev/null
  done
}

cleanup_stale() {
  local prefix pid
  for prefix in $( { ip netns list 2>/dev/null | awk '{print $1}'; ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1; } |
                  sed -n 's/^\(sfmh[0-9][0-9]*\)[hvb].*/\1/p' | sort -u); do
    pid=${prefix#sfmh}
    # dead, or a zombie nobody has reaped yet
    if ! kill -0 "$pid" 2>/dev/null || [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" = Z ]; then
      echo "cluster.sh: removing what the dead run $pid left behind" >&2
      remove_run "$prefix"
      rm -rf "${TMPDIR:-/tmp}"/starft-multihost-"$pid".*
    fi
  done
}

case "${1:-}" in
  cut) ip link set "$(veth_of "$2")" down; exit ;;
  restore) ip link set "$(veth_of "$2")" up; exit ;;
  kill)
    ns=$(ns_of "$2")
    for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
    exit 0 ;;
  pids) starft_pids "$(ns_of "$2")"; exit 0 ;;
  cleanup-stale) cleanup_stale; exit 0 ;;
  run) shift ;;
  -h|--help|'') sed -n '2,24p' "$0"; exit 0 ;;
  *) die "unknown command '$1' (see --help)" ;;
esac

# --- run --------------------------------------------------------------------------------------
hosts=2
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts=$2; shift 2 ;;
    --) shift; break ;;
    *) die "unknown option '$1'" ;;
  esac
done
[ $# -gt 0 ] || die "run: no command given"
case "$hosts" in ''|*[!0-9]*) die "--hosts must be a positive integer" ;; esac
[ "$(id -u)" -eq 0 ] || skip "not root"
command -v ip > /dev/null || skip "no 'ip' command (iproute2)"
command -v unshare > /dev/null || skip "no 'unshare' command (util-linux)"
command -v mpirun > /dev/null || skip "no mpirun (Open MPI)"

cleanup_stale
prefix="sfmh$$"
state=$(mktemp -d "${TMPDIR:-/tmp}/starft-multihost-$$.XXXXXX")
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [ -n "${child:-}" ] && kill -9 "$child" 2>/dev/null
  # processes started through the mpirun wrapper (mpirun runs in this namespace)
  if [ -f "$state/mpirun.pids" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done < "$state/mpirun.pids"
  fi
  remove_run "$prefix"
  local left
  left=$( { ip netns list | awk '{print $1}'; ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1; } | grep "^$prefix")
  [ -n "$left" ] && echo "cluster.sh: could not remove: $left" >&2
  [ -n "${STARFT_MH_KEEP_STATE:-}" ] || rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A /24 in 10.0.0.0/8 that no route of this machine covers, picked from the pid.
subnet=""
for try in $(seq 0 40); do
  n=$(( ($$ + try * 7919) % 60000 ))
  candidate="10.$(( 100 + n / 256 % 150 )).$(( n % 256 ))"
  if ! ip route show | grep -q "^${candidate}\." && ! ip -o addr show | grep -q "inet ${candidate}\."; then
    subnet=$candidate
    break
  fi
done
[ -n "$subnet" ] || die "no free private /24 found"

bridge="${prefix}b"
ip link add "$bridge" type bridge 2> "$state/err" || skip "cannot create a bridge: $(cat "$state/err")"
ip link set "$bridge" up || die "cannot bring $bridge up"
# add_netns NS SUFFIX ADDRESS: a namespace with loopback and eth0 (ADDRESS/24), joined to the bridge
add_netns() {
  local ns=$1 veth="${prefix}v$2" peer="${prefix}p$2"
  ip netns add "$ns" 2> "$state/err" || skip "cannot create a network namespace: $(cat "$state/err")"
  ip link add "$veth" type veth peer name "$peer" 2> "$state/err" || skip "cannot create a veth pair: $(cat "$state/err")"
  ip link set "$peer" netns "$ns" || die "cannot move a veth end into $ns"
  ip link set "$veth" master "$bridge" && ip link set "$veth" up || die "cannot attach $veth to $bridge"
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip link set "$peer" name eth0
  ip netns exec "$ns" ip addr add "$3/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
}
# The head: mpirun's own namespace, so that nothing of a run lives in the caller's network. Its
# TCP gives up on unacknowledged data after 4 retransmissions (about 6 s; Linux's default, 15,
# takes some 15 minutes): mpirun's orders to a cut-off host's orted fail in seconds instead of
# keeping mpirun waiting. The hosts keep the defaults, so that a cut link stalls the ranks' MPI
# traffic until starft's --comm-timeout names the ranks it lost.
head="${prefix}hm"
add_netns "$head" m "$subnet.1"
ip netns exec "$head" sh -c 'echo 4 > /proc/sys/net/ipv4/tcp_retries2' || die "cannot set tcp_retries2 in $head"
names=()
for i in $(seq 0 $((hosts - 1))); do
  ns="${prefix}h$i"
  name="mh${$}host$i"
  add_netns "$ns" "$i" "$subnet.$((10 + i))"
  ip netns exec "$ns" unshare --uts true 2> "$state/err" || skip "cannot unshare the UTS namespace: $(cat "$state/err")"
  names+=("$name")
  echo "$name slots=64" >> "$state/hostfile"
  echo "$name $ns" >> "$state/hosts.map"
done
for i in $(seq 0 $((hosts - 1))); do
  ns="${prefix}h$i"
  # wait (bounded) until every host reaches the head
  ok=""
  for _ in $(seq 100); do
    # a TCP connection to a closed port of the head's address: refused (at once) = reachable
    err=$(ip netns exec "$ns" timeout 2 bash -c "exec 3<>/dev/tcp/$subnet.1/9" 2>&1)
    case "$err" in *refused*) ok=1; break ;; esac
    sleep 0.1
  done
  [ -n "$ok" ] || die "host $i ($ns) cannot reach the head ($subnet.1) over the bridge"
done
{
  echo "prefix=$prefix"
  echo "subnet=$subnet"
  echo "hosts=${names[*]}"
} > "$state/env"

# The rsh agent: `agent [ssh options] HOST COMMAND...` runs COMMAND in HOST's namespace with
# HOST as the hostname, as ssh would run it there (one shell command line).
cat > "$state/agent" <<'EOF'
#!/usr/bin/env bash
while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done
host=$1; shift
ns=$(awk -v h="$host" '$1 == h {print $2}' "$(dirname "$0")/hosts.map")
[ -n "$ns" ] || { echo "agent: unknown host $host" >&2; exit 255; }
exec ip netns exec "$ns" unshare --uts /bin/sh -c 'hostname "$1" && shift && exec /bin/sh -c "$*"' sh "$host" "$@"
EOF
chmod +x "$state/agent"

# mpirun across the hosts: TCP between hosts, shared memory within one; out-of-band and MPI
# traffic only on this run's /24; orted launched directly (no tree spawn); TCP keepalive on the
# daemons' connections ($STARFT_MH_KEEPALIVE s idle, default 40, then 3 probes 2 s apart) so that
# mpirun and the orted notice a cut link in under a minute (Open MPI's default: 300 + 9 x 20 s),
# yet after starft's own --comm-timeout of 30 s has named the ranks it lost.
cat > "$state/mpirun" <<EOF
#!/usr/bin/env bash
echo \$\$ >> "$state/mpirun.pids"
exec ip netns exec "$head" mpirun --allow-run-as-root --hostfile "$state/hostfile" --bind-to none \\
  --mca plm_rsh_agent "$state/agent" --mca plm_rsh_no_tree_spawn 1 \\
  --mca oob_tcp_if_include $subnet.0/24 --mca btl_tcp_if_include $subnet.0/24 --mca btl tcp,vader,self \\
  --mca oob_tcp_keepalive_time ${STARFT_MH_KEEPALIVE:-40} --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3 \\
  -x OMP_NUM_THREADS=1 "\$@"
EOF
chmod +x "$state/mpirun"

export STARFT_MH_STATE="$state" STARFT_MH_MPIRUN="$state/mpirun" STARFT_MH_HOSTS="${names[*]}"
STARFT_MH_CLUSTER="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
export STARFT_MH_CLUSTER
echo "cluster.sh: $hosts hosts (${names[*]}) and the head (mpirun) on $subnet.0/24, bridge $bridge" >&2
"$@" &
child=$!
wait "$child"
exit $?
