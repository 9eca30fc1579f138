# The diffusion classifier of one EMA snapshot into a small JSON file (scripts/experiments-seeds,
# scripts/experiments-reclassify): source it, then
#   classify_json DMIS DATA EMA IMAGES LEVELS PRECISION JSON POSTERIORS
# LEVELS: window (the deck's 8 window levels) or high (8 equal-weight levels over sigma 2-6,
# where a model of this budget carries its class information: docs/runs-classifier-levels/).
# Writes JSON {"accuracy", "se", "images", "points": 8, "precision"[, "sigma": [2, 6]]} through
# a temporary file, the per-image posteriors to POSTERIORS, and the classifier's progress to
# JSON.log while it runs (removed when it succeeds).
classify_json() {
  local dmis=$1 data=$2 ema=$3 images=$4 levels=$5 precision=$6 json=$7 post=$8 line acc se
  local extra='' sets=(--set classify.points=8 --set "classify.precision=$precision")
  if [[ $levels == high ]]; then
    extra=', "sigma": [2, 6]'
    sets+=(--set classify.timesteps=uniform --set classify.weights=equal
           --set classify.uniform_min=2 --set classify.uniform_max=6)
  fi
  line=$("$dmis" classify "$ema" --data "$data" --limit "$images" --set data.test_limit="$images" \
           "${sets[@]}" --out "$post" 2>"$json.log" | tee -a "$json.log" |
         grep "dmis classify: accuracy") || return 1
  acc=$(sed -E 's/.*accuracy ([0-9.]+) %.*/\1/' <<<"$line")
  se=$(sed -E 's/.*standard error ([0-9.]+) %.*/\1/' <<<"$line")
  printf '{"accuracy": %s, "se": %s, "images": %s, "points": 8, "precision": "%s"%s}\n' \
    "$(awk "BEGIN{print $acc/100}")" "$(awk "BEGIN{print $se/100}")" "$images" "$precision" "$extra" \
    >"$json.tmp"
  mv "$json.tmp" "$json"
  rm -f "$json.log"
}
