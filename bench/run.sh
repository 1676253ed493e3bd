#!/usr/bin/env bash
# keygate performance benchmark: the mock provider directly, nginx -> mock,
# and keygate -> mock, under the same wrk POST load; then keygate's OAuth
# token endpoint and the same chat request authenticated with an access
# token. See bench/README.md.
#
#   bash bench/run.sh                     # 10 s per measured run
#   BENCH_DURATION=5s bash bench/run.sh
#
# Exits non-zero only when setup fails; a missed performance target is a
# measurement, not a failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
LUA=$ROOT/bench/load.lua
TOKEN_LUA=$ROOT/bench/token.lua
CPU_TARGET=1.5
LAT_TARGET=2.0
# Ory Hydra's published client_credentials throughput on 2 CPUs, and the
# multiple of it keygate's token endpoint aims for.
HYDRA_TOKENS_PER_S=513
TOKEN_TARGET_X=10

START_TS=$(date +%s)
log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] SETUP FAILURE: %s\n' "$*" >&2; exit 1; }

# "10s" / "2m" / "1h" / "10" -> whole seconds (for the hard time bound).
dur_secs() {
  local d=$1
  case $d in
    *ms) echo 1 ;;
    *s) echo "${d%s}" ;;
    *m) echo $(( ${d%m} * 60 )) ;;
    *h) echo $(( ${d%h} * 3600 )) ;;
    *) echo "$d" ;;
  esac
}
[[ $(dur_secs "$DURATION") =~ ^[0-9]+$ ]] || die "BENCH_DURATION must look like 10s, 1m or 10 (got '$DURATION')"
[[ $(dur_secs "$WARMUP") =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must look like 2s (got '$WARMUP')"
[[ $CONNS =~ ^[0-9]+$ && $THREADS =~ ^[0-9]+$ && $CONNS -ge $THREADS ]] \
  || die "BENCH_CONNECTIONS ($CONNS) must be >= BENCH_THREADS ($THREADS)"

# ---------------------------------------------------------------- cleanup --
TMP=$(mktemp -d "${TMPDIR:-/tmp}/keygate-bench.XXXXXX")
PIDS=()        # processes we started, killed in reverse order on exit
CHILD=""       # the foreground-ish child (cargo, wrk) we are waiting on
EXTRA_PIDS=()  # nginx workers (die with their master; KILLed if it lingers)

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  if [[ -n $CHILD ]]; then kill -TERM "$CHILD" 2>/dev/null || true; fi
  local n=${#PIDS[@]}
  for (( i = n - 1; i >= 0; i-- )); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  for pid in $CHILD "${PIDS[@]}" "${EXTRA_PIDS[@]}"; do
    for (( i = 0; i < 100; i++ )); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ $rc -ne 0 && -d $TMP ]]; then
    local f
    for f in "$TMP"/*.out "$TMP"/*.err "$TMP"/nginx-error.log; do
      [[ -s $f ]] || continue
      log "--- last lines of $(basename "$f") ---"
      tail -n 20 "$f" | grep -v -i 'bearer\|kg_' >&2 || true
    done
  fi
  if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
# Run a command in the background and wait for it, so that a signal to this
# script is handled at once (bash defers traps while a foreground child runs).
run_child() {
  local rc=0
  "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------- install --
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
apt_install() {
  log "installing: $*"
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$TMP/apt.out" 2>&1; then
    $SUDO apt-get update -q >>"$TMP/apt.out" 2>&1 || true
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$TMP/apt.out" 2>&1
  fi
}
find_nginx() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

NGINX=$(find_nginx)
if [[ -z $NGINX ]]; then
  apt_install nginx-light || apt_install nginx || die "cannot install nginx"
  NGINX=$(find_nginx)
  [[ -n $NGINX ]] || die "nginx installed but not found"
fi
for tool in wrk curl jq; do
  command -v "$tool" >/dev/null 2>&1 || apt_install "$tool" || die "cannot install $tool"
done
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is required"
CLK_TCK=$(getconf CLK_TCK)

# ------------------------------------------------------------------ build --
log "building keygate (release)"
if ! run_child cargo build --release --bin keygate >"$TMP/build.out" 2>&1; then
  tail -n 30 "$TMP/build.out" >&2
  die "cargo build --release --bin keygate failed"
fi
KG=${CARGO_TARGET_DIR:-$ROOT/target}/release/keygate
[[ -x $KG ]] || die "no binary at $KG"

# -------------------------------------------------------------- processes --
# Wait until FILE has a line starting with PREFIX; print the address after it.
wait_addr() {
  local file=$1 prefix=$2 pid=$3 what=$4 i addr
  for (( i = 0; i < 300; i++ )); do
    addr=$(sed -n "s#^${prefix}\([^ ]*\).*#\1#p" "$file" 2>/dev/null | head -n 1)
    if [[ -n $addr ]]; then echo "$addr"; return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$what exited before it was ready"
    sleep 0.1
  done
  die "$what not ready after 30 s"
}

# Sum of utime and of stime (clock ticks) of the given processes: "USER SYS".
cpu_split() {
  local user=0 sys=0 pid s
  local -a f
  for pid in "$@"; do
    s=$(<"/proc/$pid/stat") || die "process $pid is gone"
    s=${s##*) }
    read -r -a f <<<"$s"
    user=$(( user + f[11] )); sys=$(( sys + f[12] ))
  done
  echo "$user $sys"
}
# Sum of utime+stime (clock ticks) of the given processes.
cpu_ticks() {
  local u s
  read -r u s <<<"$(cpu_split "$@")"
  echo $(( u + s ))
}

# Sum of VmRSS (kB) of the given processes.
rss_kb() {
  local total=0 pid v
  for pid in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Mock provider (also the upstream of nginx and keygate).
"$KG" mock-provider --listen 127.0.0.1:0 >"$TMP/mock.out" 2>"$TMP/mock.err" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
MOCK_ADDR=$(wait_addr "$TMP/mock.out" 'mock-provider listening on http://' "$MOCK_PID" mock-provider)
log "mock-provider on $MOCK_ADDR (pid $MOCK_PID)"
# Request recording is for tests; turn it off so the upstream is as cheap as
# it can be for every target alike.
curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"record":false}' \
  "http://$MOCK_ADDR/_mock/config" 2>/dev/null || log "note: could not turn off mock request recording"

# nginx -> mock.
mkdir -p "$TMP/nginx-tmp"
NGINX_PID=""
NGINX_ADDR=""
for attempt in 1 2 3 4 5; do
  P2=$(( 20000 + RANDOM % 40000 ))
  port_in_use "$P2" && continue
  cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # nginx closes keep-alive connections after 1000 requests by default
    # (both sides); keygate does not, so neither does the yardstick.
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx-tmp/body;
    proxy_temp_path $TMP/nginx-tmp/proxy;
    fastcgi_temp_path $TMP/nginx-tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx-tmp/uwsgi;
    scgi_temp_path $TMP/nginx-tmp/scgi;
    upstream mock {
        server $MOCK_ADDR;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$P2;
        location /v1/ {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
  nginx_args=(-p "$TMP/" -c "$TMP/nginx.conf")
  "$NGINX" -h 2>&1 | grep -q -- '-e filename' && nginx_args=(-e "$TMP/nginx-error.log" "${nginx_args[@]}")
  "$NGINX" "${nginx_args[@]}" >"$TMP/nginx.out" 2>"$TMP/nginx.err" &
  NGINX_PID=$!
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$NGINX_PID" 2>/dev/null || break
    if port_in_use "$P2"; then NGINX_ADDR=127.0.0.1:$P2; break; fi
    sleep 0.1
  done
  if [[ -n $NGINX_ADDR ]]; then PIDS+=("$NGINX_PID"); break; fi
  kill -TERM "$NGINX_PID" 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
done
[[ -n $NGINX_ADDR ]] || { cat "$TMP/nginx.err" "$TMP/nginx-error.log" >&2 2>/dev/null || true; die "nginx did not start"; }
children() {
  if [[ -r /proc/$1/task/$1/children ]]; then cat "/proc/$1/task/$1/children"; else pgrep -P "$1" || true; fi
}
NGINX_WORKERS=""
for (( i = 0; i < 50; i++ )); do
  NGINX_WORKERS=$(children "$NGINX_PID" | tr -s ' \n' ' ' | sed 's/ *$//')
  [[ -n $NGINX_WORKERS ]] && break
  sleep 0.1
done
[[ -n $NGINX_WORKERS ]] || die "no nginx worker process found"
read -r -a NGINX_WORKER_ARR <<<"$NGINX_WORKERS"
EXTRA_PIDS+=("${NGINX_WORKER_ARR[@]}")
log "nginx on $NGINX_ADDR (master $NGINX_PID, worker(s) $NGINX_WORKERS)"

# keygate -> mock, SQLite ledger in a fresh data directory. One serving
# worker, as nginx above runs one worker process: the comparison is per
# request at equal parallelism (set BENCH_KEYGATE_WORKERS to change it).
KG_DATA=$TMP/keygate-data
mkdir -p "$KG_DATA"
UPSTREAM_KEY=sk-bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# The master key seals the token signing keys; made for this run only.
KG_MASTER_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
env -u KEYGATE_CONFIG -u KEYGATE_DATABASE_URL -u KEYGATE_ADMIN_KEY -u KEYGATE_URL \
  -u KEYGATE_MASTER_KEY_FILE -u KEYGATE_MASTER_KEY_COMMAND -u KEYGATE_OAUTH_ISSUER \
  KEYGATE_MASTER_KEY="$KG_MASTER_KEY" \
  KEYGATE_LISTEN=127.0.0.1:0 KEYGATE_DATA_DIR="$KG_DATA" KEYGATE_LOG=warn \
  KEYGATE_WORKERS="${BENCH_KEYGATE_WORKERS:-1}" KEYGATE_DEFAULT_MAX_TOKENS=64 \
  ${BENCH_REDIS_URL:+KEYGATE_REDIS_URL="$BENCH_REDIS_URL" KEYGATE_REDIS_PREFIX="kgbench-$$"} \
  OPENAI_API_KEY="$UPSTREAM_KEY" OPENAI_BASE_URL="http://$MOCK_ADDR/v1" \
  "$KG" serve >"$TMP/keygate.out" 2>"$TMP/keygate.err" &
KG_PID=$!
PIDS+=("$KG_PID")
KG_ADDR=$(wait_addr "$TMP/keygate.out" 'keygate: listening on http://' "$KG_PID" "keygate serve")
log "keygate on $KG_ADDR (pid $KG_PID)"

umask 077
if ! env -u KEYGATE_ADMIN_KEY KEYGATE_URL="http://$KG_ADDR" KEYGATE_DATA_DIR="$KG_DATA" \
    "$KG" keys create --name bench --models 'gpt-*' --format json >"$TMP/key.json" 2>"$TMP/keys.err"; then
  die "keygate keys create failed: $(head -c 500 "$TMP/keys.err")"
fi
BENCH_KEY=$(jq -r '.key // empty' "$TMP/key.json" 2>/dev/null || true)
rm -f "$TMP/key.json"
[[ -n $BENCH_KEY ]] || die "keygate keys create printed no key"
printf 'Authorization: Bearer %s\n' "$BENCH_KEY" >"$TMP/auth.header"
export BENCH_KEY   # read by bench/load.lua via os.getenv; never on a command line
# The same load with governance fully on: a key with a request rate, a token
# rate, a concurrency cap and a monthly budget, all set far above what the
# run uses, so every request is checked, reserved and settled but none is
# refused. (KEYGATE_DEFAULT_MAX_TOKENS=64 above bounds the reservation of
# the bench body, which sets no max_tokens.)
if ! env -u KEYGATE_ADMIN_KEY KEYGATE_URL="http://$KG_ADDR" KEYGATE_DATA_DIR="$KG_DATA" \
    "$KG" keys create --name bench-governed --models 'gpt-*' \
      --rpm 10000000 --tpm 1000000000 --max-concurrent 10000 \
      --budget 1000000 --budget-period month --format json >"$TMP/key.json" 2>"$TMP/keys.err"; then
  die "keygate keys create (governed) failed: $(head -c 500 "$TMP/keys.err")"
fi
BENCH_GOV_KEY=$(jq -r '.key // empty' "$TMP/key.json" 2>/dev/null || true)
rm -f "$TMP/key.json"
[[ -n $BENCH_GOV_KEY ]] || die "keygate keys create printed no governed key"
# An OAuth client for the token endpoint (its id and secret reach wrk only
# through its environment, read by bench/token.lua).
if ! env -u KEYGATE_ADMIN_KEY KEYGATE_URL="http://$KG_ADDR" KEYGATE_DATA_DIR="$KG_DATA" \
    "$KG" oauth-clients create --name bench-client --models 'gpt-*' --format json >"$TMP/client.json" 2>"$TMP/keys.err"; then
  die "keygate oauth-clients create failed: $(head -c 500 "$TMP/keys.err")"
fi
BENCH_CLIENT_ID=$(jq -r '.client_id // empty' "$TMP/client.json" 2>/dev/null || true)
BENCH_CLIENT_SECRET=$(jq -r '.client_secret // empty' "$TMP/client.json" 2>/dev/null || true)
rm -f "$TMP/client.json"
[[ -n $BENCH_CLIENT_ID && -n $BENCH_CLIENT_SECRET ]] || die "keygate oauth-clients create printed no client id or secret"
export BENCH_CLIENT_ID BENCH_CLIENT_SECRET
printf 'Authorization: Basic %s\n' "$(printf '%s:%s' "$BENCH_CLIENT_ID" "$BENCH_CLIENT_SECRET" | base64 | tr -d '\n')" >"$TMP/client.header"
# An access token for the bench key (RFC 8693 exchange of the key itself, no
# narrowing): the `kg token` target is the `keygate` target with this token
# in place of the key, under the very same key record. The key goes in a
# form file, never on a command line.
printf 'grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Atoken-exchange&subject_token_type=urn%%3Akeygate%%3Aparams%%3Aoauth%%3Atoken-type%%3Aapi_key&subject_token=%s' \
  "$BENCH_KEY" >"$TMP/exchange.form"
code=$(curl -sS -o "$TMP/exchange.json" -w '%{http_code}' --max-time 10 \
  -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "@$TMP/exchange.form" \
  "http://$KG_ADDR/oauth/token" 2>"$TMP/exchange.err") || code="curl-failed"
rm -f "$TMP/exchange.form"
BENCH_TOKEN=$(jq -r '.access_token // empty' "$TMP/exchange.json" 2>/dev/null || true)
[[ $code == 200 && -n $BENCH_TOKEN ]] || die "token exchange for the bench key: HTTP $code: $(jq -c '{error, error_description}' "$TMP/exchange.json" 2>/dev/null)"
rm -f "$TMP/exchange.json"
umask 022

BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
preflight() {
  local name=$1 addr=$2 code
  code=$(curl -sS -o "$TMP/preflight.body" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -H "@$TMP/auth.header" -d "$BODY" \
    "http://$addr/v1/chat/completions" 2>"$TMP/preflight.err") || code="curl-failed"
  if [[ $code != 200 ]] || ! jq -e '.choices[0].message.content' "$TMP/preflight.body" >/dev/null 2>&1; then
    die "$name preflight: HTTP $code: $(head -c 300 "$TMP/preflight.body" 2>/dev/null) $(cat "$TMP/preflight.err")"
  fi
}
preflight "mock" "$MOCK_ADDR"
preflight "nginx" "$NGINX_ADDR"
preflight "keygate" "$KG_ADDR"
printf 'Authorization: Bearer %s\n' "$BENCH_TOKEN" >"$TMP/auth.header"
preflight "keygate (access token)" "$KG_ADDR"
printf 'Authorization: Bearer %s\n' "$BENCH_KEY" >"$TMP/auth.header"
KG_SENT=2   # requests keygate answered (preflights + wrk-completed), for the ledger check
code=$(curl -sS -o "$TMP/preflight.body" -w '%{http_code}' --max-time 10 -H "@$TMP/client.header" \
  -H 'Content-Type: application/x-www-form-urlencoded' -d 'grant_type=client_credentials&scope=chat' \
  "http://$KG_ADDR/oauth/token" 2>"$TMP/preflight.err") || code="curl-failed"
if [[ $code != 200 ]] || ! jq -e '.access_token' "$TMP/preflight.body" >/dev/null 2>&1; then
  die "token endpoint preflight: HTTP $code: $(jq -c '{error, error_description}' "$TMP/preflight.body" 2>/dev/null) $(cat "$TMP/preflight.err")"
fi
rm -f "$TMP/preflight.body"
log "preflight: all three targets answer 200 with a completion; the token endpoint issues tokens"


# ------------------------------------------------------------------- load --
declare -A R   # R[target.mode.field]
# `translated`: the same keygate, asked in Anthropic's format for the
# OpenAI-format model, so every request and answer is translated.
# `governed`: the same keygate and request with the governed key (rate
# limits, concurrency cap, budget reservation and settlement on).
# `token`: the same keygate and request as `keygate`, authenticated with an
# access token (a JWT minted from the bench key) instead of the key.
# `oauth`: the token endpoint itself, a client_credentials grant per request
# (bench/token.lua); its req/s is tokens issued per second.
TARGETS=(mock nginx keygate governed translated token oauth)
KG_TARGETS=" keygate governed translated token oauth "   # targets served by keygate (error banner)
LEDGER_TARGETS=" keygate governed translated token "    # targets that add ledger rows
declare -A ADDR=([mock]=$MOCK_ADDR [nginx]=$NGINX_ADDR [keygate]=$KG_ADDR [governed]=$KG_ADDR [translated]=$KG_ADDR [token]=$KG_ADDR [oauth]=$KG_ADDR)
declare -A LABEL=([mock]="mock (direct)" [nginx]="nginx -> mock" [keygate]="keygate -> mock" [governed]="kg governed" [translated]="kg translated" [token]="kg token" [oauth]="kg /oauth/token")
declare -A PROC=([mock]="$MOCK_PID" [nginx]="$NGINX_PID $NGINX_WORKERS" [keygate]="$KG_PID" [governed]="$KG_PID" [translated]="$KG_PID" [token]="$KG_PID" [oauth]="$KG_PID")
declare -A ROUTE=([mock]=/v1/chat/completions [nginx]=/v1/chat/completions [keygate]=/v1/chat/completions [governed]=/v1/chat/completions [translated]=/v1/messages [token]=/v1/chat/completions [oauth]=/oauth/token)
declare -A FORMAT=([mock]=openai [nginx]=openai [keygate]=openai [governed]=openai [translated]=anthropic [token]=openai [oauth]=openai)
declare -A KEY=([mock]=$BENCH_KEY [nginx]=$BENCH_KEY [keygate]=$BENCH_KEY [governed]=$BENCH_GOV_KEY [translated]=$BENCH_KEY [token]=$BENCH_TOKEN [oauth]="")
declare -A SCRIPT=([mock]=$LUA [nginx]=$LUA [keygate]=$LUA [governed]=$LUA [translated]=$LUA [token]=$LUA [oauth]=$TOKEN_LUA)

# Idle CPU of each process over 2 s (a busy-polling or chatty background task
# shows here, and would inflate CPU per request).
# The whole machine is sampled too: other work on a 2-core box skews every
# number, so say so.
sys_ticks() {  # "BUSY TOTAL" from /proc/stat
  local _c u n s i w q sq st
  read -r _c u n s i w q sq st _ </proc/stat
  echo "$(( u + n + s + q + sq + st )) $(( u + n + s + i + w + q + sq + st ))"
}
declare -A IDLE IDLE0
for t in "${TARGETS[@]}"; do read -r -a p <<<"${PROC[$t]}"; IDLE0[$t]=$(cpu_ticks "${p[@]}"); done
read -r busy0 total0 <<<"$(sys_ticks)"
sleep 2
read -r busy1 total1 <<<"$(sys_ticks)"
for t in "${TARGETS[@]}"; do
  read -r -a p <<<"${PROC[$t]}"
  IDLE[$t]=$(awk -v c=$(( $(cpu_ticks "${p[@]}") - IDLE0[$t] )) -v hz="$CLK_TCK" 'BEGIN{printf "%.1f", c*1000/hz/2}')
done
BG_BUSY_PCT=$(awk -v b=$(( busy1 - busy0 )) -v t=$(( total1 - total0 )) 'BEGIN{printf "%.0f", (t>0)? 100*b/t : 0}')
log "idle CPU (ms per s): mock ${IDLE[mock]}, nginx ${IDLE[nginx]}, keygate ${IDLE[keygate]}; whole machine ${BG_BUSY_PCT}% busy before the load"
if [[ $BG_BUSY_PCT -ge 10 ]]; then
  log "WARNING: the machine is ${BG_BUSY_PCT}% busy with other work; the numbers will be skewed"
fi

# run_wrk THREADS CONNS DURATION URL OUTFILE [FORMAT] [KEY] [SCRIPT]
run_wrk() {
  local bound=$(( $(dur_secs "$3") + 30 ))
  BENCH_KEY=${7-$BENCH_KEY} BENCH_FORMAT=${6:-openai} run_child timeout -k 5 "$bound" wrk -t"$1" -c"$2" -d"$3" --timeout 5s -s "${8:-$LUA}" "$4" >"$5" 2>&1 \
    || die "wrk failed or overran against $4: $(tail -n 5 "$5")"
  grep -q '^BENCH_RESULT ' "$5" || die "wrk printed no BENCH_RESULT line: $(tail -n 5 "$5")"
}

# measure TARGET MODE THREADS CONNS
measure() {
  local t=$1 mode=$2 threads=$3 conns=$4 out=$TMP/wrk-$1-$2.out
  local -a pids mpids
  read -r -a pids <<<"${PROC[$t]}"
  mpids=("$MOCK_PID")
  local c0 m0 c1 m1 u0 s0 u1 s1 line kv k v
  read -r u0 s0 <<<"$(cpu_split "${pids[@]}")"
  m0=$(cpu_ticks "${mpids[@]}")
  run_wrk "$threads" "$conns" "$DURATION" "http://${ADDR[$t]}${ROUTE[$t]}" "$out" "${FORMAT[$t]}" "${KEY[$t]}" "${SCRIPT[$t]}"
  read -r u1 s1 <<<"$(cpu_split "${pids[@]}")"
  m1=$(cpu_ticks "${mpids[@]}")
  c0=$(( u0 + s0 )); c1=$(( u1 + s1 ))
  line=$(grep '^BENCH_RESULT ' "$out" | head -n 1)
  for kv in ${line#BENCH_RESULT }; do
    k=${kv%%=*}; v=${kv#*=}
    R[$t.$mode.$k]=$v
  done
  local req=${R[$t.$mode.requests]}
  R[$t.$mode.conns]=$conns
  R[$t.$mode.threads]=$threads
  R[$t.$mode.cpu_ticks]=$(( c1 - c0 ))
  R[$t.$mode.rps]=$(awk -v n="$req" -v d="${R[$t.$mode.duration_us]}" 'BEGIN{printf "%.0f", (d>0)? n*1e6/d : 0}')
  R[$t.$mode.cpu_us_per_req]=$(awk -v c=$(( c1 - c0 )) -v hz="$CLK_TCK" -v n="$req" 'BEGIN{printf "%.1f", (n>0)? c*1e6/hz/n : 0}')
  R[$t.$mode.user_us_per_req]=$(awk -v c=$(( u1 - u0 )) -v hz="$CLK_TCK" -v n="$req" 'BEGIN{printf "%.1f", (n>0)? c*1e6/hz/n : 0}')
  R[$t.$mode.sys_us_per_req]=$(awk -v c=$(( s1 - s0 )) -v hz="$CLK_TCK" -v n="$req" 'BEGIN{printf "%.1f", (n>0)? c*1e6/hz/n : 0}')
  R[$t.$mode.mock_cpu_us_per_req]=$(awk -v c=$(( m1 - m0 )) -v hz="$CLK_TCK" -v n="$req" 'BEGIN{printf "%.1f", (n>0)? c*1e6/hz/n : 0}')
  R[$t.$mode.rss_kb]=$(rss_kb "${pids[@]}")
  R[$t.$mode.errors]=$(( R[$t.$mode.err_connect] + R[$t.$mode.err_read] + R[$t.$mode.err_write] + R[$t.$mode.err_timeout] + R[$t.$mode.err_status] ))
  [[ $LEDGER_TARGETS == *" $t "* ]] && KG_SENT=$(( KG_SENT + req ))
  log "$(printf '%-16s c=%-3s %8s req/s  p50 %6s us  p99 %6s us  %7s CPU-us/req (user %s, sys %s; mock %s)  errors %s' \
    "${LABEL[$t]}" "$conns" "${R[$t.$mode.rps]}" "${R[$t.$mode.p50_us]}" "${R[$t.$mode.p99_us]}" \
    "${R[$t.$mode.cpu_us_per_req]}" "${R[$t.$mode.user_us_per_req]}" "${R[$t.$mode.sys_us_per_req]}" \
    "${R[$t.$mode.mock_cpu_us_per_req]}" "${R[$t.$mode.errors]}")"
}

log "load: warm-up $WARMUP, then ${DURATION} at c=1 (1 thread) and ${DURATION} at c=$CONNS ($THREADS threads) per target"
for t in "${TARGETS[@]}"; do
  run_wrk "$THREADS" "$CONNS" "$WARMUP" "http://${ADDR[$t]}${ROUTE[$t]}" "$TMP/wrk-$t-warmup.out" "${FORMAT[$t]}" "${KEY[$t]}" "${SCRIPT[$t]}"
  if [[ $LEDGER_TARGETS == *" $t "* ]]; then
    w=$(sed -n 's/^BENCH_RESULT requests=\([0-9]*\).*/\1/p' "$TMP/wrk-$t-warmup.out")
    KG_SENT=$(( KG_SENT + ${w:-0} ))
  fi
  measure "$t" c1 1 1
  measure "$t" cN "$THREADS" "$CONNS"
done
KG_RSS_KB=$(rss_kb "$KG_PID")

# Ledger check: did the durable ledger record what keygate served?
sleep 1
LEDGER_REQUESTS=$(env -u KEYGATE_ADMIN_KEY KEYGATE_URL="http://$KG_ADDR" KEYGATE_DATA_DIR="$KG_DATA" \
  "$KG" usage --format json 2>/dev/null \
  | jq '(if type == "array" then . else (.data // []) end) | map(.requests // 0) | add // 0' 2>/dev/null || echo null)

# ----------------------------------------------------------------- report --
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "null" }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN{ if (r == "null") print "n/a"; else if (r+0 <= t+0) print "met"; else print "MISSED" }'; }

