#!/usr/bin/env bash
# Whole-process speed of `sensor replay` against peer flow tools on one large
# generated capture, and (with --live) the packet rate `sensor live` sustains
# on a veth pair fed by tcpreplay --topspeed.
#
#   benches/compare.sh                  full comparison (about 10 minutes on 2 cores)
#   benches/compare.sh --quick          200 000-packet capture, 1 round: a smoke test
#   benches/compare.sh --live [--quick] live rate through two network namespaces
#
# Options:
#   --quick          small capture (200 000 packets) and 1 round, no VLAN pass,
#                    no memory-per-flow measurement
#   --rounds N       rounds of the alternating comparison (default 3)
#   --sensor-rounds N  rounds of the second, sensor-only pass (w1, w2, w2 with
#                    the detector) that the scaling and detector shares are
#                    also taken from (default 11; 0 skips it): those runs
#                    take seconds, so many rounds are cheap, and the ratios
#                    need them on a shared machine
#   --packets N      packets in the generated capture (default 3 500 000)
#   --dir DIR        where captures and logs go (default /tmp/flowmon-bench or
#                    $FLOWMON_BENCH_DIR); never inside the repository
#   --no-vlan        skip the pass over the 802.1Q-tagged variant
#   --no-memory      skip the bytes-per-flow measurement at 1 M flows
#   --no-growth      skip the peak-memory-against-packets measurement
#   --live           measure live capture instead of replay (needs root,
#                    iproute2 and tcpreplay)
#   --workers N      shard workers of `sensor live` (default: all cores)
#
# The script installs nothing; it says which Debian packages supply a missing
# tool and leaves that tool out of the table. Every number it prints comes
# from this one run: the machine is shared and noisy, so compare ratios taken
# in the same run, never absolute times from different runs.
set -euo pipefail

# ---------------------------------------------------------------- arguments --

quick=0
rounds=""
sensor_rounds=""
packets=""
live=0
vlan_pass=1
memory=1
growth=1
live_workers=""
bench_dir="${FLOWMON_BENCH_DIR:-/tmp/flowmon-bench}"

usage() {
    # The comment block at the top of this file.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

need_value() {
    # $1 option, $2 number of arguments left after it
    if [[ $2 -lt 2 ]]; then
        echo "compare.sh: $1 needs a value" >&2
        exit 2
    fi
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --live) live=1 ;;
        --no-vlan) vlan_pass=0 ;;
        --no-memory) memory=0 ;;
        --no-growth) growth=0 ;;
        --rounds) need_value "$1" $#; rounds="$2"; shift ;;
        --sensor-rounds) need_value "$1" $#; sensor_rounds="$2"; shift ;;
        --packets) need_value "$1" $#; packets="$2"; shift ;;
        --dir) need_value "$1" $#; bench_dir="$2"; shift ;;
        --workers) need_value "$1" $#; live_workers="$2"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

for n in "$rounds" "$packets" "$live_workers"; do
    if [[ -n "$n" && ! "$n" =~ ^[1-9][0-9]*$ ]]; then
        echo "compare.sh: '$n' is not a positive number" >&2
        exit 2
    fi
done
if [[ -n "$sensor_rounds" && ! "$sensor_rounds" =~ ^[0-9]+$ ]]; then
    echo "compare.sh: '$sensor_rounds' is not a number" >&2
    exit 2
fi

if [[ $quick -eq 1 ]]; then
    rounds="${rounds:-1}"
    packets="${packets:-200000}"
    vlan_pass=0
    memory=0
    sensor_rounds="${sensor_rounds:-0}"
    capture_name="quick-${packets}"
else
    rounds="${rounds:-3}"
    sensor_rounds="${sensor_rounds:-11}"
    packets="${packets:-3500000}"
    capture_name="bench-${packets}"
fi

