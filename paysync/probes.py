"""What every role serves for its orchestrator and Prometheus: ``GET /healthz`` (503 once a
role's main task has died), ``GET /readyz`` (503 while any role of the process is not
ready, naming it) and ``GET /metrics``.

Ingest serves them on its own port beside the callbacks. A process without ingest (a
``paysync worker`` or ``paysync reconciler`` pod) serves them on ``[metrics]`` host and
port (9100 by default; port 0 picks a free one, logged as ``probes_listening``).
"""

from __future__ import annotations

from aiohttp import web

from paysync.health import Health
from paysync.metrics import CONTENT_TYPE, Metrics

PROBE_HEALTH = web.AppKey("probe_health", Health)
PROBE_METRICS = web.AppKey("probe_metrics", Metrics)


def add_probe_routes(app: web.Application, health: Health, metrics: Metrics) -> None:
    app[PROBE_HEALTH] = health
    app[PROBE_METRICS] = metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)


def build_probe_app(health: Health, metrics: Metrics) -> web.Application:
    app = web.Application()
    add_probe_routes(app, health, metrics)
    return app


async def healthz(request: web.Request) -> web.Response:
    dead = request.app[PROBE_HEALTH].dead()
    if dead:
        return web.json_response({"status": "dead", "roles": dead}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[PROBE_HEALTH].readiness()
    if all(checks.values()):
        return web.json_response({"status": "ready", "checks": checks})
    not_ready = sorted(name for name, ok in checks.items() if not ok)
    return web.json_response(
        {"status": "not_ready", "not_ready": not_ready, "checks": checks}, status=503
    )


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = request.app[PROBE_METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
