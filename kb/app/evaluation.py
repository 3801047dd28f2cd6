"""Quality metrics for labelled queries (``kb eval``).

A query file is JSONL: ``{"text": "...", "relevant": ["<resolution or record id>", ...]}``.
``relevant`` may name article ids, incident ids, resolution texts or resolution codes (the
incidents' ``resolution_code``: where notes are free text, the code says which resolution a
note stands for). A result matches a relevant entry when the entry is the result's id, its
resolution text, or any record or code that the result's resolution stands for (the
incidents grouped into it; for a resolution family, the codes of at least half of it). Metrics count distinct
resolutions: two relevant incidents resolved with the same article are one resolution.
A query with ``"relevant": []`` is out of scope: the service should flag it.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kb.errors import RecordError
from kb.store import Store
from search.state import SearchState, normalise_resolution
from search.suggester import ResolutionSuggester, SuggestRequest
from search.triage import ROUTED_FIELDS

EVAL_DEPTH = 10


@dataclass
class LabelledQuery:
    text: str
    relevant: list[str]
    line: int
    assignment_group: str = ""  # when given, the routing of triage is measured too
    labels: dict[str, str] = field(default_factory=dict)  # routed field -> its true value
    customer_tier: str = ""  # asked with the query, as a ticket system would send it


def read_labelled_queries(path: str | Path) -> list[LabelledQuery]:
    """Parse a JSONL file of labelled queries. Raises RecordError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise RecordError("no such file", source=str(path))
    queries = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(
                    f"invalid JSON: {exc.msg}", source=str(path), line=number
                ) from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise RecordError('each line needs a "text" string', source=str(path), line=number)
            relevant = record.get("relevant", [])
            if isinstance(relevant, str):
                relevant = [relevant]
            if not isinstance(relevant, list) or not all(isinstance(r, str) for r in relevant):
                raise RecordError('"relevant" must be a list of ids', source=str(path), line=number)
            labels = {}
            for name in (*ROUTED_FIELDS, "customer_tier"):
                value = record.get(name) or ""
                if not isinstance(value, str):
                    raise RecordError(f'"{name}" must be text', source=str(path), line=number)
                if value:
                    labels[name] = value
            tier = labels.pop("customer_tier", "")
            queries.append(
                LabelledQuery(
                    record["text"],
                    relevant,
                    number,
                    labels.get("assignment_group", ""),
                    labels,
                    tier,
                )
            )
    if not queries:
        raise RecordError("the file holds no queries", source=str(path))
    return queries


class GroupMembers:
    """Which record ids, resolution texts and resolution codes each result group stands for.

    An incident's ``resolution_code`` names the resolution it stands for where the notes
    are free text. A family (search.families) stands for the codes that at least half of
    its incidents carry, not for every code one of them carries: a family that mixes two
    resolutions is not right for both.
    """

    def __init__(self, state: SearchState, codes: dict[str, str] | None = None):
        codes = codes or {}
        self.by_group: dict[str, set[str]] = defaultdict(set)
        self.groups_of_name: dict[str, set[str]] = defaultdict(set)
        family_codes: dict[str, Counter] = defaultdict(Counter)
        for (_kind, doc_id), doc in state.docs.items():
            names = {doc_id}
            if doc.kind == "incident" and doc.resolution:
                names.add(normalise_resolution(doc.resolution))
            code = codes.get(doc_id, "") if doc.kind == "incident" else ""
            for group in self._groups_of(doc):
                if group.startswith("f:"):
                    self.by_group[group].update(names)
                    if code:
                        family_codes[group][code] += 1
                else:
                    names_here = names | ({code} if code else set())
                    self.by_group[group].update(names_here)
                if not group.startswith("i:"):
                    for name in names:
                        self.groups_of_name[name].add(group)
                    if code and not group.startswith("f:"):
                        self.groups_of_name[code].add(group)
        for group, counts in family_codes.items():
            total = sum(counts.values())
            for code, n in counts.items():
                if 2 * n >= total:
                    self.by_group[group].add(code)
                    self.groups_of_name[code].add(group)

    @staticmethod
    def _groups_of(doc) -> list[str]:
        groups = ["i:" + doc.id] if doc.kind == "incident" else ["a:" + doc.id]
        if doc.kind == "incident" and doc.article_id:
            groups.append("a:" + doc.article_id)
        if doc.res_key:
            groups.append(doc.res_key)
        return groups

    def names(self, result) -> set[str]:
        names = {result.id, normalise_resolution(result.resolution)}
        return names | self.by_group.get(result.group, set())


