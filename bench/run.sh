#!/usr/bin/env bash
# Benchmarks of loads against reference tools, side by side on this machine.
#
#   bench/run.sh [throughput|instructions|overhead|dashboard|memory|websockets|wsecho|steady|startup|cluster|external|all]
#   (default: all)
#
# Every comparison runs the reference tool and loads alternately, ROUNDS times (default 5),
# and prints medians and the ratio loads / reference. Results are appended to bench/RESULTS.md
# with the date, the machine, the versions and the commands. The target (nginx with one worker,
# keep-alive, a 13-byte body; or the loads demo server when nginx cannot be had) is pinned to
# core 0 and the tool under test to core 1, so this needs 2+ cores. Only loopback is used.
#
# Environment: ROUNDS (5), SECONDS_PER_RUN (10), USERS (50), SKIP_OHA=1 (no oha, which takes a
# few minutes to build the first time), RESULTS (bench/RESULTS.md), IUSERS (20: connections of
# the callgrind runs), KEEP_PROFILE (instructions: a file for loads' callgrind profile; wsecho: a
# directory for all its callgrind files), LOADS_BIN (a loads binary built beforehand).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_RUN:-10}
USERS=${USERS:-50}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
WORK=$(mktemp -d /tmp/loads-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '%s\n' "$*" >&2; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

if [ "$(nproc)" -lt 2 ]; then say "bench/run.sh needs 2 cores (one for the target, one for the tool)"; exit 2; fi

install_tools() {
  local need=()
  command -v wrk >/dev/null || need+=(wrk)
  command -v nginx >/dev/null || need+=(nginx-light)
  command -v taskset >/dev/null || need+=(util-linux)
  [ -x /usr/bin/time ] || need+=(time)
  command -v valgrind >/dev/null || need+=(valgrind)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      say "installing ${need[*]} with apt-get"
      apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null || say "apt-get failed"
    else
      say "missing ${need[*]}: install them (apt-get install ${need[*]})"
    fi
  fi
  if [ "${SKIP_OHA:-0}" != 1 ] && ! command -v oha >/dev/null && [ ! -x "$HOME/.cargo/bin/oha" ]; then
    say "building oha with cargo install (once)"
    cargo install --locked oha >/dev/null 2>&1 || cargo install oha >/dev/null 2>&1 || say "oha could not be built; it is skipped"
  fi
  OHA=$(command -v oha || { [ -x "$HOME/.cargo/bin/oha" ] && echo "$HOME/.cargo/bin/oha"; } || true)
  [ "${SKIP_OHA:-0}" = 1 ] && OHA=""
  return 0
}

build_loads() {
  # LOADS_BIN: a loads binary built beforehand (for instance to compare two trees); no build.
  if [ -n "${LOADS_BIN:-}" ]; then LOADS=$LOADS_BIN; return; fi
  say "building loads (release)"
  # Line tables only: symbols and lines for callgrind's profile; the code is the same.
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --quiet
  LOADS=$ROOT/target/release/loads
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts the target on core 0; sets TARGET_URL and TARGET_KIND.
start_target() {
  local port
  port=$(free_port)
  if command -v nginx >/dev/null; then
    mkdir -p "$WORK/nginx/tmp"
    sed "s/PORT/$port/" "$ROOT/bench/nginx.conf" > "$WORK/nginx/nginx.conf"
    taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx/" >"$WORK/nginx.log" 2>&1 &
    PIDS+=($!)
    TARGET_KIND="nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), 1 worker on core 0, 13-byte body"
  else
    taskset -c 0 "$LOADS" demo-server --bind "127.0.0.1:$port" --threads 1 >"$WORK/demo.log" 2>&1 &
    PIDS+=($!)
    TARGET_KIND="loads demo-server (nginx missing), 1 thread on core 0"
  fi
  TARGET_URL="http://127.0.0.1:$port"
  for _ in $(seq 50); do curl -s -o /dev/null "$TARGET_URL/" 2>/dev/null && break; sleep 0.1; done
  say "target: $TARGET_KIND at $TARGET_URL"
}

start_demo_server() {
  local port
  port=$(free_port)
  taskset -c 0 "$LOADS" demo-server --bind "127.0.0.1:$port" --threads 1 >"$WORK/demo-$port.log" 2>&1 &
  PIDS+=($!)
  DEMO_URL="http://127.0.0.1:$port"
  for _ in $(seq 50); do curl -s -o /dev/null "$DEMO_URL/health" 2>/dev/null && break; sleep 0.1; done
}

# measure NAME CMD...: runs CMD on core 1 under /usr/bin/time; prints "rps cpu_share maxrss_kb".
measure() {
  local name=$1; shift
  local out="$WORK/$name.out" tm="$WORK/$name.time"
  /usr/bin/time -f "%e %U %S %M" -o "$tm" taskset -c 1 "$@" >"$out" 2>&1 || true
  local rps
  case "$name" in
    wrk*) rps=$(awk '/Requests\/sec:/ {print $2}' "$out") ;;
    oha*) rps=$(awk '/Requests\/sec:/ {print $2}' "$out") ;;
    *) rps=$(sed -n 's/^Requests: *[0-9]* (\([0-9.]*\) req\/s).*/\1/p' "$out")
       # Without the stdout output, the run's figures come from its log line.
       [ -n "$rps" ] || rps=$(sed -n 's/.*run finished.* rps=\([0-9.]*\).*/\1/p' "$out") ;;
  esac
  read -r e u s m < <(tail -n 1 "$tm")
  local share
  share=$(awk -v e="$e" -v u="$u" -v s="$s" 'BEGIN { printf "%.4f", (u + s) / e }')
  echo "${rps:-0} $share $m"
}

