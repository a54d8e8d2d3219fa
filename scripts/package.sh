#!/usr/bin/env bash
# Builds the Debian packages (amd64, Debian 12) into target/debian/ with dpkg-deb:
#   sharpeyes-edge-agent   the agent (release build), its unit, /etc/sharpeyes/edge-agent.toml,
#                          the ONNX Runtime library; depends on the GStreamer runtime only;
#   sharpeyes-aggregator   the aggregator (release build, the web page embedded), its unit,
#                          /etc/sharpeyes/aggregator.toml, the ONNX Runtime library (watchlist
#                          enrollment embeds photos); no GStreamer;
#   sharpeyes-models       the fetched and converted model files (models/manifest.toml), so a
#                          gateway never runs the conversion (no Python, no TensorFlow there).
# The user `sharpeyes` and the state directory come from sysusers.d / tmpfiles.d entries.
# Runs scripts/setup.sh first (this is a build machine: it needs the whole development stack).
# usage: scripts/package.sh [--no-build]    (--no-build: package target/release as it is)
# Then scripts/package-test.sh installs them in a fresh Debian root and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[package] %s\n' "$*"; }
die() { printf '[package] ERROR: %s\n' "$*" >&2; exit 1; }

build=1
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown argument $a (see --help)" ;;
  esac
done

if [ "$build" = 1 ]; then
  scripts/setup.sh
  say "release build of edge-agent and aggregator"
  cargo build --release --locked --bin edge-agent --bin aggregator
fi
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian's dpkg package)"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps not found: apt-get install dpkg-dev"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"
# A build of an untagged commit says which one (Debian orders 0.1.0 < 0.1.0+git…).
rev=$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)
debversion="${PKG_VERSION:-$version+git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d).$rev}-1"
arch=$(dpkg --print-architecture)
ort=.deps/onnxruntime/libonnxruntime.so.1.31.1
for f in target/release/edge-agent target/release/aggregator "$ort"; do
  [ -s "$f" ] || die "$f missing (run without --no-build, or scripts/setup.sh)"
done
mapfile -t model_files < <(python3 - <<'EOF'
import tomllib
m = tomllib.load(open("models/manifest.toml", "rb"))
for e in m.get("model", []):
    print(e["file"])
EOF
)
[ ${#model_files[@]} -gt 0 ] || die "no [[model]] entries in models/manifest.toml"
for f in "${model_files[@]}"; do
  [ -s "models/files/$f" ] || die "models/files/$f missing (run python3 models/fetch.py)"
done

out=target/debian
stage=target/debian/stage
rm -rf "$stage"
mkdir -p "$out" "$stage"

# The packaged config: the repository's commented default with the installed paths.
packaged_config() { # name
  case "$1" in
    edge-agent)
      sed -e 's#^dir = "models/files"#dir = "/usr/share/sharpeyes/models"#' \
          -e 's#^onnxruntime = ""#onnxruntime = "/usr/lib/sharpeyes/edge-agent/libonnxruntime.so.1.31.1"#' \
          -e 's#^spool_dir = "spool"#spool_dir = "/var/lib/sharpeyes/spool"#' \
          configs/edge-agent.toml ;;
    aggregator)
      sed -e 's#^dir = "models/files"#dir = "/usr/share/sharpeyes/models"#' \
          -e 's#^onnxruntime = ""#onnxruntime = "/usr/lib/sharpeyes/aggregator/libonnxruntime.so.1.31.1"#' \
          -e 's#^path = "sharpeyes.db"#path = "/var/lib/sharpeyes/sharpeyes.db"#' \
          configs/aggregator.toml ;;
  esac
}

