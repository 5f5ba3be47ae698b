"""Elastic tab stops, laid out the way Go's ``text/tabwriter`` does for the reference CLI.

The reference writes its tables (``list``, ``stats``, ``export mirmon``) through a tab writer
with minimum width 0, tab width 8, padding 0 and TAB as the padding character. This module
reproduces that configuration, plus the space-padded variant for completeness:

* Input text is cut into lines; a line is cut into cells by TAB characters. Every cell that is
  followed by a TAB belongs to a column; the text after the last TAB of a line does not.
* A *column block* is a run of consecutive lines that all have a cell in that column. The width
  of the column in the block is the widest cell of the block plus ``padding`` (at least
  ``min_width``). Blocks are nested: the first column is split into blocks, then the second
  column within each block, and so on, so a line with fewer cells ends the blocks of the later
  columns.
* With TAB padding, the column width is rounded up to a multiple of ``tab_width`` and a cell is
  followed by as many TABs as needed to reach it (none when the cell exactly fills it, which is
  why ``up/down (Wed, ...`` has no separator in the reference output).
* Cell widths count Unicode code points.
"""

from __future__ import annotations

from attrs import frozen


@frozen
class TabWriterConfig:
    """The layout parameters of one tab writer."""

    min_width: int = 0
    tab_width: int = 8
    padding: int = 0
    pad_char: str = "\t"


REFERENCE = TabWriterConfig()


def tabulate(text: str, config: TabWriterConfig = REFERENCE) -> str:
    """Lay out ``text`` (TAB-separated cells, newline-terminated lines) with elastic tab stops."""
    raw_lines = text.split("\n")
    # The text after the last newline is an unterminated line (often empty).
    rows = [line.split("\t") for line in raw_lines]
    out: list[str] = []
    _format_block(rows, 0, len(rows), [], config, out)
    return "".join(out)


def _format_block(
    rows: list[list[str]],
    start: int,
    end: int,
    widths: list[int],
    config: TabWriterConfig,
    out: list[str],
) -> None:
    """Write rows ``start..end`` whose columns ``0..len(widths)-1`` are already sized."""
    column = len(widths)
    pending = start
    index = start
    while index < end:
        if column >= len(rows[index]) - 1:
            index += 1
            continue
        # A block of this column begins here: earlier rows have no cell in it.
        _write_rows(rows, pending, index, widths, config, out)
        block_start = index
        width = config.min_width
        while index < end and column < len(rows[index]) - 1:
            width = max(width, len(rows[index][column]) + config.padding)
            index += 1
        _format_block(rows, block_start, index, [*widths, width], config, out)
        pending = index
    _write_rows(rows, pending, end, widths, config, out)


def _write_rows(
    rows: list[list[str]],
    start: int,
    end: int,
    widths: list[int],
    config: TabWriterConfig,
    out: list[str],
) -> None:
    for index in range(start, end):
        cells = rows[index]
        for position, cell in enumerate(cells):
            out.append(cell)
            if position < len(widths) and position < len(cells) - 1:
                out.append(_padding(len(cell), widths[position], config))
        if index + 1 < len(rows):
            out.append("\n")


def _padding(text_width: int, cell_width: int, config: TabWriterConfig) -> str:
    if config.pad_char == "\t":
        if config.tab_width == 0:
            return ""
        tabs_width = -(-cell_width // config.tab_width) * config.tab_width
        missing = tabs_width - text_width
        return "\t" * -(-missing // config.tab_width)
    return config.pad_char * (cell_width - text_width)
