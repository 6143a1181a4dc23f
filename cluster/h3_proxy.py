"""The HTTP/3 proxy alone, joined to a running Ray cluster whose Serve app is already deployed (KubeRay sidecar).

`aimds serve` deploys the app *and* starts the proxy; on KubeRay the operator deploys the app from
`serveConfigV2`, so a second deploy from the sidecar would fight it. This starts only the proxy, forwarding to the
`aimds` app through a `DeploymentHandle`, with the `quic` settings of configs/serve.yaml (host/port overridable).

    python cluster/h3_proxy.py --address 127.0.0.1:6379 --host 0.0.0.0 --port 4433
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

import yaml


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", default="auto", help="Ray GCS address (the head pod: 127.0.0.1:6379)")
    ap.add_argument("--config", default=None, help="Serve config whose first app's args.quic is used")
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=4433)
    ap.add_argument("--wait-s", type=float, default=600.0, help="how long to wait for the Serve app to be up")
    args = ap.parse_args()

    import ray
    from ray import serve

    from aimds_ray.cli.serve import default_serve_config
    from aimds_ray.quic import QuicConfig, ServeBackend, start_h3_proxy_in_thread

    cfg = yaml.safe_load(Path(args.config or default_serve_config()).read_text())
    app = cfg["applications"][0]
    qcfg = QuicConfig.from_dict({**((app.get("args") or {}).get("quic") or {}), "host": args.host, "port": args.port})
    ray.init(address=args.address, log_to_driver=False)
    deadline = time.monotonic() + args.wait_s
    while True:  # the operator may still be deploying the app
        st = serve.status().applications.get(app.get("name", "aimds"))
        if st is not None and str(st.status).endswith("RUNNING"):
            break
        if time.monotonic() > deadline:
            print(f"Serve app {app.get('name')!r} is not RUNNING after {args.wait_s}s", file=sys.stderr)
            return 1
        time.sleep(2)
    proxy = start_h3_proxy_in_thread(qcfg, lambda: ServeBackend(app_name=app.get("name", "aimds")))
    print(json.dumps({"status": "serving", "h3": f"https://{qcfg.host}:{qcfg.port}"}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    proxy.stop()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