efficiency() { awk -v r="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.0f", r / c; else print 0 }'; }

machine() {
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "- loads $("$LOADS" --version | awk '{print $2}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(rustc --version)"
  if [ -n "$OHA" ]; then oha_v=$("$OHA" --version 2>&1 | head -n 1); else oha_v="not run"; fi
  echo "- wrk: $(wrk --version 2>&1 | head -n 1 | awk '{print $1, $2}'); oha: $oha_v"
  echo "- target: $TARGET_KIND"
}

report() { tee -a "$RESULTS"; }

bench_throughput() {
  say "== throughput: $USERS connections/users, ${SECS}s, tool on core 1 ($ROUNDS rounds)"
  local w_r=() w_c=() o_r=() o_c=() l_r=() l_c=()
  for i in $(seq "$ROUNDS"); do
    read -r r c _ < <(measure "wrk$i" wrk -t1 -c"$USERS" -d"${SECS}s" "$TARGET_URL/")
    w_r+=("$r"); w_c+=("$c")
    if [ -n "$OHA" ]; then
      read -r r c _ < <(measure "oha$i" "$OHA" --no-tui -c "$USERS" -z "${SECS}s" "$TARGET_URL/")
      o_r+=("$r"); o_c+=("$c")
    fi
    read -r r c _ < <(measure "loads$i" "$LOADS" run example::get_root -u "$USERS" -d "$SECS" -s "$TARGET_URL")
    l_r+=("$r"); l_c+=("$c")
    say "round $i: wrk ${w_r[-1]} req/s (cpu ${w_c[-1]})${OHA:+, oha ${o_r[-1]:-} req/s (cpu ${o_c[-1]:-})}, loads ${l_r[-1]} req/s (cpu ${l_c[-1]})"
  done
  local wr wc lr lc or oc we le oe
  wr=$(printf '%s\n' "${w_r[@]}" | median); wc=$(printf '%s\n' "${w_c[@]}" | median)
  lr=$(printf '%s\n' "${l_r[@]}" | median); lc=$(printf '%s\n' "${l_c[@]}" | median)
  we=$(for i in "${!w_r[@]}"; do efficiency "${w_r[$i]}" "${w_c[$i]}"; echo; done | median)
  le=$(for i in "${!l_r[@]}"; do efficiency "${l_r[$i]}" "${l_c[$i]}"; echo; done | median)
  {
    echo
    echo "### Throughput ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- commands (each pinned with \`taskset -c 1\`, timed with \`/usr/bin/time\`; $ROUNDS rounds, alternating, medians):"
    echo "  \`wrk -t1 -c$USERS -d${SECS}s URL/\`${OHA:+, \`oha --no-tui -c $USERS -z ${SECS}s URL/\`}, \`loads run example::get_root -u $USERS -d $SECS -s URL\` (stdout output: per-URL HDR histograms, live progress)"
    echo
    echo "| tool | req/s (median) | CPU share | req per CPU-second (median) |"
    echo "|---|---:|---:|---:|"
    echo "| wrk | $wr | $wc | $we |"
    if [ -n "$OHA" ]; then
      or=$(printf '%s\n' "${o_r[@]}" | median); oc=$(printf '%s\n' "${o_c[@]}" | median)
      oe=$(for i in "${!o_r[@]}"; do efficiency "${o_r[$i]}" "${o_c[$i]}"; echo; done | median)
      echo "| oha | $or | $oc | $oe |"
    fi
    echo "| loads | $lr | $lc | $le |"
    echo
    echo "Ratios loads / wrk: efficiency **$(ratio "$le" "$we")**, raw req/s **$(ratio "$lr" "$wr")**."
    if [ -n "$OHA" ]; then echo "Ratios loads / oha: efficiency **$(ratio "$le" "$oe")**, raw req/s **$(ratio "$lr" "$or")**."; fi
  } | report
}

# callgrind_total OUT: the instructions (Ir) a callgrind run counted, all threads together.
callgrind_total() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }

# thread_totals PREFIX: "sum max" of the instructions in callgrind's per-thread files PREFIX*
# (--separate-threads=yes): the whole process, and its busiest thread.
thread_totals() {
  local f t
  for f in "$1"*; do
    t=$(callgrind_total "$f")
    echo "${t:-0}"
  done | awk '{s += $1; if ($1 > v) v = $1} END {print s, v}'
}

