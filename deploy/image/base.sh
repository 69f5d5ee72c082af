#!/usr/bin/env bash
# The recipe of the local base image: a minimal Debian bookworm root filesystem with Python 3.11,
# made by mmdebstrap from Debian's package mirror, written as a tarball for `podman import`.
#
#   deploy/image/base.sh OUT.tar
#
# Everything that decides the base's content is in this file (build.sh hashes it: change it
# and the next `make image` rebuilds the base). With SOURCE_DATE_EPOCH set, mmdebstrap writes a
# bit-for-bit reproducible tarball for a given set of package versions; set DEBIAN_SNAPSHOT
# (e.g. 20250520T000000Z) to install from snapshot.debian.org and pin those versions too.
set -euo pipefail

out=${1:?usage: base.sh OUT.tar}
suite=bookworm
# python3.11: the interpreter and its standard library; python3.11-venv: ensurepip for the
# image's build stage; ca-certificates: TLS to brokers with public CAs; passwd: useradd;
# tzdata: zoneinfo (the simulator's time zones).
packages=python3.11,python3.11-venv,ca-certificates,passwd,tzdata

if [ -n "${DEBIAN_SNAPSHOT:-}" ]; then
  main="[check-valid-until=no] http://snapshot.debian.org/archive/debian/${DEBIAN_SNAPSHOT}"
  security="[check-valid-until=no] http://snapshot.debian.org/archive/debian-security/${DEBIAN_SNAPSHOT}"
else
  main=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
fi

# minbase: Essential and Priority:required packages plus apt (like debian:bookworm-slim).
# merged-usr hook: the /usr layout bookworm expects, without pulling usrmerge and Perl.
# path-exclude: no man pages, docs (copyrights stay), locales or info pages.
exec mmdebstrap \
  --quiet \
  --variant=minbase \
  --format=tar \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -rf "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
  "$suite" "$out" \
  "deb $main $suite main" \
  "deb $main $suite-updates main" \
  "deb $security $suite-security main"