CPU_RATIO_N=$(ratio "${R[keygate.cN.cpu_us_per_req]}" "${R[nginx.cN.cpu_us_per_req]}")
CPU_RATIO_1=$(ratio "${R[keygate.c1.cpu_us_per_req]}" "${R[nginx.c1.cpu_us_per_req]}")
ADD_NGINX=$(( R[nginx.c1.p50_us] - R[mock.c1.p50_us] ))
ADD_KG=$(( R[keygate.c1.p50_us] - R[mock.c1.p50_us] ))
LAT_RATIO=$(ratio "$ADD_KG" "$ADD_NGINX")
TR_RATIO_N=$(ratio "${R[translated.cN.cpu_us_per_req]}" "${R[keygate.cN.cpu_us_per_req]}")
GOV_RATIO_N=$(ratio "${R[governed.cN.cpu_us_per_req]}" "${R[nginx.cN.cpu_us_per_req]}")
GOV_RATIO_1=$(ratio "${R[governed.c1.cpu_us_per_req]}" "${R[nginx.c1.cpu_us_per_req]}")
GOV_OFF_N=$(ratio "${R[governed.cN.cpu_us_per_req]}" "${R[keygate.cN.cpu_us_per_req]}")
ADD_GOV=$(( R[governed.c1.p50_us] - R[mock.c1.p50_us] ))
GOV_LAT_RATIO=$(ratio "$ADD_GOV" "$ADD_NGINX")
TOKEN_KEY_N=$(ratio "${R[token.cN.cpu_us_per_req]}" "${R[keygate.cN.cpu_us_per_req]}")
TOKEN_KEY_1=$(ratio "${R[token.c1.cpu_us_per_req]}" "${R[keygate.c1.cpu_us_per_req]}")
TOKEN_NGINX_N=$(ratio "${R[token.cN.cpu_us_per_req]}" "${R[nginx.cN.cpu_us_per_req]}")
TOKENS_PER_S=${R[oauth.cN.rps]}
HYDRA_X=$(ratio "$TOKENS_PER_S" "$HYDRA_TOKENS_PER_S")
at_least() { awk -v r="$1" -v t="$2" 'BEGIN{ if (r == "null") print "n/a"; else if (r+0 >= t+0) print "met"; else print "MISSED" }'; }

