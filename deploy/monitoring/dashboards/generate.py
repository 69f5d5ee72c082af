"""Generate the relmon Grafana dashboard (``relmon.json``) with grafana-foundation-sdk.

Usage::

    python deploy/monitoring/dashboards/generate.py            # write relmon.json beside this file
    python deploy/monitoring/dashboards/generate.py --check    # exit 1 if relmon.json is stale
    python deploy/monitoring/dashboards/generate.py --out F    # write somewhere else

The "Runbooks" link points at ``$RELMON_RUNBOOK_BASE_URL`` (where your organisation publishes
``deploy/monitoring/runbooks.md``), by default the repository-relative path
``deploy/monitoring/runbooks.md``: ``make dashboards RELMON_RUNBOOK_BASE_URL=https://...``.

Correct for any number of workers: each worker exports gauges (suppressions, lag) only for
the partitions it owns, so totals are ``sum`` across workers of ``max by (partition)`` (a
partition can be reported by two workers around a rebalance), never a ``max`` across workers;
counters are summed (each event is counted by the one worker that handled it).

Targets Grafana 11.6 (grafana-foundation-sdk ``1769699379!11.6.0``). The output is
deterministic (sorted keys, fixed ids and uid), so it is committed and CI fails on drift
(``tests/deploy/test_dashboard_drift.py``); every query is parsed by promtool
(``tests/deploy/test_promtool.py``). Metric names are those of
``src/relmon/observability/metrics.py`` and the recording rules of
``deploy/monitoring/rules/relmon-alerts.yml``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

OUT = Path(__file__).with_name("relmon.json")
UID = "relmon-overview"
DEFAULT_RUNBOOK_BASE_URL = "deploy/monitoring/runbooks.md"  # as deploy/k8s/build.py
RUNBOOK_BASE_URL = (
    os.environ.get("RELMON_RUNBOOK_BASE_URL", "").strip().rstrip("/#") or DEFAULT_RUNBOOK_BASE_URL
)
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job="relmon"'
RATE = "$__rate_interval"
COMPLAINT_REASONS = "COMPLAINT|OBJECTION|DO_NOT_CALL_REQUEST"
HEALTH_ROUTES = "/healthz|/readyz|/metrics"  # not dialer traffic


def query(expr: str, legend: str = "__auto", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


def stat_panel(title: str, description: str, expr: str, unit: str = "short") -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .with_target(query(expr))
        .unit(unit)
        .height(4)
        .span(4)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
    )


def graph(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    unit: str = "short",
    *,
    stacked: bool = False,
    span: int = 12,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets(list(targets))
        .unit(unit)
        .height(8)
        .span(span)
        .fill_opacity(10)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(
            40
        )
    return panel


def build() -> db.Dashboard:
    partner = 'partner=~"$partner"'
    dash = (
        db.Dashboard("relmon")
        .uid(UID)
        .description(
            "relmon: the event pipeline, suppressions and the relationship signals it raises "
            "(churn after contact, calls against suppressions, complaints). See docs/operations.md."
        )
        .tags(["relmon", "kafka", "faust"])
        .time("now-24h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .editable()
        .link(
            db.DashboardLink("Runbooks")
            .type(DashboardLinkType.LINK)
            .url(RUNBOOK_BASE_URL)
            .icon("doc")
            .tooltip("What each relmon alert means and what to do")
        )
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            db.QueryVariable("partner")
            .label("Partner")
            .datasource(DS)
            .query(f"label_values(relmon_calls_while_suppressed_total{{{JOB}}}, partner)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )

    dash = (
        dash.with_row(db.Row("Health"))
        .with_panel(
            stat_panel(
                "Workers up",
                "Workers Prometheus can scrape. 0 fires RelmonDown.",
                f"sum(up{{{JOB}}})",
            ).thresholds(thresholds((None, "red"), (1, "green")))
        )
        .with_panel(
            stat_panel(
                "Workers recovering",
                "Workers restoring their state table or rebalancing (not ready).",
                f"sum(relmon_recovery_in_progress{{{JOB}}})",
            ).thresholds(thresholds((None, "green"), (1, "orange")))
        )
        .with_panel(
            stat_panel(
                "Events / s",
                "Input events consumed per second, all types and results.",
                f"sum(rate(relmon_events_consumed_total{{{JOB}}}[{RATE}]))",
                "ops",
            )
        )
        .with_panel(
            stat_panel(
                "Consumer lag",
                "Messages not yet processed, all input topics. Above 10k for 15 min alerts.",
                f"sum(max by (topic, partition) (relmon_consumer_lag{{{JOB}}}))",
            ).thresholds(thresholds((None, "green"), (1000, "orange"), (10000, "red")))
        )
        .with_panel(
            stat_panel(
                "Suppressed now",
                "Supporters suppressed now, for any reason, each counted once: the sum over "
                "partitions of what their owning worker reports.",
                f"sum(max by (partition) (relmon_suppressed_supporters{{{JOB}}}))",
            )
        )
        .with_panel(
            stat_panel(
                "relmon alerts firing",
                "Prometheus alerts of relmon firing now (see Runbooks link above).",
                'count(ALERTS{alertname=~"Relmon.*", alertstate="firing"}) or vector(0)',
            ).thresholds(thresholds((None, "green"), (1, "red")))
        )
    )

    dash = (
        dash.with_row(db.Row("Pipeline"))
        .with_panel(
            graph(
                "Events consumed by type and result",
                "ok: applied; duplicate: an event_id seen before (harmless redelivery); "
                "dead_letter: could not be decoded or validated.",
                [
                    query(
                        "sum by (type, result) "
                        f"(rate(relmon_events_consumed_total{{{JOB}}}[{RATE}]))",
                        "{{type}} {{result}}",
                    )
                ],
                "ops",
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Processing latency",
                "Time to handle one message (decode, apply, persist, emit); p50, p95, p99.",
                [
                    query(
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(relmon_event_processing_seconds_bucket{{{JOB}}}[{RATE}])))",
                        f"p{int(q * 100)}",
                        ref,
                    )
                    for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
                ],
                "s",
            )
        )
        .with_panel(
            graph(
                "Consumer lag by topic",
                "Messages behind per input topic. Rising while events/s is flat: workers too "
                "slow or stuck; rising with events/s: a burst, autoscaling should follow.",
                [
                    query(
                        "sum by (topic) "
                        f"(max by (topic, partition) (relmon_consumer_lag{{{JOB}}}))",
                        "{{topic}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Dead letters by kind",
                "Messages sent to relmon.dlq per minute by error kind. Any steady flow means "
                "a producer is sending bad events (RelmonDeadLettersGrowing).",
                [
                    query(
                        f"sum by (kind) (rate(relmon_dead_letters_total{{{JOB}}}[{RATE}])) * 60",
                        "{{kind}}",
                    )
                ],
                "short",
            )
        )
    )

    dash = (
        dash.with_row(db.Row("Decisions"))
        .with_panel(
            graph(
                "Suppressed supporters by reason",
                "Supporters suppressed now, by reason in force (a supporter with two reasons "
                "counts in both). Read from state at scrape time.",
                [
                    query(
                        "sum by (reason) "
                        f"(max by (partition, reason) (relmon_suppressions{{{JOB}}}))",
                        "{{reason}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "New reasons in force per hour",
                "Decisions that put a reason newly in force (LIFTED: suppressions lifted).",
                [
                    query(
                        f"sum by (reason) (increase(relmon_decisions_total{{{JOB}}}[1h]))",
                        "{{reason}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Complaints and objections: last hour vs the day before",
                "Solid: new COMPLAINT / OBJECTION / DO_NOT_CALL_REQUEST in the last hour. "
                "Baseline: hourly average of the day before. RelmonComplaintsSpike fires at "
                "3x the baseline and at least 10.",
                [
                    query("reason:relmon_decisions:increase1h", "{{reason}}", "A"),
                    query("reason:relmon_decisions:increase1h_avg1d", "{{reason}} baseline", "B"),
                ],
                span=24,
            )
        )
    )

    dash = (
        dash.with_row(db.Row("Churn after contact"))
        .with_panel(
            graph(
                "Churn-after-contact alerts per partner, last 24 h",
                "Loyal donors who churned within 30 days after a reached call, by the partner "
                "of that call; dashed baseline: the partner's average day of the week before. "
                "RelmonChurnAfterContactHigh fires at twice the baseline and at least 5.",
                [
                    query(
                        f"partner:relmon_churn_after_contact_alerts:increase1d{{{partner}}}",
                        "{{partner}}",
                        "A",
                    ),
                    query(
                        f"partner:relmon_churn_after_contact_alerts:increase1d_avg7d{{{partner}}}",
                        "{{partner}} baseline",
                        "B",
                    ),
                ],
            )
        )
        .with_panel(
            graph(
                "Monthly amount lost per partner, last 24 h",
                "Sum of the monthly amounts lost in churn-after-contact alerts (in the "
                "donation currency; cents / 100).",
                [
                    query(
                        "partner:relmon_churn_monthly_amount_lost_cents:increase1d"
                        f"{{{partner}}} / 100",
                        "{{partner}}",
                    )
                ],
                "currencyEUR",
            )
        )
        .with_panel(
            graph(
                "Churn-after-contact alerts by campaign purpose, last 24 h",
                "Which kind of call precedes churn: upgrade, reactivation, acquisition, ...",
                [
                    query(
                        "sum by (purpose) (increase("
                        f"relmon_churn_after_contact_alerts_total{{{JOB},{partner}}}[1d]))",
                        "{{purpose}}",
                    )
                ],
                span=24,
            )
        )
    )

    dash = (
        dash.with_row(db.Row("Calls against suppressions"))
        .with_panel(
            graph(
                "Calls to suppressed supporters per partner, last hour",
                "Outbound marketing calls to supporters suppressed at the time of the call. "
                "RelmonCallsWhileSuppressed fires at 3 in an hour, held 10 minutes.",
                [
                    query(
                        "sum by (partner) (increase("
                        f"relmon_calls_while_suppressed_total{{{JOB},{partner}}}[1h]))",
                        "{{partner}}",
                    )
                ],
                span=24,
            )
        )
        .with_panel(
            graph(
                "Calls outside calling hours per partner, last hour",
                "Outbound marketing calls outside the policy's calling windows (supporter-local: "
                "late evenings, Sundays, public holidays), by partner and kind of day. "
                "RelmonCallsOutsideWindow fires at 3 in an hour, held 10 minutes.",
                [
                    query(
                        "sum by (partner, day) (increase("
                        f"relmon_calls_outside_window_total{{{JOB},{partner}}}[1h]))",
                        "{{partner}} {{day}}",
                    )
                ],
                span=24,
            )
        )
    )

    dialer = f'{JOB},route!~"{HEALTH_ROUTES}"'
    return (
        dash.with_row(db.Row("Dialer API"))
        .with_panel(
            graph(
                "API requests by route and status class",
                "Requests per second answered by the workers' HTTP API, by route template and "
                "status class (health checks and scrapes left out; a forwarded request counts "
                "once). 5xx includes 503: state being recovered or rebalanced "
                "(RelmonApiErrors).",
                [
                    query(
                        "sum by (route, status_class) "
                        f"(rate(relmon_http_responses_total{{{dialer}}}[{RATE}]))",
                        "{{route}} {{status_class}}",
                    )
                ],
                "reqps",
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "API latency by route",
                "Time from a request's arrival to its answer, p50 and p99 per route, all "
                "workers (a request forwarded to the supporter's owner counts once, with the "
                "time the client waited).",
                [
                    query(
                        f"histogram_quantile({q}, sum by (route, le) (rate("
                        f"relmon_http_request_duration_seconds_bucket{{{dialer}}}[{RATE}])))",
                        f"{{{{route}}}} p{int(q * 100)}",
                        ref,
                    )
                    for q, ref in ((0.5, "A"), (0.99, "B"))
                ],
                "s",
            )
        )
        .with_panel(
            graph(
                "Not ready (503) per route, per minute",
                "Requests answered 503 because a worker was recovering or rebalancing: the "
                "dialer must retry and not dial meanwhile. Brief bursts at restarts and scaling "
                "are expected; a steady flow is not.",
                [
                    query(
                        "sum by (route) "
                        f"(rate(relmon_http_not_ready_total{{{dialer}}}[{RATE}])) * 60",
                        "{{route}}",
                    )
                ],
                span=24,
            )
        )
    )


def render() -> str:
    model = build().build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number  # stable ids: Grafana keys panel links and state on them
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out", type=Path, default=OUT, help="where to write (default: %(default)s)"
    )
    parser.add_argument("--check", action="store_true", help="fail if the file differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run `make dashboards`", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
