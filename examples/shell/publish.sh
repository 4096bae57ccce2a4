#!/usr/bin/env bash
# Publishes what DocumentChannel.broadcast_to(document, message) publishes in
# Rails, from the shell: straight to Redis with redis-cli, or through
# cablecar's POST /_broadcast with curl.
#
#   REDIS_URL=redis://127.0.0.1:6379/0 ./publish.sh redis 'a b/c' '{"status":"complete"}'
#   CABLECAR_URL=http://127.0.0.1:8080 CABLECAR_BROADCAST_KEY=… ./publish.sh http 'a b/c' '{"status":"complete"}'
#
# It prints the stream and what Redis or cablecar answered.
set -euo pipefail

channel_prefix=${CHANNEL_PREFIX:-myapp_production} # cable.yml channel_prefix
gid_app=${GID_APP:-myapp}                          # GlobalID.app

# Ruby's CGI.escape: keeps letters, digits and -_.~, turns space into "+",
# and percent-encodes every other byte with upper-case hex.
cgi_escape() {
  local LC_ALL=C s=$1 out= c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [a-zA-Z0-9_.~-]) out+=$c ;;
      ' ') out+=+ ;;
      *) printf -v c '%%%02X' "'$c"; out+=$c ;;
    esac
  done
  printf '%s' "$out"
}

# GlobalID#to_gid_param: URL-safe Base64, without padding, of gid://<app>/<model>/<id>.
gid_param() {
  printf 'gid://%s/%s/%s' "$gid_app" "$1" "$(cgi_escape "$2")" | base64 | tr -d '\n=' | tr '+/' '-_'
}

[ $# -eq 3 ] || { echo "usage: publish.sh redis|http DOCUMENT_ID JSON" >&2; exit 2; }
via=$1 id=$2 message=$3

# DocumentChannel.broadcasting_for(document) is "document:" + the gid param.
stream="document:$(gid_param Document "$id")"
echo "$stream"
case $via in
  redis)
    redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379/0}" PUBLISH "$channel_prefix:$stream" "$message"
    ;;
  http)
    curl -fsS -X POST "${CABLECAR_URL:-http://127.0.0.1:8080}/_broadcast" \
      -H "Authorization: Bearer $CABLECAR_BROADCAST_KEY" -H "Content-Type: application/json" \
      --data-binary "{\"stream\":\"$stream\",\"data\":$message}"
    echo
    ;;
  *) echo "publish.sh: say redis or http, not $via" >&2; exit 2 ;;
esac
