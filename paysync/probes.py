"""What every role serves for its orchestrator and Prometheus: ``GET /healthz`` (the process
is alive), ``GET /readyz`` (503 while the broker is unreachable) and ``GET /metrics``.

Ingest serves them on its own port beside the callbacks. A process without ingest (a
``paysync worker`` or ``paysync reconciler`` pod) serves them on ``[metrics]`` host and
port (9100 by default; port 0 picks a free one, logged as ``probes_listening``).
"""

from __future__ import annotations

from aiohttp import web

from paysync.amqp import Broker
from paysync.metrics import CONTENT_TYPE, Metrics

PROBE_BROKER = web.AppKey("probe_broker", Broker)
PROBE_METRICS = web.AppKey("probe_metrics", Metrics)


def add_probe_routes(app: web.Application, broker: Broker, metrics: Metrics) -> None:
    app[PROBE_BROKER] = broker
    app[PROBE_METRICS] = metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)


def build_probe_app(broker: Broker, metrics: Metrics) -> web.Application:
    app = web.Application()
    add_probe_routes(app, broker, metrics)
    return app


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[PROBE_BROKER].ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not_ready", "broker": "unreachable"}, status=503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = request.app[PROBE_METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