echo
echo "keygate benchmark — $(nproc) CPUs, $(uname -r), ${DURATION} per run, warm-up ${WARMUP}, c=1 (1 thread) / c=$CONNS ($THREADS threads)"
echo "CPU = utime+stime of the process under test per request (mock row: the mock; nginx: master+worker; keygate: its process)"
echo
printf '%-16s %5s %10s %9s %9s %13s %11s %8s\n' target conc 'req/s' 'p50 µs' 'p99 µs' 'CPU µs/req' 'RSS MiB' errors
printf '%-16s %5s %10s %9s %9s %13s %11s %8s\n' ---------------- ----- ---------- --------- --------- ------------- ----------- --------
for t in "${TARGETS[@]}"; do
  for mode in c1 cN; do
    printf '%-16s %5s %10s %9s %9s %13s %11s %8s\n' "${LABEL[$t]}" "${R[$t.$mode.conns]}" \
      "${R[$t.$mode.rps]}" "${R[$t.$mode.p50_us]}" "${R[$t.$mode.p99_us]}" "${R[$t.$mode.cpu_us_per_req]}" \
      "$(awk -v k="${R[$t.$mode.rss_kb]}" 'BEGIN{printf "%.1f", k/1024}')" "${R[$t.$mode.errors]}"
  done
