"""The adapter versions screen (F2 in the chat, or an app of its own): every published version with
its status, eval loss, gate verdict and the thumbs its replies got; the highlighted one in detail
(`assistant.adapters.report.describe`, the same text as `assistant models show`, with its thumbs-up rate
per day beside the active version's); promote and roll back.

Driven by the store's training API only (no SQL, no files, no model). Promoting or rolling back
changes the registry's active version; running chats follow it (tui/swap.py). With a model server,
the version is loaded there first, in a worker (adapters/serving.py): one it refuses is not promoted. Report text came
from users and models: it is shown as plain Text, never as markup.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static

from assistant.adapters import promotion, serving
from assistant.adapters.report import describe
from assistant.curation import require_curator
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.store import AdapterRecord, RatingCounts
from assistant.text import one_line
from assistant.tui.messages import ActiveAdapterChanged
from assistant.tui.screens.base import AppScreen
from assistant.tui.screens.dialogs import Confirm
from assistant.tui.swap import served

COLUMNS = ("version", "status", "created", "eval loss", "gate", "replies", "up")
STATUS_STYLES = {"active": "bold green", "candidate": "yellow", "rejected": "red", "retired": "dim"}
EMPTY = "No adapter versions yet: a retrain publishes its adapter here, and promoting one makes the chat use it."


def version_row(record: AdapterRecord, ratings: RatingCounts | None) -> list[Text]:
    """One table row, every cell a Text (a str cell would be read as markup)."""
    loss = record.metrics.get("eval_loss")
    verdict = record.report.get("verdict") if record.report else None
    up_rate = ratings.up_rate if ratings is not None else None
    return [
        Text(one_line(record.version, 16), style="bold"),
        Text(one_line(record.status, 12), style=STATUS_STYLES.get(record.status, "")),
        Text(one_line(record.created_at.replace("T", " ")[:16], 16)),
        Text(f"{loss:.4f}" if isinstance(loss, (int, float)) else "-", justify="right"),
        Text(one_line(str(verdict), 16) if verdict else "-"),
        Text(str(ratings.replies) if ratings is not None else "0", justify="right"),
        Text(f"{up_rate:.0%}" if up_rate is not None else "-", justify="right"),
    ]


class ModelsScreen(AppScreen):
    """Adapter versions. `standalone`: the app's only screen: closing it quits; else it was pushed
    over the chat and closing goes back there."""

    BINDINGS = [
        Binding("p", "promote", "Promote"),
        Binding("b", "rollback", "Roll back"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self, *, standalone: bool = False) -> None:
        super().__init__()
        self.standalone = standalone
        self.records: list[AdapterRecord] = []
        self.ratings: dict[str, RatingCounts] = {}
        self.shown: str | None = None  # the version the detail pane shows

    def compose(self):  # noqa: ANN201
        yield Static("", id="models-header", markup=False)
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="models-detail-pane"):
            yield Static("", id="models-detail", markup=False)
        yield Footer()

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    @property
    def current(self) -> AdapterRecord | None:
        """The highlighted version: what the keys act on."""
        row = self.table.cursor_row
        if not self.records or row is None or not 0 <= row < len(self.records):
            return None
        return self.records[row]

    def on_mount(self) -> None:
        self.table.add_columns(*COLUMNS)
        self.reload()
        self.table.focus()

    # -- the table and the detail ----------------------------------------------------------------

    def reload(self, *, select: str | None = None) -> None:
        """Read the versions again; keep the highlight on `select`, else on the version it was on."""
        keep = select or (self.current.version if self.current else None)
        try:
            records = self.store.adapters()
            ratings = self.store.adapter_ratings()
        except AssistantError as exc:
            self.notify(f"Could not read the versions: {one_line(str(exc), 200)}", severity="error", markup=False)
            return
        self.records, self.ratings = records, ratings
        table = self.table
        table.clear()
        for record in records:
            table.add_row(*version_row(record, ratings.get(record.version)), key=record.version)
        versions = [r.version for r in records]
        if keep in versions:
            table.move_cursor(row=versions.index(keep))
        active = next((r.version for r in records if r.status == "active"), None)
        header = Text(" Adapter versions", style="bold")
        header.append(f"  ·  {len(records)} published  ·  active: {served(active)}")
        self.query_one("#models-header", Static).update(header)
        self.shown = None
        self.show_current()

    def show_current(self) -> None:
        record = self.current
        if record is None:
            self.shown = None
            self.query_one("#models-detail", Static).update(Text(EMPTY))
            return
        metrics, evals, pairs, thumbs = [], [], [], {}
        active = next((r.version for r in self.records if r.status == "active"), None)
        try:
            metrics = self.store.run_metrics(record.run_id) if record.run_id else []
            evals = self.store.golden_evals(record.version)
            pairs = self.store.version_pairs(record.version)
            thumbs = self.store.thumbs_over_time([v for v in (record.version, active) if v])
        except AssistantError as exc:
            self.notify(f"Could not read the training metrics: {one_line(str(exc), 200)}", severity="warning",
                        markup=False)
        width = max(40, min(120, self.size.width - 6))
        text = describe(record, metrics, self.ratings.get(record.version), width=width, evals=evals, pairs=pairs,
                        thumbs=thumbs, active=active)
        self.query_one("#models-detail", Static).update(Text(text))
        self.shown = record.version

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        current = self.current
        if current is not None and current.version != self.shown:
            self.show_current()

    # -- actions -------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        self.reload()
        self.notify("Refreshed", markup=False, timeout=2)

    def action_promote(self) -> None:
        record = self.current
        if record is None:
            self.notify("No version to promote.", markup=False)
            return
        version = record.version
        if record.status == "active":
            self.notify(f"{version} is already active.", markup=False)
            return
        active = next((r.version for r in self.records if r.status == "active"), None)
        question = f"Promote {version}? Every chat answers with it within seconds" + (
            f"; {active} is retired." if active else " instead of the base model."
        )
        try:
            promotion.check(self.settings, self.store, version, force=True)  # curators; not deleted
        except AssistantError as exc:
            self.notify(f"{version} was not promoted: {one_line(str(exc), 200)}", severity="error", markup=False)
            return
        rejected = promotion.gate_rejected(record)
        if rejected is not None:
            question += f"\n\nWARNING: the eval gate REJECTED {version} ({one_line(rejected, 160)}). Promote it anyway?"
        elif record.report:
            verdict = one_line(str(record.report.get("verdict", "?")), 20)
            question += f"\n\nEval gate: {verdict} - {one_line(str(record.report.get('reason', '')), 160)}"
        else:
            question += "\n\nIt was not evaluated by the eval gate."

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            with self.reported(f"{version} was not promoted"):
                # The same checks as `assistant models promote`, files and model server in a worker.
                self._prepare(version, promote, refused=f"{version} was not promoted", check=promotion.verify)

        def promote(warning: str | None) -> None:
            with self.reported(f"{version} was not promoted"):
                self.store.promote(version, actor=self.settings.user, reason="promoted in the chat app")
                self.notify(f"{version} is active", markup=False)
                self._changed(warning)
            self.reload(select=version)

        self.app.push_screen(Confirm(question), answered)

    def _prepare(
        self,
        version: str | None,
        then: Callable[[str | None], None],
        *,
        refused: str,
        check: Callable[[Settings, str | None], str | None] = serving.prepare,
    ) -> None:
        """`check` the version in a worker (by default: with a model server, load `version` there and prove
        it answers); then `then` on the event loop, with a warning or None. A refusal is reported as
        `refused` (what did not happen)."""
        if self.settings.server_url and version is not None:
            self.notify(f"Loading {version} into the model server…", markup=False, timeout=3)
        self._prepare_worker(version, then, refused, check)

    @work(thread=True, exclusive=True, group="serving", exit_on_error=False)
    def _prepare_worker(
        self, version: str | None, then: Callable[[str | None], None], refused: str, check: Callable
    ) -> None:
        try:
            warning = check(self.settings, version)
        except AssistantError as exc:
            self.app.call_from_thread(self.notify, f"{refused}: {one_line(str(exc), 200)}", severity="error", markup=False)
            return
        self.app.call_from_thread(then, warning)

    def _changed(self, warning: str | None) -> None:
        """The active version changed here: the chat follows at once; the model server drops older versions."""
        if warning:
            self.notify(one_line(warning, 200), severity="warning", markup=False)
        self.app.post_message(ActiveAdapterChanged())
        if self.settings.server_url:
            self._tidy(serving.keep(self.store))

    @work(thread=True, exclusive=True, group="tidy", exit_on_error=False)
    def _tidy(self, held: set[str]) -> None:
        warning = serving.tidy(self.settings, held)
        if warning:
            self.app.call_from_thread(self.notify, one_line(warning, 200), severity="warning", markup=False)

    def action_rollback(self) -> None:
        try:
            require_curator(self.settings)  # with `curators` set, only they change what every chat serves
        except AssistantError as exc:
            self.notify(f"Not rolled back: {one_line(str(exc), 200)}", severity="error", markup=False)
            return
        try:
            active = self.store.active_adapter()  # not the table's: another window may have changed it
        except AssistantError as exc:
            self.notify(f"Could not read the active version: {one_line(str(exc), 200)}", severity="error",
                        markup=False)
            return
        if active is None:
            self.notify("No version is active: nothing to roll back.", markup=False)
            return
        version = active.version
        question = (
            f"Roll back {version}? It is marked rejected, and the version active before it "
            "(or the base model) answers again in every chat."
        )

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            with self.reported(f"{version} was not rolled back"):
                self._prepare(self.store.rollback_target(), rollback, refused=f"{version} was not rolled back")

        def rollback(warning: str | None) -> None:
            with self.reported(f"{version} was not rolled back"):
                rolled, target = self.store.rollback(actor=self.settings.user)
                self.notify(f"Rolled back {rolled}: {served(target)} is active", markup=False)
                self._changed(warning)
            self.reload()

        self.app.push_screen(Confirm(question), answered)

    def action_close(self) -> None:
        if self.standalone:
            self.app.exit()
        else:
            self.dismiss()
