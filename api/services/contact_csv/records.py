"""Decoded CSV text cut into blocks of whole records, whatever the chunks it arrived in.

Invariant: a block handed out ends exactly where a record ends, as Python's `csv` module
reads records (a quoted field may hold separators, quotes and newlines), so each block is
parsed on its own and the row numbers stay those of the whole file. What is held between
chunks is one unfinished record, never more than `max_record_chars`.

The first record is the header: its separator (`,`, `;` or tab) is sniffed from it and
fixes how the rest is cut. A `\\r` that ends the text seen so far is held back until the
next chunk shows whether a `\\n` follows (else `\\r\\n` across two chunks would count as
two line ends, an extra blank row).
"""

from __future__ import annotations

import re

SEPARATORS = (",", ";", "\t")
# A quoted field (`""` is a quote inside it); the rest of the header, outside them, has the
# separators to count.
_QUOTED = re.compile(r'"(?:[^"]++|"")*+"')


def _record_pattern(separators: str) -> str:
    """One whole record, as `csv` reads it (doublequote on, no escape character, not
    strict): a field opens a quote only at its start; after the closing quote, or in a
    field that did not start with one, a quote is text. Possessive and atomic throughout:
    no backtracking, linear in the text."""
    sep = re.escape(separators)
    field = rf'(?>"(?:[^"]++|"")*+"[^{sep}\r\n]*+|[^"{sep}\r\n][^{sep}\r\n]*+|)'
    return rf"{field}(?:[{sep}]{field})*+(?:\r\n|\n|\r)"


def _records(separators: str) -> re.Pattern[str]:
    """As many whole records as there are from where the match starts (zero included)."""
    return re.compile(rf"(?:{_record_pattern(separators)})*+")


# Until the separator is known, a quote opens after any candidate.
_HEADER = re.compile(_record_pattern("".join(SEPARATORS)))


def split_records(block: str, separator: str) -> list[str]:
    """`block`'s records one by one (the last one may lack its line end): for the rare
    block the `csv` module refuses whole, to read the rest of it record by record."""
    record = re.compile(_record_pattern(separator))
    records: list[str] = []
    position = 0
    while (match := record.match(block, position)) is not None:
        records.append(match.group())
        position = match.end()  # a record holds at least its line end
    rest = block[position:]
    return [*records, rest] if rest else records


def sniff_separator(header: str) -> str:
    """The candidate the header uses most outside quotes; `,` when it uses none (a file of
    one column), and on a tie the earlier of `SEPARATORS`."""
    bare = _QUOTED.sub("", header)
    counts = [bare.count(candidate) for candidate in SEPARATORS]
    best = max(counts)
    return SEPARATORS[counts.index(best)] if best else ","


class RecordSplitter:
    """Feed decoded text; get back blocks of whole records: the header alone first, then
    the records that followed it, in order."""

    def __init__(self, max_record_chars: int) -> None:
        self.max_record_chars = max_record_chars
        self.separator: str | None = None
        self._records = _records(",")
        self._pending = ""

    @property
    def overlong(self) -> bool:
        """The unfinished record held back is over `max_record_chars`: a quote left open,
        or a row longer than any field limit allows. Nothing more should be fed."""
        return len(self._pending) > self.max_record_chars

    def feed(self, text: str) -> list[str]:
        """The blocks of whole records that `text` completes (see `overlong`)."""
        buffer = self._pending + text
        # A trailing `\r` waits for the next chunk (see the module's docstring).
        end = len(buffer) - 1 if buffer.endswith("\r") else len(buffer)
        blocks: list[str] = []
        start = 0
        if self.separator is None:
            header_end = self._header_end(buffer, end)
            if header_end is None:
                self._hold(buffer)
                return blocks
            blocks.append(buffer[:header_end])
            start = header_end
        match = self._records.match(buffer, start, end)
        assert match is not None  # zero records is a match
        if match.end() > start:
            blocks.append(buffer[start : match.end()])
        self._hold(buffer[match.end() :])
        return blocks

    def finish(self) -> list[str]:
        """The text left at the end of the input: its last record, unfinished or without a
        line end; or the header and what follows it, if the header never ended before."""
        rest, self._pending = self._pending, ""
        if not rest or self.separator is not None:
            return [rest] if rest else []
        # The header never ended (a quote left open in it, as any candidate cuts it): its
        # separator is sniffed from what there is, and the header cut with it.
        self._set_separator(sniff_separator(rest))
        header = re.compile(_record_pattern(self.separator or ",")).match(rest)
        if header is None or header.end() == len(rest):
            return [rest]
        return [rest[: header.end()], rest[header.end() :]]

    def _header_end(self, buffer: str, end: int) -> int | None:
        """Where the header record ends in `buffer`, once it is whole. Its separator is
        sniffed from the first record as any candidate would cut it, then the header is
        cut again with that separator, as `csv` reads it."""
        candidate = _HEADER.match(buffer, 0, end)
        if candidate is None:
            return None
        separator = sniff_separator(candidate.group())
        header = re.compile(_record_pattern(separator)).match(buffer, 0, end)
        if header is None:
            return None
        self._set_separator(separator)
        return header.end()

    def _set_separator(self, separator: str) -> None:
        self.separator = separator
        self._records = _records(separator)

    def _hold(self, rest: str) -> None:
        self._pending = rest
