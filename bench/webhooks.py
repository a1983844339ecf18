"""Webhooks benchmark: delivery throughput against a plain HTTP client, and the time from
a change's commit to its receipt.

    .venv/bin/python bench/webhooks.py [--events 3000] [--rate 200] [--seconds 15]

On this machine only (127.0.0.1): a fresh database `earshot_bench_webhooks`, three local
receivers in a process of their own (healthy; slow: 0.5 s an answer; flaky: every other
answer a 500) and one subscription each (events "*"). The sender is what the
`webhooks.send` task runs (sender.webhooks_tick: a run that dispatches, sends and
records, with WEBHOOKS_SENDER_THREADS sending threads), run in this process, run after
run as the task is while busy.

1. Throughput: --events `consent.withdrawn` ledger entries (one profile each), then runs
   until the healthy receiver has all of them (timed to its last receipt, and checked:
   each event once, each recorded delivered); events/s for it, and receipts a second at
   all three receivers over the same time. Baseline: urllib3 with as many threads as the
   sender posting the same bodies to the same three receivers (the healthy receiver's
   first), no database, no signature; the ratio of the healthy receiver's rates. A
   stronger baseline beside it, informative: the sender's own HTTP/1.1 transport,
   likewise.
2. Latency: --rate entries a second for --seconds (one transaction each) while a thread
   plays beat and the task (a run at each 1 s tick, at once again after a run that was
   still busy at its end); per event, the healthy receiver's receipt minus the entry's
   commit time.

Goals: >= 1,000 events/s delivered; >= 50% of the plain client; p99 commit-to-receipt
< 2 s at 200 events/s for the healthy receiver. Figures share 2 cores between
PostgreSQL, the receivers and the sender: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Goal,
    app_env,
    fail,
    free_port,
    heading,
    manage,
    percentile,
    print_summary,
    recreate_database,
    say,
)

DB = "earshot_bench_webhooks"
HOST = "127.0.0.1"


def _receivers(ports: dict[str, int], ready: multiprocessing.synchronize.Event) -> None:
    received: dict[str, dict[str, float]] = {name: {} for name in ports}
    flips = {"n": 0}
    lock = threading.Lock()

    def handler_for(name: str) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps({k: v for k, v in received[name].items()}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = 200
                if name == "slow":
                    time.sleep(0.5)
                if name == "flaky":
                    with lock:
                        flips["n"] += 1
                        code = 500 if flips["n"] % 2 else 200
                if code == 200:
                    event = self.headers.get("webhook-id") or self.headers.get("x-id", "")
                    received[name].setdefault(event, time.time())
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    servers = []
    for name, port in ports.items():
        server = ThreadingHTTPServer((HOST, port), handler_for(name))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    ready.set()
    while True:
        time.sleep(3600)


def _stats(port: int) -> dict[str, float]:
    import urllib3

    return json.loads(urllib3.request("GET", f"http://{HOST}:{port}/stats").data)


def _reset_receivers(ports: dict[str, int]) -> multiprocessing.Process:
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=_receivers, args=(ports, ready), daemon=True)
    process.start()
    ready.wait(10)
    return process


def _append(n: int, *, start: int) -> None:
    from django.db import transaction

    from compliance.ledger.services import ledger_append

    for i in range(start, start + n):
        with transaction.atomic():
            ledger_append(
                kind="consent.withdrawn",
                subject=f"profile:bench-{i}",
                actor="bench",
                payload={"purpose": "human_review", "channel": "api", "notice_version": "v1"},
            )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()

    heading("database")
    recreate_database(DB)
    env = app_env(DB)
    env.update(WEBHOOKS_ALLOW_HTTP="true", WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true")
    manage(env, "migrate", "--no-input")
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    from compliance.webhooks.models import Delivery
    from compliance.webhooks.sender import webhooks_tick
    from compliance.webhooks.services import subscription_create
    from compliance.webhooks.transport import Connections, request_bytes
    from compliance.webhooks.transport import post as transport_post

    figures: list[tuple[str, str]] = []
    goals: list[Goal] = []

    # -- 1. throughput ---------------------------------------------------------------
    heading(f"throughput: {args.events} events to 3 receivers")
    ports = {name: free_port() for name in ("healthy", "slow", "flaky")}
    receivers = _reset_receivers(ports)
    for name, port in ports.items():
        subscription_create(
            url=f"http://{HOST}:{port}/{name}",
            events=["*"],
            description=name,
            holds_copies=False,
            actor="bench",
        )
    _append(args.events, start=0)
    say(f"  load average (1 min) before the timed runs: {os.getloadavg()[0]:.2f}")
    # what the worker does: `webhooks.send` runs (dispatch included) back to back while
    # busy; the time is the healthy receiver's last receipt, and the other receivers'
    # receipts are counted up to that moment
    started = time.time()
    healthy_done = None
    while time.time() - started < 180:
        webhooks_tick()
        got = _stats(ports["healthy"])
        if len(got) >= args.events:
            healthy_done = max(got.values()) - started
            break
    ours = args.events / healthy_done if healthy_done else 0.0
    window = healthy_done or (time.time() - started)
    received = sum(
        sum(1 for at in _stats(port).values() if at - started <= window) for port in ports.values()
    )
    total_rate = received / window
    say(f"  healthy: {args.events} in {healthy_done or float('nan'):.2f} s = {ours:.0f}/s")
    say(f"  all receivers: {received} received in that time, {total_rate:.0f}/s")
    bodies = list(
        Delivery.objects.filter(subscription__description="healthy")
        .order_by("id")
        .values_list("event_id", "body")
    )
    # correct first: the healthy receiver got each event once, and each is recorded so
    expected = {event for event, _ in bodies}
    undelivered = (
        Delivery.objects.filter(subscription__description="healthy")
        .exclude(status="delivered")
        .count()
    )
    if len(expected) != args.events or set(got) != expected or undelivered:
        fail(
            f"the healthy receiver got {len(got)} events of {len(expected)}, "
            f"{len(set(got) - expected)} unknown; {undelivered} not recorded as delivered"
        )
        receivers.kill()
        return 1
    receivers.kill()

    # baseline: a plain client, the same bodies, the same three receivers
    import urllib3

    ports = {name: free_port() for name in ("healthy", "slow", "flaky")}
    receivers = _reset_receivers(ports)
    http = urllib3.PoolManager(maxsize=settings.WEBHOOKS_SENDER_THREADS)
    jobs = [(name, event, body) for event, body in bodies for name in ports]

    def post(job: tuple[str, str, str]) -> None:
        name, event, body = job
        http.request(
            "POST",
            f"http://{HOST}:{ports[name]}/{name}",
            body=body.encode(),
            headers={"Content-Type": "application/json", "x-id": event},
            retries=False,
        )

    started = time.monotonic()
    with ThreadPoolExecutor(settings.WEBHOOKS_SENDER_THREADS) as pool:
        healthy_jobs = [j for j in jobs if j[0] == "healthy"]
        other = [j for j in jobs if j[0] != "healthy"]
        futures = [pool.submit(post, j) for j in healthy_jobs] + [
            pool.submit(post, j) for j in other[:2000]
        ]
        for future in futures[: len(healthy_jobs)]:
            future.result()
        plain_elapsed = time.monotonic() - started
        for future in futures[len(healthy_jobs) :]:
            future.cancel()
    plain = len(healthy_jobs) / plain_elapsed
    say(f"  plain client, healthy: {len(healthy_jobs)} in {plain_elapsed:.2f} s = {plain:.0f}/s")
    receivers.kill()

    # a stronger one, informative: the sender's own HTTP/1.1 transport (kept-alive
    # connections, no database, no signature), the same threads, bodies and receivers
    ports = {name: free_port() for name in ("healthy", "slow", "flaky")}
    receivers = _reset_receivers(ports)
    from compliance.webhooks.targets import target_check

    targets = {name: target_check(f"http://{HOST}:{port}/{name}") for name, port in ports.items()}
    kept = Connections(per_target=settings.WEBHOOKS_SENDER_THREADS)

    def post_raw(job: tuple[str, str, str]) -> None:
        name, event, body = job
        request = request_bytes(
            targets[name], [("Content-Type", "application/json"), ("x-id", event)], body.encode()
        )
        _, held = transport_post(targets[name], request, kept, None, timeout=15.0)
        if held is not None:
            kept.give(held)

    jobs = [(name, event, body) for event, body in bodies for name in ports]
    started_raw = time.monotonic()
    with ThreadPoolExecutor(settings.WEBHOOKS_SENDER_THREADS) as pool:
        healthy_jobs = [j for j in jobs if j[0] == "healthy"]
        other = [j for j in jobs if j[0] != "healthy"]
        futures = [pool.submit(post_raw, j) for j in healthy_jobs] + [
            pool.submit(post_raw, j) for j in other[:2000]
        ]
        for future in futures[: len(healthy_jobs)]:
            future.result()
        raw_elapsed = time.monotonic() - started_raw
        for future in futures[len(healthy_jobs) :]:
            future.cancel()
    kept.close()
    raw = len(healthy_jobs) / raw_elapsed
    say(f"  raw HTTP/1.1 client, healthy: {len(healthy_jobs)} in {raw_elapsed:.2f} s = {raw:.0f}/s")
    receivers.kill()
    figures += [
        ("ours, healthy receiver", f"{ours:.0f} events/s"),
        ("ours, all receivers", f"{total_rate:.0f} deliveries/s"),
        ("plain client (urllib3), healthy receiver", f"{plain:.0f} posts/s"),
        ("raw HTTP/1.1 client, healthy receiver", f"{raw:.0f} posts/s (informative)"),
        ("ours / raw client", f"{ours / raw:.0%}" if raw else "n/a"),
    ]
    goals.append(Goal(">= 1,000 events/s to the healthy receiver", f"{ours:.0f}/s", ours >= 1000))
    goals.append(
        Goal(
            ">= 50% of the plain client",
            f"{ours / plain:.0%}" if plain else "n/a",
            plain > 0 and ours >= plain / 2,
        )
    )

    # -- 2. latency -----------------------------------------------------------------
    heading(f"latency: {args.rate} events/s for {args.seconds} s")
    Delivery.objects.update(status="delivered")  # the backlog of the first part is done
    ports = {name: free_port() for name in ("healthy", "slow", "flaky")}
    receivers = _reset_receivers(ports)
    from compliance.webhooks.models import Subscription

    for name, port in ports.items():
        Subscription.objects.filter(description=name).update(url=f"http://{HOST}:{port}/{name}")
    stop = threading.Event()

    def sender() -> None:
        """Beat's 1 s ticks and the task: a run that ended busy at its budget is
        followed at once (webhooks_tick), an idle one waits for the next tick."""
        from django.db import connection

        tick = time.monotonic()
        while not stop.is_set():
            if webhooks_tick().busy:
                continue
            while tick <= time.monotonic():
                tick += 1.0
            stop.wait(tick - time.monotonic())
        connection.close()

    thread = threading.Thread(target=sender)
    thread.start()
    from compliance.ledger.models import LedgerEntry

    first_seq = (
        LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    ) + 1
    started = time.monotonic()
    for i in range(args.rate * args.seconds):
        due = started + i / args.rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        _append(1, start=10_000_000 + i)
    time.sleep(5)
    stop.set()
    thread.join()
    committed = {
        f"evt_{seq}": at.timestamp()
        for seq, at in LedgerEntry.objects.filter(seq__gte=first_seq).values_list(
            "seq", "created_at"
        )
    }
    got = _stats(ports["healthy"])
    latencies = [got[e] - t for e, t in committed.items() if e in got]
    receivers.kill()
    missing = len(committed) - len(latencies)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    say(f"  {len(latencies)} received, {missing} not yet; p50 {p50:.3f} s, p99 {p99:.3f} s")
    figures += [("commit to receipt p50 / p99", f"{p50:.3f} s / {p99:.3f} s ({missing} missing)")]
    goals.append(Goal(f"p99 < 2 s at {args.rate}/s", f"{p99:.3f} s", p99 < 2 and missing == 0))
    print_summary("webhooks", figures, goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
