#!/usr/bin/env bash
# Installs the packages of scripts/package.sh (target/debian/) in a fresh Debian 12 root and
# runs them there, as an operator would:
#   1. a minimal Debian root (mmdebstrap, minbase, cached as a tarball) with systemd;
#   2. a server: apt installs sharpeyes-aggregator (no GStreamer may come with it), then a
#      gateway: sharpeyes-edge-agent + sharpeyes-models (timed; what apt pulls in is logged);
#   3. the user, directories and config modes the sysusers/tmpfiles entries made; every unit
#      verified by systemd-analyze inside the root; no Python, TensorFlow, Node.js or
#      GStreamer development files on the gateway; the aggregator pulled in no GStreamer;
#   4. `--version` and `check-config` of the installed configs, as user sharpeyes;
#   5. the installed aggregator (embedded broker, SQLite) and agent run on a clip made from a
#      test photo for a few seconds, and the stored face track is read back with
#      `aggregator tracks`.
# Needs root (chroot, mounts) and the Debian mirror. Takes about 5 minutes after the first run.
# usage: scripts/package-test.sh          (KEEP=1 keeps the root; log in target/debian/package-test.log)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[package-test] %s\n' "$*"; }
die() { printf '[package-test] FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it makes a chroot and mounts /proc, /sys, /dev in it)"
shopt -s nullglob
debs=(target/debian/sharpeyes-edge-agent_*.deb target/debian/sharpeyes-aggregator_*.deb
      target/debian/sharpeyes-models_*.deb)
[ ${#debs[@]} = 3 ] || die "expected the three packages in target/debian (run scripts/package.sh first); found: ${debs[*]:-none}"
command -v mmdebstrap >/dev/null || apt-get install -y -q mmdebstrap >/dev/null \
  || die "mmdebstrap missing and could not be installed"
command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 missing (scripts/setup.sh installs it): it makes the clip"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/sharpeyes
base=$cache/debian-bookworm-minbase.tar
mkdir -p "$cache"
if [ ! -s "$base" ]; then
  say "making a minimal Debian 12 root (once; cached in $base)"
  mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates bookworm "$base.tmp" >/dev/null 2>&1 \
    || die "mmdebstrap failed (is the Debian mirror reachable?)"
  mv "$base.tmp" "$base"
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/sharpeyes-pkgtest.XXXX")
log=target/debian/package-test.log
: > "$log"
cleanup() {
  for m in /dev/pts /dev /sys /proc; do umount "$root$m" 2>/dev/null || umount -l "$root$m" 2>/dev/null || true; done
  if [ -z "${KEEP:-}" ] && ! grep -q " $root/" /proc/mounts; then rm -rf "$root"; else echo "kept $root"; fi
}
trap cleanup EXIT
tar -xf "$base" -C "$root"
for m in /proc /sys /dev /dev/pts; do mount --bind "$m" "$root$m"; done
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/tmp/debs"
cp "${debs[@]}" "$root/tmp/debs/"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root \
  DEBIAN_FRONTEND=noninteractive "$@"; }
step() { say "$1"; printf '\n### %s\n' "$1" >> "$log"; }

step "apt-get update"
in_root apt-get update -q >> "$log" 2>&1 || die "apt-get update in the root failed (see $log)"
step "systemd (a gateway has it)"
in_root apt-get install -y -q --no-install-recommends systemd >> "$log" 2>&1 || die "installing systemd failed (see $log)"

step "server: apt-get install sharpeyes-aggregator"
in_root apt-get install -y -q --no-install-recommends "/tmp/debs/$(basename "${debs[1]}")" >> "$log" 2>&1 \
  || die "installing sharpeyes-aggregator failed (see $log)"
if in_root dpkg-query -W -f='${Package} ${Status}\n' | grep -i 'gst.* install ok installed'; then
  die "installing sharpeyes-aggregator pulled in GStreamer (above)"
fi
if in_root ldd /usr/bin/aggregator | grep -i gst; then die "the aggregator links GStreamer"; fi

step "gateway: apt-get install sharpeyes-edge-agent sharpeyes-models"
t0=$(date +%s)
in_root apt-get install -y -q --no-install-recommends "/tmp/debs/$(basename "${debs[0]}")" \
  "/tmp/debs/$(basename "${debs[2]}")" > "$root/tmp/gateway-install.log" 2>&1 \
  || { cat "$root/tmp/gateway-install.log" >> "$log"; die "installing the gateway packages failed (see $log)"; }
t1=$(date +%s)
cat "$root/tmp/gateway-install.log" >> "$log"
pulled=$(grep -c '^Setting up ' "$root/tmp/gateway-install.log" || true)
size=$(grep -o 'After this operation, .* of additional disk space will be used' "$root/tmp/gateway-install.log" || true)
say "gateway install: $((t1 - t0)) s, $pulled packages set up; $size"
for forbidden in python3 libtensorflow nodejs npm libgstreamer1.0-dev; do
  if in_root dpkg-query -W -f='${Status}' "$forbidden" 2>/dev/null | grep -q 'install ok installed'; then
    die "the gateway install pulled in $forbidden"
  fi
done

step "user, directories, modes"
in_root getent passwd sharpeyes | grep -q ':/var/lib/sharpeyes:/usr/sbin/nologin$' \
  || die "no system user sharpeyes with home /var/lib/sharpeyes"
[ "$(in_root stat -c '%a %U %G' /var/lib/sharpeyes)" = "750 sharpeyes sharpeyes" ] || die "/var/lib/sharpeyes: $(in_root stat -c '%a %U %G' /var/lib/sharpeyes)"
[ "$(in_root stat -c '%a %U %G' /var/lib/sharpeyes/spool)" = "750 sharpeyes sharpeyes" ] || die "/var/lib/sharpeyes/spool missing or wrong mode"
for name in edge-agent aggregator; do
  [ "$(in_root stat -c '%a %U %G' /etc/sharpeyes/$name.toml)" = "640 root sharpeyes" ] \
    || die "/etc/sharpeyes/$name.toml: $(in_root stat -c '%a %U %G' /etc/sharpeyes/$name.toml)"
done
(cd "$root/usr/share/sharpeyes/models" && sha256sum --quiet -c SHA256SUMS) || die "model checksums do not match"

step "systemd-analyze verify (inside the root)"
out=$(in_root systemd-analyze verify /lib/systemd/system/edge-agent.service /lib/systemd/system/aggregator.service 2>&1) \
  || die "systemd-analyze verify failed: $out"
[ -z "$out" ] || die "systemd-analyze verify is not clean: $out"

step "--version and check-config of the installed configs, as user sharpeyes"
as_user() { in_root runuser -u sharpeyes -- "$@"; }
for name in edge-agent aggregator; do
  v=$(as_user "/usr/bin/$name" --version) || die "$name --version"
  say "  $v"
  as_user "/usr/bin/$name" check-config "/etc/sharpeyes/$name.toml" >> "$log" 2>&1 \
    || die "$name check-config /etc/sharpeyes/$name.toml failed (see $log)"
done

step "a clip from a test photo (host GStreamer, x264)"
gst-launch-1.0 -q filesrc location=testdata/faces/2008_001322.jpg ! jpegdec ! videoconvert ! \
  videoscale ! video/x-raw,width=1000,height=750 ! imagefreeze num-buffers=60 ! \
  video/x-raw,framerate=10/1 ! videoconvert ! video/x-raw,format=I420 ! \
  x264enc speed-preset=veryfast key-int-max=10 ! h264parse ! mp4mux ! \
  filesink location="$root/var/lib/sharpeyes/clip.mp4" >> "$log" 2>&1 || die "making the clip failed"
in_root chown sharpeyes:sharpeyes /var/lib/sharpeyes/clip.mp4

ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
read -r mqtt api ops1 ops2 <<< "$ports"
cat > "$root/etc/sharpeyes/pkgtest-aggregator.toml" <<EOF
[broker]
listen = "127.0.0.1:$mqtt"
[store]
path = "/var/lib/sharpeyes/pkgtest.db"
[api]
listen = "127.0.0.1:$api"
[ops]
port = $ops1
[watchlist.models]
dir = "/usr/share/sharpeyes/models"
onnxruntime = "/usr/lib/sharpeyes/aggregator/libonnxruntime.so.1.31.1"
EOF
cat > "$root/etc/sharpeyes/pkgtest-edge-agent.toml" <<EOF
agent_id = "pkgtest"
site = "pkgtest"
[broker]
host = "127.0.0.1"
port = $mqtt
[models]
dir = "/usr/share/sharpeyes/models"
onnxruntime = "/usr/lib/sharpeyes/edge-agent/libonnxruntime.so.1.31.1"
[publish]
spool_dir = "/var/lib/sharpeyes/spool"
[ops]
port = $ops2
[[cameras]]
id = "cam-pkg"
uri = "file:///var/lib/sharpeyes/clip.mp4"
realtime = false
EOF
chmod 0640 "$root"/etc/sharpeyes/pkgtest-*.toml
in_root chgrp sharpeyes /etc/sharpeyes/pkgtest-aggregator.toml /etc/sharpeyes/pkgtest-edge-agent.toml

step "the installed aggregator and agent on the clip"
in_root runuser -u sharpeyes -- /usr/bin/aggregator --log-format json run \
  --config /etc/sharpeyes/pkgtest-aggregator.toml > "$root/tmp/aggregator.log" 2>&1 &
agg=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$mqtt") 2>/dev/null && break
  kill -0 "$agg" 2>/dev/null || { cat "$root/tmp/aggregator.log" >&2; die "the aggregator exited"; }
  sleep 0.2
done
(timeout 300 chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  runuser -u sharpeyes -- /usr/bin/edge-agent run --config /etc/sharpeyes/pkgtest-edge-agent.toml) \
  > "$root/tmp/agent.log" 2>&1 || { cat "$root/tmp/agent.log" >&2; die "the agent failed (log above)"; }
tracks=""
for _ in $(seq 60); do
  tracks=$(as_user /usr/bin/aggregator tracks --config /etc/sharpeyes/pkgtest-aggregator.toml --json 2>>"$log" || true)
  grep -Eq '"class": *"face"' <<< "$tracks" && break
  sleep 0.5
done
kill -TERM "$agg"; wait "$agg" || true
cat "$root/tmp/agent.log" "$root/tmp/aggregator.log" >> "$log"
printf '%s\n' "$tracks" >> "$log"
grep -Eq '"class": *"face"' <<< "$tracks" || die "no face track stored (aggregator tracks said: ${tracks:-nothing}; see $log)"
if grep -E '"level":"(WARN|ERROR)"|\b(WARN|ERROR)\b' "$root/tmp/agent.log" "$root/tmp/aggregator.log"; then
  die "the run logged WARN/ERROR lines (above)"
fi
say "stored tracks: $(grep -o '"class": *"[a-z]*"' <<< "$tracks" | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
say "PASSED (log: $log)"