done
echo
printf 'keygate/nginx CPU per request, c=%s:  %sx  (target <= %sx: %s)\n' "$CONNS" "$CPU_RATIO_N" "$CPU_TARGET" "$(verdict "$CPU_RATIO_N" "$CPU_TARGET")"
printf 'keygate/nginx CPU per request, c=1:   %sx  (target <= %sx: %s)\n' "$CPU_RATIO_1" "$CPU_TARGET" "$(verdict "$CPU_RATIO_1" "$CPU_TARGET")"
printf 'added p50 latency at c=1 over the mock: nginx %s µs, keygate %s µs -> %sx  (target <= %sx: %s)\n' \
  "$ADD_NGINX" "$ADD_KG" "$LAT_RATIO" "$LAT_TARGET" "$(verdict "$LAT_RATIO" "$LAT_TARGET")"
printf 'governance on (kg governed)/nginx CPU per request, c=%s: %sx, c=1: %sx  (target <= %sx: %s)\n' \
  "$CONNS" "$GOV_RATIO_N" "$GOV_RATIO_1" "$CPU_TARGET" "$(verdict "$GOV_RATIO_N" "$CPU_TARGET")"
printf 'governance on vs off, CPU per request at c=%s: %sx; added p50 at c=1: %s µs -> %sx nginx (target <= %sx: %s)\n' \
  "$CONNS" "$GOV_OFF_N" "$ADD_GOV" "$GOV_LAT_RATIO" "$LAT_TARGET" "$(verdict "$GOV_LAT_RATIO" "$LAT_TARGET")"
