"""What the command line shows: on a terminal, a line per finished file printed above live
progress bars (rich), then a short summary; through a pipe, plain lines and a summary table."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Column, Table
from rich.text import Text

from thumbnailify.client.batch import Result, Source
from thumbnailify.client.interrupts import threads_leave_interrupts_to_main
from thumbnailify.client.session import JsonObject
from thumbnailify.units import size_text

REFRESH_SECONDS = 0.1
ID_WIDTH = 36  # a media id, never cut: it is pasted into `status` and `delete`


class PlainReport:
    """One line per file as it finishes, nothing animated: for pipes, logs and CI."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()

    def __enter__(self) -> PlainReport:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def line(console: Console, result: Result) -> None:
        line = f"{result.state:<9} {result.path}"
        line += f" -> {result.written}" if result.written else ""
        line += "" if result.ok and not result.existing else f": {result.message}"
        print(line, file=console.file, flush=True)

    def started(self, source: Source) -> None:
        return None

    def sent(self, source: Source, done: int, total: int) -> None:
        return None

    def processing(self, source: Source, media_id: str) -> None:
        return None

    def finished(self, source: Source, result: Result) -> None:
        with self._lock:
            self.line(self.console, result)


class LiveReport:
    """A bar for all files and one for each file on its way (bytes sent, then processing), with a
    line per finished file printed above them.

    Every write to the terminal, the bars' redraws included, happens under one lock: rich works
    out where the bars are when it renders and moves the cursor there when it writes, so a redraw
    from another thread in between would overwrite finished lines and leave stale bars behind.
    """

    def __init__(self, console: Console, count: int) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[detail]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            console=console, auto_refresh=False, expand=False, transient=True,
        )
        self.overall = self.progress.add_task("[bold]All files", total=count, detail=f"0/{count}")
        self.count = count
        self.done = 0
        self.failed = 0
        self._tasks: dict[Path, TaskID] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)

    def __enter__(self) -> LiveReport:
        with self._lock:
            self.progress.start()
        with threads_leave_interrupts_to_main():
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._ticker.join()
        with self._lock:
            self.progress.stop()

    def _tick(self) -> None:
        while not self._stopped.wait(REFRESH_SECONDS):
            with self._lock:
                self.progress.refresh()

    @staticmethod
    def line(console: Console, result: Result) -> None:
        where = escape(str(result.path))
        if result.ok:
            target = f" → {escape(str(result.written))}" if result.written else ""
            again = " [dim](already on the server)[/]" if result.existing else ""
            console.print(f"[green]✓[/] {where}{target}{again}", overflow="fold")
        else:
            console.print(f"[red]✗[/] {where}: {escape(result.message)}", overflow="fold")

    def started(self, source: Source) -> None:
        with self._lock:
            self._tasks[source.path] = self.progress.add_task(escape(source.path.name), total=None, detail="starting")

    def sent(self, source: Source, done: int, total: int) -> None:
        with self._lock:
            self.progress.update(self._tasks[source.path], completed=done, total=total,
                                 detail=f"{size_text(done)}/{size_text(total)}")

    def processing(self, source: Source, media_id: str) -> None:
        with self._lock:
            self.progress.update(self._tasks[source.path], total=None, detail="processing")

    def finished(self, source: Source, result: Result) -> None:
        with self._lock:
            self.progress.remove_task(self._tasks.pop(source.path))
            self.done += 1
            self.failed += not result.ok
            failed = f", {self.failed} failed" if self.failed else ""
            self.progress.update(self.overall, advance=1, detail=f"{self.done}/{self.count}{failed}")
            self.line(self.progress.console, result)
            self.progress.refresh()


def _counts(results: Sequence[Result]) -> str:
    failed = sum(not result.ok for result in results)
    line = f"{len(results)} files: {len(results) - failed} completed, {failed} failed"
    existing = sum(result.existing for result in results)
    return line + (f"; {existing} already on the server, not sent again" if existing else "")


def summary(console: Console, results: Sequence[Result], *, fancy: bool) -> None:
    """On a terminal: the counts, then each failure on one line with its reason (cut to fit; the
    whole reason was printed when the file finished). Through a pipe: a table of every file."""
    if fancy:
        console.print(_counts(results), markup=False, highlight=False)
        failures = [result for result in results if not result.ok]
        if failures:
            console.print("Failed:", style="bold red")
        for result in failures:
            console.print(Text(f"  {result.path}: {result.message}"), no_wrap=True, overflow="ellipsis")
        return
    table = Table(box=box.ASCII2, title=None)
    table.add_column("File", overflow="fold")
    table.add_column("State", no_wrap=True)
    table.add_column("Media ID", no_wrap=True)
    table.add_column("Thumbnail", overflow="fold")
    table.add_column("Message", overflow="fold")
    for result in results:
        style = "" if result.ok else "red"
        cells = (str(result.path), result.state, result.media_id, str(result.written or ""), result.message)
        table.add_row(*(Text(cell) for cell in cells), style=style)
    console.print(table, markup=False, highlight=False)
    console.print(_counts(results), markup=False, highlight=False)


ROOMY = 100  # columns from which `list` also shows each item's size and when it was added


def listing_table(items: Sequence[JsonObject], width: int, *, distances: bool = False) -> Table:
    """`list` on a terminal: full ids (never cut; they are pasted into `status` and `delete`), the
    state (`similar`: the distance), size and time when there is room, then the file's name, which
    wraps rather than being cut."""
    roomy = width >= ROOMY
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    table.add_column("Media ID", no_wrap=True, min_width=ID_WIDTH)
    table.add_column("Distance" if distances else "State", no_wrap=True)
    if roomy:
        table.add_column("Size", no_wrap=True, justify="right")
        table.add_column("Added (UTC)", no_wrap=True)
    table.add_column("File", overflow="fold", ratio=1)
    for item in items:
        name = item.get("filename") or f"({item['media_type']})"
        cells = [item["media_id"], item["distance"] if distances else item["state"]]
        if roomy:
            size = size_text(item["bytes"]) if isinstance(item.get("bytes"), int) else ""
            cells += [size, str(item.get("created_at", ""))[:16].replace("T", " ")]
        table.add_row(*(Text(str(cell)) for cell in [*cells, name]))
    return table
