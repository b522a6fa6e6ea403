# Shared helpers for the scripts: start a relay and a native node in the background and read
# their addresses. Source it; it registers a cleanup trap that stops what it started.

KL_PIDS=()
KL_WORK=$(mktemp -d -t keep-light.XXXXXX)

kl_cleanup() {
  for pid in "${KL_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KL_KEEP_WORK:-}" ] && echo "kept $KL_WORK" >&2 || rm -rf "$KL_WORK"
}
trap kl_cleanup EXIT INT TERM

# kl_wait_line FILE REGEX SECONDS: prints the first line of FILE matching REGEX, or fails.
kl_wait_line() {
  local file=$1 regex=$2 seconds=$3 i line
  for ((i = 0; i < seconds * 10; i++)); do
    line=$(grep -m1 -E "$regex" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then printf '%s\n' "$line"; return 0; fi
    sleep 0.1
  done
  echo "timed out after ${seconds}s waiting for /$regex/ in $file:" >&2
  cat "$file" >&2 || true
  return 1
}

# kl_json_field JSON NAME: the string value of NAME in a flat JSON line.
kl_json_field() {
  printf '%s' "$1" | sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p"
}

# kl_start_relay BIN NAME: starts a relay on loopback (WebSocket, TCP, WebRTC-direct) and sets
# KL_RELAY_WS, KL_RELAY_TCP and KL_RELAY_WEBRTC to its full multiaddrs.
kl_start_relay() {
  local bin=$1 name=$2
  "$bin" relay --listen /ip4/127.0.0.1/tcp/0/ws --listen /ip4/127.0.0.1/tcp/0 \
    --listen /ip4/127.0.0.1/udp/0/webrtc-direct \
    >"$KL_WORK/$name.out" 2>"$KL_WORK/$name.err" &
  KL_PIDS+=($!)
  KL_RELAY_WS=$(kl_json_field "$(kl_wait_line "$KL_WORK/$name.out" '/ws/p2p/' 30)" listening)
  KL_RELAY_TCP=$(kl_json_field "$(kl_wait_line "$KL_WORK/$name.out" '/tcp/[0-9]+/p2p/' 30)" listening)
  KL_RELAY_WEBRTC=$(kl_json_field "$(kl_wait_line "$KL_WORK/$name.out" '/webrtc-direct/' 30)" listening)
}

# kl_start_echo_node BIN NAME KEY BOOTSTRAP TOPIC [TICK_SECONDS]: starts a native member that
# echoes every message and, with TICK_SECONDS, publishes `native-tick-N` that often. BOOTSTRAP
# is one relay address or several separated by spaces. Its events go to $KL_WORK/NAME.out.
kl_start_echo_node() {
  local bin=$1 name=$2 key=$3 topic=$5 tick=${6:-} address bootstrap=()
  for address in $4; do bootstrap+=(--bootstrap "$address"); done
  if [ -n "$tick" ]; then
    (
      i=0
      while sleep "$tick"; do i=$((i + 1)); echo "publish $topic native-tick-$i" || exit 0; done
    ) | "$bin" node "${bootstrap[@]}" --key-hex "$key" --join "$topic" --echo \
      >"$KL_WORK/$name.out" 2>"$KL_WORK/$name.err" &
  else
    "$bin" node "${bootstrap[@]}" --key-hex "$key" --join "$topic" --echo \
      </dev/null >"$KL_WORK/$name.out" 2>"$KL_WORK/$name.err" &
  fi
  KL_PIDS+=($!)
  kl_wait_line "$KL_WORK/$name.out" '"event":"connected"' 30 >/dev/null
}

# kl_start_browser_peers BIN TOPIC KEY [TICK_SECONDS]: what a browser test or harness talks to:
# a relay and a native echo member (KEY) in TOPIC. Exports the KEEP_LIGHT_TEST_* variables the
# wasm tests read at build time and sets KL_NATIVE_ADDRESS; the echo node's events go to
# $KL_WORK/native.out.
kl_start_browser_peers() {
  local bin=$1 topic=$2 key=$3 tick=${4:-} id
  id=$("$bin" id --key-hex "$key")
  KL_NATIVE_ADDRESS=$(kl_json_field "$id" address)
  kl_start_relay "$bin" relay
  kl_start_echo_node "$bin" native "$key" "$KL_RELAY_TCP" "$topic" "$tick"
  export KEEP_LIGHT_TEST_RELAY=$KL_RELAY_WS KEEP_LIGHT_TEST_RELAY_WEBRTC=$KL_RELAY_WEBRTC
  export KEEP_LIGHT_TEST_NATIVE_PEER
  KEEP_LIGHT_TEST_NATIVE_PEER=$(kl_json_field "$id" peer_id)
  export KEEP_LIGHT_TEST_TOPIC=$topic
  export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
}

# kl_start_group BIN BOOTSTRAP: three native members of a four-member group channel that echo
# its texts (`node --member … --echo`; secrets 0x…41, 0x…42, 0x…43). The fourth member is the
# browser test (secret 0x…44). Exports KEEP_LIGHT_TEST_GROUP (the four addresses) and
# KEEP_LIGHT_TEST_GROUP_KEY (the browser's secret) for the wasm test, sets
# KL_GROUP_BROWSER_ADDRESS; the natives' events go to $KL_WORK/group-4N.out.
kl_start_group() {
  local bin=$1 bootstrap=$2 i members=() args=()
  for i in 41 42 43 44; do
    members+=("$(kl_json_field "$("$bin" id --key-hex "0x$(printf '%064d' "$i")")" address)")
  done
  for i in "${members[@]}"; do args+=(--member "$i"); done
  for i in 41 42 43; do
    "$bin" node --bootstrap "$bootstrap" --key-hex "0x$(printf '%064d' "$i")" "${args[@]}" --echo \
      </dev/null >"$KL_WORK/group-$i.out" 2>"$KL_WORK/group-$i.err" &
    KL_PIDS+=($!)
  done
  for i in 41 42 43; do kl_wait_line "$KL_WORK/group-$i.out" '"event":"connected"' 30 >/dev/null; done
  KEEP_LIGHT_TEST_GROUP=$(IFS=,; echo "${members[*]}")
  export KEEP_LIGHT_TEST_GROUP
  export KEEP_LIGHT_TEST_GROUP_KEY="0x$(printf '%064d' 44)"
  KL_GROUP_BROWSER_ADDRESS=${members[3]}
}

# kl_serve_www PORT TOPIC [RELAY...]: serves www/ on 127.0.0.1:PORT (0 = any free port) and
# sets KL_PAGE_URL to the demo page joined to TOPIC through the RELAYs (default: the started
# relay's WebSocket address).
kl_serve_www() {
  local port=$1 topic=$2 enc relay relays=""
  shift 2
  [ $# -gt 0 ] || set -- "$KL_RELAY_WS"
  python3 -u -m http.server --bind 127.0.0.1 --directory www "$port" >"$KL_WORK/http.log" 2>&1 &
  KL_PIDS+=($!)
  port=$(kl_wait_line "$KL_WORK/http.log" 'Serving HTTP' 10 | sed -n 's/.* port \([0-9]*\).*/\1/p')
  enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
  for relay in "$@"; do relays+="relay=$(enc "$relay")&"; done
  KL_PAGE_URL="http://127.0.0.1:$port/?${relays}topic=$(enc "$topic")"
}
