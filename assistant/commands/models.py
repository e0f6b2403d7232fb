"""`assistant models`: the published adapter versions, and which one every chat serves.

    assistant models list                # and the blind A/B win rates of versions judged against each other
    assistant models show v0003          # gate report, probe answers, golden-set evals, A/B win rates, thumbs
                                         # (and their rate per day, plotted), loss curves
    assistant models promote v0003       # running chats switch to it within seconds
    assistant models rollback            # back to the version active before
    assistant models delete v0002
"""

from __future__ import annotations

import shutil

import click

from assistant.adapters import promotion, registry, serving
from assistant.commands.common import TEXT, Context, Group, settings_options
from assistant.curation import require_curator
from assistant.errors import InputError, StoreError
from assistant.formats import json_text
from assistant.text import one_line


@click.group(cls=Group, invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List, inspect, promote, roll back and delete adapter versions (no command: the models screen)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(screen)


@models.command(hidden=True)
@settings_options
def screen(state: Context) -> None:
    """The models screen (Textual): versions, reports, loss curves; promote and roll back."""
    from assistant.tui.models_app import ModelsApp

    ModelsApp(state.settings, state.store()).run()


def _ab(pairs, version: str) -> dict:  # noqa: ANN001
    """The blind A/B pairs `version` is in, for --json (no key where there are none)."""
    mine = [pair.as_dict() for pair in pairs if version in (pair.candidate, pair.baseline)]
    return {"ab": mine} if mine else {}


def _record_dict(record, ratings, pairs=()) -> dict:  # noqa: ANN001
    rating = ratings.get(record.version)
    return {
        "version": record.version,
        "status": record.status,
        "reason": record.reason,
        "created_at": record.created_at,
        "activated_at": record.activated_at,
        "dataset_id": record.dataset_id,
        "dataset_erased": record.dataset_erased_at is not None,
        "base_model": record.base_model,
        "metrics": record.metrics,
        "verdict": record.report.get("verdict"),
        "replies": rating.replies if rating else 0,
        "thumbs_up": rating.up if rating else 0,
        "thumbs_down": rating.down if rating else 0,
        **_ab(pairs, record.version),
    }


@models.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Include deleted versions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@settings_options
def list_(state: Context, show_all: bool, as_json: bool) -> None:
    """Every version, newest first; `*` marks the active one."""
    store = state.store()
    records = store.adapters(include_deleted=show_all)
    ratings = store.adapter_ratings()
    pairs = store.version_pairs()
    if as_json:
        click.echo(json_text([_record_dict(r, ratings, pairs) for r in records]))
        return
    if not records:
        click.echo("no adapter versions yet: `assistant retrain` makes the first")
        return
    from assistant.adapters.report import ab_lines, rating_line

    for record in records:
        eval_loss = record.metrics.get("eval_loss")
        loss = f"{eval_loss:.4f}" if isinstance(eval_loss, (int, float)) else "-"
        flags = [flag for flag, on in (("ERASED data", record.dataset_erased_at), ("deleted", record.deleted_at)) if on]
        click.echo(
            f"{'*' if record.status == 'active' else ' '} {record.version}  {record.status:<9}  {record.created_at[:16]}  "
            f"eval loss {loss}  {rating_line(ratings.get(record.version))}" + (f"  [{', '.join(flags)}]" if flags else "")
        )
    for record in records:
        if record.dataset_erased_at and not record.deleted_at:
            first = "promote another version or roll back, then " if record.status == "active" else ""
            click.echo(f"{record.version} was trained on data erased since: retrain without it (`assistant retrain`), "
                       f"then {first}`assistant models delete {record.version}`")
    if pairs:
        click.echo("blind A/B (wins, losses, ties of the newer version):")
        for line in ab_lines(pairs):
            click.echo(line)
    if store.active_adapter() is None:
        click.echo("no version is active: chats use the base model")


@models.command()
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the eval report, metrics and thumbs per day).")
@settings_options
def show(state: Context, version: str, as_json: bool) -> None:
    """One version: status, gate report, probe answers, golden-set evals, thumbs on its replies (and their
    thumbs-up rate per day beside the active version's), loss curves."""
    from assistant.adapters.report import describe

    store = state.store()
    record = store.adapter(registry.normalise_version(version))
    points = store.run_metrics(record.run_id) if record.run_id else []
    ratings = store.adapter_ratings()
    evals = store.golden_evals(record.version)
    pairs = store.version_pairs(record.version)
    active = store.active_adapter()
    active_version = active.version if active else None
    thumbs = store.thumbs_over_time([v for v in (record.version, active_version) if v])
    if as_json:
        click.echo(json_text({**_record_dict(record, ratings, pairs), "report": record.report,
                              "loss": [p.__dict__ for p in points], "golden_evals": [e.__dict__ for e in evals],
                              "thumbs_by_day": [day.as_dict() for day in thumbs.get(record.version, [])]}))
        return
    width = max(40, min(100, shutil.get_terminal_size((80, 24)).columns - 2))
    click.echo(describe(record, points, ratings.get(record.version), width=width, evals=evals, pairs=pairs,
                        thumbs=thumbs, active=active_version))