# per A B C D: (B - A) / (D - C), rounded: instructions per request or message by difference.
per() { awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN { if (d - c > 0) printf "%.0f", (b - a) / (d - c); else print "n/a" }'; }

# profile_top FILE N [ARGS]: the first N function lines of callgrind_annotate ARGS FILE.
profile_top() {
  local f=$1 n=$2; shift 2
  { callgrind_annotate "$@" "$f" 2>/dev/null || true; } | awk '/file:function/ {on=1; next} on && NF && !/^-/ {print}' \
    | sed -n "1,${n}p" | cut -c1-160
}

# User-space instructions per request, by difference of a short and a long run against the same
# target (which removes start-up and shut-down): callgrind counts instructions, not time, so the
# figure repeats on a busy machine. Both tools run on core 1 under valgrind (which serialises
# threads); the requests are the tools' own counts.
bench_instructions() {
  local short=${SHORT:-2} long=${LONG:-4} conns=${IUSERS:-20}
  say "== user-space instructions per request: callgrind, ${short}s and ${long}s runs, $conns connections"
  local -A ir req
  for d in "$short" "$long"; do
    taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-wrk-$d.out" \
      wrk -t1 -c"$conns" -d"${d}s" "$TARGET_URL/" >"$WORK/wrk-$d.txt" 2>"$WORK/wrk-$d.err" || true
    ir[wrk$d]=$(callgrind_total "$WORK/cg-wrk-$d.out")
    req[wrk$d]=$(awk '/requests in/ {print $1}' "$WORK/wrk-$d.txt")
    taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-loads-$d.out" \
      "$LOADS" run example::get_root --threads 1 -u "$conns" -d "$d" -s "$TARGET_URL" \
      -o stdout -o json --output-json-path "$WORK/loads-$d.json" >"$WORK/loads-$d.txt" 2>"$WORK/loads-$d.err" || true
    ir[loads$d]=$(callgrind_total "$WORK/cg-loads-$d.out")
    req[loads$d]=$(awk '/^Requests:/ {print $2}' "$WORK/loads-$d.txt")
    say "${d}s: wrk ${req[wrk$d]} requests ${ir[wrk$d]} Ir; loads ${req[loads$d]} requests ${ir[loads$d]} Ir"
  done
  local w l
  w=$(per "${ir[wrk$short]}" "${ir[wrk$long]}" "${req[wrk$short]}" "${req[wrk$long]}")
  l=$(per "${ir[loads$short]}" "${ir[loads$long]}" "${req[loads$short]}" "${req[loads$long]}")
  # The same by a fixed number of hits (20 users x 250, then x 750: exactly 10 000 requests
  # apart), each thread counted apart: the virtual users' thread alone is the request path,
  # without the collector's and outputs' work per second, which valgrind's slowdown (and a busy
  # machine) inflates per request in the figures by duration.
  local h wt=() all=()
  for h in 250 750; do
    taskset -c 1 valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$WORK/cgh-$h.out" \
      "$LOADS" run example::get_root --threads 1 -u "$conns" --hits "$h" -s "$TARGET_URL" \
      -o stdout -o json --output-json-path "$WORK/loads-h$h.json" >"$WORK/loads-h$h.txt" 2>"$WORK/loads-h$h.err" || true
    # The virtual users' thread is the busiest one (--threads 1): the others are the main
    # thread, the collector and idle helpers.
    read -r a b < <(thread_totals "$WORK/cgh-$h.out")
    all+=("$a"); wt+=("$b")
  done
  local hits_all hits_vu
  hits_all=$(per "${all[0]}" "${all[1]}" 0 10000)
  hits_vu=$(per "${wt[0]}" "${wt[1]}" 0 10000)
  say "fixed hits: whole process $hits_all, virtual users' thread $hits_vu instructions per request"
  if [ -n "${KEEP_PROFILE:-}" ]; then cp "$WORK/cg-loads-$long.out" "$KEEP_PROFILE"; fi
  {
    echo
    echo "### User-space instructions per request ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- valgrind $(valgrind --version | sed 's/valgrind-//'), callgrind, pinned to core 1; by difference of a ${short} s and a ${long} s run:"
    echo "  \`wrk -t1 -c$conns -dNs URL/\`, \`loads run example::get_root --threads 1 -u $conns -d N -s URL -o stdout -o json\` (full recording)"
    echo
    echo "| tool | requests ${short} s / ${long} s | Ir ${short} s / ${long} s | instructions per request |"
    echo "|---|---:|---:|---:|"
    echo "| wrk | ${req[wrk$short]} / ${req[wrk$long]} | ${ir[wrk$short]} / ${ir[wrk$long]} | **$w** |"
    echo "| loads | ${req[loads$short]} / ${req[loads$long]} | ${ir[loads$short]} / ${ir[loads$long]} | **$l** |"
    echo
    echo "loads / wrk: **$(ratio "$l" "$w")**."
    echo
    echo "By a fixed number of hits instead (\`--hits 250\` and \`--hits 750\`, 20 users: 10 000 requests apart, \`--separate-threads=yes\`):"
    echo "whole process **$hits_all** instructions per request, the virtual users' thread alone **$hits_vu**."
    echo
    echo "Top of loads' profile (${long} s run, \`callgrind_annotate\`, exclusive, first 15):"
    echo
    echo '```'
    profile_top "$WORK/cg-loads-$long.out" 15
    echo '```'
  } | report
}

bench_overhead() {
  say "== recording overhead: outputs off (-o null) vs on (stdout + html + file) ($ROUNDS rounds)"
  local off=() on=()
  for i in $(seq "$ROUNDS"); do
    read -r r c _ < <(measure "off$i" env LOADS_LOG=info "$LOADS" run example::get_root -u "$USERS" -d "$SECS" -s "$TARGET_URL" -o null)
    off+=("$(efficiency "$r" "$c")")
    read -r r c _ < <(measure "on$i" "$LOADS" run example::get_root -u "$USERS" -d "$SECS" -s "$TARGET_URL" \
      -o stdout -o html -o file --output-html-path "$WORK/report$i.html" --output-file-path "$WORK/events$i.jsonl")
    on+=("$(efficiency "$r" "$c")")
    say "round $i: off ${off[-1]} req/CPU-s, on ${on[-1]} req/CPU-s"
  done
  local a b
  a=$(printf '%s\n' "${off[@]}" | median); b=$(printf '%s\n' "${on[@]}" | median)
  {
    echo
    echo "### Recording overhead ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- \`LOADS_LOG=info loads run example::get_root -u $USERS -d $SECS -s URL -o null\` (figures from the log line) vs \`-o stdout -o html -o file\`"
    echo
    echo "Median req per CPU-second: outputs off $a, stdout + html + file on $b; on / off = **$(ratio "$b" "$a")** (drop $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", 100 * (a - b) / a }') %)."
  } | report
}

