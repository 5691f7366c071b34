#!/usr/bin/env bash
# Verifies the vendored libev 4.33 sources against vendor/libev/PROVENANCE.
#
#   vendor/verify-libev.sh            check every vendored file's sha256 (offline, fast)
#   vendor/verify-libev.sh --refetch  also download upstream again and compare byte for byte
#
# --refetch gets the pristine tarball from Debian's source package (libev 1:4.33-1,
# needs deb-src entries and apt-get) and checks its sha256; if apt cannot provide it,
# it falls back to gevent's sdist on PyPI, whose deps/libev holds the same C sources.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir="$here/libev"
prov="$dir/PROVENANCE"
tarball_sha=507eb7b8d1015fbec5b935f34ebed15bf346bed04a11ab82b8eee848c4205aea

# 1. Every file listed in PROVENANCE has the recorded hash, and no file is unlisted.
sums=$(grep -E '^[0-9a-f]{64}  ' "$prov")
(cd "$dir" && sha256sum --quiet -c - <<<"$sums")
listed=$(awk '{print $2}' <<<"$sums" | sort)
present=$(cd "$dir" && ls | grep -v '^PROVENANCE$' | sort)
if [ "$listed" != "$present" ]; then
  echo "vendor/libev holds files PROVENANCE does not list (or the reverse):" >&2
  diff <(echo "$listed") <(echo "$present") >&2 || true
  exit 1
fi
echo "vendor/libev: $(wc -l <<<"$listed") files match PROVENANCE"

[ "${1:-}" = "--refetch" ] || exit 0

# 2. Fetch upstream again and compare.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=""
if command -v apt-get >/dev/null && (cd "$work" && apt-get source --download-only libev=1:4.33-1 >/dev/null 2>&1); then
  tb="$work/libev_4.33.orig.tar.gz"
  echo "$tarball_sha  $tb" | sha256sum --quiet -c -
  tar -xzf "$tb" -C "$work"
  src="$work/libev-4.33"
  echo "fetched Debian's libev_4.33.orig.tar.gz (sha256 verified)"
elif command -v python3 >/dev/null && python3 -m pip download --no-deps --no-binary :all: \
       -d "$work" gevent >/dev/null 2>&1; then
  tar -xzf "$work"/gevent-*.tar.gz -C "$work"
  src=$(echo "$work"/gevent-*/deps/libev)
  echo "fetched gevent's sdist from PyPI (deps/libev); comparing the files it carries"
else
  echo "could not fetch libev: enable deb-src for apt, or allow pip to reach PyPI" >&2
  exit 1
fi

compared=0
for f in $listed; do
  if [ -f "$src/$f" ]; then
    cmp -s "$src/$f" "$dir/$f" || { echo "differs from upstream: $f" >&2; exit 1; }
    compared=$((compared + 1))
  elif [ "$src" = "$work/libev-4.33" ]; then
    echo "missing upstream: $f" >&2
    exit 1
  fi
done
echo "upstream comparison: $compared files byte-identical"
