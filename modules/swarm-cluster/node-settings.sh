# shellcheck shell=bash
# On the first manager: makes node NODE_ID's labels exactly LABELS (key=value
# lines), its availability active and its role ROLE; prints its role and
# labels. Swarm updates race with the node's own status changes ("update out
# of sequence"), hence the retries.
set -euo pipefail
wanted=()
while IFS= read -r kv; do [ -n "$kv" ] && wanted+=("$kv"); done <<<"$LABELS"
args=()
while IFS= read -r kv; do
  [ -z "$kv" ] && continue
  keep=0
  for w in "${wanted[@]}"; do [ "${w%%=*}" = "${kv%%=*}" ] && keep=1; done
  [ $keep = 1 ] || args+=(--label-rm "${kv%%=*}")
done < <(docker node inspect -f '{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}}{{println}}{{end}}' "$NODE_ID")
for w in "${wanted[@]}"; do args+=(--label-add "$w"); done
retry 5 docker node update --availability active "${args[@]}" "$NODE_ID" >/dev/null
if [ "$(docker node inspect -f '{{.Spec.Role}}' "$NODE_ID")" != "$ROLE" ]; then
  if [ "$ROLE" = manager ]; then retry 5 docker node promote "$NODE_ID" >/dev/null; else retry 5 docker node demote "$NODE_ID" >/dev/null; fi
fi
docker node inspect -f '{{.Spec.Role}} {{range $k, $v := .Spec.Labels}}{{$k}}={{$v}} {{end}}' "$NODE_ID"
