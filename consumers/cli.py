"""``segstream``: the product's verbs.

Settings are ``SEGSTREAM_*`` environment variables (``segstream config`` lists them).
An option that a setting also controls reads that variable too (``--help`` shows it
beside the option, see :func:`setting_option`); given, it overrides the setting in the
one settings object, built once per command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from segstream.schemas.errors import EXIT_CONFIG, EXIT_FAILURE, ConfigError, SegstreamError
from segstream.schemas.settings import CLUSTERER_TYPES, Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Real-time behavioural customer segmentation.\n\n"
    "Configured by SEGSTREAM_* environment variables: `segstream config` lists them with "
    "their values. An option that a setting also controls shows its variable in --help.",
)
dev_app = typer.Typer(no_args_is_help=True, help="Local Kafka and Redis (deploy/local).")
schemas_app = typer.Typer(no_args_is_help=True, help="Event contracts for producers.")
app.add_typer(dev_app, name="dev")
app.add_typer(schemas_app, name="schemas")
err = Console(stderr=True, soft_wrap=True)  # messages stay whole lines (paths, logs)


def env_name(field: str) -> str:
    """The environment variable of a setting: ``api_port`` -> ``SEGSTREAM_API_PORT``."""
    return f"SEGSTREAM_{field.upper()}"


def setting_option(field: str, help: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` whose value the setting ``field`` also controls: it reads the
    setting's environment variable (``--help`` shows it, and the setting's default). Its
    default must be None (neither given: the setting decides); the command passes its
    value to :func:`settings`, so that the option and the setting never disagree."""
    return typer.Option(
        help=help,
        envvar=env_name(field),
        show_envvar=True,
        show_default=str(Settings.model_fields[field].default),
        **kwargs,
    )


