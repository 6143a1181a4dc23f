"""`aimds serve`: start (or join) Ray, deploy the Serve app of configs/serve.yaml, start the HTTP/3 proxy, print
the endpoints, and shut down cleanly on Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from aimds_ray.core.config import load_yaml

ORDER = 25


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the online detection service on Ray Serve (+ HTTP/3)")
    p.add_argument("--config", help="Serve config YAML (default: configs/serve.yaml, shipped with the package)")
    p.add_argument("--address", default=None, help="Ray address to join (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--host", default=None,
                   help="address of both fronts (default: the config's http_options.host, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: http_options.port, else 8000)")
    p.add_argument("--h3-port", type=int, default=None, help="UDP port of the HTTP/3 proxy (default 4433)")
    p.add_argument("--no-h3", action="store_true", help="do not start the HTTP/3 proxy")
    p.add_argument("--num-cpus", type=float, default=None, help="CPUs of a local Ray (default: all)")
    p.set_defaults(func=run)


def default_serve_config() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "serve.yaml"


def load_serve_config(path: str | None) -> dict[str, Any]:
    import yaml

    from aimds_ray.cli import UsageError

    p = Path(path) if path else default_serve_config()
    try:
        cfg = load_yaml(p.read_text())
    except OSError as e:
        raise UsageError(f"cannot read {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{p}: invalid YAML: {e}") from None
    apps = cfg.get("applications") if isinstance(cfg, dict) else None
    if not apps or not isinstance(apps, list):
        raise UsageError(f"{p}: not a Serve config (no applications)")
    return cfg


def listen_address(cfg: dict[str, Any], host: str | None, port: int | None) -> tuple[str, int]:
    """Where Serve's HTTP proxy listens: the flags, else the config's `http_options` (as `serve run` reads it),
    else 127.0.0.1:8000."""
    from aimds_ray.cli import UsageError

    http = cfg.get("http_options") if isinstance(cfg.get("http_options"), dict) else {}
    host = host if host is not None else http.get("host", "127.0.0.1")
    port = port if port is not None else http.get("port", 8000)
    if not isinstance(host, str) or not host:
        raise UsageError(f"http_options.host must be a host name or address, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise UsageError(f"http_options.port must be a port number, got {port!r}")
    return host, port


def deploy(cfg: dict[str, Any], *, address: str | None, host: str, port: int,
           num_cpus: float | None) -> list[dict[str, Any]]:
    """Start/join Ray and deploy each application of `cfg` as `serve run` would; returns the applications."""
    import importlib

    import ray
    from ray import serve
    from ray.serve import Application

    from aimds_ray.distributed.serve_app import build_app, build_ingress

    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": host, "port": port})
    apps = cfg["applications"]
    for app in apps:
        mod, _, attr = app["import_path"].partition(":")
        builder = getattr(importlib.import_module(mod), attr)
        deps = app.get("deployments") or []
        opts = {k: v for k, v in deps[0].items() if k != "name"} if deps else None
        if builder is build_app:  # ours: the YAML's deployment overrides applied as `serve run` applies them
            built = build_ingress(app.get("args") or {}, opts)
        else:
            if opts:
                print(f"aimds serve: {app['import_path']}: deployment overrides are applied by `serve run` only",
                      file=sys.stderr)
            built = builder if isinstance(builder, Application) else builder(app.get("args") or {})
        serve.run(built, name=app.get("name", "default"), route_prefix=app.get("route_prefix", "/"),
                  blocking=False)
    return apps


def run(args: argparse.Namespace) -> int:
    from aimds_ray.quic import QuicConfig, ServeBackend, start_h3_proxy_in_thread

    cfg = load_serve_config(args.config)
    host, port = listen_address(cfg, args.host, args.port)
    qdict = dict((cfg["applications"][0].get("args") or {}).get("quic") or {})
    if args.host is not None or "host" not in qdict:  # the flag names both fronts; the file may name each
        qdict["host"] = host
    if args.h3_port is not None:
        qdict["port"] = args.h3_port
    qcfg = QuicConfig.from_dict(qdict)  # validate before starting anything
    apps = deploy(cfg, address=args.address, host=host, port=port, num_cpus=args.num_cpus)
    base = f"http://{host}:{port}"
    endpoints = {"http": base, "detect": f"{base}/v1/detect", "batch": f"{base}/v1/detect/batch",
                 "openapi": f"{base}/openapi.json", "health": f"{base}/healthz"}
    proxy = None
    if not args.no_h3:
        app_name = apps[0].get("name", "aimds")
        proxy = start_h3_proxy_in_thread(qcfg, lambda: ServeBackend(app_name=app_name))
        endpoints["h3"] = proxy.url
    print(json.dumps({"status": "serving", "endpoints": endpoints}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print("aimds serve: shutting down", file=sys.stderr, flush=True)
    if proxy is not None:
        proxy.stop()
    import ray
    from ray import serve

    _save_state(apps)
    serve.shutdown()
    ray.shutdown()
    return 0


def _save_state(apps: list[dict[str, Any]]) -> None:
    """Before the actors go: session behaviour checkpointed, learned updates committed as a version (each is
    otherwise saved only every `checkpoint_every` observations / updates or `checkpoint_seconds`)."""
    import ray

    from aimds_ray.distributed.runtime import NAMESPACE, RuntimeConfig, actor_names

    names = actor_names(RuntimeConfig.from_dict((apps[0].get("args") or {}).get("runtime")))
    for name in [*names["analyzers"], names["learner"][0]]:
        try:
            actor = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:  # never started (no request needed it): nothing to save
            continue
        try:
            ray.get(actor.checkpoint.remote(), timeout=60)
        except Exception as e:
            print(f"aimds serve: {name}: state not saved on exit ({type(e).__name__}: {e})", file=sys.stderr,
                  flush=True)
