"""What the command line shows: progress bars (rich) on a terminal, plain lines through a pipe,
and a summary table at the end."""

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


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


class PlainReport:
    """One line per file as it finishes, nothing animated: for pipes, logs and CI."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()

    def __enter__(self) -> PlainReport:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def started(self, source: Source) -> None:
        return None

    def sent(self, source: Source, done: int, total: int) -> None:
        return None

    def processing(self, source: Source, media_id: str) -> None:
        return None

    def finished(self, source: Source, result: Result) -> None:
        line = f"{result.state:<9} {result.path}"
        line += f" -> {result.written}" if result.written else ""
        line += "" if result.ok else f": {result.message}"
        with self._lock:
            print(line, file=self.console.file, flush=True)


class LiveReport:
    """A bar for all files and one for each file on its way (bytes sent, then processing)."""

    def __init__(self, console: Console, count: int) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=48)),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
        )
        self.overall = self.progress.add_task("[bold]All files", total=count, detail=f"0/{count}")
        self.count = count
        self.done = 0
        self.failed = 0
        self._tasks: dict[Path, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> LiveReport:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def started(self, source: Source) -> None:
        with self._lock:
            self._tasks[source.path] = self.progress.add_task(escape(source.path.name), total=None, detail="starting")

    def sent(self, source: Source, done: int, total: int) -> None:
        self.progress.update(self._tasks[source.path], completed=done, total=total,
                             detail=f"{_size(done)}/{_size(total)}")

    def processing(self, source: Source, media_id: str) -> None:
        self.progress.update(self._tasks[source.path], total=None, detail="processing")

    def finished(self, source: Source, result: Result) -> None:
        with self._lock:
            self.progress.remove_task(self._tasks.pop(source.path))
            self.done += 1
            self.failed += not result.ok
            failed = f", {self.failed} failed" if self.failed else ""
            self.progress.update(self.overall, advance=1, detail=f"{self.done}/{self.count}{failed}")
        where = escape(str(result.path))
        if result.ok:
            target = f" → {escape(str(result.written))}" if result.written else ""
            self.progress.console.print(f"[green]✓[/] {where}{target}")
        else:
            self.progress.console.print(f"[red]✗[/] {where}: {escape(result.message)}")


def summary(console: Console, results: Sequence[Result], *, fancy: bool) -> None:
    table = Table(box=box.SIMPLE_HEAD if fancy else box.ASCII2, title=None)
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
    failed = sum(not result.ok for result in results)
    console.print(f"{len(results)} files: {len(results) - failed} completed, {failed} failed",
                  markup=False, highlight=False)
