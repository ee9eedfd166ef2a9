"""Canned analyst reports: documented SQL over the aggregates and the messages table.

Each report is plain ClickHouse SQL with named parameters (``{name:Type}``), so an analyst can
copy it from ``docs/reports.md`` into any ClickHouse tool; ``relradar report NAME`` runs the
same text against the configured store. Counts come from the ``counts_*`` aggregates
(``sum(messages)``, since a SummingMergeTree may hold a bucket in several parts until merged).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import PROBLEM_LABELS

PROBLEM_SQL = ", ".join(f"'{label.value}'" for label in sorted(PROBLEM_LABELS))


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    sql: str
    parameters: dict[str, str]  # name -> ClickHouse type, all required


REPORTS: dict[str, Report] = {
    r.name: r
    for r in [
        Report(
            "mix",
            "Relationship mix of one brand, per day: messages and share of each label",
            """
SELECT bucket AS day, toString(label) AS label, sum(messages) AS n,
       round(n / sum(n) OVER (PARTITION BY bucket), 4) AS share
FROM {db:Identifier}.counts_day
WHERE brand = {brand:String} AND bucket >= {since:DateTime} AND bucket < {until:DateTime}
GROUP BY bucket, label
ORDER BY day, n DESC""",
            {"brand": "String", "since": "DateTime", "until": "DateTime"},
        ),
        Report(
            "problem-share",
            "Problem share per brand and day against its own trailing baseline",
            f"""
SELECT day, brand, n, problem, share,
       round(avgOrNull(share) OVER w, 4) AS baseline,
       round(share - baseline, 4) AS excess
FROM (
    SELECT bucket AS day, brand, sum(messages) AS n,
           sumIf(messages, label IN ({PROBLEM_SQL})) AS problem,
           round(problem / n, 4) AS share
    FROM {{db:Identifier}}.counts_day
    WHERE bucket >= {{since:DateTime}} - INTERVAL {{baseline_days:UInt16}} DAY
      AND bucket < {{until:DateTime}}
    GROUP BY day, brand
)
WINDOW w AS (PARTITION BY brand ORDER BY day
             ROWS BETWEEN {{baseline_days:UInt16}} PRECEDING AND 1 PRECEDING)
QUALIFY day >= {{since:DateTime}}
ORDER BY brand, day""",
            {"since": "DateTime", "until": "DateTime", "baseline_days": "UInt16"},
        ),
        Report(
            "share-of-voice",
            "Share of voice: each brand's part of every label's messages in a period",
            """
SELECT toString(label) AS label, brand, sum(messages) AS n,
       round(n / sum(n) OVER (PARTITION BY label), 4) AS share_of_voice
FROM {db:Identifier}.counts_day
WHERE bucket >= {since:DateTime} AND bucket < {until:DateTime}
GROUP BY label, brand
ORDER BY label, n DESC""",
            {"since": "DateTime", "until": "DateTime"},
        ),
        Report(
            "movers",
            "Biggest movers: change of each brand's label share between two periods",
            """
SELECT brand, toString(label) AS label,
       round(sumIf(messages, bucket >= {a_since:DateTime} AND bucket < {a_until:DateTime})
             / greatest(1, sum(sumIf(messages, bucket >= {a_since:DateTime}
                                  AND bucket < {a_until:DateTime})) OVER (PARTITION BY brand)), 4)
           AS share_before,
       round(sumIf(messages, bucket >= {b_since:DateTime} AND bucket < {b_until:DateTime})
             / greatest(1, sum(sumIf(messages, bucket >= {b_since:DateTime}
                                  AND bucket < {b_until:DateTime})) OVER (PARTITION BY brand)), 4)
           AS share_after,
       round(share_after - share_before, 4) AS change
FROM {db:Identifier}.counts_day
WHERE (bucket >= {a_since:DateTime} AND bucket < {a_until:DateTime})
   OR (bucket >= {b_since:DateTime} AND bucket < {b_until:DateTime})
GROUP BY brand, label
ORDER BY abs(change) DESC
LIMIT {limit:UInt32}""",
            {
                "a_since": "DateTime",
                "a_until": "DateTime",
                "b_since": "DateTime",
                "b_until": "DateTime",
                "limit": "UInt32",
            },
        ),
        Report(
            "examples",
            "Top example messages per label: the most confident ones, optionally for one brand",
            """
SELECT toString(label) AS label, brand, round(toFloat64(scores[toString(label)]), 3) AS confidence,
       created_at, substring(text, 1, 280) AS text
FROM {db:Identifier}.messages
WHERE created_at >= {since:DateTime} AND created_at < {until:DateTime}
  AND (brand = {brand:String} OR {brand:String} = '') AND role = 'customer'
ORDER BY label, confidence DESC, created_at DESC
LIMIT {per_label:UInt32} BY label""",
            {"since": "DateTime", "until": "DateTime", "brand": "String", "per_label": "UInt32"},
        ),
        Report(
            "transitions",
            "Transition matrix: customers' moves from one relationship to the next (per brand, or "
            "all brands), with each row's share; `into_problem` marks entries into a problem label",
            """
SELECT toString(from_label) AS from_label, toString(to_label) AS to_label, count() AS n,
       round(n / sum(n) OVER (PARTITION BY from_label), 4) AS share_of_from,
       max(into_problem) AS into_problem
FROM {db:Identifier}.transitions FINAL
WHERE to_at >= {since:DateTime} AND to_at < {until:DateTime}
  AND (brand = {brand:String} OR {brand:String} = '')
GROUP BY from_label, to_label
ORDER BY from_label, n DESC""",
            {"since": "DateTime", "until": "DateTime", "brand": "String"},
        ),
        Report(
            "mismatch",
            "Relationship mismatch in support conversations per brand: conversations with a "
            "brand reply, the share mismatched, and the most common kind",
            """
SELECT brand, count() AS conversations, countIf(mismatch = 1) AS mismatched,
       round(mismatched / conversations, 4) AS mismatch_rate,
       topKIf(1)(mismatch_kind, mismatch = 1)[1] AS top_kind,
       topKIf(1)(toString(customer_relationship), mismatch = 1)[1] AS top_customer_relationship
FROM {db:Identifier}.conversations FINAL
WHERE treatment IS NOT NULL AND started_at >= {since:DateTime} AND started_at < {until:DateTime}
  AND (brand = {brand:String} OR {brand:String} = '')
GROUP BY brand
ORDER BY conversations DESC""",
            {"since": "DateTime", "until": "DateTime", "brand": "String"},
        ),
    ]
}


def reports_markdown() -> str:
    """``docs/reports.md``: every canned report's purpose, parameters and SQL."""
    lines = [
        "# Canned analyst reports",
        "",
        "Run them with `relradar report NAME` (see `relradar report --help`), or paste the SQL",
        "into any ClickHouse client and bind the parameters (`{name:Type}`, ClickHouse's own",
        "query-parameter syntax; over HTTP, `param_name=value`). `db` is the product's database",
        "(`relradar` unless `RELRADAR_DATABASE` says otherwise). Problem labels are",
        f"{PROBLEM_SQL}.",
        "",
    ]
    for report in REPORTS.values():
        params = ", ".join(f"`{k}` ({t})" for k, t in report.parameters.items())
        lines += [f"## `{report.name}`", "", report.title + ".", "", f"Parameters: {params}.",
                  "", "```sql" + report.sql, "```", ""]  # fmt: skip
    return "\n".join(lines)
