"""Compare: torch.utils.benchmark.Compare's tables of Measurements, same layout.

One table per label; a column per description (in first-seen order); rows grouped
by thread count (a "N threads: ----" rule opens each group), then by env (shown
only when measurements differ in env), named by sub_label (or stmt). Every number
in a table is in the unit of the table's fastest median. Options, all off by default:
  trim_significant_figures()  print only the digits a measurement supports;
  colorize(rowwise=False)     green/blue for the best (<=1%/<=10% off) in a column
                              within its thread group (or in a row), dim red/red for
                              >= 2x / >= 5x slower;
  highlight_warnings()        append "(! XX%)" where IQR / median > 10%.
Measurements of the same task are merged (Measurement.merge) before rendering.
"""
from __future__ import annotations

import enum

from .common import Measurement, leading_digits, select_unit, trim_sigfig, unit_to_english

__all__ = ["Compare", "Colorize"]

BEST = "\033[92m"
GOOD = "\033[34m"
BAD = "\033[2m\033[91m"
VERY_BAD = "\033[31m"
BOLD = "\033[1m"
TERMINATE = "\033[0m"


class Colorize(enum.Enum):
    NONE = "none"
    COLUMNWISE = "columnwise"
    ROWWISE = "rowwise"


def _ordered_unique(items) -> list:
    return list(dict.fromkeys(items))


def _row_key(m: Measurement) -> tuple:
    return (m.num_threads, m.env, m.as_row_name)


class _Column:
    """Number format shared by one column: integer digits of its largest value, and
    (trimmed) the fewest decimals every entry's significant figures allow."""

    def __init__(self, results: list[Measurement | None], scale: float,
                 trim: bool, warnings: bool):
        present = [m for m in results if m is not None]
        leading = [leading_digits(m.median / scale) for m in present]
        if trim:
            decimals = min(max(m.significant_figures - d, 0) for m, d in zip(present, leading))
        else:
            decimals = 1
        width = max(leading) + decimals + (1 if decimals else 0)
        self.decimals, self.width = decimals, width
        # the "(! XX%)" room is kept only in columns that have a noisy entry
        self.trim, self.warnings = trim, warnings and any(m.has_warnings for m in present)

    def format(self, value: float | None, sigfigs: int, spread: float | None) -> str:
        if value is None:
            return " " * len(self.format(1.0, sigfigs, None))
        if self.trim:
            value = trim_sigfig(value, sigfigs)
        text = f"{value:>{self.width}.{self.decimals}f}"
        note = f" (! {spread * 100:.0f}%)" if self.warnings and spread is not None else ""
        return text + (f"{note:>7}" if self.warnings else note)


def _color(segment: str, value: float, best: float) -> str:
    if value <= best * 1.01 or value <= best + 100e-9:
        return BEST + BOLD + segment + TERMINATE * 2
    if value <= best * 1.1:
        return GOOD + BOLD + segment + TERMINATE * 2
    if value >= best * 5:
        return VERY_BAD + BOLD + segment + TERMINATE * 2
    if value >= best * 2:
        return BAD + segment + TERMINATE * 2
    return segment