# Opens the dashboard at $1 in headless Chromium on core 0 once it answers; prints the browser's PID.
open_dashboard() {
  local url=$1 browser
  browser=$(command -v chromium || command -v chromium-browser || true)
  [ -n "$browser" ] || { say "chromium is missing (apt-get install chromium)"; return 1; }
  (
    for _ in $(seq 100); do curl -s -o /dev/null "$url" 2>/dev/null && break; sleep 0.05; done
    exec taskset -c 0 "$browser" --headless=new --no-sandbox --disable-gpu --user-data-dir="$WORK/chromium" "$url" >"$WORK/chromium.log" 2>&1
  ) &
  echo $!
}

bench_web_overhead() {
  say "== dashboard overhead: -o stdout vs -o stdout --web with the page open in headless Chromium ($ROUNDS rounds)"
  local plain=() web=() port pid
  for i in $(seq "$ROUNDS"); do
    read -r r c _ < <(measure "plain$i" "$LOADS" run example::get_root -u "$USERS" -d "$SECS" -s "$TARGET_URL" -o stdout)
    plain+=("$(efficiency "$r" "$c")")
    port=$(free_port)
    pid=$(open_dashboard "http://127.0.0.1:$port/") || return 0
    read -r r c _ < <(measure "web$i" "$LOADS" run example::get_root -u "$USERS" -d "$SECS" -s "$TARGET_URL" -o stdout --web "127.0.0.1:$port")
    web+=("$(efficiency "$r" "$c")")
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    grep -q "^Dashboard: " "$WORK/web$i.out" || say "round $i: the run printed no dashboard URL"
    say "round $i: plain ${plain[-1]} req/CPU-s, with the dashboard open ${web[-1]} req/CPU-s"
  done
  local a b
  a=$(printf '%s\n' "${plain[@]}" | median); b=$(printf '%s\n' "${web[@]}" | median)
  {
    echo
    echo "### Dashboard overhead ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- \`loads run example::get_root -u $USERS -d $SECS -s URL -o stdout\` vs the same with \`--web 127.0.0.1:PORT\` and the page open in headless Chromium (on core 0, beside the target), alternating"
    echo
    echo "Per round, req per CPU-second (plain / dashboard): $(paste -d/ <(printf '%s\n' "${plain[@]}") <(printf '%s\n' "${web[@]}") | paste -sd' ')"
    echo
    echo "Median req per CPU-second: plain $a, with the dashboard open $b; dashboard / plain = **$(ratio "$b" "$a")** (drop $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", 100 * (a - b) / a }') %)."
  } | report
}

bench_memory() {
  say "== memory per virtual user: 50 vs 10000 users on /delay/1000 for 20 s"
  start_demo_server
  local small big
  read -r _ _ small < <(measure mem50 "$LOADS" run example::slow_1s -u 50 -d 20 -s "$DEMO_URL")
  read -r _ _ big < <(measure mem10k "$LOADS" run example::slow_1s -u 10000 -d 20 -s "$DEMO_URL")
  local errors
  errors=$(awk '/^Errors:/ {print $2}' "$WORK/mem10k.out")
  {
    echo
    echo "### Memory per virtual user ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- \`loads run example::slow_1s -u N -d 20 -s DEMO\` (each user: its own connection and cookie jar, GET /delay/1000), demo server in its own process on core 0"
    echo
    echo "Max RSS: 50 users $small KiB, 10 000 users $big KiB, errors at 10 000: ${errors:-?}; per extra user **$(awk -v a="$small" -v b="$big" 'BEGIN { printf "%.1f", (b - a) / 9950 }') KiB** (target ≤ 16)."
  } | report
}