# ------------------------------------------------------------------ helpers --

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$bench_dir"
bench_dir="$(cd "$bench_dir" && pwd)"
case "$bench_dir/" in
    "$repo"/*)
        echo "compare.sh: --dir $bench_dir is inside the repository; captures are GBs, use /tmp" >&2
        exit 2
        ;;
esac
run_id="$(date -u +%Y%m%dT%H%M%SZ)"
logs="$bench_dir/logs-$run_id"
mkdir -p "$logs"

say() { printf '%s\n' "$*" >&2; }

# Median of the numbers on stdin (one a line); "-" when there are none.
median() {
    sort -g | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) { print "-"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

# Largest of the numbers on stdin.
maximum() {
    sort -g | tail -n 1
}

# Debian package that provides each peer command.
declare -A package_of=(
    [softflowd]=softflowd
    [argus]=argus-server
    [ra]=argus-client
    [tshark]=tshark
    [capinfos]=tshark
    [nfdump]=nfdump
    [tcpreplay]=tcpreplay
    [ip]=iproute2
)

missing=()
have() {
    if command -v "$1" >/dev/null 2>&1; then
        return 0
    fi
    missing+=("${package_of[$1]:-$1}")
    return 1
}

hint_missing() {
    if [[ ${#missing[@]} -gt 0 ]]; then
        say "note: not installed: ${missing[*]}"
        say "      all peers: apt-get install -y softflowd argus-client argus-server tshark nfdump time tcpreplay"
    fi
}

if [[ ! -x /usr/bin/time ]]; then
    say "compare.sh: /usr/bin/time (GNU time) is needed: apt-get install -y time"
    exit 2
fi

# ---------------------------------------------------------------- builds --

say "== building sensor and the capture generator (release)"
(
    cd "$repo"
    cargo build --release --quiet -p sensor
    cargo build --release --quiet -p flowbench --example make_bench_capture
)
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
sensor="$target_dir/release/sensor"
generator="$target_dir/release/examples/make_bench_capture"

# make_capture FILE [--vlan]: writes FILE unless it exists already (captures are
# deterministic, so an existing one with the same name is the same capture).
make_capture() {
    local file="$1"
    shift
    if [[ -s "$file" ]]; then
        say "== using existing $file"
        return
    fi
    say "== generating $file ($packets packets${1:+, 802.1Q-tagged})"
    "$generator" "$file.part" --packets "$packets" "$@" >&2
    mv "$file.part" "$file"
}

# count_packets FILE: packets in FILE, from capinfos when present, else from
# sensor's own summary (the summary run also brings FILE into the page cache).
count_packets() {
    local file="$1" n=""
    if command -v capinfos >/dev/null 2>&1; then
        n="$(capinfos -M -c -T -r "$file" | awk -F '\t' 'NF >= 2 { print $2 }')"
    fi
    if [[ -z "$n" ]]; then
        n="$("$sensor" replay --no-progress --workers 1 -o /dev/null "$file" 2>&1 |
            sed -n 's/^packets: \([0-9]*\) .*/\1/p')"
    fi
    echo "$n"
}

# ------------------------------------------------------------------- tools --

# The command line timed for each tool name. $cap is the capture, $logs the
# log directory.
tool_command() {
    local tool="$1"
    case "$tool" in
        sensor-w1) cmd=("$sensor" replay -q --no-progress --workers 1 -o /dev/null "$cap") ;;
        sensor-w2) cmd=("$sensor" replay -q --no-progress --workers 2 -o /dev/null "$cap") ;;
        # The same with the detector on (issue 4: within 85% of sensor-w2),
        # against the bench capture's address plan; alerts are discarded.
        sensor-w2-detector) cmd=("$sensor" replay -q --no-progress --workers 2 -o /dev/null
            --rules "$repo/rules/examples/bench.toml" --alerts /dev/null "$cap") ;;
        # And with a baseline learned from the same capture (every pair in
        # it known: each connection is looked up in it), as a deployment
        # runs; the baseline's loading is part of the run.
        sensor-w2-baseline) cmd=("$sensor" replay -q --no-progress --workers 2 -o /dev/null
            --rules "$repo/rules/examples/bench.toml" --baseline "$baseline_file"
            --alerts /dev/null "$cap") ;;
        # Like for like with sensor: IPv6 tracked (-6), NetFlow v9, a table
        # large enough for every flow (-m), foreground (-d), no control
        # socket (-c none; with one, 1.1.0 can block in accept() on big files).
        # Exports go to the discard port of 127.0.0.1 only.
        softflowd) cmd=(softflowd -d -6 -v 9 -m 1048576 -c none -p "$logs/softflowd.pid"
            -r "$cap" -n 127.0.0.1:9) ;;
        # softflowd's defaults: IPv4 only (IPv6 frames ignored), at most 8192
        # flows (the rest are force-expired early and split into pieces).
        softflowd-defaults) cmd=(softflowd -d -c none -p "$logs/softflowd.pid"
            -r "$cap" -n 127.0.0.1:9) ;;
        argus) cmd=(argus -r "$cap" -w /dev/null) ;;
        tshark) cmd=(tshark -r "$cap" -q -z "conv,tcp" -z "conv,udp") ;;
        *) say "unknown tool $tool"; exit 2 ;;
    esac
}