def evaluate(
    suggester: ResolutionSuggester,
    store: Store,
    queries: list[LabelledQuery],
    *,
    ranking: str = "shipped",
    progress: Callable[[int], None] | None = None,
    use_feedback: bool = True,
    route_from_relevant: str = "",
) -> dict[str, Any]:
    """Run every query through the suggester and report ranking metrics, and triage's
    routing of each field the queries are labelled with (``route_from_relevant``: a field
    whose true value is each query's first relevant id, for stores whose resolutions are
    their groups)."""
    state = suggester.ensure_state(store)
    members = GroupMembers(state, resolution_codes(store))
    in_scope = [q for q in queries if q.relevant]
    out_scope = [q for q in queries if not q.relevant]
    hits1 = rr = recall5 = recall10 = flagged_in = flagged_out = 0.0
    latencies = []
    shown: list[tuple[float, bool]] = []  # (top result's confidence, whether it was right)
    mixed: list[tuple[float, bool, str]] = []  # the same over every query, with its band
    misses: list[dict[str, Any]] = []
    tallies = {name: RoutingTally(state, name) for name in ROUTED_FIELDS}
    for query in queries:
        began = time.perf_counter()
        suggestion = suggester.suggest(
            store,
            SuggestRequest(
                description=query.text,
                k=EVAL_DEPTH,
                ranking=ranking,
                use_feedback=use_feedback,
                customer_tier=query.customer_tier,
            ),
            record=False,
        )
        latencies.append((time.perf_counter() - began) * 1000)
        if progress:
            progress(1)
        labels = dict(query.labels)
        if route_from_relevant and route_from_relevant not in labels and query.relevant:
            labels[route_from_relevant] = query.relevant[0]
        for name, truth in labels.items():
            tallies[name].add(truth, routed_prediction(suggestion.triage, name))
        if not query.relevant:
            flagged_out += suggestion.no_good_match
            if suggestion.results:
                top = suggestion.results[0]
                mixed.append((_shown(top), False, top.confidence_band))
            continue
        flagged_in += suggestion.no_good_match
        wanted = {normalise_resolution(r) for r in query.relevant} | set(query.relevant)
        found_at: list[int] = []
        for result in suggestion.results:
            if members.names(result) & wanted:
                found_at.append(result.rank)
        first = min(found_at) if found_at else 0
        hits1 += first == 1
        if suggestion.results:
            shown.append((suggestion.results[0].score, first == 1))
            top = suggestion.results[0]
            mixed.append((_shown(top), first == 1, top.confidence_band))
        rr += 1.0 / first if first else 0.0
        # Distinct relevant resolutions: relevant ids that share a group count once.
        relevant_groups = max(1, _distinct_resolutions(query.relevant, members))
        recall5 += min(1.0, sum(1 for r in found_at if r <= 5) / relevant_groups)
        recall10 += min(1.0, len(found_at) / relevant_groups)
        if first != 1 and len(misses) < 20:
            misses.append(
                {
                    "line": query.line,
                    "text": query.text[:120],
                    "relevant": query.relevant,
                    "got": [r.id for r in suggestion.results[:3]],
                }
            )
    n = max(len(in_scope), 1)
    report = {
        "ranking": ranking,
        "queries": len(queries),
        "in_scope": len(in_scope),
        "accuracy_at_1": round(hits1 / n, 4),
        "mrr": round(rr / n, 4),
        "recall_at_5": round(recall5 / n, 4),
        "recall_at_10": round(recall10 / n, 4),
        "flagged_in_scope": int(flagged_in),
        "flagged_in_scope_rate": round(flagged_in / n, 4),
        "out_of_scope": len(out_scope),
        "flagged_out_of_scope": int(flagged_out),
        "flagged_out_of_scope_rate": round(flagged_out / max(len(out_scope), 1), 4)
        if out_scope
        else None,
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2),
        "profile": state.profile.source,
        "reliability": reliability_table(shown) if ranking == "shipped" else [],
        "balanced_accuracy": (
            round(0.5 * (flagged_out / len(out_scope) + 1 - flagged_in / n), 4)
            if out_scope and in_scope
            else None
        ),
        "trust": trust_report(mixed) if ranking == "shipped" else None,
        "routing": tallies["assignment_group"].report(),
        "routing_fields": {name: tally.report() for name, tally in tallies.items() if tally.rows},
        "misses": misses,
    }
    return report