printf 'translation (Anthropic client -> OpenAI model) vs relay, CPU per request at c=%s: %sx\n' "$CONNS" "$TR_RATIO_N"
printf 'access token vs key (kg token/keygate), CPU per request at c=%s: %sx (%s vs %s µs), c=1: %sx; kg token/nginx at c=%s: %sx\n' \
  "$CONNS" "$TOKEN_KEY_N" "${R[token.cN.cpu_us_per_req]}" "${R[keygate.cN.cpu_us_per_req]}" "$TOKEN_KEY_1" "$CONNS" "$TOKEN_NGINX_N"
printf 'token endpoint (client_credentials, Basic, ES256): %s tokens/s at c=%s, %s CPU-µs/token, p50 %s µs at c=1; Ory Hydra published %s/s on 2 CPUs -> %sx  (target >= %sx: %s)\n' \
  "$TOKENS_PER_S" "$CONNS" "${R[oauth.cN.cpu_us_per_req]}" "${R[oauth.c1.p50_us]}" "$HYDRA_TOKENS_PER_S" "$HYDRA_X" "$TOKEN_TARGET_X" "$(at_least "$HYDRA_X" "$TOKEN_TARGET_X")"
printf 'keygate RSS after the run: %s MiB; idle CPU before the load (ms/s): mock %s, nginx %s, keygate %s\n' \
  "$(awk -v k="$KG_RSS_KB" 'BEGIN{printf "%.1f", k/1024}')" "${IDLE[mock]}" "${IDLE[nginx]}" "${IDLE[keygate]}"
