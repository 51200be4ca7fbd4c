"""The verdict on a feature's traffic, and the one sentence of evidence behind it.

Every share below is a share of *requests* (a row with ``requests: 40`` weighs 40). The rules,
in order:

1. **live** when at least ``MOST_REQUESTS_SHARE`` of the requests show a person waiting: the
   trigger is a person's action (``PERSON_TRIGGERS``), the result goes to a conversation
   (``PERSON_DESTINATIONS``), or it was first read within ``PERSON_WAITING_READ_SECONDS``.
2. **batch candidate** when at least ``MOST_REQUESTS_SHARE`` were started by a machine
   (``BACKGROUND_TRIGGERS``) *and* landed where a machine picks them up
   (``MACHINE_DESTINATIONS``), and, when first-read times are known, at least
   ``MOST_REQUESTS_SHARE`` of those were read ``BATCH_READ_AFTER_SECONDS`` or later after the request.
3. **gray zone** otherwise: a person reads the result later (``ui``, ``email``…), the
   triggers are mixed, the trigger does not say who waits (``api``), or results are read soon.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from nightshift.inventory.records import TrafficRecord

BACKGROUND_TRIGGERS = frozenset({"schedule", "queue"})
MACHINE_DESTINATIONS = frozenset({"table", "file"})
PERSON_TRIGGERS = frozenset({"user_click"})
PERSON_DESTINATIONS = frozenset({"chat"})
# "Most requests": the share a kind of traffic must reach for the feature to count as that kind.
MOST_REQUESTS_SHARE = 0.8
# A result first read this soon after its request had a person waiting for it.
PERSON_WAITING_READ_SECONDS = 60.0
# A batch usually ends within an hour (24 h at most): results read sooner than this would arrive late.
BATCH_READ_AFTER_SECONDS = 3600.0


class Verdict(str, Enum):
    BATCH = "batch candidate"
    GRAY = "gray zone"
    LIVE = "live"


@dataclass(frozen=True)
class Evidence:
    """What a feature's rows say, weighted by request count."""

    requests: int
    triggers: Counter[str]
    destinations: Counter[str]
    background: int  # background trigger and machine destination
    background_triggers: Counter[str]
    background_destinations: Counter[str]
    person_waiting: int
    reads_known: int
    reads_late: int  # of reads_known, read BATCH_READ_AFTER_SECONDS or later
    median_first_read_seconds: float | None

    def share(self, count: int) -> float:
        return count / self.requests if self.requests else 0.0

    @property
    def late_read_share(self) -> float | None:
        return self.reads_late / self.reads_known if self.reads_known else None


@dataclass(frozen=True)
class Classification:
    feature: str
    verdict: Verdict
    explanation: str
    evidence: Evidence


def gather_evidence(records: Iterable[TrafficRecord], *,
                    batch_read_after_seconds: float = BATCH_READ_AFTER_SECONDS) -> Evidence:
    triggers: Counter[str] = Counter()
    destinations: Counter[str] = Counter()
    bg_triggers: Counter[str] = Counter()
    bg_destinations: Counter[str] = Counter()
    person_waiting = reads_late = 0
    reads: list[tuple[float, int]] = []
    for r in records:
        n = r.requests
        triggers[r.trigger] += n
        destinations[r.destination] += n
        if r.trigger in BACKGROUND_TRIGGERS and r.destination in MACHINE_DESTINATIONS:
            bg_triggers[r.trigger] += n
            bg_destinations[r.destination] += n
        read = r.seconds_to_first_read
        if (r.trigger in PERSON_TRIGGERS or r.destination in PERSON_DESTINATIONS
                or (read is not None and read <= PERSON_WAITING_READ_SECONDS)):
            person_waiting += n
        if read is not None:
            reads.append((read, n))
            if read >= batch_read_after_seconds:
                reads_late += n
    return Evidence(
        requests=sum(triggers.values()), triggers=triggers, destinations=destinations,
        background=sum(bg_triggers.values()), background_triggers=bg_triggers,
        background_destinations=bg_destinations, person_waiting=person_waiting,
        reads_known=sum(n for _, n in reads), reads_late=reads_late, median_first_read_seconds=_weighted_median(reads))


def classify(feature: str, records: Iterable[TrafficRecord], *,
             batch_read_after_seconds: float = BATCH_READ_AFTER_SECONDS) -> Classification:
    ev = gather_evidence(records, batch_read_after_seconds=batch_read_after_seconds)
    verdict, explanation = _decide(ev, batch_read_after_seconds)
    return Classification(feature, verdict, explanation, ev)


