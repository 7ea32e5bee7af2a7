#!/usr/bin/env bash
# A container host in three network namespaces, all made here and routing
# nowhere else:
#   NAME-ctr  (the "container", 198.18.0.2/24, default route via the host)
#     veth -> bridge NAME-br in
#   NAME-host (the "host": 198.18.0.1 on the bridge, 198.19.0.1/24 towards
#             the server, forwarding on, and its NAT rules)
#     veth ->
#   NAME-srv  (the "server", 198.19.0.2/24, no route back to 198.18.0.0/24:
#             only translated packets can be answered)
# NAT on the host, towards the server:
#   TCP to port 7000, UDP to 7001: MASQUERADE (the port kept where it can be)
#   TCP to port 7002, UDP to 7003: SNAT to 198.19.0.1, ports 62000-62009
#     (every source port changes)
#
#   nat_topology.sh up NAME     make it (fails if any part cannot be made)
#   nat_topology.sh down NAME   remove it (whatever exists of it)
set -euo pipefail
cmd=${1:?up or down}
name=${2:?name}
ctr=$name-ctr host=$name-host srv=$name-srv

down() {
  for ns in "$ctr" "$host" "$srv"; do ip netns del "$ns" 2>/dev/null || true; done
}

if [ "$cmd" = down ]; then
  down
  exit 0
fi
[ "$cmd" = up ] || { echo "nat_topology.sh: up or down" >&2; exit 2; }
trap 'down' ERR
for ns in "$ctr" "$host" "$srv"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
# container <-> bridge on the host
ip -n "$host" link add br0 type bridge
ip -n "$host" link set br0 up
ip -n "$host" addr add 198.18.0.1/24 dev br0
ip -n "$host" link add hc0 type veth peer name eth0 netns "$ctr"
ip -n "$host" link set hc0 master br0 up
ip -n "$ctr" addr add 198.18.0.2/24 dev eth0
ip -n "$ctr" link set eth0 up
ip -n "$ctr" route add default via 198.18.0.1
# host <-> server
ip -n "$host" link add hs0 type veth peer name eth0 netns "$srv"
ip -n "$host" addr add 198.19.0.1/24 dev hs0
ip -n "$host" link set hs0 up
ip -n "$srv" addr add 198.19.0.2/24 dev eth0
ip -n "$srv" link set eth0 up
ip netns exec "$host" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$host" nft -f - <<'EOF'
table ip portghost_test {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "hs0" ip saddr 198.18.0.0/24 tcp dport 7002 snat to 198.19.0.1:62000-62009
    oifname "hs0" ip saddr 198.18.0.0/24 udp dport 7003 snat to 198.19.0.1:62000-62009
    oifname "hs0" ip saddr 198.18.0.0/24 masquerade
  }
}
EOF
