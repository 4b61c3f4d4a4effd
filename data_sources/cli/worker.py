"""``flask --app app worker``: the declared feeds (feeds.toml) and the product's scheduled jobs.

    flask --app app worker            run until stopped (Ctrl-C / SIGTERM); start as many as you like
    flask --app app worker --check    validate feeds.toml, list the feeds and jobs, exit
    flask --app app worker --burst    claim what is due now, run the queued jobs, exit (cron, tests)
"""
from __future__ import annotations

import threading

import click
from flask import Flask


def register(server: Flask) -> None:

    @server.cli.command("worker")
    @click.option("--check", is_flag=True, help="Validate feeds.toml, list the feeds and jobs, and exit.")
    @click.option("--burst", is_flag=True, help="Claim the jobs due now, run the queued jobs, and exit.")
    def worker_command(check: bool, burst: bool) -> None:
        """Run the feeds of feeds.toml and the scheduled jobs (several workers: each job runs once)."""
        from data_sources import worker
        from data_sources.feeds.config import FeedsError
        try:
            feeds = worker.declared_feeds(server)
        except FeedsError as exc:
            raise click.ClickException(f"feeds file error: {exc}") from None
        jobs = worker.scheduled_jobs(server, feeds)
        url = worker.redis_url(server.config)
        for f in feeds:
            where = ", ".join(f.spec.topics) if f.spec.kind == "mqtt" else f"every {f.spec.interval:g} s"
            click.echo(f"feed {f.name}: {f.spec.kind} {f.spec.url} ({where}) mapping {f.mapping}")
        click.echo(f"jobs: {', '.join(j.name for j in jobs) or 'none'}; "
                   f"queue: {url and worker.queue_name(server.config) or 'none (in this process only)'}")
        if check:
            return
        if not url:
            _without_redis(server, worker, jobs, burst)
            return
        prefix = server.config.get("WORKER_PREFIX") or "cityops"
        try:
            makers = worker.subscription_factories(server, feeds, client_prefix=prefix)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        from redis import Redis
        from rq import Queue, SimpleWorker
        redis = Redis.from_url(url)
        queue = Queue(worker.queue_name(server.config), connection=redis)
        for job in jobs:
            worker._JOBS[job.name] = job
        scheduler = worker.Scheduler(jobs, worker.RedisClaims(redis, prefix), worker.rq_submitter(queue))
        if burst:
            scheduler.tick()
            SimpleWorker([queue], connection=redis).work(burst=True)
            return
        stop = threading.Event()
        threads = [threading.Thread(target=scheduler.run_forever, args=(stop,), name="cityops-scheduler", daemon=True)]
        leases = [worker.SubscriptionLease(redis, f"{prefix}:subscription:{name}", make) for name, make in makers]
        threads += [threading.Thread(target=lease.run_forever, args=(stop,), name=f"cityops-lease-{name}", daemon=True)
                    for lease, (name, _make) in zip(leases, makers)]
        for thread in threads:
            thread.start()
        try:
            SimpleWorker([queue], connection=redis).work(with_scheduler=True)
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)


def _without_redis(server, worker, jobs, burst: bool) -> None:
    """No Redis configured: this process runs the jobs, as the app process would (one per instance
    folder: a file lock; the app's own in-process runner then finds them taken)."""
    click.echo("no Redis configured (WORKER_REDIS_URL / CACHE_URL): running the jobs in this process only")
    if burst:
        worker.Scheduler(jobs, worker.LocalClaims(), lambda job, _slot: worker.run_with_retries(job)).tick()
        return
    runner = worker.InProcess(server)
    if not runner.start():
        raise click.ClickException(f"another process runs the jobs of this instance (lock {runner.lock_path})")
    try:
        while runner.thread.is_alive():
            runner.thread.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