# The program each tool name needs.
tool_program() {
    case "$1" in
        sensor-*) echo "$sensor" ;;
        softflowd*) echo softflowd ;;
        *) echo "$1" ;;
    esac
}

# time_once TOOL ROUND LABEL: runs TOOL once under /usr/bin/time; appends
# "label tool round seconds peak_kib status cpu_seconds" to $results (CPU:
# user + system, every thread).
time_once() {
    local tool="$1" round="$2" label="$3" out status user sys cpu
    local cmd=()
    tool_command "$tool"
    out="$logs/$label-$tool-$round"
    status=0
    # A generous per-run limit, so a hung peer cannot stall the whole run.
    /usr/bin/time -f "%e %M %U %S" -o "$out.time" \
        timeout --signal=TERM --kill-after=10 "$run_limit" "${cmd[@]}" \
        >"$out.log" 2>&1 || status=$?
    # GNU time writes "Command exited with non-zero status N" first on
    # failure: the numbers are on the last line either way.
    read -r secs kib user sys < <(tail -n 1 "$out.time") || true
    secs="${secs:-0}" kib="${kib:-0}"
    cpu="$(awk -v u="${user:-0}" -v s="${sys:-0}" 'BEGIN { print u + s }')"
    if [[ $status -ne 0 ]]; then
        say "   round $round $tool: FAILED (exit $status), see $out.log"
    else
        say "   round $round $tool: ${secs} s, $((kib / 1024)) MiB, CPU ${cpu} s"
    fi
    echo "$label $tool $round $secs $kib $status $cpu" >>"$results"
}