if [[ $BG_BUSY_PCT -ge 10 ]]; then
  echo "WARNING: the machine was ${BG_BUSY_PCT}% busy with other work before the load; treat these numbers as skewed"
fi
printf 'keygate ledger: %s requests recorded, %s answered by keygate (wrk-completed + preflight; in-flight at cutoff may add a few)\n' \
  "$LEDGER_REQUESTS" "$KG_SENT"

KG_ERRORS=0
for t in $KG_TARGETS; do KG_ERRORS=$(( KG_ERRORS + R[$t.c1.errors] + R[$t.cN.errors] )); done
OTHER_ERRORS=$(( R[mock.c1.errors] + R[mock.cN.errors] + R[nginx.c1.errors] + R[nginx.cN.errors] ))
if [[ $KG_ERRORS -ne 0 ]]; then
  echo
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  echo "!! keygate returned $KG_ERRORS errors (HTTP >= 400 or socket errors) during the load:"
  for t in $KG_TARGETS; do
    for mode in c1 cN; do
      [[ ${R[$t.$mode.errors]} -ne 0 ]] || continue
      echo "!!   ${LABEL[$t]}, c=${R[$t.$mode.conns]}: status ${R[$t.$mode.err_status]}, connect ${R[$t.$mode.err_connect]}, read ${R[$t.$mode.err_read]}, write ${R[$t.$mode.err_write]}, timeout ${R[$t.$mode.err_timeout]}"
    done
  done
  echo "!! The numbers of those rows above are NOT a valid measurement."
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
elif [[ $OTHER_ERRORS -ne 0 ]]; then
  echo
  echo "WARNING: the mock/nginx rows saw $OTHER_ERRORS errors; their numbers are suspect."