def resolution_codes(store: Store) -> dict[str, str]:
    """incident id -> its resolution code, for incidents that have one."""
    return {
        i.id: i.resolution_code.strip() for i in store.iter_incidents() if i.resolution_code.strip()
    }


def routed_prediction(triage: dict[str, Any], name: str) -> dict[str, Any]:
    """Triage's prediction of one field, as the tally reads it. A priority raised for the
    customer's tier is measured as predicted, before the raise."""
    predicted = triage.get(name) or {}
    if name != "priority":
        return predicted
    guess = predicted.get("similar_priority") or predicted.get("value")
    return {
        "best_guess": guess,
        "value": None if predicted.get("not_sure", True) else guess,
        "not_sure": predicted.get("not_sure", True),
        "probability": predicted.get("probability", 0.0),
        "nearest": predicted.get("nearest"),
    }


class RoutingTally:
    """Predicted value of a field (the assignment group, ...) against the labelled one:
    accuracy of the prediction (the best guess when not sure), the share marked not sure and
    the accuracy of the rest, a reliability table of the probability, and the majority and
    nearest-incident baselines."""

    def __init__(self, state: SearchState, name: str = "assignment_group"):
        from collections import Counter

        groups = Counter(
            getattr(d, name)
            for d in state.docs.values()
            if d.kind == "incident" and getattr(d, name)
        )
        self.majority = groups.most_common(1)[0][0] if groups else ""
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def add(self, truth: str, predicted: dict[str, Any]) -> None:
        self.rows.append((truth, predicted))

    def report(self) -> dict[str, Any] | None:
        if not self.rows:
            return None
        n = len(self.rows)
        guess_right = [(p.get("best_guess") or "") == t for t, p in self.rows]
        sure = [(t, p) for t, p in self.rows if not p.get("not_sure", True)]
        return {
            "queries": n,
            "accuracy_at_1": round(sum(guess_right) / n, 4),
            "not_sure_share": round(1 - len(sure) / n, 4),
            "accuracy_when_sure": round(sum(p.get("value") == t for t, p in sure) / len(sure), 4)
            if sure
            else None,
            "majority_baseline": round(sum(t == self.majority for t, _ in self.rows) / n, 4),
            "nearest_neighbour_baseline": round(
                sum(p.get("nearest") == t for t, p in self.rows) / n, 4
            ),
            "reliability": reliability_table(
                [
                    (float(p.get("probability") or 0.0), (p.get("best_guess") or "") == t)
                    for t, p in self.rows
                ]
            ),
        }


RELIABILITY_BINS = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0001)


def reliability_table(shown: list[tuple[float, bool]]) -> list[dict[str, Any]]:
    """For the top result of each in-scope query: within each band of shown confidence,
    how many results there were, their mean confidence, and how many were right."""
    rows = []
    for low, high in zip(RELIABILITY_BINS, RELIABILITY_BINS[1:], strict=False):
        band = [(c, ok) for c, ok in shown if low <= c < high]
        if band:
            rows.append(
                {
                    "band": f"{low:.1f}-{min(high, 1.0):.1f}",
                    "results": len(band),
                    "mean_confidence": round(sum(c for c, _ in band) / len(band), 3),
                    "accuracy": round(sum(ok for _, ok in band) / len(band), 3),
                }
            )
    return rows


def _shown(result) -> float:
    """The confidence an agent reads: the number where there is one, else the score."""
    return result.confidence if result.confidence is not None else result.score


def trust_report(rows: list[tuple[float, bool, str]]) -> dict[str, Any]:
    """The top result's shown confidence over every query (an out-of-scope query's result
    is wrong): its reliability table, expected calibration error, and how often each band
    was right."""
    from search.confidence import BANDS, expected_calibration_error

    bands = {}
    for band in BANDS:
        inside = [ok for _, ok, b in rows if b == band]
        bands[band] = {
            "results": len(inside),
            "right_share": round(sum(inside) / len(inside), 4) if inside else None,
        }
    return {
        "queries": len(rows),
        "reliability": reliability_table([(c, ok) for c, ok, _ in rows]),
        "ece": round(expected_calibration_error([(c, ok) for c, ok, _ in rows]), 4),
        "bands": bands,
    }


def _distinct_resolutions(relevant: list[str], members: GroupMembers) -> int:
    groups = set()
    for name in relevant:
        owners = members.groups_of_name.get(name) or members.groups_of_name.get(
            normalise_resolution(name)
        )
        groups.add(min(owners) if owners else name)
    return len(groups)
