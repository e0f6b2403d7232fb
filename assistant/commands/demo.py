"""`assistant demo build`: build (or find) the offline demo model ahead of the first chat."""

from __future__ import annotations

import json
import shutil

import click

from assistant.commands.common import Context, Group, settings_options


@click.group(cls=Group)
def demo() -> None:
    """The built-in offline demo model."""


@demo.command()
@click.option("--recipe", type=click.Choice(["demo", "tiny"]), help="Model size (default: the demo_recipe setting).")
@click.option("--force", is_flag=True, help="Rebuild even when a built model exists.")
@settings_options
def build(state: Context, recipe: str | None, force: bool) -> None:
    """Build the demo model from the sample conversations (about 3 minutes on 2 CPU cores)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from assistant.demo.build import BUILD_INFO, RECIPES, demo_model_dir, ensure_demo_model, is_built
    from assistant.demo.samples import load_samples

    settings = state.settings
    chosen = recipe or settings.demo_recipe
    target = demo_model_dir(settings.models_dir, RECIPES[chosen], settings.demo_seed, load_samples())
    if force and target.exists():
        shutil.rmtree(target)
    if is_built(target):
        click.echo(f"already built: {target}")
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        path = ensure_demo_model(settings.models_dir, recipe=chosen, seed=settings.demo_seed, progress=progress)
    info = json.loads((path / BUILD_INFO).read_text())
    click.echo(
        f"built {path} in {info['build_seconds']} s "
        f"({info['steps']} steps, last training loss {info['last_train_loss']:.3f})"
    )
