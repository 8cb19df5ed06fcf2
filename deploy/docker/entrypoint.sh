#!/bin/sh
# Starts one LeadFlow process: a service (intake|assignment|followup|analytics|notify|console), intake's outbox relay
# (intake-relay: publishes what the intake API records; run the API with LEADFLOW_INTAKE_EMBEDDED_RELAY=false
# beside it), analytics' faust streams worker (analytics-streams), or the topic bootstrap.
# The argument wins over LEADFLOW_SERVICE. `exec` makes Python PID 1, so it receives SIGTERM itself:
# uvicorn drains in-flight requests, then the service stops its consumers and flushes its relay.
set -eu

what="${1:-${LEADFLOW_SERVICE:-}}"
case "$what" in
  intake | assignment | followup | analytics | notify | console)
    export LEADFLOW_SERVICE="$what"
    exec python -m "services.$what"
    ;;
  intake-relay)
    export LEADFLOW_SERVICE="$what"
    exec python -m services.intake relay
    ;;
  analytics-streams)
    export LEADFLOW_SERVICE="$what"
    exec python -m services.analytics.streams worker -l info
    ;;
  bootstrap-topic)
    exec python "$(dirname "$0")/topic_bootstrap.py"
    ;;
  *)
    echo "usage: entrypoint.sh intake|intake-relay|assignment|followup|analytics|notify|analytics-streams|console|bootstrap-topic (or set LEADFLOW_SERVICE); got '$what'" >&2
    exit 64
    ;;
esac