# compare LABEL FILE TOOL...: R rounds; each round runs every tool once, the
# starting tool rotating from round to round so no tool always runs first.
compare() {
    local label="$1" file="$2"
    shift 2
    local tools=("$@") n r i
    cap="$file"
    n=${#tools[@]}
    say "== $label: $n tools x $rounds rounds on $file"
    for ((r = 1; r <= rounds; r++)); do
        for ((i = 0; i < n; i++)); do
            time_once "${tools[$(((i + r - 1) % n))]}" "$r" "$label"
        done
    done
}

# secs_of LABEL TOOL ROUND: wall seconds of that run ("" when it failed).
secs_of() {
    awk -v l="$1" -v t="$2" -v r="$3" '$1 == l && $2 == t && $3 == r && $6 == 0 { print $4 }' "$results"
}

# report LABEL PACKETS TOOL...: the markdown table of one comparison.
report() {
    local label="$1" pkts="$2"
    shift 2
    local tool secs mib pps r1 r2 ratios1 ratios2 ok
    printf '| tool | median s | packets/s | peak MiB | sensor w1 ÷ tool | sensor w2 ÷ tool | runs ok |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|\n'
    for tool in "$@"; do
        secs="$(awk -v l="$label" -v t="$tool" '$1 == l && $2 == t && $6 == 0 { print $4 }' "$results" | median)"
        mib="$(awk -v l="$label" -v t="$tool" '$1 == l && $2 == t && $6 == 0 { printf "%.0f\n", $5 / 1024 }' "$results" | maximum)"
        ok="$(awk -v l="$label" -v t="$tool" '$1 == l && $2 == t { n++; if ($6 == 0) k++ } END { printf "%d/%d", k, n }' "$results")"
        if [[ "$secs" == "-" ]]; then
            printf '| %s | failed | - | - | - | - | %s |\n' "$tool" "$ok"
            continue
        fi
        pps="$(awk -v p="$pkts" -v s="$secs" 'BEGIN { printf "%.0f", p / (s > 0 ? s : 0.001) }')"
        # Ratio of packets/s = ratio of wall times on the same file, taken
        # round by round (same conditions), then the median over rounds.
        ratios1=""
        ratios2=""
        for ((r = 1; r <= rounds; r++)); do
            local t s1 s2
            t="$(secs_of "$label" "$tool" "$r")"
            s1="$(secs_of "$label" sensor-w1 "$r")"
            s2="$(secs_of "$label" sensor-w2 "$r")"
            [[ -n "$t" && -n "$s1" ]] && ratios1+="$(awk -v a="$t" -v b="$s1" 'BEGIN { print a / (b > 0 ? b : 0.001) }')"$'\n'
            [[ -n "$t" && -n "$s2" ]] && ratios2+="$(awk -v a="$t" -v b="$s2" 'BEGIN { print a / (b > 0 ? b : 0.001) }')"$'\n'
        done
        r1="$(printf '%s' "$ratios1" | sed '/^$/d' | median)"
        r2="$(printf '%s' "$ratios2" | sed '/^$/d' | median)"
        [[ "$r1" != "-" ]] && r1="$(printf '%.2fx' "$r1")"
        [[ "$r2" != "-" ]] && r2="$(printf '%.2fx' "$r2")"
        printf '| %s | %.2f | %s | %s | %s | %s | %s |\n' "$tool" "$secs" \
            "$(printf '%s' "$pps" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')" "$mib" "$r1" "$r2" "$ok"
    done
}

# time_ratio LABEL A B: median over rounds of tool A's time / tool B's time
# ("-" when no round has both).
time_ratio() {
    local label="$1" a="$2" b="$3" r s1 s2 all=""
    for ((r = 1; r <= rounds; r++)); do
        s1="$(secs_of "$label" "$a" "$r")"
        s2="$(secs_of "$label" "$b" "$r")"
        [[ -n "$s1" && -n "$s2" ]] && all+="$(awk -v a="$s1" -v b="$s2" 'BEGIN { print a / (b > 0 ? b : 0.001) }')"$'\n'
    done
    printf '%s' "$all" | sed '/^$/d' | median
}

# ratio_spread LABEL A B [percent]: the per-round ratios of A's time to B's,
# as "lowest-highest, middle half lower-upper quartile" (as percentages with
# "percent").
ratio_spread() {
    local label="$1" a="$2" b="$3" scale=1 r s1 s2 all=""
    [[ "${4:-}" == percent ]] && scale=100
    for ((r = 1; r <= rounds; r++)); do
        s1="$(secs_of "$label" "$a" "$r")"
        s2="$(secs_of "$label" "$b" "$r")"
        [[ -n "$s1" && -n "$s2" ]] && all+="$(awk -v a="$s1" -v b="$s2" 'BEGIN { print a / (b > 0 ? b : 0.001) }')"$'\n'
    done
    printf '%s' "$all" | sed '/^$/d' | sort -g | awk -v k="$scale" '{ v[NR] = $1 * k }
        END {
            if (NR == 0) { print "-"; exit }
            f = k == 100 ? "%.0f%%" : "%.2fx"
            q1 = v[int((NR + 3) / 4)]; q3 = v[int((3 * NR + 3) / 4)]
            printf "per round " f "-" f ", middle half " f "-" f, v[1], v[NR], q1, q3
        }'
}

# detector_ratio LABEL [TOOL]: the detector's throughput as a share of plain
# replay's (sensor-w2 time / TOOL time; TOOL sensor-w2-detector by default).
detector_ratio() {
    local m
    m="$(time_ratio "$1" sensor-w2 "${2:-sensor-w2-detector}")"
    if [[ "$m" == "-" ]]; then echo "-"; else printf '%.0f%%' "$(awk -v x="$m" 'BEGIN { print x * 100 }')"; fi
}

# cpu_ceiling LABEL: the median CPU seconds of sensor-w1 and sensor-w2, and
# the scaling two cores kept busy would give at that CPU cost: sensor-w1's
# wall time over half of sensor-w2's CPU time, per round, median. The
# measured scaling is below it by the time sensor-w2 leaves a core idle.
cpu_ceiling() {
    local label="$1" r all="" w1 w2 bound
    w1="$(awk -v l="$label" '$1 == l && $2 == "sensor-w1" && $6 == 0 && NF >= 7 { print $7 }' "$results" | median)"
    w2="$(awk -v l="$label" '$1 == l && $2 == "sensor-w2" && $6 == 0 && NF >= 7 { print $7 }' "$results" | median)"
    for ((r = 1; r <= rounds; r++)); do
        all+="$(awk -v l="$label" -v r="$r" '$1 == l && $3 == r && $6 == 0 && NF >= 7 {
                if ($2 == "sensor-w1") wall = $4; if ($2 == "sensor-w2") cpu = $7 }
            END { if (wall > 0 && cpu > 0) print wall / (cpu / 2) }' "$results")"$'\n'
    done
    bound="$(printf '%s' "$all" | sed '/^$/d' | median)"
    [[ "$bound" == "-" ]] || bound="$(awk -v x="$bound" 'BEGIN { printf "%.2fx", x }')"
    printf 'CPU seconds (user + system, median): sensor-w1 %s, sensor-w2 %s; on two cores kept busy all the time, sensor-w2 at that CPU cost would scale %s\n' \
        "$w1" "$w2" "$bound"
}

