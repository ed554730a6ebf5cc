#!/usr/bin/env bash
# Drives a running `webq serve` with curl, as a user would from a shell: usage ./serve-curl.sh URL KEY CHAT_MODEL EMBED_MODEL.
# Each check prints "ok: ..." or fails the script (exit 1) with what it got; needs only curl and grep.
set -uo pipefail
url=$1 key=$2 chat=$3 embed=$4
auth=(-H "Authorization: Bearer $key")
json=(-H 'Content-Type: application/json')
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { # name, text, pattern
  grep -Eq -- "$3" <<<"$2" || fail "$1: expected /$3/ in: ${2:0:400}"
  echo "ok: $1"
}

out=$(curl -sS "${auth[@]}" "$url/v1/models") || fail "models: curl failed"
expect models "$out" "\"id\":\"$chat\""

out=$(curl -sS "${auth[@]}" "${json[@]}" "$url/v1/chat/completions" \
  -d "{\"model\":\"$chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hi.\"}],\"max_tokens\":6,\"temperature\":0}")
expect chat "$out" '"object":"chat.completion".*"role":"assistant".*"usage":\{"prompt_tokens":[0-9]+'

out=$(curl -sSN "${auth[@]}" "${json[@]}" "$url/v1/chat/completions" \
  -d "{\"model\":\"$chat\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hi.\"}],\"max_tokens\":6,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}")
expect "chat stream: SSE chunks" "$out" '^data: \{"id":"chatcmpl-'
expect "chat stream: usage chunk" "$out" '"choices":\[\],"usage":\{"prompt_tokens"'
expect "chat stream: ends with [DONE]" "$(tail -n 2 <<<"$out")" '^data: \[DONE\]$'

out=$(curl -sS "${auth[@]}" "${json[@]}" "$url/v1/completions" -d "{\"model\":\"$chat\",\"prompt\":\"Once upon a time\",\"max_tokens\":5}")
expect completions "$out" '"object":"text_completion".*"finish_reason":"(length|stop)"'

out=$(curl -sS "${auth[@]}" "${json[@]}" "$url/v1/embeddings" -d "{\"model\":\"$embed\",\"input\":[\"a cat\",\"a dog\"]}")
expect embeddings "$out" '"object":"embedding","index":1,"embedding":\[-?[0-9]'

code=$(curl -sS -o /tmp/webq-curl-body.$$ -w '%{http_code}' -H 'Authorization: Bearer wrong' "$url/v1/models")
expect "wrong key: 401" "$code $(cat /tmp/webq-curl-body.$$)" '^401 \{"error":\{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"\}\}$'

code=$(curl -sS -o /tmp/webq-curl-body.$$ -w '%{http_code}' "${auth[@]}" "${json[@]}" "$url/v1/chat/completions" -d '{"model":"'"$chat"'","messages":"hi"}')
expect "invalid request: 400" "$code $(cat /tmp/webq-curl-body.$$)" '^400 \{"error":\{.*"param":"messages"'
code=$(curl -sS -o /tmp/webq-curl-body.$$ -w '%{http_code}' "${auth[@]}" "${json[@]}" "$url/v1/chat/completions" -d 'not json')
expect "not JSON: 400" "$code $(cat /tmp/webq-curl-body.$$)" '^400 .*"code":"invalid_json"'
rm -f /tmp/webq-curl-body.$$

out=$(curl -sS "$url/health")
expect health "$out" '"status":"ok"'
out=$(curl -sS "${auth[@]}" "$url/metrics")
expect metrics "$out" 'webq_requests_total\{model="'"$chat"'",endpoint="/v1/chat/completions",status="200"\} 2'
echo "all curl checks passed"
