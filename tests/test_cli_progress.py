"""Progress written to a log file: rich's bar is silent off a terminal, our lines are not."""

from io import StringIO

from rich.console import Console

from robotaxi.cli.progress import LoggedProgress


def _console() -> tuple[Console, StringIO]:
    out = StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_a_long_task_prints_plain_lines_off_a_terminal() -> None:
    console, out = _console()
    with LoggedProgress(console=console, every_s=0.0, unit="sim s", transient=True) as bar:
        task = bar.add_task("sf: 12 requests", total=600)
        bar.update(task, completed=60)
        bar.update(task, completed=600)
        bar.update(task, completed=600)  # once finished, no more lines
    lines = [x for x in out.getvalue().splitlines() if x.strip()]
    assert lines[0].startswith("sf: 12 requests: 60/600 sim s (00:00:")
    assert lines[1].startswith("sf: 12 requests: 600/600 sim s")
    assert len([x for x in lines if x.startswith("sf:")]) == 2


def test_a_short_task_prints_nothing() -> None:
    console, out = _console()
    with LoggedProgress(console=console, every_s=3600.0, transient=True) as bar:
        task = bar.add_task("detect", total=3)
        for k in range(1, 4):
            bar.advance(task)
            assert bar.tasks[0].completed == k
    assert "detect" not in out.getvalue()
