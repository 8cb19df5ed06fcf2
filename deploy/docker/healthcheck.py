"""Container HEALTHCHECK: exit 0 when this container's service answers GET /healthz, else 1.

The service is LEADFLOW_SERVICE (a service, intake-relay or analytics-streams); its port is
LEADFLOW_<SERVICE>_PORT (intake-relay: LEADFLOW_INTAKE_RELAY_PORT), or the contract's default.
Liveness only: readiness (Kafka and PostgreSQL reachable) is /readyz, which orchestrators probe separately.
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULT_PORTS = {
    "intake": 8001,
    "intake-relay": 8011,
    "assignment": 8002,
    "followup": 8003,
    "analytics": 8004,
    "notify": 8005,
    "analytics-streams": 8014,
    "console": 8000,
}


def healthz_url(env: dict[str, str]) -> str:
    service = env.get("LEADFLOW_SERVICE", "")
    if service not in DEFAULT_PORTS:
        raise SystemExit(f"healthcheck: LEADFLOW_SERVICE must be one of {sorted(DEFAULT_PORTS)}, got {service!r}")
    port = env.get(f"LEADFLOW_{service.upper().replace('-', '_')}_PORT", str(DEFAULT_PORTS[service]))
    return f"http://127.0.0.1:{port}/healthz"


def main() -> int:
    url = healthz_url(dict(os.environ))
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
