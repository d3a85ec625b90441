"""Coverage of a decision list: which rule decides each segment, gaps and overlaps.

The segments are every combination of the dimensions' values (a few thousand at most),
so the check enumerates them all: one boolean row per rule over the segments, the
deciding rule of a segment is the first row that is true there. Sets of segments are
shown as patterns, merged one dimension at a time (:func:`merge`).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Overlap", "PlaybookCheck", "coverage", "describe", "merge"]

#: Patterns shown per overlap.
SHOWN: Final[int] = 8


class Conditional(Protocol):
    """A rule as the check sees it: an id and its conditions."""

    @property
    def id(self) -> str:
        """The rule's id."""

    @property
    def conditions(self) -> Mapping[str, tuple[str, ...]]:
        """Dimension → the values the rule applies to."""


@dataclass(frozen=True)
class Overlap:
    """Segments a rule matches that an earlier rule decides.

    Attributes
    ----------
    rule, earlier
        The later rule (not applied there) and the earlier one (applied).
    segments
        How many segments both match.
    patterns
        Those segments, merged into patterns (``"tier=gold, stage=decline"``; a
        dimension left out is any value), at most a few.
    """

    rule: str
    earlier: str
    segments: int
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class PlaybookCheck:
    """Coverage of the segments by a playbook's rules.

    Attributes
    ----------
    segments
        Number of segments (the product of the dimensions' sizes).
    gaps
        Segments no rule matches, merged into patterns (empty for a usable playbook).
    gap_segments
        How many segments are gaps.
    overlaps
        Per pair of rules, the segments the later one matches but the earlier decides.
    shadowed
        Ids of rules that decide no segment.
    decides
        Rule id → number of segments it decides.
    """

    segments: int
    gaps: tuple[str, ...]
    gap_segments: int
    overlaps: tuple[Overlap, ...]
    shadowed: tuple[str, ...]
    decides: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return asdict(self)


Segment = tuple[frozenset[int], ...]


def merge(codes: npt.NDArray[np.int64], sizes: Sequence[int]) -> list[Segment]:
    """Merge segments (rows of value indices) into patterns, one dimension at a time.

    Segments that differ only in one dimension become one pattern with the set of
    their values there; repeated over every dimension this turns, e.g., all segments
    of one tier and stage into one pattern.
    """
    patterns: set[Segment] = {tuple(frozenset({int(v)}) for v in row) for row in codes}
    for d in range(len(sizes)):
        groups: dict[Segment, set[int]] = defaultdict(set)
        for p in patterns:
            groups[p[:d] + p[d + 1 :]] |= set(p[d])
        patterns = {(*key[:d], frozenset(values), *key[d:]) for key, values in groups.items()}
    return sorted(patterns, key=lambda p: tuple(sorted(v) for v in p))


def describe(pattern: Segment, dims: Mapping[str, Sequence[str]]) -> str:
    """Show a pattern as ``tier=gold, stage=decline|departure`` (any value: left out)."""
    parts = []
    for (name, values), chosen in zip(dims.items(), pattern, strict=True):
        if len(chosen) < len(values):
            parts.append(f"{name}={'|'.join(values[i] for i in sorted(chosen))}")
    return ", ".join(parts) or "every segment"


def coverage(rules: Sequence[Conditional], dims: Mapping[str, Sequence[str]]) -> PlaybookCheck:
    """Find which rule decides each segment, and the gaps, overlaps and shadowed rules.

    Parameters
    ----------
    rules
        The rules in order (first match wins), each with an ``id`` and ``conditions``
        (dimension → the values it applies to; a dimension left out: any value).
    dims
        Each dimension's values; the segments are every combination of them.
    """
    sizes = [len(v) for v in dims.values()]
    codes = np.array(list(itertools.product(*(range(s) for s in sizes))), dtype=np.int64)
    codes = codes.reshape(-1, len(sizes))
    masks = np.ones((len(rules), len(codes)), dtype=bool)
    for r, rule in enumerate(rules):
        for d, (name, values) in enumerate(dims.items()):
            if name in rule.conditions:
                allowed = [values.index(v) for v in rule.conditions[name]]
                masks[r] &= np.isin(codes[:, d], allowed)
    covered = masks.any(axis=0)
    first = np.argmax(masks, axis=0)
    decides = np.bincount(first[covered], minlength=len(rules))
    gaps = codes[~covered]
    overlaps = []
    for r in range(1, len(rules)):
        for e in range(r):
            # segments r matches where e is the rule that decides
            shared = masks[r] & covered & (first == e)
            count = int(shared.sum())
            if count:
                patterns = merge(codes[shared], sizes)
                overlaps.append(
                    Overlap(
                        rule=rules[r].id,
                        earlier=rules[e].id,
                        segments=count,
                        patterns=tuple(describe(p, dims) for p in patterns[:SHOWN]),
                    )
                )
    return PlaybookCheck(
        segments=len(codes),
        gaps=tuple(describe(p, dims) for p in merge(gaps, sizes)),
        gap_segments=len(gaps),
        overlaps=tuple(overlaps),
        shadowed=tuple(rule.id for rule, n in zip(rules, decides, strict=True) if n == 0),
        decides={rule.id: int(n) for rule, n in zip(rules, decides, strict=True)},
    )