else
  echo "all responses in the measured runs were successful (no HTTP >= 400, no socket errors)"
fi

# JSON results.
mkdir -p "$RESULTS_DIR"
runs_json() {
  local t mode first=1 k
  printf '['
  for t in "${TARGETS[@]}"; do
    for mode in c1 cN; do
      [[ $first == 1 ]] || printf ','
      first=0
      printf '{"target":"%s","label":"%s","connections":%s,"threads":%s' "$t" "${LABEL[$t]}" "${R[$t.$mode.conns]}" "${R[$t.$mode.threads]}"
      for k in requests duration_us rps p50_us p90_us p99_us max_us mean_us cpu_ticks cpu_us_per_req user_us_per_req sys_us_per_req mock_cpu_us_per_req rss_kb errors err_connect err_read err_write err_timeout err_status; do
        printf ',"%s":%s' "$k" "${R[$t.$mode.$k]}"
      done
      printf '}'
    done
  done
  printf ']'
}
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
jq -n \
  --arg time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg git "$GIT_REV" \
  --arg kernel "$(uname -r)" \
  --argjson cpus "$(nproc)" \
  --arg nginx "$("$NGINX" -v 2>&1 | sed 's#.*nginx/##')" \
  --arg duration "$DURATION" --arg warmup "$WARMUP" \
  --argjson conns "$CONNS" --argjson threads "$THREADS" \
  --argjson clk "$CLK_TCK" \
  --argjson runs "$(runs_json)" \
  --argjson cpu_n "$CPU_RATIO_N" --argjson cpu_1 "$CPU_RATIO_1" \
  --argjson add_nginx "$ADD_NGINX" --argjson add_kg "$ADD_KG" --argjson lat "$LAT_RATIO" \
  --argjson gov_n "$GOV_RATIO_N" --argjson gov_1 "$GOV_RATIO_1" --argjson gov_off "$GOV_OFF_N" \
  --argjson add_gov "$ADD_GOV" --argjson gov_lat "$GOV_LAT_RATIO" \
  --argjson tok_key_n "$TOKEN_KEY_N" --argjson tok_key_1 "$TOKEN_KEY_1" --argjson tok_nginx_n "$TOKEN_NGINX_N" \
  --argjson tokens_per_s "$TOKENS_PER_S" --argjson hydra "$HYDRA_TOKENS_PER_S" --argjson hydra_x "$HYDRA_X" \
  --argjson token_target_x "$TOKEN_TARGET_X" \
  --argjson idle "$(printf '{"mock":%s,"nginx":%s,"keygate":%s}' "${IDLE[mock]}" "${IDLE[nginx]}" "${IDLE[keygate]}")" \
  --argjson bg "$BG_BUSY_PCT" \
  --argjson rss "$KG_RSS_KB" --argjson ledger "$LEDGER_REQUESTS" --argjson sent "$KG_SENT" \
  --argjson kg_errors "$KG_ERRORS" --argjson other_errors "$OTHER_ERRORS" \
  --argjson cpu_target "$CPU_TARGET" --argjson lat_target "$LAT_TARGET" \
  --argjson elapsed "$(( $(date +%s) - START_TS ))" \
  '{time: $time, git: $git, machine: {cpus: $cpus, kernel: $kernel, clk_tck: $clk, busy_pct_before_load: $bg},
    nginx_version: $nginx,
    settings: {duration: $duration, warmup: $warmup, connections: $conns, threads: $threads},
    runs: $runs,
    summary: {
      cpu_ratio_keygate_to_nginx: $cpu_n, cpu_ratio_keygate_to_nginx_c1: $cpu_1, cpu_ratio_target: $cpu_target,
      added_p50_us_nginx: $add_nginx, added_p50_us_keygate: $add_kg,
      added_latency_ratio: $lat, added_latency_ratio_target: $lat_target,
      governed_cpu_ratio_to_nginx: $gov_n, governed_cpu_ratio_to_nginx_c1: $gov_1,
      governed_cpu_ratio_to_ungoverned: $gov_off, added_p50_us_governed: $add_gov, governed_added_latency_ratio: $gov_lat,
      token_cpu_ratio_to_key: $tok_key_n, token_cpu_ratio_to_key_c1: $tok_key_1, token_cpu_ratio_to_nginx: $tok_nginx_n,
      token_endpoint_tokens_per_s: $tokens_per_s, hydra_tokens_per_s: $hydra, token_endpoint_x_hydra: $hydra_x,
      token_endpoint_x_hydra_target: $token_target_x,
      idle_cpu_ms_per_s: $idle, keygate_rss_kb: $rss, keygate_errors: $kg_errors, other_errors: $other_errors,
      ledger_requests: $ledger, keygate_requests_answered: $sent},
    elapsed_s: $elapsed}' >"$RESULTS_DIR/latest.json"
echo "results: ${RESULTS_DIR#"$ROOT"/}/latest.json; whole run took $(( $(date +%s) - START_TS )) s"
exit 0
