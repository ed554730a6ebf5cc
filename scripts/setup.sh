#!/usr/bin/env bash
# One-time machine setup for webq on Debian 12 (bookworm) without a GPU, then `npm ci`.
#  - Mesa >= 24 from bookworm-backports: lavapipe, the Vulkan driver Dawn (Node) and wgpu (Deno)
#    run WebGPU on when there is no GPU (bookworm's Mesa 22.3 is too old for Dawn).
#  - Debian's chromium, for the browser tests (puppeteer-core drives it; it downloads nothing).
#  - curl, for the `webq serve` shell test.
# On other systems it only checks and says what is missing; a machine with a GPU driver needs neither.
set -euo pipefail
cd "$(dirname "$0")/.."

need_mesa() {
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [[ -z "$v" || "${v%%.*}" -lt 24 ]]
}

if [[ -r /etc/os-release ]] && grep -q 'VERSION_CODENAME=bookworm' /etc/os-release; then
  if need_mesa || ! command -v chromium >/dev/null || ! command -v curl >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
    if [[ ! -f /etc/apt/sources.list.d/backports.sources ]]; then
      $SUDO tee /etc/apt/sources.list.d/backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    # curl: test/node/serve-curl.test.ts drives `webq serve` with it (slim images lack it).
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
  fi
else
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || echo "setup: no chromium found; the browser tests need it (or set CHROMIUM_PATH)" >&2
fi

npm ci --no-audit --no-fund
