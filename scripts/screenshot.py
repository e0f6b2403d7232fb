"""Draw docs/screenshot.svg with the app itself: sample history, a streamed demo answer, a rating.

    python scripts/screenshot.py [--data-dir DIR] [--out docs/screenshot.svg]

Uses (and builds, the first time) the demo model in the data dir, imports a few sample
conversations, asks a sample question, rates the answer and saves the screen as SVG.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def draw(data_dir: Path, out: Path) -> None:
    from assistant.demo.samples import read_conversations, sample_files
    from assistant.formats import parse_import_file
    from assistant.settings import load_settings
    from assistant.store import Store
    from assistant.tui.app import AssistantApp
    from assistant.tui.loader import backend_loader

    settings = load_settings(data_dir=data_dir, overrides={"user": "sam", "hub_model": "", "fallback_model": "demo", "temperature": 0.0}).settings
    store = Store.open(settings.db_path)
    if not store.conversations(user="sam"):
        billing = [f for f in sample_files() if f.stem == "billing"][0]
        store.import_conversations(parse_import_file(billing)[:4], user="sam", default_system_prompt="")
    question = read_conversations([f for f in sample_files() if f.stem == "returns"][0])[0][0]["content"]

    app = AssistantApp(settings, store, backend_loader(settings))
    async with app.run_test(size=(120, 36)) as pilot:
        deadline = time.monotonic() + 600
        while app.backend is None:
            if app.load_error or time.monotonic() > deadline:
                raise SystemExit(f"the model did not load: {app.load_error}")
            await pilot.pause(0.2)
        await pilot.press("ctrl+n")
        app.chat.composer.insert(question)
        await pilot.press("enter")
        while app.chat.active is not None or app.chat.waiting is not None:
            await pilot.pause(0.1)
        await pilot.press("escape", "plus")
        await pilot.pause(0.5)
        app.save_screenshot(filename=out.name, path=str(out.parent))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="screenshot-")))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.svg")
    args = parser.parse_args()

    from assistant.logs import quiet_libraries, setup_logging

    quiet_libraries()
    setup_logging(None)
    asyncio.run(draw(args.data_dir, args.out))


if __name__ == "__main__":
    main()