def settings(**options: Any) -> Settings:
    """The settings from the environment. ``options``: settings given by command-line
    options (see :func:`setting_option`; None: not given), over the environment's."""
    given = {name: value for name, value in options.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err.print(f"[red]invalid configuration[/red] ({exc.error_count()} problems):")
        for e in exc.errors(include_url=False, include_input=False):
            # a discriminated union puts its tag in the location: not part of the variable
            loc = [str(p) for p in e["loc"] if str(p) not in CLUSTERER_TYPES]
            name = env_name("__".join(loc))
            err.print(f"  {name}: {e['msg']}")
        raise typer.Exit(2) from None


def fail(exc: Exception, code: int | None = None) -> typer.Exit:
    """One line on stderr (``error: ...``) and the exit code: ``EXIT_CONFIG`` for a
    configuration error, else ``EXIT_FAILURE`` unless ``code`` says otherwise."""
    err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    if code is None:
        code = EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILURE
    return typer.Exit(code)


# ------------------------------------------------------------------ config
@app.command()
def config(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Print the effective settings (secrets masked)."""
    data = settings().masked()
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    table = Table("setting", "value", "environment variable")
    for key, value in sorted(data.items()):
        env = env_name(key) if key in Settings.model_fields else ""  # not topics, group
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value, env)
    Console().print(table)


# --------------------------------------------------------------------- dev
def _local(script: str, services: list[str]) -> None:
    from segstream.consumers.checkout import checkout_path

    try:
        path = checkout_path(f"dev {script}", "deploy", "local", script)
    except SegstreamError as exc:
        raise fail(exc) from None
    rc = subprocess.call([str(path), *services])  # noqa: S603 - our own script
    if rc:
        raise typer.Exit(rc)


@dev_app.command("up")
def dev_up(
    services: Annotated[list[str] | None, typer.Argument(help="kafka, redis")] = None,
) -> None:
    """Start the local Kafka broker and Redis server (idempotent)."""
    _local("up", services or [])


@dev_app.command("down")
def dev_down(
    services: Annotated[list[str] | None, typer.Argument(help="kafka, redis")] = None,
) -> None:
    """Stop them (data is kept)."""
    _local("down", services or [])


@dev_app.command("status")
def dev_status(
    services: Annotated[list[str] | None, typer.Argument(help="kafka, redis")] = None,
) -> None:
    """Show whether they run (exit 3 when not)."""
    _local("status", services or [])


# ------------------------------------------------------------------ worker
@app.command()
def worker(loglevel: Annotated[str, typer.Option(help="debug, info, warning")] = "info") -> None:
    """Run the stream processor (until SIGTERM; shuts down gracefully)."""
    from segstream.streams.worker import run

    try:
        run(settings(), loglevel=loglevel)
    except SegstreamError as exc:
        raise fail(exc) from None


# ---------------------------------------------------------------- generate
@app.command()
def generate(
    users: Annotated[int, typer.Option(min=1, help="How many users.")] = 2000,
    seed: Annotated[int, typer.Option(help="Same seed, same events.")] = 7,
    truth: Annotated[Path | None, typer.Option(help="Write profile → persona JSON here.")] = None,
) -> None:
    """Produce the built-in synthetic web/ad/CRM stream (planted personas) to the topics."""
    from segstream.consumers.sample import produce_sample

    try:
        n, g = produce_sample(settings(), users=users, seed=seed)
    except SegstreamError as exc:
        raise fail(exc) from None
    if truth:
        truth.write_text(json.dumps(g.truth, indent=0, sort_keys=True))
    err.print(f"produced {n} events for {users} users")


# ------------------------------------------------------------------ replay
@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[str, typer.Option(help="web, ad or crm")],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN: read event field FIELD from column COLUMN."),
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="FIELD=VALUE: a constant for every row.")
    ] = None,
    rejects: Annotated[Path | None, typer.Option(help="Write rejected rows (JSONL) here.")] = None,
) -> None:
    """Backfill exported history: keeps event time, validates, reports rejected rows."""
    from segstream.consumers.replay import ReplayError, replay_file

    s = settings()
    try:
        report = replay_file(
            s,
            file,
            source=source,
            fmt=fmt,
            maps=map_ or [],
            sets=set_ or [],
            rejects=rejects,
            console=err,
        )
    except (ReplayError, SegstreamError) as exc:
        raise fail(exc) from None
    err.print(report.summary(s), markup=False, highlight=False)
    if report.sent == 0:
        raise typer.Exit(EXIT_FAILURE)


# ------------------------------------------------------------------ lookup
@app.command()
def lookup(
    users: Annotated[
        list[str],
        typer.Argument(
            help="User ids (``cust-1``) or profile keys (``u:cust-1``, ``a:<anon id>``)."
        ),
    ],
) -> None:
    """One JSON line per user: segment id and name, scores, features, model version."""
    from segstream.consumers.queries import lookup_users

    try:
        lines, unknown = lookup_users(settings(), users)
    except SegstreamError as exc:
        raise fail(exc) from None
    for line in lines:
        typer.echo(orjson.dumps(line, option=orjson.OPT_NON_STR_KEYS).decode())
    if unknown:
        raise typer.Exit(1)


# ---------------------------------------------------------------- segments
@app.command()
def segments(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The live segments: id, size, name and profile."""
    from segstream.consumers.queries import segment_table

    try:
        rows = segment_table(settings())
    except SegstreamError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    Console().print(render_segments(rows))


# ------------------------------------------------------------------ report
@app.command()
def report(
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    sample: Annotated[
        int, typer.Option(min=0, help="Users drawn for the map of users (0: no map).")
    ] = 2000,
) -> None:
    """A self-contained HTML report: sizes over time, profiles, a map of users, drift."""
    from segstream.consumers.report import write_report

    try:
        data = write_report(settings(), out, sample=sample)
    except SegstreamError as exc:
        raise fail(exc) from None
    drawn = len(data.users.points) if data.users else 0
    err.print(
        f"wrote {out}: {len(data.catalog)} segments, {len(data.history)} model cycles, "
        f"{drawn} users on the map"
    )


def render_segments(rows: list[dict[str, Any]]) -> Table:
    """Segments with their business figures and what sets each apart (its strongest
    deviations from the population)."""
    table = Table("id", "size", "name", "revenue", "conv.", "CAC", "ROAS", "stands out by")
    for r in rows:
        z, centroid, h = r.get("z") or {}, r.get("centroid") or {}, r.get("health") or {}
        top = sorted(z.items(), key=lambda kv: -abs(kv[1]))[:3]
        traits = ", ".join(f"{k}={centroid.get(k, 0):.3g} ({v:+.1f})" for k, v in top)
        table.add_row(
            str(r["id"]),
            str(r["size"]),
            str(r["name"]),
            _figure(h.get("revenue"), "{:,.0f}"),
            _figure(h.get("conversion_rate"), "{:.0%}"),
            _figure(h.get("cac"), "{:,.2f}"),
            _figure(h.get("roas"), "{:.1f}"),
            traits,
        )
    return table


def _figure(x: float | None, fmt: str) -> str:
    return "–" if x is None else fmt.format(x)


# ------------------------------------------------------------------- demo
@app.command()
def demo(
    users: Annotated[int, typer.Option(min=10)] = 2000,
    seed: int = 7,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for segments.")] = 600,
) -> None:
    """Generate the sample data, run a worker until every user has a segment, show them."""
    from segstream.consumers.sample import run_demo

    try:
        rc = run_demo(settings(), users=users, seed=seed, timeout=timeout, console=Console())
    except SegstreamError as exc:
        raise fail(exc) from None
    raise typer.Exit(rc)


# ----------------------------------------------------------------- schemas
@schemas_app.command("export")
def schemas_export(
    out: Annotated[Path, typer.Option(help="Folder for the JSON Schemas.")] = Path("schemas-json"),
) -> None:
    """Write JSON Schema for the web, ad and crm event contracts."""
    from segstream.schemas.events import CONTRACTS

    out.mkdir(parents=True, exist_ok=True)
    for source, model in CONTRACTS.items():
        path = out / f"{source}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
        err.print(f"wrote {path}")


# --------------------------------------------------------------------- api
@app.command()
def api(
    host: Annotated[str | None, setting_option("api_host", "Interface to listen on.")] = None,
    port: Annotated[int | None, setting_option("api_port", "Port.", min=0, max=65535)] = None,
    loglevel: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    access_log: Annotated[
        bool, typer.Option(help="Log every request (costs about 0.6 ms of CPU per request).")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes sharing the port (rate limits are per process).")
    ] = 1,
) -> None:
    """Serve the personalization lookup API (HTTP/JSON; API keys from `segstream keys`)."""
    import uvicorn

    from segstream.consumers.api import create_app

    # checked here, so a bad setting fails before any process starts
    s = settings(api_host=host, api_port=port)
    # one process: this app; several: each builds its own from the same environment,
    # which therefore gets what the options said
    if workers > 1:
        os.environ.update({env_name(f): str(getattr(s, f)) for f in ("api_host", "api_port")})
    target: Any = create_app(s) if workers == 1 else "segstream.consumers.api:create_app"
    uvicorn.run(
        target,
        factory=workers > 1,
        workers=workers,
        host=s.api_host,
        port=s.api_port,
        log_level=loglevel,
        access_log=access_log,
        server_header=False,
    )


# -------------------------------------------------------------------- keys
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP API (segstream api).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="segments:read or members:read; repeat for both."),
    ],
    rate: Annotated[
        float, typer.Option(min=0.01, help="Requests per second, per API process.")
    ] = 100,
    name: Annotated[str | None, typer.Option(help="Unique name, used to revoke it.")] = None,
) -> None:
    """Create a key and print it (only this once: Redis keeps its SHA-256 alone)."""
    from segstream.consumers.api_keys import (
        admin_client,
        apikeys_key,
        create_key,
        hash_key,
        publish_keys,
    )

    s = settings()
    try:
        client = admin_client(s)
        key, record = create_key(client, s, scope, rate, name)
    except SegstreamError as exc:
        raise fail(exc) from None
    try:
        publish_keys(s, {hash_key(key): record})
    except (SegstreamError, RuntimeError) as exc:
        client.hdel(apikeys_key(s), hash_key(key))  # not durable: not usable either
        raise fail(exc) from None
    typer.echo(key)
    err.print(
        f"created key {record.name!r} (scopes {', '.join(sorted(record.scopes))}, "
        f"{record.rate_per_s:g} requests/s per API process). It is shown only now: store it; "
        "the API accepts it within SEGSTREAM_API_KEY_CACHE_S seconds."
    )


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Names, scopes and rates of the keys (never the keys)."""
    from datetime import UTC, datetime

    from segstream.consumers.api_keys import ApiKey, admin_client, list_keys

    s = settings()
    try:
        keys = list_keys(admin_client(s), s)
    except SegstreamError as exc:
        raise fail(exc) from None

    def created(k: ApiKey) -> str:
        return datetime.fromtimestamp(k.created_ms / 1000, tz=UTC).isoformat(timespec="seconds")

    if as_json:
        rows = [
            {
                "name": k.name,
                "scopes": sorted(k.scopes),
                "rate_per_s": k.rate_per_s,
                "created": created(k),
            }
            for k in keys
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "scopes", "rate/s", "created (UTC)")
    for k in keys:
        table.add_row(k.name, " ".join(sorted(k.scopes)), f"{k.rate_per_s:g}", created(k))
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Delete a key; running APIs refuse it within SEGSTREAM_API_KEY_CACHE_S seconds."""
    from segstream.consumers.api_keys import admin_client, keys_named, publish_keys, revoke_key

    s = settings()
    try:
        client = admin_client(s)
        digests = keys_named(client, s, name)
    except SegstreamError as exc:
        raise fail(exc) from None
    if not digests:
        raise fail(LookupError(f"no key named {name!r} (see `segstream keys list`)"))
    try:
        publish_keys(s, dict.fromkeys(digests))  # first: a rebuild must never bring it back
        revoke_key(client, s, name)
    except (SegstreamError, RuntimeError) as exc:
        raise fail(exc) from None
    err.print(f"revoked key {name!r}")


