#!/usr/bin/env bash
# Builds the previous release's dojo-server (deploy/previous-release.env) from its commit, for
# the rolling-upgrade tests in server/tests/upgrade.rs, into
# target/previous-release/<version>/dojo-server. Skips the build when that binary is already
# there for that commit.
#
# The sources are exported with `git archive` under target/ and built with this tree's target
# directory: registry dependencies (same versions, features and profile) are reused, and the
# release's own crates get artefacts of their own because their paths differ, so only those
# compile (a few minutes, against about fourteen for a separate target directory). Cargo copies
# the binary it builds to target/debug/dojo-server, where this tree's binary lives; that copy is
# removed here, and this tree's next `cargo build` puts its own back (scripts/test.sh builds
# after this).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck source=../deploy/previous-release.env
. deploy/previous-release.env
: "${PREVIOUS_RELEASE_VERSION:?missing in deploy/previous-release.env}"
: "${PREVIOUS_RELEASE_COMMIT:?missing in deploy/previous-release.env}"

target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/previous-release/$PREVIOUS_RELEASE_VERSION"
if [ -x "$out/dojo-server" ] && [ "$(cat "$out/commit" 2>/dev/null)" = "$PREVIOUS_RELEASE_COMMIT" ]; then
  echo "previous release $PREVIOUS_RELEASE_VERSION already built: $out/dojo-server"
  exit 0
fi

if ! git cat-file -e "$PREVIOUS_RELEASE_COMMIT^{commit}" 2>/dev/null; then
  # A shallow clone lacks the release's commit: fetch it (or the whole history).
  echo "fetching the previous release's commit $PREVIOUS_RELEASE_COMMIT"
  git fetch --quiet origin "$PREVIOUS_RELEASE_COMMIT" 2>/dev/null || git fetch --quiet --unshallow origin || true
  git cat-file -e "$PREVIOUS_RELEASE_COMMIT^{commit}" 2>/dev/null || {
    echo "the previous release's commit $PREVIOUS_RELEASE_COMMIT is not in this clone; clone with full history" >&2
    exit 1
  }
fi

src="$out/src"
rm -rf "$src"
mkdir -p "$src"
git archive "$PREVIOUS_RELEASE_COMMIT" | tar -x -C "$src"

echo "building dojo-server $PREVIOUS_RELEASE_VERSION ($PREVIOUS_RELEASE_COMMIT)"
# The release's Cargo.toml may predate this tree's [profile.dev] debug setting; matching it keeps
# the dependencies' artefacts shared (config profiles override the manifest's).
(
  cd "$src"
  CARGO_TARGET_DIR="$target" CARGO_PROFILE_DEV_DEBUG=line-tables-only \
    cargo build --locked --workspace --bins
)
cp "$target/debug/dojo-server" "$out/dojo-server.tmp"
mv "$out/dojo-server.tmp" "$out/dojo-server"
echo "$PREVIOUS_RELEASE_COMMIT" >"$out/commit"
# Not this tree's binaries: the next build of this tree writes its own.
rm -f "$target/debug/dojo-server" "$target/debug/dojo-worker" "$target/debug/dojo-loadtest"
rm -rf "$src"
echo "previous release $PREVIOUS_RELEASE_VERSION: $out/dojo-server"
