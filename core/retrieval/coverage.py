"""How far the evaluation labels cover what each system returned: the share of each system's top 10
that nobody judged, whose lists the judgments came from, and the warning when labels favour some
systems (stored as ``RunResults.judging``). Pure functions of rankings and judgments; the Compare
page's judging of new finds (``core.insight.judging``) and every run's end (``core.tuning.runs``)
compute it here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from core.dataset import QADataset
from core.retrieval.evaluation import RetrievalResult

logger = logging.getLogger(__name__)


def fmt_share(share: float) -> str:
    """A share of results in percent, the same way everywhere: "0%" only when none, one decimal below 10%
    ("0.5%", never rounded to "0%" or "1%"), whole percents above."""
    if share <= 0:
        return "0%"
    pct = share * 100
    return "<0.1%" if pct < 0.05 else f"{pct:.1f}%" if pct < 10 else f"{pct:.0f}%"

DEPTH = 10  # each pipeline's top that is judged (what the @10 metrics read)
LISTS = {"base": "the base model's", "tuned": "the tuned model's", "bm25": "BM25's",
         "base_hybrid": "the base hybrid's", "hybrid": "the tuned hybrid's", "base_rerank": "the base reranker's",
         "rerank": "the tuned reranker's"}


def found_by_name(run_id: str, role: str) -> str:
    """How a find is recorded in ``judgments.json``: ``"run:<run id>:<role>"``."""
    return f"run:{run_id}:{role}"


def _role_of(name: str, run_id: str, roles: list[str]) -> str | None:
    """The run's role a judgment's ``found_by`` name stands for (None: another run's system, keyword search,
    "show more", an earlier label). The bench's ``"base"`` is its base model: taken as this run's base."""
    if name in ("bm25", "base") and name in roles:
        return name
    if name == f"tuned:{run_id}" and "tuned" in roles:
        return "tuned"
    prefix = f"run:{run_id}:"
    if name.startswith(prefix) and name[len(prefix):] in roles:
        return name[len(prefix):]
    return None


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def judging_summary(top: Mapping[str, Mapping[str, list[str]]], relevant: Mapping[str, set[str]],
                    judgments: Mapping[str, Mapping[str, dict]], *, run_id: str,
                    start: Mapping[str, Mapping[str, dict]] | None = None, started: float | None = None,
                    depth: int = DEPTH) -> dict[str, Any]:
    """How far the labels cover what each system returned (the dict stored as ``RunResults.judging``).

    Args:
        top: role -> question id -> that system's ranked passage ids (the first ``depth`` are read), in the
            run's role order; its questions are the evaluation questions.
        relevant: question id -> the relevant passages (labels plus passages judged relevant).
        judgments: question id -> passage id -> {relevant, found_by, at}: every judgment that counts.
        run_id: the run (its ``found_by`` names).
        start: the judgments when the run started (its copy); None: judged after ``started`` counts as new.
        started: the run's start time (used without ``start``).

    Returns:
        ``has_judgments`` (some question of the run was judged on the bench or here), ``unjudged``
        (role -> share of its top ``depth`` nobody judged), ``unjudged_counts`` (role -> [unjudged, shown]),
        ``finds`` (distinct unjudged passages over all questions), ``pooled_from`` (the roles whose lists
        the judgments came from), ``warning`` ("" when none), ``judged_since_run`` and
        ``relevant_since_run``.
    """
    roles = list(top)
    qids = list(next(iter(top.values()), {}))
    counts: dict[str, list[int]] = {r: [0, 0] for r in roles}
    finds: set[tuple[str, str]] = set()
    pooled: set[str] = set()
    has = False
    since = since_relevant = 0
    for q in qids:
        mine = judgments.get(q, {})
        has = has or bool(mine)
        rel = relevant.get(q, set())
        for r in roles:
            ids = top[r].get(q, [])[:depth]
            unjudged = [d for d in ids if d not in rel and d not in mine]
            counts[r][0] += len(unjudged)
            counts[r][1] += len(ids)
            finds.update((q, d) for d in unjudged)
        before = (start or {}).get(q, {})
        for pid, j in mine.items():
            pooled.update(r for r in (_role_of(n, run_id, roles) for n in j.get("found_by", [])) if r)
            new = pid not in before if start is not None else (started is not None and j.get("at", 0) > started)
            if new:
                since += 1
                since_relevant += bool(j.get("relevant"))
    share = {r: (c[0] / c[1] if c[1] else 0.0) for r, c in counts.items()}
    warning = ""
    missing = [r for r in roles if r not in pooled and counts[r][0] > 0]
    if has and missing:
        worst = max(missing, key=lambda r: (share[r], -roles.index(r)))
        src = [LISTS.get(r, f"{r}'s") for r in roles if r in pooled]
        head = (f"The evaluation labels came only from {_and(src)} lists" if src else
                "The evaluation labels came from none of these systems' lists (keyword search or earlier labels)")
        whose = LISTS.get(worst, f"{worst}'s")
        warning = f"{head}; {fmt_share(share[worst])} of {whose} top-{depth} was never judged: judge the new finds."
    return {"has_judgments": has, "unjudged": share, "unjudged_counts": counts, "finds": len(finds),
            "pooled_from": [r for r in roles if r in pooled], "warning": warning,
            "judged_since_run": since, "relevant_since_run": since_relevant}


def run_end_summary(start: Mapping[str, Mapping[str, dict]], ev: QADataset, systems: Mapping[str, RetrievalResult],
                    run_id: str) -> dict[str, Any] | None:
    """:func:`judging_summary` of a run that has just been scored; ``start`` is its judgments as they were
    when it started (the run folder's copy). None, with a warning in the log, when they cannot be read: a
    run never fails for it."""
    try:
        top = {role: dict(zip(r.query_ids, (ids[:DEPTH] for ids in r.ids))) for role, r in systems.items()}
        relevant = {q: set(ev.relevant_docs.get(q, [])) for q in ev.query_ids}
        return judging_summary(top, relevant, start, run_id=run_id, start=start)
    except (ValueError, AttributeError, TypeError) as exc:
        logger.warning("judging summary of %s skipped: %s", run_id, exc)
        return None