bench_websockets() {
  say "== 10000 WebSockets held open"
  start_demo_server
  read -r _ _ m < <(measure ws10k "$LOADS" run example::websocket_hold -u 10000 -d 20 -s "$DEMO_URL")
  {
    echo
    echo "### 10 000 WebSockets ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- \`loads run example::websocket_hold -u 10000 -d 20 -s DEMO\` on one core"
    echo
    echo '```'
    grep -E '^(Hits|Successes|Failures|Errors|WebSockets):' "$WORK/ws10k.out"
    echo '```'
    echo "Max RSS $m KiB."
  } | report
}

bench_steady() {
  say "== constant memory over time: RSS after 10 s and after 60 s at full speed"
  local a b
  read -r _ _ a < <(measure steady10 "$LOADS" run example::get_root -u "$USERS" -d 10 -s "$TARGET_URL")
  read -r _ _ b < <(measure steady60 "$LOADS" run example::get_root -u "$USERS" -d 60 -s "$TARGET_URL")
  local n10 n60
  n10=$(awk '/^Requests:/ {print $2}' "$WORK/steady10.out"); n60=$(awk '/^Requests:/ {print $2}' "$WORK/steady60.out")
  {
    echo
    echo "### Constant memory over time ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- \`loads run example::get_root -u $USERS -d 10|60 -s URL\`"
    echo
    echo "Max RSS: 10 s ($n10 requests) $a KiB; 60 s ($n60 requests) $b KiB; 60 s / 10 s = **$(ratio "$b" "$a")** (target 1.00 ± 0.10)."
  } | report
}

bench_startup() {
  say "== start-up: one hit against the demo server"
  start_demo_server
  local t=()
  for i in $(seq 10); do
    local s e
    s=$(date +%s%N); "$LOADS" run example::get_root -s "$DEMO_URL" -q; e=$(date +%s%N)
    t+=("$(( (e - s) / 1000000 ))")
  done
  {
    echo
    echo "### Start-up ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- \`loads run example::get_root -s DEMO -q\` (1 user, 1 hit), 10 runs"
    echo
    echo "Median wall time **$(printf '%s\n' "${t[@]}" | median) ms** (target < 100 ms)."
  } | report
}

# Starts a broker (its own database under $WORK) and N agents; sets BROKER_FRONT, BROKER_PID.
start_cluster() {
  local n=$1 line
  # The broker on a core of its own (core 0), the agents, their workers and the caller on core 1.
  taskset -c 0 "$LOADS" broker --frontend tcp://127.0.0.1:* --backend tcp://127.0.0.1:* --receiver tcp://127.0.0.1:* \
    --publisher tcp://127.0.0.1:* --heartbeat tcp://127.0.0.1:* --db "$WORK/cluster/broker.sqlite" >"$WORK/broker.out" 2>&1 &
  BROKER_PID=$!; PIDS+=("$BROKER_PID")
  for _ in $(seq 50); do grep -q listening "$WORK/broker.out" 2>/dev/null && break; sleep 0.1; done
  line=$(head -n 1 "$WORK/broker.out")
  BROKER_FRONT=$(echo "$line" | sed -n 's/.*front \(tcp:[^,]*\),.*/\1/p')
  local back
  back=$(echo "$line" | sed -n 's/.*back \(tcp:[^,]*\),.*/\1/p')
  for i in $(seq "$n"); do
    taskset -c 1 "$LOADS" agent --broker "$back" --cache-dir "$WORK/cluster/cache$i" --test-dir "$WORK/cluster/work$i" >"$WORK/agent$i.out" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 50); do [ "$(grep -l registered "$WORK"/agent*.out 2>/dev/null | wc -l)" -ge "$n" ] && break; sleep 0.1; done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

