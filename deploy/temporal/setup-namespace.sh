#!/bin/sh
# One-shot (temporalio/admin-tools): wait for the Temporal frontend, create the namespace when
# missing, register the search attributes Spool's workflows upsert, and exit 0 only when the
# server lists every one of them with its type. Every Spool process waits for this job
# (service_completed_successfully): a workflow that upserts an attribute the namespace does
# not have fails its workflow task, so workers must not start before they exist.
#
# Environment (the temporal CLI reads the first two itself):
#   TEMPORAL_ADDRESS    frontend host:port
#   TEMPORAL_NAMESPACE  namespace Spool runs in
#   SEARCH_ATTRIBUTES   "Name=Type ..." (compose: the same set devstack/temporal.py registers)
#   NAMESPACE_RETENTION closed-workflow retention for a new namespace (default 168h)
#   SETUP_ATTEMPTS      tries, 2 s apart, for each step (default 90)
set -eu
: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is not set}"
: "${TEMPORAL_NAMESPACE:?TEMPORAL_NAMESPACE is not set}"
: "${SEARCH_ATTRIBUTES:?SEARCH_ATTRIBUTES is not set}"
retention=${NAMESPACE_RETENTION:-168h}
attempts=${SETUP_ATTEMPTS:-90}
ns=$TEMPORAL_NAMESPACE

give_up() { echo "setup-namespace: $*" >&2; exit 1; }

try=0
until temporal operator cluster health >/dev/null 2>&1; do
    try=$((try + 1)); [ "$try" -lt "$attempts" ] || give_up "frontend $TEMPORAL_ADDRESS not serving"
    sleep 2
done
echo "frontend $TEMPORAL_ADDRESS: SERVING"

# Success is decided by describe alone; a failed create (not ready yet, or created meanwhile)
# is retried until describe sees the namespace or the attempts run out.
try=0
until temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1; do
    try=$((try + 1)); [ "$try" -lt "$attempts" ] || give_up "namespace $ns could not be created"
    temporal operator namespace create --namespace "$ns" --retention "$retention" \
        || echo "namespace $ns: create failed, retrying"
    sleep 2
done
echo "namespace $ns: exists"

# has_attribute NAME TYPE: the server lists NAME as a custom attribute of TYPE. The JSON
# names the type either as the shorthand (Keyword) or the enum (INDEXED_VALUE_TYPE_KEYWORD).
has_attribute() {
    upper=$(echo "$2" | tr '[:lower:]' '[:upper:]')
    temporal operator search-attribute list --namespace "$ns" --output json 2>/dev/null \
        | tr -d ' \t\r\n' \
        | grep -Eq "\"$1\":\"($2|INDEXED_VALUE_TYPE_$upper)\""
}

missing_attributes() {
    for pair in $SEARCH_ATTRIBUTES; do
        has_attribute "${pair%%=*}" "${pair#*=}" || printf '%s ' "$pair"
    done
}

created=no
try=0
missing=$(missing_attributes)
while [ -n "$missing" ]; do
    try=$((try + 1)); [ "$try" -lt "$attempts" ] || give_up "search attributes missing: $missing"
    set --
    for pair in $missing; do set -- "$@" --name "${pair%%=*}" --type "${pair#*=}"; done
    if temporal operator search-attribute create --namespace "$ns" "$@"; then
        created=yes
    else
        echo "search attributes $missing: create failed, retrying"
    fi
    sleep 2
    missing=$(missing_attributes)
done
echo "search attributes: $SEARCH_ATTRIBUTES"

if [ "$created" = yes ]; then
    # The history and matching services cache namespace records (where attribute names live
    # for SQL visibility) and refresh them about every 10 s; a workflow task upserting the
    # new names before that refresh would be rejected, so let one refresh pass first.
    sleep "${SETTLE_SECONDS:-15}"
fi
echo "temporal namespace $ns: ready"