class _Table:
    """One label's measurements laid out as rows (thread group, env, name) x descriptions."""

    def __init__(self, results: list[Measurement], colorize: Colorize, trim: bool,
                 warnings: bool):
        self.results, self.colorize, self.warnings = results, colorize, warnings
        self.label = results[0].label
        self.unit, self.scale = select_unit(min(m.median for m in results))
        self.row_keys = sorted(_ordered_unique(map(_row_key, results)), key=lambda k: k[:2])
        self.col_keys = _ordered_unique(m.description for m in results)
        self.grid = self._grid()
        self.groups = self._thread_groups()
        self.columns = [_Column([row[j] for row in self.grid], self.scale, trim, warnings)
                        for j in range(len(self.col_keys))]

    def _grid(self) -> list[list[Measurement | None]]:
        grid = [[None] * len(self.col_keys) for _ in self.row_keys]
        rows = {k: i for i, k in enumerate(self.row_keys)}
        cols = {k: j for j, k in enumerate(self.col_keys)}
        for m in self.results:
            grid[rows[_row_key(m)]][cols[m.description]] = m
        return grid

    def _thread_groups(self) -> list[int]:
        """The thread group index of each row (a new group where num_threads changes)."""
        groups, previous = [], object()
        for threads, _, _ in self.row_keys:
            groups.append(groups[-1] + (threads != previous) if groups else 0)
            previous = threads
        return groups

    def _row_name(self, i: int) -> str:
        envs = {m.env for m in self.results}
        show_env = len(envs) > 1
        env_width = max(len(str(e)) for e in envs) if show_env else 0
        env = self.row_keys[i][1]
        first_of_env = i == 0 or self.row_keys[i - 1][1] != env or \
            self.groups[i - 1] != self.groups[i]
        tag = f"({env})" if show_env and first_of_env else ""
        present = next(m for m in self.grid[i] if m is not None)
        return "  " + tag.ljust(env_width + 4) + present.as_row_name

    def _cells(self, i: int) -> list[str]:
        cells = [self._row_name(i)]
        for m, col in zip(self.grid[i], self.columns):
            if m is None:
                cells.append(col.format(None, 1, None))
            else:
                spread = m.iqr / m.median if m.has_warnings else None
                cells.append(col.format(m.median / self.scale, m.significant_figures, spread))
        return cells

    def _best(self, i: int) -> list[float | None]:
        if self.colorize == Colorize.ROWWISE:
            best = min(m.median for m in self.grid[i] if m is not None)
            return [best] * len(self.col_keys)
        if self.colorize == Colorize.COLUMNWISE:
            group = [r for r in range(len(self.grid)) if self.groups[r] == self.groups[i]]
            medians = [[self.grid[r][j].median for r in group if self.grid[r][j] is not None]
                       for j in range(len(self.col_keys))]
            return [min(ms) if ms else None for ms in medians]
        return [None] * len(self.col_keys)

    def render(self) -> str:
        header = [""] + [str(k) for k in self.col_keys]
        body = [self._cells(i) for i in range(len(self.row_keys))]
        widths = [max(len(row[j]) for row in [header] + body) for j in range(len(header))]
        lines = ["  |  ".join(c.center(w) for c, w in zip(header, widths))]
        total = len(lines[0])
        for i, cells in enumerate(body):
            if i == 0 or self.groups[i] != self.groups[i - 1]:
                lines.append(f"{self.row_keys[i][0]} threads: ".ljust(total, "-"))
            lines.append("  |  ".join(self._finish_row(i, cells, widths)))
        title = f" {self.label or ''} ".center(total - 2, "-")
        noisy = self.warnings and any(m.has_warnings for m in self.results)
        footer = f"{self.unit_word()} are in {unit_to_english(self.unit)} ({self.unit}).\n"
        if noisy:
            footer += ("(! XX%) Measurement has high variance, where XX is the "
                       "IQR / median * 100.\n")
        return f"[{title}]\n" + "\n".join(lines) + "\n\n" + footer

    @staticmethod
    def unit_word() -> str:
        return "Times"

    def _finish_row(self, i: int, cells: list[str], widths: list[int]) -> list[str]:
        out = [cells[0].ljust(widths[0])]
        for cell, width, m, best in zip(cells[1:], widths[1:], self.grid[i], self._best(i)):
            cell = cell.center(width)
            if self.colorize != Colorize.NONE and m is not None and best is not None:
                cell = _color(cell, m.median, best)
            out.append(cell)
        return out


class Compare:
    """Tables of Measurements grouped by label; `print()` or `str()` renders them."""

    def __init__(self, results: list[Measurement]):
        self._results: list[Measurement] = []
        self.extend_results(results)
        self._trim_significant_figures = False
        self._colorize = Colorize.NONE
        self._highlight_warnings = False

    def __str__(self) -> str:
        return "\n".join(self._render())

    def extend_results(self, results) -> None:
        for r in results:
            if not isinstance(r, Measurement):
                raise ValueError(f"Expected an instance of `Measurement`, got {type(r)} instead.")
        self._results.extend(results)

    def trim_significant_figures(self) -> None:
        self._trim_significant_figures = True

    def colorize(self, rowwise: bool = False) -> None:
        self._colorize = Colorize.ROWWISE if rowwise else Colorize.COLUMNWISE

    def highlight_warnings(self) -> None:
        self._highlight_warnings = True

    def print(self) -> None:
        print(str(self))

    def _render(self) -> list[str]:
        by_label: dict = {}
        for m in Measurement.merge(self._results):
            by_label.setdefault(m.label, []).append(m)
        return [_Table(group, self._colorize, self._trim_significant_figures,
                              self._highlight_warnings).render()
                for group in by_label.values()]
