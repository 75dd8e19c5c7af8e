#!/usr/bin/env bash
# README command 1: set up, build, start `fcx server` on 127.0.0.1:9100 (data in ./.fcx) in its
# development mode without request signing (`--auth none`, loopback only), deploy the seed's two
# sample functions and invoke each once, deploy one HTTP function (examples/express-http: the
# Express sample with a page added) behind an anonymous HTTP trigger, print its browser URL,
# and keep serving.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

echo "==> building fcx (release)" >&2
cargo build --release --locked -p fcx
FCX=target/release/fcx
LISTEN=${FCX_LISTEN:-127.0.0.1:9100}
API="http://$LISTEN/2023-03-30"

out=$(mktemp)
"$FCX" server --listen "$LISTEN" --auth none >"$out" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$out" && break
  kill -0 "$server" 2>/dev/null || { echo "fcx server failed to start (is $LISTEN in use?)" >&2; exit 1; }
  sleep 0.1
done
cat "$out"

# deploy NAME DIR JSON-FRAGMENT: zip DIR (symlinks kept) and create or update the function.
deploy() {
  local name=$1 dir=$2 props=$3 zip body
  zip=$(mktemp -u).zip
  (cd "$dir" && zip -qry "$zip" .)
  body=$(mktemp)
  printf '{"functionName":"%s","runtime":"custom.debian12","handler":"index.handler","timeout":30,%s,"code":{"zipFile":"' "$name" "$props" >"$body"
  base64 -w0 "$zip" >>"$body"
  printf '"}}' >>"$body"
  status=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$API/functions" --data-binary @"$body")
  if [ "$status" = 409 ]; then
    # Already deployed by an earlier run: update it (UpdateFunction takes no functionName).
    sed -i "s/\"functionName\":\"$name\",//" "$body"
    status=$(curl -s -o /dev/null -w '%{http_code}' -XPUT "$API/functions/$name" --data-binary @"$body")
  fi
  rm -f "$zip" "$body"
  [ "$status" = 200 ] || { echo "deploying $name failed with HTTP $status" >&2; exit 1; }
  echo "==> deployed $name" >&2
}

deploy express-event examples/express-event \
  '"customRuntimeConfig":{"command":["node","server.js"],"port":9000},"instanceLifecycleConfig":{"initializer":{"handler":"index.initializer","timeout":30}}'
deploy python-event examples/python-event \
  '"customRuntimeConfig":{"command":["python3","main.py"],"webServerMode":false}'

echo "==> invoking express-event (web-server mode, initializer once per instance):" >&2
curl -s -XPOST "$API/functions/express-event/invocations" -d '{"key":"value"}'
echo "==> invoking python-event (non-web-server mode, event in FC_CUSTOM_CONTAINER_EVENT):" >&2
curl -s -XPOST "$API/functions/python-event/invocations" -d '{"key":"value"}'

deploy express-http examples/express-http \
  '"customRuntimeConfig":{"command":["node","server.js"],"port":9000}'
trigger='{"triggerName":"web","triggerType":"http","triggerConfig":"{\"authType\":\"anonymous\",\"methods\":[\"GET\",\"POST\"]}"}'
status=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$API/functions/express-http/triggers" -d "$trigger")
case "$status" in
  200|409) ;;   # 409: created by an earlier run
  *) echo "creating the HTTP trigger of express-http failed with HTTP $status" >&2; exit 1 ;;
esac
URL=$(curl -s "$API/functions/express-http/triggers/web" | sed -n 's/.*"urlInternet":"\([^"]*\)".*/\1/p')
echo "==> express-http serves the web through its HTTP trigger; open in a browser:" >&2
echo "    $URL/"

cat <<EOT

fcx is serving on http://$LISTEN without request signing (--auth none; Ctrl-C stops it and its
instances). Try:
  curl -XPOST $API/functions/express-event/invocations -d '{"hello":"fcx"}'
  curl -i -XPOST $API/functions/express-event/invocations -H 'x-fc-log-type: Tail' -d '{}'
  curl -XPOST $API/functions/python-event/invocations -d '{"hello":"fcx"}'
  curl $API/functions
  curl $API/functions/express-event
  curl $API/functions/express-event/invocations      # a browser GET: 400 PathNotSupported
  curl $URL/api/hello                                # the HTTP function, through its trigger
  $FCX --endpoint http://$LISTEN triggers ls express-http
  $FCX --endpoint http://$LISTEN invoke express-event --event '{"k":1}' --tail
  $FCX --endpoint http://$LISTEN logs express-event

This server runs with --auth none (development). Without it, fcx checks the signature the
FC SDKs send: the first start writes <data dir>/credentials, and
  $FCX --credentials .fcx/credentials invoke NAME --event '{}'
or any FC 3.0 SDK with that AccessKey works unchanged (README: Authentication).
EOT
wait "$server"