# scaling LABEL: sensor-w1 time / sensor-w2 time.
scaling() {
    local m
    m="$(time_ratio "$1" sensor-w1 sensor-w2)"
    if [[ "$m" == "-" ]]; then echo "-"; else printf '%.2fx' "$m"; fi
}

machine_line() {
    local cpu
    cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    printf '%s, %s cores (%s), %s GiB RAM, load average %s' \
        "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "${cpu:-unknown CPU}" \
        "$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" \
        "$(cut -d ' ' -f 1-3 /proc/loadavg)"
}

# -------------------------------------------------------------------- live --

live_rate() {
    local ok=1
    [[ $(id -u) -eq 0 ]] || { say "compare.sh --live: needs root (network namespaces, raw capture)"; ok=0; }
    have ip || ok=0
    have tcpreplay || ok=0
    if [[ $ok -eq 0 ]]; then
        hint_missing
        say "compare.sh --live: skipped (install: apt-get install -y tcpreplay iproute2)"
        return 0
    fi
    local file="$bench_dir/$capture_name.pcap"
    make_capture "$file"

    # Names unique to this run; veth names must fit in 15 bytes.
    local tag="$$"
    ns_cap="fmb-cap-$tag"
    ns_gen="fmb-gen-$tag"
    local if_cap="fmbc$tag" if_gen="fmbg$tag"
    sensor_pid=""
    trap live_cleanup EXIT
    trap 'live_cleanup; exit 130' INT TERM

    ip netns add "$ns_cap"
    ip netns add "$ns_gen"
    ip link add "$if_gen" netns "$ns_gen" type veth peer name "$if_cap" netns "$ns_cap"
    # Room for 802.1Q-tagged full-size frames.
    ip -n "$ns_cap" link set "$if_cap" mtu 9000 up
    ip -n "$ns_gen" link set "$if_gen" mtu 9000 up
    ip -n "$ns_cap" link set lo up
    ip -n "$ns_gen" link set lo up

    local sensor_log="$logs/live-sensor.log" replay_log="$logs/live-tcpreplay.log"
    local workers=("--workers" "${live_workers:-$(nproc)}")
    say "== live: sensor live -i $if_cap ${workers[*]} in $ns_cap; tcpreplay --topspeed -i $if_gen in $ns_gen"
    ip netns exec "$ns_cap" "$sensor" live -i "$if_cap" "${workers[@]}" --buffer-size 256 \
        -o /dev/null >"$sensor_log" 2>&1 &
    sensor_pid=$!
    # Wait until the capture socket exists in the namespace (listed in its
    # /proc/net/packet), then a moment for libpcap to map its ring; a missing
    # capability makes sensor exit here instead.
    local waited=0
    while [[ $waited -lt 100 ]] &&
        [[ "$(ip netns exec "$ns_cap" awk 'NR > 1' /proc/net/packet | wc -l)" -eq 0 ]]; do
        kill -0 "$sensor_pid" 2>/dev/null || break
        sleep 0.2
        waited=$((waited + 1))
    done
    sleep 1
    if ! kill -0 "$sensor_pid" 2>/dev/null; then
        say "sensor live failed to start:"
        cat "$sensor_log" >&2
        return 1
    fi
    local backlog_before
    backlog_before=$(softnet_dropped)
    ip netns exec "$ns_gen" tcpreplay --topspeed -i "$if_gen" "$file" >"$replay_log" 2>&1
    # Let the shards drain, then stop the sensor the way an operator would.
    sleep 2
    # Frames the veth pair itself dropped (the receiving CPU's backlog,
    # net.core.netdev_max_backlog, overflows before any capture socket sees
    # them): counted as tx_dropped on the sending end or rx_dropped on the
    # receiving one, depending on the kernel.
    local veth_drops
    veth_drops=$(($(ip netns exec "$ns_gen" cat "/sys/class/net/$if_gen/statistics/tx_dropped") +
        $(ip netns exec "$ns_cap" cat "/sys/class/net/$if_cap/statistics/rx_dropped")))
    # Frames the receiving end counted as received, and the frames every
    # CPU's input backlog turned away meanwhile (/proc/net/softnet_stat is
    # for the whole machine, not the namespace).
    local veth_rx backlog_drops
    veth_rx=$(ip netns exec "$ns_cap" cat "/sys/class/net/$if_cap/statistics/rx_packets")
    backlog_drops=$(($(softnet_dropped) - backlog_before))
    kill -TERM "$sensor_pid"
    wait "$sensor_pid" || true
    sensor_pid=""

    local sent secs
    sent="$(sed -n 's/^Actual: \([0-9]*\) packets.*/\1/p' "$replay_log")"
    secs="$(sed -n 's/^Actual: .* in \([0-9.]*\) seconds.*/\1/p' "$replay_log")"
    local line_cap line_pkt
    line_cap="$(grep '^captured: ' "$sensor_log" | tail -n 1)"
    line_pkt="$(grep '^packets: ' "$sensor_log" | tail -n 1)"
    if [[ -z "$sent" || -z "$line_cap" ]]; then
        say "live: could not read the results; see $replay_log and $sensor_log"
        return 1
    fi
    # captured: N; drops: kernel K, interface I, shard queue Q (kernel received R)
    local captured kernel iface queue received decoded
    read -r captured kernel iface queue received < <(printf '%s\n' "$line_cap" |
        sed 's/^captured: \([0-9]*\); drops: kernel \([0-9]*\), interface \([0-9]*\), shard queue \([0-9]*\) (kernel received \([0-9]*\)).*/\1 \2 \3 \4 \5/')
    decoded="$(printf '%s\n' "$line_pkt" | sed -n 's/.*, \([0-9]*\) decoded,.*/\1/p')"
    pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f %%", 100 * a / b; else print "-" }'; }

    echo
    echo "### Live rate, $(machine_line)"
    echo
    echo "tcpreplay --topspeed of $file ($sent packets) into a veth pair; sensor live ${workers[*]} on the other end."
    echo
    echo '| stage | packets | % of sent |'
    echo '|---|---:|---:|'
    echo "| sent by tcpreplay ($(awk -v n="$sent" -v s="$secs" 'BEGIN { printf "%.0f packets/s", n / (s > 0 ? s : 0.001) }')) | $sent | 100 % |"
    echo "| dropped by the veth pair (backlog of $(cat /proc/sys/net/core/netdev_max_backlog) frames full) | $veth_drops | $(pct "$veth_drops" "$sent") |"
    # libpcap's "received" on Linux counts every frame the socket saw,
    # including those the ring had no room for; a handful of frames the
    # namespace sends itself (IPv6 neighbour discovery) can make this negative.
    echo "| otherwise never reached the capture socket (sent - veth drops - kernel received) | $((sent - veth_drops - received)) | $(pct $((sent - veth_drops - received)) "$sent") |"
    echo "| of those: turned away by a CPU's input backlog (softnet_stat, whole machine) | $backlog_drops | $(pct "$backlog_drops" "$sent") |"
    echo "| counted as received by the capturing end of the pair (rx_packets) | $veth_rx | $(pct "$veth_rx" "$sent") |"
    echo "| dropped by the kernel (ring full) | $kernel | $(pct "$kernel" "$sent") |"
    echo "| dropped by the interface | $iface | $(pct "$iface" "$sent") |"
    echo "| captured by sensor | $captured | $(pct "$captured" "$sent") |"
    echo "| dropped at the shard queues | $queue | $(pct "$queue" "$sent") |"
    echo "| decoded into flows | ${decoded:-?} | $(pct "${decoded:-0}" "$sent") |"
    echo
    echo "Packets/s reached by sensor (decoded ÷ tcpreplay's sending time): $(awk -v n="${decoded:-0}" -v s="$secs" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 0.001) }')"
    echo
    echo "sensor's final lines:"
    echo
    echo '```'
    grep -E '^(packets|flows|captured): ' "$sensor_log"
    echo '```'
}