@models.command()
@click.argument("version")
@click.option("--reason", default="", type=TEXT, help="Recorded with the change.")
@click.option("--force", is_flag=True, help="Promote a version the eval gate rejected.")
@settings_options
def promote(state: Context, version: str, reason: str, force: bool) -> None:
    """Make VERSION the active adapter (running chats switch to it between replies)."""
    settings = state.settings
    store = state.store()
    name = registry.normalise_version(version)
    rejected = promotion.gate_rejected(store.adapter(name))
    # The files checked as a chat checks them; with a model server, loaded there first; refused: not promoted.
    record, warning = promotion.promote(settings, store, name, reason=reason or f"promoted by {settings.user}", force=force)
    if rejected is not None:
        click.echo(f"warning: {name} was REJECTED by the eval gate ({one_line(rejected, 200)}); promoted (--force)", err=True)
    click.echo(f"{record.version} is active")
    _warn(warning, serving.tidy(settings, serving.keep(store)))


@models.command()
@click.option("--reason", default="", type=TEXT, help="Recorded with the change.")
@settings_options
def rollback(state: Context, reason: str) -> None:
    """Deactivate the active version and reactivate the one before it (or the base model)."""
    settings = state.settings
    require_curator(settings)  # with `curators` set, only they change what every chat serves
    store = state.store()
    # The version rolled back to is normally loaded on the model server already; one it refuses is
    # not made active (the chats could not serve it): promote another version instead.
    warning = serving.prepare(settings, store.rollback_target())
    before, after = store.rollback(actor=settings.user, reason=reason or f"rolled back by {settings.user}")
    click.echo(f"rolled back {before}: " + (f"{after} is active" if after else "chats use the base model"))
    _warn(warning, serving.tidy(settings, serving.keep(store)))


def _warn(*warnings: str | None) -> None:
    for warning in warnings:
        if warning:
            click.echo(f"warning: {one_line(warning)}", err=True)


@models.command()
@click.argument("version")
@settings_options
def delete(state: Context, version: str) -> None:
    """Delete an inactive version's files (its record and history stay)."""
    settings = state.settings
    store = state.store()
    name = registry.normalise_version(version)
    if store.adapter(name).status == "active":
        raise InputError(f"{name} is active; promote another version or roll back first")
    directory = registry.version_dir(settings.data_dir, name)  # nothing outside the data dir is touched
    store.delete_adapter(name, actor=settings.user)  # refuses the active version, in one transaction
    try:
        registry.remove(directory)
    except OSError as exc:
        raise StoreError(f"{name} is deleted but its files could not be removed: {exc.strerror}") from None
    click.echo(f"deleted {name}")