bench_cluster() {
  say "== broker capacity: 4 agents, raw events then batches, ${SECS}s each"
  # The raw run's test makes no request (example::counters: 10 counters per hit, 14 events), so
  # nginx on core 0 is idle and the broker has that core to itself.
  start_cluster 4
  local t0 t1 out run events rate cpu_raw cpu_batched hits
  t0=$(cpu_ticks "$BROKER_PID")
  out=$(taskset -c 1 "$LOADS" run example::counters --agents 4 -u 4 --threads 1 -d "$SECS" --broker "$BROKER_FRONT" --raw-events)
  t1=$(cpu_ticks "$BROKER_PID")
  run=$(echo "$out" | awk '/^Run id:/ {print $3}')
  hits=$(echo "$out" | awk '/^Hits:/ {print $2}')
  events=$(python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from events where run_id=?',(sys.argv[2],)).fetchone()[0])" "$WORK/cluster/broker.sqlite" "$run")
  local stored_hits
  stored_hits=$(python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from events where run_id=? and data like ?',(sys.argv[2],'%\"data_type\":\"stopTest\"%')).fetchone()[0])" "$WORK/cluster/broker.sqlite" "$run")
  # The run's duration as the broker measured it: from the go to the last worker's end (the
  # broker may still be catching up then, so this rate is not flattered by the plan's length).
  local dur
  dur=$(python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select duration from runs where run_id=?',(sys.argv[2],)).fetchone()[0])" "$WORK/cluster/broker.sqlite" "$run")
  rate=$(awk -v e="$events" -v s="$dur" 'BEGIN { printf "%.0f", e / s }')
  cpu_raw=$(awk -v a="$t0" -v b="$t1" -v s="$SECS" 'BEGIN { printf "%.1f", (b - a) / s }')
  t0=$(cpu_ticks "$BROKER_PID")
  out=$(taskset -c 1 "$LOADS" run example::get_root --agents 4 -u 10 -d "$SECS" -s "$TARGET_URL" --broker "$BROKER_FRONT")
  t1=$(cpu_ticks "$BROKER_PID")
  local bhits
  bhits=$(echo "$out" | awk '/^Hits:/ {print $2}')
  cpu_batched=$(awk -v a="$t0" -v b="$t1" -v s="$SECS" 'BEGIN { printf "%.1f", (b - a) / s }')
  {
    echo
    echo "### Broker capacity ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- broker pinned to core 0; 4 agents, their workers and the caller pinned to core 1"
    echo "- raw: \`loads run example::counters --agents 4 -u 4 --threads 1 -d $SECS --raw-events\` (no request; 10 counters per hit); batched: \`loads run example::get_root --agents 4 -u 10 -d $SECS -s URL\` (nginx on core 0 too)"
    echo
    echo "Raw events: $events events stored and republished in the run's $(printf '%.2f' "$dur") s (go to end, as the broker measured it) = **$rate events/s**, broker CPU $cpu_raw % of a core; hits in the caller's summary $hits, in the database $stored_hits."
    echo "Batches: $bhits hits in ${SECS}s, broker CPU **$cpu_batched % of a core** for 4 agents ($(awk -v c="$cpu_batched" 'BEGIN { printf "%.2f", c / 4 }') % per agent)."
  } | report
}

bench_external() {
  say "== external runners: events ingested from 4 Python runners (tests/external/raw_runner.py)"
  local venv="$WORK/venv"
  python3 -m venv "$venv" >/dev/null && "$venv/bin/pip" install -q pyzmq
  # Not pinned: the runners need the cores more than loads does.
  PATH="$venv/bin:$PATH" "$LOADS" run raw.ingest -u 4 --hits 25000 -q -o json --output-json-path "$WORK/ext.json" \
    --test-runner "python3 $ROOT/tests/external/raw_runner.py {test}" >/dev/null 2>&1 || true
  local line
  line=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); e=j['hits']*5+j['sockets']['opened']*3; print(j['hits'], e, '%.2f' % j['duration'], '%.0f' % (e / j['duration']))" "$WORK/ext.json")
  read -r hits events dur rate <<<"$line"
  {
    echo
    echo "### External runners: ingest ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- \`loads run raw.ingest -u 4 --hits 25000 --test-runner \"python3 tests/external/raw_runner.py {test}\"\` (each hit: startTest, add_hit, incr_counter, an outcome, stopTest; not pinned)"
    echo
    echo "$hits hits, $events events in $dur s: **$rate events/s** ingested (target ≥ 20 000); the Python runners, not loads, set the pace."
  } | report
}

# The reference WebSocket client (bench/ws-echo, its own Cargo project); sets WSECHO.
build_ws_echo() {
  say "building the reference WebSocket client bench/ws-echo (release)"
  cargo build --release --quiet --manifest-path "$ROOT/bench/ws-echo/Cargo.toml" --target-dir "$ROOT/bench/ws-echo/target"
  WSECHO=$ROOT/bench/ws-echo/target/release/ws-echo
}

# measure_ws NAME CMD...: runs CMD on core 1 under /usr/bin/time; prints "messages cpu_seconds
# cpu_share msg_per_cpu_second errors": the echoes the tool counted (ws-echo's "Messages:" line,
# loads' "messages received"), the process's user + sys CPU, and loads' failures + errors.
measure_ws() {
  local name=$1; shift
  local out="$WORK/$name.out" tm="$WORK/$name.time"
  /usr/bin/time -f "%e %U %S %M" -o "$tm" taskset -c 1 "$@" >"$out" 2>&1 || true
  local n bad
  case "$name" in
    wsref*) n=$(sed -n 's/^Messages: \([0-9]*\) .*/\1/p' "$out"); bad=$(grep -c '^error' "$out" || true) ;;
    *) n=$(sed -n 's/^WebSockets:.* \([0-9]*\) messages received.*/\1/p' "$out")
       bad=$(awk '/^(Failures|Errors):/ {s += $2} END {print s + 0}' "$out") ;;
  esac
  read -r e u s _ < <(tail -n 1 "$tm")
  awk -v n="${n:-0}" -v e="$e" -v u="$u" -v s="$s" -v b="$bad" \
    'BEGIN { c = u + s; printf "%d %.2f %.4f %.0f %d\n", n, c, c / e, (c > 0 ? n / c : 0), b }'
}

# spread: "min-max" of the numbers on stdin.
spread() { sort -g | awk 'NR == 1 {a = $1} {b = $1} END {print a "-" b}'; }