# Frames turned away by the CPUs' input backlogs since boot: the second
# column (hexadecimal) of /proc/net/softnet_stat, summed over CPUs.
softnet_dropped() {
    local total=0 dropped
    while read -r _ dropped _; do
        total=$((total + 16#$dropped))
    done </proc/net/softnet_stat
    echo "$total"
}

live_cleanup() {
    if [[ -n "${sensor_pid:-}" ]]; then
        kill -TERM "$sensor_pid" 2>/dev/null || true
        wait "$sensor_pid" 2>/dev/null || true
    fi
    # Deleting a namespace deletes its end of the veth pair, and with it the pair.
    local ns
    for ns in "${ns_cap:-}" "${ns_gen:-}"; do
        if [[ -n "$ns" ]]; then
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

if [[ $live -eq 1 ]]; then
    live_rate
    say "logs: $logs"
    exit 0
fi

# ------------------------------------------------------------------ replay --

results="$logs/results.txt"
: >"$results"
run_limit=$((quick == 1 ? 300 : 1800))

tools=(sensor-w1 sensor-w2 sensor-w2-detector sensor-w2-baseline)
for t in softflowd argus tshark; do
    if have "$t"; then
        case "$t" in
            softflowd) tools+=(softflowd softflowd-defaults) ;;
            *) tools+=("$t") ;;
        esac
    fi
done
hint_missing

main_cap="$bench_dir/$capture_name.pcap"
make_capture "$main_cap"
say "== counting packets (and warming the page cache)"
main_packets="$(count_packets "$main_cap")"
cat "$main_cap" >/dev/null
baseline_file="$bench_dir/$capture_name-baseline.json"
say "== learning a baseline from the capture (for sensor-w2-baseline)"
"$sensor" baseline learn -q --no-progress --rules "$repo/rules/examples/bench.toml" \
    -o "$baseline_file" "$main_cap"
before="$(machine_line)"
compare mixed "$main_cap" "${tools[@]}"

# The sensor alone, many more rounds: its runs are short, and the scaling
# and detector shares are ratios of two sensor runs, which one busy moment
# on a shared machine moves a lot.
if [[ $sensor_rounds -gt 0 ]]; then
    saved_rounds=$rounds
    rounds=$sensor_rounds
    compare sensors "$main_cap" sensor-w1 sensor-w2 sensor-w2-detector
    rounds=$saved_rounds
fi

if [[ $vlan_pass -eq 1 ]]; then
    vlan_cap="$bench_dir/$capture_name-vlan.pcap"
    make_capture "$vlan_cap" --vlan
    vlan_packets="$(count_packets "$vlan_cap")"
    cat "$vlan_cap" >/dev/null
    vlan_tools=(sensor-w1 sensor-w2)
    have softflowd && vlan_tools+=(softflowd)
    compare vlan "$vlan_cap" "${vlan_tools[@]}"
fi

# Peak memory against packets: the generator pipes 1, 4 and 16 copies of the
# same traffic (each an hour of capture time after the previous one, so every
# connection of a copy ends before the next starts: the same flows live at any
# instant) into `sensor replay -`; nothing is written to disk.
growth_rows=()
if [[ $growth -eq 1 ]]; then
    growth_packets=$((quick == 1 ? 200000 : 500000))
    say "== peak memory against packets ($growth_packets-packet copies, piped)"
    for copies in 1 4 16; do
        for w in 1 2; do
            line="$("$generator" - --packets "$growth_packets" --copies "$copies" 2>/dev/null |
                /usr/bin/time -f "%e %M" "$sensor" replay -q --no-progress --workers "$w" -o /dev/null - 2>&1 |
                tail -n 1)" || true
            growth_rows+=("| $copies | $((copies * growth_packets)) | $w | ${line#* } |")
        done
    done
