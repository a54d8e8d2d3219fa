#!/usr/bin/env bash
# Installs everything the project needs on Debian 12 (run as root, or with sudo available):
#   1. Debian packages: GStreamer (decode, RTSP server, x264), Mosquitto (for tests), systemd
#      (systemd-analyze, for the unit tests), a CJK font
#      (WenQuanYi Zen Hei, for the rendered test plates), Python pip;
#   2. the ONNX Runtime library and the models of models/manifest.toml (pinned, checked,
#      converted where docs/models.md says so) via models/fetch.py, cached in ~/.cache/sharpeyes;
#   3. the demo's site PKI in .deps/pki (openssl): a CA and the embedded broker's certificate
#      for localhost / 127.0.0.1, so the demo and the tests speak MQTT over TLS. (On a real
#      site, `aggregator gen-certs` makes them without openssl.)
#   4. the analyst web page: Node.js + npm (Debian's, unless a Node.js >= 18 is already
#      installed), `npm ci` of web/package-lock.json (pinned, from the npm registry; npm's cache
#      in ~/.cache/sharpeyes/npm) and `npm run build` into web/dist, which the aggregator embeds
#      when it is compiled; Chromium and chromedriver for the browser test.
# Idempotent: a second run installs nothing and says so. Used by both README commands.
# This is the development and build machine's set-up (Chromium, PostgreSQL, Node.js, TensorFlow
# for a model conversion): gateways and servers install the Debian packages of
# scripts/package.sh instead, which need none of it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

APT_PACKAGES=(
  pkg-config ca-certificates python3 python3-pip
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  mosquitto mosquitto-clients
  postgresql
  openssl
  fonts-wqy-zenhei
  chromium chromium-driver
  systemd
)
# Node.js and npm build the web page (web/): Debian 12's nodejs 18 and npm 9, unless a
# Node.js >= 18 with npm is already installed (e.g. from NodeSource, whose nodejs package
# ships npm and conflicts with Debian's npm).
if ! { command -v node >/dev/null && command -v npm >/dev/null; }; then
  APT_PACKAGES+=(nodejs npm)
fi

command -v dpkg-query >/dev/null || die "this script expects Debian 12 (dpkg-query not found)"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "Debian packages: all ${#APT_PACKAGES[@]} present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing Debian packages (${missing[*]}) and not root: run as root or install sudo"
    SUDO=sudo
  fi
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -q || die "apt-get update failed (is the Debian mirror reachable?)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
fi

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup, stable >= 1.85)"
command -v gst-inspect-1.0 >/dev/null || die "gst-inspect-1.0 missing after install"
for el in x264enc rtph264pay avdec_h264 h264parse uridecodebin videoconvert appsink; do
  gst-inspect-1.0 "$el" >/dev/null 2>&1 || die "GStreamer element '$el' is missing (check the gstreamer1.0-plugins-* packages)"
done

python3 models/fetch.py || die "models/fetch.py failed (see the message above)"

PKI=.deps/pki
if [ -s "$PKI/ca.pem" ] && [ -s "$PKI/server.pem" ] && [ -s "$PKI/server.key" ] \
   && openssl verify -CAfile "$PKI/ca.pem" "$PKI/server.pem" >/dev/null 2>&1 \
   && openssl x509 -checkend 86400 -noout -in "$PKI/server.pem" >/dev/null 2>&1; then
  say "demo PKI: $PKI present"
else
  say "demo PKI: making a CA and the broker certificate in $PKI"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  (
    umask 077
    cd "$PKI"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/O=Sharp Eyes/CN=Sharp Eyes demo CA" -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/O=Sharp Eyes/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.pem 2>/dev/null
    rm -f server.csr server.ext ca.srl
    chmod 644 ca.pem server.pem
  ) || die "openssl could not make the demo PKI in $PKI"
  openssl verify -CAfile "$PKI/ca.pem" "$PKI/server.pem" >/dev/null || die "the demo PKI does not verify"
fi
# The web page: rebuilt only when its sources or lock file changed (the fingerprint of the
# last build is kept in web/dist/.fingerprint).
command -v node >/dev/null || die "node missing after install (Debian package nodejs)"
command -v npm >/dev/null || die "npm missing after install (Debian package npm)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || die "Node.js $(node --version) is too old for web/ (esbuild needs >= 18)"
web_fingerprint=$(cd web && find package.json package-lock.json build.mjs src -type f -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ -s web/dist/index.html ] && [ "$(cat web/dist/.fingerprint 2>/dev/null)" = "$web_fingerprint" ]; then
  say "web page: web/dist up to date"
else
  say "web page: npm ci + npm run build (Node.js $(node --version), npm $(npm --version))"
  export npm_config_cache="${XDG_CACHE_HOME:-$HOME/.cache}/sharpeyes/npm"
  # npm trusts what the model downloads trust: the system's CAs plus pip's (a TLS-inspecting
  # proxy's CA may only be there; models/fetch.py --ca-bundle says which file).
  if [ -z "${NODE_EXTRA_CA_CERTS:-}" ]; then
    ca=$(python3 models/fetch.py --ca-bundle 2>/dev/null || true)
    [ -n "$ca" ] && export NODE_EXTRA_CA_CERTS="$ca"
  fi
  (
    # (set -e does not apply in a subshell whose failure is tested: each step exits itself)
    cd web || exit 1
    lock=$(sha256sum package-lock.json | cut -d' ' -f1)
    if [ "$(cat node_modules/.sharpeyes-lock 2>/dev/null)" != "$lock" ]; then
      npm ci --no-audit --no-fund --loglevel=error || exit 1
      printf '%s\n' "$lock" > node_modules/.sharpeyes-lock || exit 1
    fi
    npm run build --silent || exit 1
  ) || die "building the web page failed (see the npm output above)"
  [ -s web/dist/index.html ] || die "npm run build did not write web/dist/index.html"
  printf '%s\n' "$web_fingerprint" > web/dist/.fingerprint
fi
say "ready"
