#!/usr/bin/env bash
# `make image`: build the relmon worker image here, without a registry.
#
#   deploy/image/build.sh [IMAGE]          (default localhost/relmon:<version from pyproject.toml>)
#
# 1. installs podman, mmdebstrap and runc from Debian when missing (needs root for that);
# 2. makes the base (deploy/image/base.sh: Debian bookworm + Python 3.11 by mmdebstrap) and
#    `podman import`s it as localhost/relmon-base:bookworm-<hash of the recipe>, unless an image
#    with that tag exists: the base is rebuilt only when its recipe changes;
# 3. builds the Dockerfile on that base with podman, reproducibly (SOURCE_DATE_EPOCH and
#    --timestamp from the last commit), handing pip the host's CA bundle as a build secret.
#
# Podman's settings come from deploy/image/containers.conf (CONTAINERS_CONF), unless
# CONTAINERS_CONF is already set. Environment knobs: DEBIAN_SNAPSHOT / DEBIAN_MIRROR (base.sh),
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL (passed to pip in the build), PIP_CA_BUNDLE (the CA bundle
# pip should trust; default: the one pip uses on this machine), REBUILD_BASE=1 (remake the base),
# IMAGE_BUILD_FLAGS (more `podman build` flags, e.g. --no-cache).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

say() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
image=${1:-localhost/relmon:${version}}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

# --- 1. tools ------------------------------------------------------------------------------
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v runc >/dev/null 2>&1 || missing+=(runc)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}' (Debian/Ubuntu), then make image again"
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. the base ---------------------------------------------------------------------------
# The cache key: the recipe and every setting it reads, and the machine's architecture.
recipe_hash=$(
  { cat "$here/base.sh"; echo "snapshot=${DEBIAN_SNAPSHOT:-} mirror=${DEBIAN_MIRROR:-}"
    echo "security=${DEBIAN_SECURITY_MIRROR:-} arch=$(dpkg --print-architecture)"; } \
  | sha256sum | cut -c1-12
)
base=localhost/relmon-base:bookworm-$recipe_hash
if [ "${REBUILD_BASE:-0}" != 1 ] && podman image exists "$base"; then
  say "base $base is cached (its recipe is unchanged)"
else
  # The base's own timestamp: the last commit of its recipe, so the same recipe at the same
  # package versions gives the same tarball, byte for byte.
  base_epoch=$(git log -1 --format=%ct -- deploy/image/base.sh 2>/dev/null || true)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/relmon-base.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  say "making the base with mmdebstrap (Debian bookworm + Python 3.11; about a minute)"
  started=$(date +%s)
  SOURCE_DATE_EPOCH=${base_epoch:-0} "$here/base.sh" "$tmp/base.tar" >"$tmp/mmdebstrap.log" 2>&1 \
    || { tail -n 30 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed (log above); is deb.debian.org reachable?"; }
  tar_sha=$(sha256sum "$tmp/base.tar" | cut -d' ' -f1)
  podman import --quiet \
    --change "LABEL org.relmon.base.recipe=$recipe_hash" \
    --change "LABEL org.relmon.base.tar-sha256=$tar_sha" \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "CMD [\"python3.11\"]" \
    "$tmp/base.tar" "$base" >/dev/null
  rm -rf "$tmp"
  trap - EXIT
  say "base $base made in $(( $(date +%s) - started ))s (tarball sha256 $tar_sha)"
  # Older bases of this recipe line are no longer used: drop them (images in use stay).
  podman images --format '{{.Repository}}:{{.Tag}}' localhost/relmon-base \
    | grep -vx "$base" | xargs -r podman rmi >/dev/null 2>&1 || true
fi

# --- 3. the image --------------------------------------------------------------------------
# The image's date: the last commit that changed what goes into it (not merely the last
# commit), so an unchanged tree rebuilds from podman's layer cache and the same inputs give
# the same image, layer for layer.
inputs=(Dockerfile .dockerignore pyproject.toml README.md src deploy/image/constraints.txt)
epoch=$(git log -1 --format=%ct -- "${inputs[@]}" 2>/dev/null || true)
epoch=${epoch:-0}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- "${inputs[@]}" 2>/dev/null || revision="$revision-dirty"
args=(
  --file Dockerfile
  --tag "$image"
  --network host
  --timestamp "$epoch"
  --build-arg "BASE=$base"
  --build-arg "SOURCE_DATE_EPOCH=$epoch"
  --label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.revision=$revision"
)
[ -n "${PIP_INDEX_URL:-}" ] && args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
[ -n "${PIP_EXTRA_INDEX_URL:-}" ] && args+=(--build-arg "PIP_EXTRA_INDEX_URL=$PIP_EXTRA_INDEX_URL")
# The CA bundle pip trusts on this machine (pip.conf's cert, PIP_CERT, REQUESTS_CA_BUNDLE or
# the system bundle), mounted into the one pip step as a secret: never part of a layer.
ca=${PIP_CA_BUNDLE:-${PIP_CERT:-${REQUESTS_CA_BUNDLE:-}}}
if [ -z "$ca" ] && command -v pip3 >/dev/null 2>&1; then
  ca=$(pip3 config get global.cert 2>/dev/null || true)
fi
[ -z "$ca" ] && [ -s /etc/ssl/certs/ca-certificates.crt ] && ca=/etc/ssl/certs/ca-certificates.crt
[ -n "$ca" ] && args+=(--secret "id=pip-ca,src=$ca")

say "building $image on $base (SOURCE_DATE_EPOCH=$epoch)"
started=$(date +%s)
# shellcheck disable=SC2086 # IMAGE_BUILD_FLAGS is a list of flags
podman build "${args[@]}" ${IMAGE_BUILD_FLAGS:-} . >&2
# Earlier builds of the image, now untagged, would pile up (60 MB each): drop them. The build
# stage's layers stay, they are the cache that makes the next build fast.
podman image prune --force --filter dangling=true \
  --filter label=org.opencontainers.image.title=relmon >/dev/null || true
size=$(podman image inspect --format '{{.Size}}' "$image")
say "built $image in $(( $(date +%s) - started ))s, $(( size / 1000000 )) MB"
echo "$image"