# WebSocket echo: messages per CPU-second of loads (example::websocket_echo_loop: one socket per
# hit, 100 echoes of a 23-byte text, close) and of the reference client bench/ws-echo (plain
# tokio-tungstenite on a current-thread runtime, the same loop: 100 echoes per socket), against
# the demo server's /ws on core 0; then user-space instructions per message under callgrind.
bench_wsecho() {
  build_ws_echo
  start_demo_server
  local WS_URL=${DEMO_URL/http:/ws:}/ws
  # For machine(): the target of this mode.
  local TARGET_KIND="loads demo-server (its /ws echo), 1 thread on core 0"
  say "== WebSocket echo: $USERS connections/users, ${SECS}s, tool on core 1 ($ROUNDS rounds)"
  local r_e=() r_n=() r_c=() l_e=() l_n=() l_c=() bad=0 n c sh e b
  for i in $(seq "$ROUNDS"); do
    read -r n c sh e b < <(measure_ws "wsref$i" "$WSECHO" "$WS_URL" -c "$USERS" -d "$SECS")
    r_n+=("$n"); r_c+=("$sh"); r_e+=("$e"); bad=$((bad + b))
    read -r n c sh e b < <(measure_ws "wsloads$i" "$LOADS" run example::websocket_echo_loop --threads 1 -u "$USERS" -d "$SECS" -s "$DEMO_URL")
    l_n+=("$n"); l_c+=("$sh"); l_e+=("$e"); bad=$((bad + b))
    say "round $i: ws-echo ${r_n[-1]} messages, ${r_e[-1]} msg/CPU-s (cpu ${r_c[-1]}); loads ${l_n[-1]} messages, ${l_e[-1]} msg/CPU-s (cpu ${l_c[-1]}; failures + errors $b)"
  done
  local re le rc lc rn ln
  re=$(printf '%s\n' "${r_e[@]}" | median); le=$(printf '%s\n' "${l_e[@]}" | median)
  rc=$(printf '%s\n' "${r_c[@]}" | median); lc=$(printf '%s\n' "${l_c[@]}" | median)
  rn=$(printf '%s\n' "${r_n[@]}" | median); ln=$(printf '%s\n' "${l_n[@]}" | median)

  # Instructions per message by difference of two fixed counts (IUSERS connections x 10 and x 30
  # sockets of 100 echoes: IUSERS x 2000 messages apart), each thread counted apart; the busiest
  # thread is the virtual users' one (loads --threads 1) or ws-echo's only thread.
  local conns=${IUSERS:-20} h
  say "== WebSocket echo, user-space instructions per message: callgrind, $conns connections x 10 and x 30 sockets of 100 echoes"
  local -A all vu msgs
  for h in 10 30; do
    taskset -c 1 valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$WORK/cgws-ref-$h.out" \
      "$WSECHO" "$WS_URL" -c "$conns" -m $((h * 100)) >"$WORK/cgws-ref-$h.txt" 2>"$WORK/cgws-ref-$h.err" || true
    msgs[ref$h]=$(sed -n 's/^Messages: \([0-9]*\) .*/\1/p' "$WORK/cgws-ref-$h.txt")
    taskset -c 1 valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$WORK/cgws-loads-$h.out" \
      "$LOADS" run example::websocket_echo_loop --threads 1 -u "$conns" --hits "$h" -s "$DEMO_URL" \
      >"$WORK/cgws-loads-$h.txt" 2>"$WORK/cgws-loads-$h.err" || true
    msgs[loads$h]=$(sed -n 's/^WebSockets:.* \([0-9]*\) messages received.*/\1/p' "$WORK/cgws-loads-$h.txt")
    local tool
    for tool in ref loads; do
      read -r a v < <(thread_totals "$WORK/cgws-$tool-$h.out")
      all[$tool$h]=$a; vu[$tool$h]=$v
    done
    say "$h sockets each: ws-echo ${msgs[ref$h]} messages ${all[ref$h]} Ir; loads ${msgs[loads$h]} messages ${all[loads$h]} Ir (busiest thread ${vu[loads$h]})"
  done
  local ra rv la lv
  ra=$(per "${all[ref10]}" "${all[ref30]}" "${msgs[ref10]}" "${msgs[ref30]}")
  rv=$(per "${vu[ref10]}" "${vu[ref30]}" "${msgs[ref10]}" "${msgs[ref30]}")
  la=$(per "${all[loads10]}" "${all[loads30]}" "${msgs[loads10]}" "${msgs[loads30]}")
  lv=$(per "${vu[loads10]}" "${vu[loads30]}" "${msgs[loads10]}" "${msgs[loads30]}")
  say "instructions per message: ws-echo $ra (its thread $rv), loads $la (virtual users' thread $lv)"
  # The profiles of loads' virtual users' thread and ws-echo's thread in the larger run (the
  # busiest thread's file of each).
  busiest() { for f in "$@"; do echo "$(callgrind_total "$f") $f"; done | sort -g | tail -n 1 | cut -d' ' -f2; }
  local vuf reff
  vuf=$(busiest "$WORK/cgws-loads-30.out"*); reff=$(busiest "$WORK/cgws-ref-30.out"*)
  if [ -n "${KEEP_PROFILE:-}" ]; then
    mkdir -p "$KEEP_PROFILE"
    cp "$WORK"/cgws-*.out* "$KEEP_PROFILE"/
  fi
  {
    echo
    echo "### WebSocket echo ($(date -u '+%Y-%m-%d'))"
    echo
    machine
    echo "- commands (each pinned with \`taskset -c 1\`, timed with \`/usr/bin/time\`; $ROUNDS rounds, alternating, medians):"
    echo "  \`bench/ws-echo/target/release/ws-echo ws://DEMO/ws -c $USERS -d $SECS\` (tokio current-thread + tokio-tungstenite; 100 echoes per socket, then close and reopen),"
    echo "  \`loads run example::websocket_echo_loop --threads 1 -u $USERS -d $SECS -s DEMO\` (each hit: open /ws, 100 echoes of a 23-byte text checked, close)"
    echo "- messages per CPU-second: the echoes counted divided by the tool process's user + sys CPU"
    echo
    echo "| tool | messages in ${SECS} s (median) | CPU share (median) | messages per CPU-second (median) | per round (min-max) |"
    echo "|---|---:|---:|---:|---:|"
    echo "| ws-echo | $rn | $rc | $re | $(printf '%s\n' "${r_e[@]}" | spread) |"
    echo "| loads | $ln | $lc | $le | $(printf '%s\n' "${l_e[@]}" | spread) |"
    echo
    echo "Per round, messages per CPU-second (ws-echo / loads): $(paste -d/ <(printf '%s\n' "${r_e[@]}") <(printf '%s\n' "${l_e[@]}") | paste -sd' '); loads' failures + errors, ws-echo's errors: $bad."
    echo
    echo "Ratio loads / ws-echo, messages per CPU-second: **$(ratio "$le" "$re")**."
    echo
    echo "User-space instructions per message (valgrind $(valgrind --version | sed 's/valgrind-//'), callgrind \`--separate-threads=yes\`, pinned to core 1), by difference of"
    echo "$conns connections x 10 and x 30 sockets of 100 echoes (\`ws-echo -c $conns -m 1000|3000\`, \`loads run example::websocket_echo_loop --threads 1 -u $conns --hits 10|30\`):"
    echo
    echo "| tool | messages | Ir whole process | Ir busiest thread | instructions per message, process | busiest thread |"
    echo "|---|---:|---:|---:|---:|---:|"
    echo "| ws-echo | ${msgs[ref10]} / ${msgs[ref30]} | ${all[ref10]} / ${all[ref30]} | ${vu[ref10]} / ${vu[ref30]} | **$ra** | $rv |"
    echo "| loads | ${msgs[loads10]} / ${msgs[loads30]} | ${all[loads10]} / ${all[loads30]} | ${vu[loads10]} / ${vu[loads30]} | **$la** | $lv |"
    echo
    echo "loads / ws-echo, instructions per message: process **$(ratio "$la" "$ra")**, busiest thread **$(ratio "$lv" "$rv")**;"
    echo "loads - ws-echo: process **$(awk -v a="$la" -v b="$ra" 'BEGIN { print a - b }')**, busiest thread $(awk -v a="$lv" -v b="$rv" 'BEGIN { print a - b }') instructions per message."
    echo
    echo "loads' virtual users' thread (x 30 run), inclusive (\`callgrind_annotate --inclusive=yes\`), the first 20 below the test's own function:"
    echo
    echo '```'
    profile_top "$vuf" 1000 --inclusive=yes \
      | awk 'f && !/websocket_echo_loop/ {print} /websocket_echo_loop/ {f=1}' | sed -n '1,20p'
    echo '```'
    echo
    echo "The same thread, exclusive (self), first 15:"
    echo
    echo '```'
    profile_top "$vuf" 15
    echo '```'
    echo
    echo "ws-echo's thread (x 30 run), exclusive, first 10:"
    echo
    echo '```'
    profile_top "$reff" 10
    echo '```'
  } | report
}

what=${1:-all}
install_tools
build_loads
start_target
[ -f "$RESULTS" ] || printf '# Benchmark results\n\nAppended by `bench/run.sh`; newest last.\n' > "$RESULTS"
case "$what" in
  throughput) bench_throughput ;;
  instructions) bench_instructions ;;
  overhead) bench_overhead; bench_web_overhead ;;
  dashboard) bench_web_overhead ;;
  memory) bench_memory ;;
  websockets) bench_websockets ;;
  wsecho) bench_wsecho ;;
  steady) bench_steady ;;
  startup) bench_startup ;;
  cluster) bench_cluster ;;
  external) bench_external ;;
  all) bench_throughput; bench_instructions; bench_overhead; bench_web_overhead; bench_memory; bench_websockets; bench_wsecho; bench_steady; bench_startup; bench_cluster; bench_external ;;
  *) say "usage: bench/run.sh [throughput|instructions|overhead|dashboard|memory|websockets|wsecho|steady|startup|cluster|external|all]"; exit 2 ;;
esac
