# shellcheck shell=bash
# On the first manager: makes node NODE_ID's labels exactly LABELS (key=value
# lines), its availability active (unless edge-ha node drain drained it: that
# holds until undrain) and its role ROLE; prints its role and labels. Swarm updates race with the node's own status changes ("update out
# of sequence"), hence the retries.
set -euo pipefail
# A re-imaged node joined anew under a new ID: its old entry (same hostname,
# down) goes, so the swarm lists each node once.
name=$(docker node inspect -f '{{.Description.Hostname}}' "$NODE_ID")
docker node ls --format '{{.ID}} {{.Hostname}} {{.Status}}' | while read -r id host status; do
  if [ "$host" = "$name" ] && [ "$id" != "$NODE_ID" ] && [ "$status" = Down ]; then
    if [ "$(docker node inspect -f '{{.Spec.Role}}' "$id")" = manager ]; then retry 5 docker node demote "$id" >/dev/null; fi
    retry 5 docker node rm --force "$id" >/dev/null
  fi
done
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
availability=active
[ "$(docker node inspect -f '{{.Spec.Availability}}' "$NODE_ID")" != drain ] || availability=drain
retry 5 docker node update --availability "$availability" "${args[@]}" "$NODE_ID" >/dev/null
if [ "$(docker node inspect -f '{{.Spec.Role}}' "$NODE_ID")" != "$ROLE" ]; then
  if [ "$ROLE" = manager ]; then retry 5 docker node promote "$NODE_ID" >/dev/null; else retry 5 docker node demote "$NODE_ID" >/dev/null; fi
fi
docker node inspect -f '{{.Spec.Role}} {{range $k, $v := .Spec.Labels}}{{$k}}={{$v}} {{end}}' "$NODE_ID"
