"""The E.164 numbers a file has named so far, to find a number's second row.

Invariant: 8 bytes a slot, 2 to 4 slots a number: a million numbers take 16 MiB (24 while
the table doubles), where a `set` of their strings takes ~100 MiB. An E.164
number is at most 15 digits, so its digits as an integer are the key itself (exact, no
false duplicate) and 0 marks a free slot (no number is 0). The slot is a multiply-shift
hash with a multiplier drawn per set, so a file cannot be crafted to pile its numbers
onto one run of slots.
"""

from __future__ import annotations

import secrets
from array import array

_MASK_64 = (1 << 64) - 1
_FIRST_BITS = 10


def _zeros(slots: int) -> array[int]:
    """`slots` free slots, allocated once (from `bytes` it would be allocated twice)."""
    return array("q", [0]) * slots


class NumberSet:
    """Open addressing with linear probing over one `array` of signed 64-bit integers."""

    def __init__(self) -> None:
        self._multiplier = secrets.randbits(64) | 1
        self._bits = _FIRST_BITS
        self._slots = _zeros(1 << _FIRST_BITS)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, e164: str) -> bool:
        """Whether `e164` (`+` and 1-15 digits) is new; it is in the set afterwards."""
        if not self._insert(int(e164[1:])):
            return False
        self._count += 1
        # Half full at most: linear probing stays short (~1.5 probes a hit, ~2.5 a miss).
        if self._count * 2 > len(self._slots):
            self._grow()
        return True

    def _insert(self, value: int) -> bool:
        slots = self._slots
        mask = len(slots) - 1
        slot = ((value * self._multiplier) & _MASK_64) >> (64 - self._bits)
        while True:
            held = slots[slot]
            if held == 0:
                slots[slot] = value
                return True
            if held == value:
                return False
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = self._slots
        self._bits += 1
        self._slots = _zeros(1 << self._bits)
        for value in old:
            if value:
                self._insert(value)
