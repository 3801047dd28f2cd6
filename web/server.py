"""`kb serve`: gunicorn with pre-forked workers, each building its own app after the fork.

Why this shape: PyTorch and FAISS thread pools, and SQLite connections, must not cross a
fork. The master process imports neither the model nor the database; each worker sets
its thread counts, creates the app, and warms up (loads the model and the index) before
taking requests.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

from gunicorn.app.base import BaseApplication

from kb.config import Config
from kb.errors import ConfigError, KBError
from kb.language import warm_up_language_identifier

log = logging.getLogger("kb.serve")


def default_workers(config: Config) -> int:
    return config.workers if config.workers > 0 else max(1, os.cpu_count() or 1)


def threads_per_worker(config: Config, workers: int) -> int:
    if config.threads > 0:
        return config.threads
    return max(1, (os.cpu_count() or 1) // workers)


class KnowledgeServer(BaseApplication):
    def __init__(self, config: Config):
        self.kb_config = config
        super().__init__()

    def load_config(self) -> None:
        config = self.kb_config
        workers = default_workers(config)
        torch_threads = threads_per_worker(config, workers)

        def post_fork(server, worker):
            os.environ["KB_THREADS"] = str(torch_threads)
            os.environ["OMP_NUM_THREADS"] = str(torch_threads)

        def post_worker_init(worker):
            app = worker.wsgi
            service = app.extensions["kb_service"]
            service.redactor.load()
            try:
                with app.app_context():
                    service.search_state()
                    warm_up_language_identifier()  # seconds to build: not on the first request
            except KBError as exc:
                log.warning("worker %s started without an index: %s", worker.pid, exc)
            try:
                pending = service.store().pending_erasures()
            except KBError:
                pending = []
            if pending:
                # Left pending by a worker that stopped before the index lock was free.
                from kb.app.privacy import finish_erasures_in_background

                log.warning("finishing %d pending erasure(s)", len(pending))
                finish_erasures_in_background(service)
            if config.webhook_url:
                from kb.app.storms import StormWatcher

                StormWatcher(service).start()
            if config.events_url:
                from kb.app.outcomes import EventSender

                EventSender(service).start()

        settings = {
            "bind": f"{config.host}:{config.port}",
            "workers": workers,
            # gthread that reads each whole request before a thread takes it (slow clients
            # cannot hold the threads), and answers refused requests in the app's own shape.
            "worker_class": "web.worker.BufferingWorker",
            "limit_request_line": 8190,
            "threads": config.worker_threads,
            "timeout": config.request_timeout,
            "graceful_timeout": 10,
            "preload_app": False,
            "post_fork": post_fork,
            "post_worker_init": post_worker_init,
            "accesslog": "-",
            # Method, path and status only: query strings and referrers can carry incident
            # text, and none of it belongs in a log.
            "access_log_format": '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms',
            "errorlog": "-",
            # Control characters in anything logged are escaped (web.logs): a path with
            # %0a or %1b cannot forge a log line or drive the terminal that shows it.
            "logger_class": "web.logs.SafeLogger",
            "loglevel": "info",
            "proc_name": "kb-serve",
            # The control socket sits at one path per user ($HOME/.gunicorn/gunicorn.ctl), so
            # two servers on a machine would take it from each other; nothing here uses it.
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from web import create_app

        config = self.kb_config.with_overrides(
            threads=int(os.environ.get("KB_THREADS", "0")) or None
        )
        return create_app(config=config)


def check_can_listen(host: str, port: int) -> None:
    """Raise ConfigError (one line for the CLI) when the address cannot be listened on:
    a port out of range or already in use, a host that is not an address of this machine."""
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is out of range (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None


def run_server(config: Config) -> None:
    config.check_webhook()
    config.check_events()
    config.check_oidc()
    print(
        f"Serving on http://{config.host}:{config.port} with {default_workers(config)} worker(s)",
        flush=True,
    )
    KnowledgeServer(config).run()