fi

mem_line=""
if [[ $memory -eq 1 ]]; then
    say "== memory per live flow at 1 M flows (criterion bench setup, no benchmark timed)"
    (cd "$repo" && cargo bench --quiet -p flowbench --bench flowlib -- '^no-such-benchmark$') \
        >"$logs/memory.log" 2>&1 || say "memory measurement failed, see $logs/memory.log"
    mem_line="$(grep -E '^memory per flow: (flowlib::table|RSS grew)' "$logs/memory.log" | sed 's/^memory per flow: //' | paste -sd ';' -)"
fi

{
    echo "### Replay, $before"
    echo
    echo "Capture: $main_cap, $main_packets packets, $(du -h "$main_cap" | cut -f 1)."
    echo "$rounds rounds, tools alternating; medians over rounds; peak MiB is the largest peak RSS of any round."
    echo
    report mixed "$main_packets" "${tools[@]}"
    echo
    echo "sensor scaling 1 -> 2 workers (median of per-round w1/w2 time): $(scaling mixed)"
    echo "detector on, as a share of plain replay's throughput (median of per-round w2/w2-detector time; target >= 85%): $(detector_ratio mixed)"
    echo "detector on with a baseline learned from the same capture, share of plain replay's throughput: $(detector_ratio mixed sensor-w2-baseline)"
    if [[ $sensor_rounds -gt 0 ]]; then
        saved_rounds=$rounds
        rounds=$sensor_rounds
        echo
        echo "Sensor only, $sensor_rounds more alternating rounds of sensor-w1, sensor-w2 and sensor-w2-detector:"
        echo
        report sensors "$main_packets" sensor-w1 sensor-w2 sensor-w2-detector
        echo
        echo "sensor scaling 1 -> 2 workers: $(scaling sensors) ($(ratio_spread sensors sensor-w1 sensor-w2))"
        cpu_ceiling sensors
        echo "detector on, share of plain replay's throughput: $(detector_ratio sensors) ($(ratio_spread sensors sensor-w2 sensor-w2-detector percent))"
        rounds=$saved_rounds
    fi
    if [[ $vlan_pass -eq 1 ]]; then
        echo
        echo "#### Same traffic, every frame 802.1Q-tagged ($vlan_packets packets)"
        echo
        report vlan "$vlan_packets" "${vlan_tools[@]}"
        echo
        echo "sensor scaling 1 -> 2 workers: $(scaling vlan)"
    fi
    if [[ ${#growth_rows[@]} -gt 0 ]]; then
        echo
        echo "Peak memory against packets (copies of the same traffic an hour apart, piped into \`sensor replay -\`):"
        echo
        echo '| copies | packets | workers | peak RSS KiB |'
        echo '|---:|---:|---:|---:|'
        printf '%s\n' "${growth_rows[@]}"
    fi
    if [[ -n "$mem_line" ]]; then
        echo
        echo "Memory per live flow at 1 M flows: $mem_line"
    fi
    echo
    echo "Load average at the end: $(cut -d ' ' -f 1-3 /proc/loadavg)"
} | tee "$logs/results.md"
say "raw timings: $results; logs: $logs"