export_app = typer.Typer(no_args_is_help=True, help="Exports for ad platforms and CRMs.")
app.add_typer(export_app, name="export")


@export_app.command("customer-match")
def export_customer_match(
    segment: Annotated[int, typer.Option(help="Segment id.")],
    out: Annotated[Path | None, typer.Option(help="File (default: standard output).")] = None,
) -> None:
    """A segment's members as a hashed customer list (header Email, SHA-256 hex)."""
    from segstream.consumers.exports import customer_match, open_out

    try:
        with open_out(out) as f:
            report = customer_match(settings(), segment, f)
    except SegstreamError as exc:
        raise fail(exc) from None
    err.print(
        f"wrote {report.written} hashed emails; left out {report.without_email} without "
        f"an email and {report.no_consent} without marketing consent"
    )


@export_app.command("changes")
def export_changes(
    since: Annotated[str, typer.Option(help="Window: 90s, 30m, 24h, 7d.")] = "24h",
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    out: Annotated[Path | None, typer.Option(help="File (default: standard output).")] = None,
) -> None:
    """Users whose segment changed in the window, for CRMs."""
    from segstream.consumers.exports import changes, open_out, parse_window

    try:
        window = parse_window(since)
        with open_out(out) as f:
            report = changes(settings(), window, fmt, f)
    except ValueError as exc:
        raise fail(exc, 2) from None
    except SegstreamError as exc:
        raise fail(exc) from None
    err.print(f"wrote {report.written} changes")


dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: what was refused, and why.")
app.add_typer(dlq_app, name="dlq")
Since = Annotated[str, typer.Option(help="Window: 90s, 30m, 24h, 7d, or all.")]
Reasons = Annotated[list[str] | None, typer.Option("--reason", help="Only this reason (repeat).")]


def _since_ms(since: str) -> int | None:
    import time

    from segstream.consumers.exports import parse_window

    if since == "all":
        return None
    try:
        return int((time.time() - parse_window(since)) * 1000)
    except ValueError as exc:
        raise fail(exc, 2) from None


@dlq_app.command("show")
def dlq_show(
    since: Since = "24h",
    reason: Reasons = None,
    limit: Annotated[int, typer.Option(help="Latest letters to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead letters of the window: counts by reason, stage and topic, and the latest."""
    from segstream.consumers.dlq import show

    try:
        summary = show(settings(), _since_ms(since), reason or (), limit)
    except SegstreamError as exc:
        raise fail(exc) from None
    if as_json:
        out = {
            "letters": summary.letters,
            "by_reason": dict(summary.by_reason),
            "by_stage": dict(summary.by_stage),
            "by_topic": dict(summary.by_topic),
            "unreadable": summary.unreadable,
            "latest": [d.as_dict() for d in summary.latest],
        }
        typer.echo(orjson.dumps(out).decode())
        return
    console = Console()
    counts = Table(title=f"{summary.letters} dead letters ({since})")
    counts.add_column("reason")
    counts.add_column("letters", justify="right")
    for name, n in summary.by_reason.most_common():
        counts.add_row(name, str(n))
    console.print(counts)
    latest = Table(title="latest")
    for col in ("at", "reason", "stage", "from", "detail", "value"):
        latest.add_column(col, overflow="fold")
    for d in summary.latest:
        at = _iso(d.at_ms)
        where = f"{d.topic}[{d.partition}]@{d.offset}"
        latest.add_row(at, d.reason, d.stage, where, d.detail[:120], d.value[:80])
    console.print(latest)
    if summary.unreadable:
        err.print(f"{summary.unreadable} records on the dlq topic are not dead letters")


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


@dlq_app.command("replay")
def dlq_replay(
    since: Since = "24h",
    reason: Reasons = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, send nothing.")] = False,
) -> None:
    """Send dead letters back to the topics they came from, after the cause is fixed.
    Safe to repeat: events already applied are skipped by id; letters that still fail
    come back as new letters."""
    from segstream.consumers.dlq import replay

    try:
        done = replay(settings(), _since_ms(since), reason or (), dry_run)
    except (SegstreamError, RuntimeError) as exc:
        raise fail(exc) from None
    verb = "would replay" if dry_run else "replayed"
    by_reason = ", ".join(f"{r} {n}" for r, n in done.by_reason.most_common()) or "none"
    typer.echo(f"{verb} {done.sent} letters ({by_reason})")
    if done.emails_removed:
        typer.echo(f"{done.emails_removed} of them without their redacted email field")


@app.command()
def erase(
    user_id: Annotated[str | None, typer.Option(help="The customer's user id.")] = None,
    anonymous_id: Annotated[str | None, typer.Option(help="An anonymous (device) id.")] = None,
    email: Annotated[
        str | None,
        typer.Option(help="An email address ('-': read it from stdin); hashed, never stored."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Kept in the audit entry, e.g. a ticket id.")] = "",
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for a worker to confirm (0: do not wait).")
    ] = 60.0,
) -> None:
    """Forget a person: their profile, everything merged into it, their segment in Redis
    and in the compacted topics; their later events are dropped. Audited on ``audit``."""
    from segstream.consumers.erase import request, wait_erased
    from segstream.models.erasure import subject

    s = settings()
    if email == "-":
        email = sys.stdin.readline().strip()
    try:
        alias = subject(
            user_id=user_id,
            anonymous_id=anonymous_id,
            email=email,
            email_key=s.email_hash_key.get_secret_value().encode(),
        )
    except ValueError as exc:
        raise fail(exc, 2) from None
    try:
        done = request(s, alias, reason)
        typer.echo(f"erasure of {alias} recorded; its later events are dropped")
        if wait > 0:
            entries = wait_erased(s, done, wait)
            found = sum(1 for e in entries if (e.detail or {}).get("found"))
            typer.echo(f"erased by the worker: {found} profiles held data")
    except (SegstreamError, RuntimeError, TimeoutError) as exc:
        raise fail(exc) from None


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="About 50,000 events.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures here.")] = None,
    users: Annotated[int | None, typer.Option(help="Users to generate (default 4,000).")] = None,
    scale: Annotated[
        bool,
        typer.Option("--scale", help="Only one worker's throughput and memory (100,000 users)."),
    ] = False,
    events_per_user: Annotated[
        int, typer.Option(min=1, help="With --scale: each user's latest events (default 5).")
    ] = 5,
    freshness_at: Annotated[
        list[float] | None,
        typer.Option(help="Only freshness, at this rate (events/s; repeat for more)."),
    ] = None,
) -> None:
    """Measure against the configured Kafka and Redis (bench/throughput.py): one worker end
    to end beside a consume-only Faust app and a plain consume loop, two workers,
    freshness at a fixed load, lookup vs Redis GET latency, clustering quality. With
    --freshness-at, only freshness, second by second (bench/freshness.py; 1,000 users
    unless --users). With --scale, only the plain loop and one worker on a backlog, at a
    population's scale (--users, --events-per-user)."""
    from segstream.consumers.checkout import checkout_path

    name = "freshness.py" if freshness_at else "throughput.py"
    try:
        script = checkout_path("bench", "bench", name)
    except SegstreamError as exc:
        raise fail(exc) from None
    args = [sys.executable, str(script)]
    if freshness_at:
        args += [a for rate in freshness_at for a in ("--rate", str(rate))]
    elif scale:
        args += ["--scale", "--events-per-user", str(events_per_user)]
    else:
        args += ["--quick"] if quick else []
    args += ["--json", str(json_out)] if json_out else []
    args += ["--users", str(users)] if users else []
    raise typer.Exit(subprocess.run(args, check=False).returncode)  # noqa: S603 (our script)


@app.command("rebuild-redis")
def rebuild_redis() -> None:
    """Write the live view again from Kafka: users from the compacted segments topic, merge
    pointers from the profiles changelog, the catalog from the latest model, API keys from
    the api-keys topic. Safe beside a running worker (writes never move a user back in
    time)."""
    from segstream.consumers.rebuild import rebuild

    try:
        done = rebuild(settings())
    except SegstreamError as exc:
        raise fail(exc) from None
    typer.echo(
        f"rebuilt {done.records} users ({done.written} written, the rest already current), "
        f"{done.pointers} merge pointers, model v{done.model_version}, {done.api_keys} API keys"
    )


@app.command()
def triggers(loglevel: Annotated[str, typer.Option(help="debug, info, warning")] = "info") -> None:
    """Run the retargeting trigger relay: segment changes → rules → signed webhooks."""
    from segstream.consumers.triggers import run as run_triggers

    try:
        run_triggers(settings(), loglevel=loglevel)
    except SegstreamError as exc:
        raise fail(exc) from None


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