def _decide(ev: Evidence, read_after: float) -> tuple[Verdict, str]:
    of_n = f"{ev.requests:,} request{'s' if ev.requests != 1 else ''}"
    if ev.share(ev.person_waiting) >= MOST_REQUESTS_SHARE:
        waits = _person_signals(ev)
        return Verdict.LIVE, (f"{_share_of(ev.person_waiting, ev)} {of_n} had a person waiting ({waits})"
                              f"{_reads(ev, '; ')}.")

    if ev.share(ev.background) >= MOST_REQUESTS_SHARE:
        what = (f"{_share_of(ev.background, ev)} {of_n} were triggered by {_names(ev.background_triggers)} "
                f"and landed in a {_names(ev.background_destinations)}")
        late = ev.late_read_share
        if late is not None and late < MOST_REQUESTS_SHARE:
            soon = ev.reads_known - ev.reads_late
            return Verdict.GRAY, (f"{what}, but {_pct(soon / ev.reads_known)} of the results with a known first "
                                  f"read were read within {_threshold(read_after)}{_reads(ev, ' (', ')')}, "
                                  f"so someone may be waiting on them.")
        return Verdict.BATCH, f"{what}{_reads(ev, '; ')}."

    background_trigger = sum(ev.triggers[t] for t in BACKGROUND_TRIGGERS)
    if ev.share(background_trigger) >= MOST_REQUESTS_SHARE:
        people = Counter({d: n for d, n in ev.destinations.items() if d not in MACHINE_DESTINATIONS})
        return Verdict.GRAY, (f"{_share_of(background_trigger, ev)} {of_n} were triggered by "
                              f"{_names(Counter({t: ev.triggers[t] for t in BACKGROUND_TRIGGERS if ev.triggers[t]}))} "
                              f"but delivered to {_names(people)} for a person to read"
                              f"{_reads(ev, ', ', ' — not waiting, but check when they expect it')}.")

    top, top_n = ev.triggers.most_common(1)[0]
    if ev.share(top_n) >= MOST_REQUESTS_SHARE:
        return Verdict.GRAY, (f"{_share_of(top_n, ev)} {of_n} were triggered by `{top}`, which does not say "
                              f"whether a person waits (destinations: {_mix(ev.destinations, ev)})"
                              f"{_reads(ev, '; ')}.")
    return Verdict.GRAY, (f"The {of_n} have mixed triggers ({_mix(ev.triggers, ev)}), no kind reaching "
                          f"{_pct(MOST_REQUESTS_SHARE)}{_reads(ev, '; ')}; split the feature before deciding.")


def _person_signals(ev: Evidence) -> str:
    parts = []
    clicks = Counter({t: ev.triggers[t] for t in PERSON_TRIGGERS if ev.triggers[t]})
    chats = Counter({d: ev.destinations[d] for d in PERSON_DESTINATIONS if ev.destinations[d]})
    if clicks:
        parts.append(f"triggered by {_names(clicks)}")
    if chats:
        parts.append(f"answered in {_names(chats)}")
    if not parts:
        parts.append(f"results read within {_duration(PERSON_WAITING_READ_SECONDS)}")
    return ", ".join(parts)


def _reads(ev: Evidence, before: str, after: str = "") -> str:
    if ev.median_first_read_seconds is None:
        return f"{before}no first-read times recorded{after}"
    known = "" if ev.reads_known == ev.requests else f" (known for {_pct(ev.share(ev.reads_known))} of them)"
    return f"{before}median first read {_duration(ev.median_first_read_seconds)} after the request{known}{after}"


def _share_of(count: int, ev: Evidence) -> str:
    return "All" if count == ev.requests else f"{_pct(ev.share(count))} of"


def _names(counts: Counter[str]) -> str:
    names = [f"`{name}`" for name, _ in counts.most_common()]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _mix(counts: Counter[str], ev: Evidence) -> str:
    return ", ".join(f"`{name}` {_pct(ev.share(n))}" for name, n in counts.most_common())


def _pct(share: float) -> str:
    value = round(share * 100)
    if value == 100 and share < 1:
        value = 99
    if value == 0 and share > 0:
        return "<1%"
    return f"{value}%"


def _threshold(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else _duration(seconds)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _weighted_median(values: list[tuple[float, int]]) -> float | None:
    if not values:
        return None
    values.sort()
    total = sum(n for _, n in values)
    half = total / 2
    seen = 0
    for i, (value, n) in enumerate(values):
        seen += n
        if seen > half:
            return value
        if seen == half:  # an even split: the mean of the two middle values
            return (value + values[i + 1][0]) / 2
    return values[-1][0]
