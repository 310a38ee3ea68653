"""How unlikely a principal's novel facts of the last hours are, given how often it usually does something new.

The score of a principal (docs/anomaly.md) is the surprise of a Poisson count: `k`, the weight of the distinct
novel facts in its window (the last `window_s`), against `lam`, the weight it would bring in such a window at
its own habitual rate. That rate is a gamma-Poisson estimate from its history: `(explore + PRIOR_WEIGHT) /
(exposure + PRIOR_S)`, where `explore` is the decayed weight of the novel facts it brought after its first day
and `exposure` the time they were counted over. A principal on its first day is new to everything: its rate is
the prior for new principals, `NEW_PER_WINDOW` facts a window.
"""

from __future__ import annotations

import math

from detectors.rules.anomaly_features import KIND_NAMES, Profile, decay

BOOTSTRAP_S = 86_400.0  # a principal's first day: its habits being learned, not exploration
EXPLORE_HALF_LIFE_S = 7 * 86_400.0  # exploration counted long ago fades
PRIOR_WEIGHT = 0.5  # pseudo-facts of the gamma prior ...
PRIOR_S = 86_400.0  # ... over a pseudo-day: half a new fact a day until the history says otherwise
MIN_PER_WINDOW = 0.05  # never expect less than this in a window (a history can be too quiet to trust)
NEW_PER_WINDOW = 2.0  # facts a window expected of a principal on its first day (every action is new then)


def log10_tail(k: float, lam: float) -> float:
    """-log10 P(N >= k) for N ~ Poisson(lam), k rounded down (a half fact does not count on its own).

    >>> round(log10_tail(5, 0.05), 1), log10_tail(0, 1.0), round(log10_tail(3, 2.0), 2)
    (8.6, 0.0, 0.49)
    """
    n = int(k + 1e-9)
    if n <= 0:
        return 0.0
    log_term = -lam + n * math.log(lam) - math.lgamma(n + 1)  # log P(N = n)
    total, term, i = 0.0, 1.0, n
    while term > 1e-12 and i < n + 200:  # P(N >= n) = P(N = n) * sum of the ratios of the next terms
        total += term
        i += 1
        term *= lam / i
    return -(log_term + math.log(total)) / math.log(10)


def expected(p: Profile, now: float, window_s: float) -> float:
    """The weight of novel facts the principal brings in a window at its habitual rate."""
    age = now - p.first
    if age < BOOTSTRAP_S:
        return NEW_PER_WINDOW
    exposure = min(age - BOOTSTRAP_S, EXPLORE_HALF_LIFE_S / math.log(2))  # a decayed count's effective span
    explore = decay(p.explore, p.explore_at, now, EXPLORE_HALF_LIFE_S)
    rate = (explore + PRIOR_WEIGHT) / (exposure + PRIOR_S)
    return max(MIN_PER_WINDOW, rate * window_s)


def window_weight(p: Profile) -> float:
    return float(sum(f[3] for f in p.window))


def by_kind(p: Profile) -> dict[str, float]:
    """The window's weight per kind of fact, heaviest first (an alert's top features)."""
    out: dict[str, float] = {}
    for _, kind, _, weight in p.window:
        name = KIND_NAMES.get(kind, kind)
        out[name] = out.get(name, 0.0) + weight
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def explain(p: Profile, limit: int = 12) -> list[str]:
    """The window's facts, oldest first, as `kind: value` (at most `limit`)."""
    return [f"{KIND_NAMES.get(kind, kind)}: {value}" for _, kind, value, _ in p.window[:limit]]
