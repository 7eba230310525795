"""``tao-automl ui RESULTS_DIR``: the MLflow UI over a sweep's tracking database, on 127.0.0.1.

    tao-automl ui runs/raccoon_sweep                  # RESULTS_DIR/automl/mlflow.db
    tao-automl ui runs/x --port 5001 --tracking-uri sqlite:////data/other/mlflow.db

Runs ``mlflow server`` in the foreground with the sweep's artifact folder, so the
UI shows the spec, trials.csv and the exported model too.  The server runs in its
own process group: Ctrl+C (or SIGTERM) ends it and the workers it started.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from trainers.errors import UserError

DEFAULT_HOST = "127.0.0.1"
EXPERIMENT_NAME = "tao-automl"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui", help="open the MLflow UI on a sweep's runs (binds 127.0.0.1)",
        description="Start the MLflow UI on RESULTS_DIR/automl/mlflow.db (the sweep's parent run, one child run "
                    "per trial, metrics per epoch, artifacts) and keep it running until Ctrl+C.")
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="the sweep's results_dir")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to bind (default 127.0.0.1: only this machine can open it; the UI has no "
                             "login, so bind another address only on a trusted network, and list the names "
                             "browsers will use in MLFLOW_SERVER_ALLOWED_HOSTS, which MLflow checks)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--tracking-uri", help="the sweep's --mlflow-uri when it was not the default SQLite file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.tracking_uri and args.tracking_uri.startswith(("http://", "https://")):
        print(f"The sweep logged to the MLflow server at {args.tracking_uri}: open that address in a browser.")
        return 0
    backend = backend_store_uri(args.results_dir, args.tracking_uri)
    check_port_free(args.host, args.port)
    print(f"MLflow UI: http://{args.host}:{args.port}  (tracking {backend}; Ctrl+C stops it)", flush=True)
    # SIGTERM ends the UI the way Ctrl+C does: through the finally below, which stops the server's group.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    process = start_ui(args.results_dir, args.host, args.port, args.tracking_uri)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_ui(process)
    if code != 0:
        raise UserError(f"mlflow server on {args.host}:{args.port} exited with code {code}; see its messages above")
    return 0


def start_ui(results_dir, host: str = DEFAULT_HOST, port: int = 5000,
             tracking_uri: Optional[str] = None) -> subprocess.Popen:
    """Start ``mlflow server`` on the sweep's store in the background (its own process group); see stop_ui."""
    backend = backend_store_uri(results_dir, tracking_uri)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
               "--host", host, "--port", str(port), "--workers", "1"]
    artifacts = artifact_root(backend)
    if artifacts:
        command += ["--default-artifact-root", artifacts, "--artifacts-destination", artifacts]
    # The server's background job runners serve GenAI evaluation, not this UI: leave them off (fewer processes).
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    db = _sqlite_file(backend)
    return subprocess.Popen(command, env=env, cwd=db.parent if db else None, start_new_session=True)


def stop_ui(process: subprocess.Popen, timeout: float = 15.0) -> int:
    """End the server and every process it started; returns the server's exit code.

    SIGTERM to the group lets uvicorn shut down cleanly; whatever is still there
    after ``timeout`` gets SIGKILL, so nothing is left running.
    """
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process.poll() is None or _group_alive(process.pid)):
        time.sleep(0.1)
    _signal_group(process.pid, signal.SIGKILL)
    return process.wait()


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def backend_store_uri(results_dir, tracking_uri: Optional[str] = None) -> str:
    """The store to show: ``tracking_uri`` when given, else RESULTS_DIR/automl/mlflow.db, which must exist."""
    if tracking_uri:
        if tracking_uri.startswith(("http://", "https://")):
            raise UserError(f"--tracking-uri {tracking_uri}: this is already an MLflow server; open it in a browser")
        db = _sqlite_file(tracking_uri)
        if tracking_uri.startswith("sqlite:") and (db is None or not db.is_file()):
            raise UserError(f"--tracking-uri {tracking_uri}: no such SQLite file; give the sweep's MLflow database")
        return tracking_uri
    db = (Path(results_dir) / "automl" / "mlflow.db").resolve()
    if not db.is_file():
        raise UserError(f"{db}: no MLflow database; run a sweep with this results_dir first "
                        "(or pass --tracking-uri when the sweep used --mlflow-uri)")
    return f"sqlite:///{db}"


def artifact_root(backend: str) -> Optional[str]:
    """Where the sweep's experiment keeps artifacts (read from the database), so the UI can show them."""
    db = _sqlite_file(backend)
    if db is None:
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT artifact_location FROM experiments WHERE lifecycle_stage = 'active' "
                "ORDER BY name = ? DESC, experiment_id DESC", (EXPERIMENT_NAME,)).fetchall()
    except sqlite3.Error:  # no tables yet or another schema: let MLflow decide
        rows = []
    locations = [row[0] for row in rows if row[0]]
    return locations[0] if locations else str(db.parent / "mlartifacts")


def check_port_free(host: str, port: int) -> None:
    """Fail with one line before starting when the port is taken (MLflow would print a traceback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server will: SO_REUSEADDR, so connections of a just-stopped UI (TIME_WAIT) do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen()
        except OSError as error:
            raise UserError(f"--host {host} --port {port}: cannot listen there ({error.strerror}); "
                            "pick another port with --port") from None


def _sqlite_file(uri: str) -> Optional[Path]:
    from automl.sweep.tracking import sqlite_path  # imports mlflow: only when this command runs

    return sqlite_path(uri)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
