#!/usr/bin/env bash
# keygate scan benchmark: throughput and findings of `keygate scan` and of
# Yelp's detect-secrets on the same generated corpus, with planted secrets
# of every rule and checksum-invalid keygate look-alikes. See bench/README.md.
#
#   bash bench/scan.sh                       # 200 MB corpus
#   BENCH_SCAN_MB=50 bash bench/scan.sh      # smaller
#
# Exits non-zero when setup fails or when keygate misses a planted secret,
# reports a look-alike, or reports anything that was not planted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

MB=${BENCH_SCAN_MB:-200}
PLANTS=${BENCH_SCAN_PLANTS:-5}
DETECT_SECRETS_VERSION=${BENCH_DETECT_SECRETS_VERSION:-1.5.0}
VENV=${BENCH_SCAN_VENV:-$HOME/.cache/keygate-bench/detect-secrets-venv}
DS_TIMEOUT=${BENCH_DETECT_SECRETS_TIMEOUT:-3600}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$ROOT/bench/results}

log() { printf '[scan-bench] %s\n' "$*" >&2; }
die() { printf '[scan-bench] FAILURE: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keygate-scan-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
CORPUS=$WORK/corpus
mkdir -p "$RESULTS_DIR"

if [[ -z ${BENCH_SKIP_BUILD:-} ]]; then
  log "building keygate (release)"
  cargo build --release -p keygate --quiet
fi
KEYGATE=${KEYGATE_BIN:-$ROOT/target/release/keygate}
[[ -x $KEYGATE ]] || die "no keygate binary at $KEYGATE"

if [[ ! -x $VENV/bin/detect-secrets ]] ||
   [[ $("$VENV/bin/detect-secrets" --version 2>/dev/null) != "$DETECT_SECRETS_VERSION" ]]; then
  log "installing detect-secrets $DETECT_SECRETS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "detect-secrets==$DETECT_SECRETS_VERSION"
fi

log "generating a ${MB} MB corpus with $PLANTS planted secrets per rule"
python3 "$ROOT/bench/scan_corpus.py" "$CORPUS" "$WORK/manifest.json" "$MB" "$PLANTS"

# Both tools read from the page cache: warm it once.
find "$CORPUS" -type f -exec cat {} + >/dev/null

now() { date +%s.%N; }

log "keygate scan --format json"
start=$(now)
set +e
"$KEYGATE" scan --format json --no-progress "$CORPUS" >"$WORK/keygate.json" 2>"$WORK/keygate.err"
kg_status=$?
set -e
kg_seconds=$(python3 -c "print($(now) - $start)")
[[ $kg_status == 1 ]] || { cat "$WORK/keygate.err" >&2; die "keygate scan exited $kg_status (1 expected: secrets are planted)"; }
log "$(tail -1 "$WORK/keygate.err")"

log "detect-secrets scan --all-files (timeout ${DS_TIMEOUT}s)"
start=$(now)
set +e
(cd "$CORPUS" && timeout "$DS_TIMEOUT" "$VENV/bin/detect-secrets" scan --all-files . >"$WORK/detect-secrets.json")
ds_status=$?
set -e
ds_seconds=$(python3 -c "print($(now) - $start)")
[[ $ds_status == 0 ]] || log "detect-secrets exited $ds_status (124: timed out)"

python3 - "$WORK/manifest.json" "$WORK/keygate.json" "$WORK/detect-secrets.json" \
  "$CORPUS" "$kg_seconds" "$ds_seconds" "$ds_status" "$RESULTS_DIR/scan-latest.json" <<'PY'
import json, os, sys
manifest_path, kg_path, ds_path, corpus, kg_s, ds_s, ds_status, out = sys.argv[1:]
manifest = json.load(open(manifest_path))
mb = manifest["bytes"] / 1e6
plants = manifest["plants"]
lookalikes = {(l["file"], l["line"]) for l in manifest["lookalikes"]}
lookalike_files = {f for f, _ in lookalikes}
planted = {(p["rule"], p["file"], p["line"], p["fingerprint"]) for p in plants}
planted_places = {(p["file"], p["line"]) for p in plants}

kg = json.load(open(kg_path))
def rel(path):
    return os.path.relpath(path, corpus)
kg_found = {(f["rule"], rel(f["file"]), f["line"], f["fingerprint"]) for f in kg}
kg_missing = planted - kg_found
kg_extra = kg_found - planted
kg_lookalikes = [f for f in kg if rel(f["file"]) in lookalike_files
                 and (rel(f["file"]), f["line"]) in lookalikes]

ds_results = {}
if int(ds_status) == 0:
    ds_results = json.load(open(ds_path))["results"]
ds_places = {(os.path.normpath(path), r["line_number"])
             for path, found in ds_results.items() for r in found}
ds_count = sum(len(v) for v in ds_results.values())
ds_planted = len({(f, l) for f, l in planted_places if (f, l) in ds_places})
ds_lookalikes = len(lookalikes & ds_places)

kg_s, ds_s = float(kg_s), float(ds_s)
rows = [
    ("keygate scan", mb, kg_s, len(kg), len(planted - kg_missing), len(kg_lookalikes)),
    ("detect-secrets " + ("" if int(ds_status) == 0 else "(failed)"), mb, ds_s, ds_count, ds_planted, ds_lookalikes),
]
print(f"{'tool':<16} {'MB':>7} {'seconds':>9} {'MB/s':>8} {'findings':>9} {'planted found':>14} {'look-alikes reported':>21}")
for name, size, secs, count, found, look in rows:
    print(f"{name:<16} {size:>7.1f} {secs:>9.2f} {size / secs:>8.1f} {count:>9} {found:>6}/{len(planted):<7} {look:>10}/{len(lookalikes):<10}")
print(f"speed-up: {ds_s / kg_s:.0f}x")
by_rule = {}
for rule, *_ in planted:
    by_rule.setdefault(rule, [0, 0])[0] += 1
for rule, *_ in planted - kg_missing:
    by_rule[rule][1] += 1
print("keygate per rule (found/planted): " + ", ".join(f"{r} {f}/{n}" for r, (n, f) in sorted(by_rule.items())))
json.dump({"megabytes": mb, "planted": len(planted), "lookalikes": len(lookalikes),
           "keygate": {"seconds": kg_s, "mb_per_s": mb / kg_s, "findings": len(kg),
                       "missing": len(kg_missing), "unplanted": len(kg_extra),
                       "lookalikes_reported": len(kg_lookalikes)},
           "detect_secrets": {"seconds": ds_s, "mb_per_s": mb / ds_s, "findings": ds_count,
                              "planted_found": ds_planted, "lookalikes_reported": ds_lookalikes,
                              "status": int(ds_status)}},
          open(out, "w"), indent=2)
failed = False
if kg_missing:
    print(f"FAIL: keygate missed {len(kg_missing)} planted secrets: {sorted((r, f, l) for r, f, l, _ in kg_missing)[:10]}")
    failed = True
if kg_lookalikes:
    print(f"FAIL: keygate reported {len(kg_lookalikes)} checksum-invalid look-alikes")
    failed = True
if kg_extra:
    print(f"FAIL: keygate reported {len(kg_extra)} findings that were not planted: {sorted((r, f, l) for r, f, l, _ in kg_extra)[:10]}")
    failed = True
if not failed:
    print("OK: keygate found every planted secret, no look-alike and nothing else")
sys.exit(1 if failed else 0)
PY