# Depends of a binary from the shared libraries it links (dpkg-shlibdeps, as Debian's own
# packages get them).
shlib_depends() { # binary
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/debian"
  printf 'Source: sharpeyes\n\nPackage: x\nArchitecture: any\n' > "$tmp/debian/control"
  cp "$1" "$tmp/bin"
  (cd "$tmp" && dpkg-shlibdeps -O -e bin 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
  rm -rf "$tmp"
}

maintainer="Sharp Eyes maintainers <sharpeyes@localhost>"

make_service_package() { # name, description, extra depends, suggests
  local name=$1 desc=$2 extra=$3 suggests=$4
  local pkg=sharpeyes-$name dir=$stage/sharpeyes-$name
  say "$pkg $debversion"
  install -d "$dir/DEBIAN" "$dir/usr/bin" "$dir/lib/systemd/system" "$dir/etc/sharpeyes" \
    "$dir/usr/lib/sysusers.d" "$dir/usr/lib/tmpfiles.d" "$dir/usr/lib/sharpeyes/$name" \
    "$dir/usr/share/doc/$pkg"
  install -m 0755 -s "target/release/$name" "$dir/usr/bin/$name"
  install -m 0644 "$ort" "$dir/usr/lib/sharpeyes/$name/"
  install -m 0644 "configs/$name.service" "$dir/lib/systemd/system/$name.service"
  packaged_config "$name" > "$dir/etc/sharpeyes/$name.toml"
  chmod 0640 "$dir/etc/sharpeyes/$name.toml"
  install -m 0644 configs/sysusers.conf "$dir/usr/lib/sysusers.d/$pkg.conf"
  {
    cat configs/tmpfiles.conf
    printf 'z /etc/sharpeyes/%s.toml 0640 root sharpeyes -\n' "$name"
    [ "$name" = edge-agent ] && printf 'd /var/lib/sharpeyes/spool 0750 sharpeyes sharpeyes -\n'
    true
  } > "$dir/usr/lib/tmpfiles.d/$pkg.conf"
  install -m 0644 README.md "$dir/usr/share/doc/$pkg/README.md"
  cp -r docs "$dir/usr/share/doc/$pkg/docs"
  rm -f "$dir/usr/share/doc/$pkg/docs/"*.png
  printf 'Sharp Eyes %s\nBuilt from commit %s.\nLicence: Apache-2.0 (the ONNX Runtime library: MIT).\n' \
    "$name" "$(git rev-parse HEAD 2>/dev/null || echo unknown)" > "$dir/usr/share/doc/$pkg/copyright"
  echo "/etc/sharpeyes/$name.toml" > "$dir/DEBIAN/conffiles"

  local depends
  depends=$(shlib_depends "$dir/usr/bin/$name")
  [ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies of $name"
  [ -n "$extra" ] && depends="$depends, $extra"
  local size
  size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
  cat > "$dir/DEBIAN/control" <<EOF
Package: $pkg
Version: $debversion
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Recommends: sharpeyes-models (= $debversion)
Suggests: $suggests
Section: video
Priority: optional
Description: $desc
 Part of Sharp Eyes, the edge video pipeline of a city camera network. The unit
 $name.service runs /usr/bin/$name with /etc/sharpeyes/$name.toml as user sharpeyes;
 documentation in /usr/share/doc/$pkg.
EOF
  cat > "$dir/DEBIAN/postinst" <<EOF
#!/bin/sh
# The service user, its state directory and the config's mode (sysusers.d, tmpfiles.d; plain
# useradd/install where systemd is not installed, e.g. a container).
set -e
if [ "\$1" = configure ]; then
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers $pkg.conf
  elif ! getent passwd sharpeyes >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/sharpeyes --no-create-home \\
      --shell /usr/sbin/nologin --comment "Sharp Eyes services" sharpeyes
  fi
  if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create $pkg.conf
  else
    install -d -o sharpeyes -g sharpeyes -m 0750 /var/lib/sharpeyes
    install -d -o root -g sharpeyes -m 0750 /etc/sharpeyes
    chown root:sharpeyes /etc/sharpeyes/$name.toml && chmod 0640 /etc/sharpeyes/$name.toml
    [ "$name" != edge-agent ] || install -d -o sharpeyes -g sharpeyes -m 0750 /var/lib/sharpeyes/spool
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # Enabled, not started: the shipped config is a template (cameras, broker) to edit first.
    deb-systemd-helper enable $name.service >/dev/null || true
    if systemctl is-active --quiet $name.service; then systemctl restart $name.service || true; fi
  fi
  echo "$pkg: edit /etc/sharpeyes/$name.toml, check it with '$name check-config /etc/sharpeyes/$name.toml', then: systemctl start $name"
fi
exit 0
EOF
  cat > "$dir/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "\$1" = remove ]; then
  systemctl stop $name.service || true
fi
exit 0
EOF
  cat > "$dir/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "\$1" = purge ] && command -v deb-systemd-helper >/dev/null 2>&1; then
  deb-systemd-helper purge $name.service >/dev/null || true
fi
# The state (spool, database, evidence) in /var/lib/sharpeyes is kept even on purge: it is data.
exit 0
EOF
  chmod 0755 "$dir/DEBIAN/postinst" "$dir/DEBIAN/prerm" "$dir/DEBIAN/postrm"
  dpkg-deb --root-owner-group -Zxz --build "$dir" "$out/${pkg}_${debversion}_${arch}.deb" >/dev/null
}

rm -f "$out"/sharpeyes-*.deb
# The GStreamer elements the agent uses: uridecodebin, videoconvert, appsink (base), rtspsrc,
# qtdemux, matroskademux (good), h264parse/h265parse (bad), avdec_h264/avdec_h265 (libav).
make_service_package edge-agent \
  "Sharp Eyes edge agent: camera decoding, detection, tracking, rules, MQTT with a disk spool" \
  "gstreamer1.0-plugins-base, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, gstreamer1.0-libav" \
  "gstreamer1.0-vaapi, intel-media-va-driver, mesa-va-drivers"
make_service_package aggregator \
  "Sharp Eyes aggregator: MQTT ingest, cross-camera fusion, store, analyst API, web page and CLI" \
  "" "mosquitto, postgresql"
if dpkg-deb -c "$out"/sharpeyes-aggregator_*.deb >/dev/null && \
   dpkg-deb -f "$out"/sharpeyes-aggregator_*.deb Depends | grep -qi gstreamer; then
  die "sharpeyes-aggregator depends on GStreamer: it must not"
fi

say "sharpeyes-models $debversion"
dir=$stage/sharpeyes-models
install -d "$dir/DEBIAN" "$dir/usr/share/sharpeyes/models" "$dir/usr/share/doc/sharpeyes-models"
for f in "${model_files[@]}"; do
  install -m 0644 "models/files/$f" "$dir/usr/share/sharpeyes/models/$f"
done
(cd "$dir/usr/share/sharpeyes/models" && sha256sum "${model_files[@]}" > SHA256SUMS)
install -m 0644 models/manifest.toml "$dir/usr/share/doc/sharpeyes-models/manifest.toml"
printf 'The model files of models/manifest.toml, fetched from their pinned PyPI/npm packages and\nconverted by models/fetch.py; sources, versions and licences: manifest.toml.\n' \
  > "$dir/usr/share/doc/sharpeyes-models/copyright"
cat > "$dir/DEBIAN/control" <<EOF
Package: sharpeyes-models
Version: $debversion
Architecture: all
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)
Section: video
Priority: optional
Description: Sharp Eyes models: face detection and embedding, person/vehicle detection, plates
 YuNet, SFace, NanoDet-m, clp_det and PP-OCRv4 rec as ONNX files in /usr/share/sharpeyes/models,
 already converted (the gateway runs no conversion). SHA256SUMS lists their checksums.
EOF
dpkg-deb --root-owner-group -Zxz --build "$dir" "$out/sharpeyes-models_${debversion}_all.deb" >/dev/null

say "built in $out:"
for d in "$out"/sharpeyes-*.deb; do
  printf '  %-60s %6s KiB packed, %7s KiB installed\n' "$(basename "$d")" \
    "$(( $(stat -c %s "$d") / 1024 ))" "$(dpkg-deb -f "$d" Installed-Size)"
done
