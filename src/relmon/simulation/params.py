"""Every number the simulator uses, with where it comes from, settable from a TOML file.

Published figures the defaults are calibrated to:

* **Direct-debit attrition 3–4.5 % a month (UK).** Rapidata, the largest UK charity
  direct-debit bureau, reported average monthly cancellation rates of 3.05 % (2006/07),
  3.32 % (2007/08), 4.64 % (2008/09) and 3.3 % (2010) across 117–160 charities
  (BBC News, "Direct charity payments declining", 11 March 2009; Civil Society News,
  "Direct debit cancellations fall, but charities miss opportunities", May 2011).
* **About 41 % of new monthly givers gone within a year.** PFRA Attrition Survey 2008
  (Future Fundraising / Quarriers, 377,000 donors): 41 % of door-to-door sign-ups of 2006
  had cancelled within 12 months (Third Sector, "Street fundraising: attrition rates
  predicted to rise by 10 %", 2009).
* **About 18 % acceptance and 6.6 % objections after outbound telemarketing calls.** DDMA
  Telemarketing Benchmark 2023 (figures over 2022, 11 Dutch contact centres): 18 % of the
  consumers called accept an offer; 6.6 % lodge a right-of-objection ("recht van bezwaar")
  after the conversation (ddma.nl, "DDMA Telemarketing Benchmark 2023: aantal campagnes
  lager, relevantie hoger", September 2023).
* **E-mail opens of about 29 %.** M+R Benchmarks: nonprofit e-mail open rate 28.59 %.

Everything else is marked *assumption*: a plausible value chosen so the population looks
like a Dutch charity's donor file, kept as a setting so it can be changed without code.
The churn-hazard multiplier after irritating calls is such an assumption.

``relmon simulate --show-params`` prints these defaults as a TOML file to start from;
``--params FILE`` reads one back (every key optional, unknown keys are an error).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from relmon.errors import ConfigError

Purpose = Literal[
    "upgrade", "reactivation", "acquisition", "thank_you", "service", "survey", "other"
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
MonthlyRate = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartnerProfile(_Frozen):
    """One call centre (or the charity's own service desk) and how it behaves.

    All defaults are assumptions; they encode the contact patterns the issue asks for:
    one partner calls at dinner time, chases people who asked for time and ignores
    contact rules, several partners work the same supporters.
    """

    partner_id: str = Field(min_length=1, max_length=64)
    campaigns_per_year: Annotated[float, Field(ge=0.0)]
    purposes: dict[Purpose, Annotated[float, Field(ge=0.0)]]
    target_share: Probability = Field(description="share of eligible supporters a campaign selects")
    campaign_days: tuple[int, int] = Field(description="campaign length range in days")
    dinner_share: Probability = Field(description="share of dial attempts at 17:30–19:30 local")
    max_attempts: Annotated[int, Field(ge=1, le=20)]
    retry_days: tuple[float, float] = Field(description="wait between attempts, days")
    respects_opt_out: Probability = Field(description="P(skips a phone opt-out/objection/DNC)")
    respects_time_request: Probability = Field(
        description="P(skips someone who asked for time in the last 30 days)"
    )
    respects_min_gap: Probability = Field(
        description="P(skips someone reached in the last 14 days or called 3+ times in 30)"
    )
    chases_time_request: bool = Field(description="calls back within days after 'asked for time'")
    agents: Annotated[int, Field(ge=1)]
    strays: Probability = Field(
        0.0,
        description="share of marketing dial attempts made outside the calling window: half "
        "late on a weekday evening (22:00-23:00 local), half on the next Sunday afternoon; "
        "the rest keep to the default policy's windows (assumption)",
    )

    @model_validator(mode="after")
    def _ranges(self) -> PartnerProfile:
        if not self.purposes or sum(self.purposes.values()) <= 0:
            raise ValueError("purposes needs at least one purpose with a positive weight")
        lo, hi = self.campaign_days
        if not 1 <= lo <= hi:
            raise ValueError("campaign_days must be [min, max] with 1 <= min <= max")
        rlo, rhi = self.retry_days
        if not 0 < rlo <= rhi:
            raise ValueError("retry_days must be [min, max] with 0 < min <= max")
        return self


def _default_partners() -> list[PartnerProfile]:
    return [
        # A careful agency doing donor care: thanks, upgrades, surveys. Assumption.
        PartnerProfile(
            partner_id="P-01",
            campaigns_per_year=8,
            purposes={"upgrade": 0.5, "thank_you": 0.3, "survey": 0.2},
            target_share=0.08,
            campaign_days=(14, 35),
            dinner_share=0.10,
            max_attempts=4,
            retry_days=(1.0, 4.0),
            respects_opt_out=1.0,
            respects_time_request=0.95,
            respects_min_gap=0.9,
            chases_time_request=False,
            agents=25,
        ),
        # A reactivation/acquisition specialist working lapsed donors and prospects. Assumption.
        PartnerProfile(
            partner_id="P-02",
            campaigns_per_year=6,
            purposes={"reactivation": 0.5, "acquisition": 0.3, "other": 0.2},
            target_share=0.15,
            campaign_days=(21, 42),
            dinner_share=0.12,
            max_attempts=5,
            retry_days=(1.0, 3.0),
            respects_opt_out=1.0,
            respects_time_request=0.9,
            respects_min_gap=0.85,
            chases_time_request=False,
            agents=20,
            strays=0.01,  # assumption: an occasional late call
        ),
        # The aggressive one: dinner-time calling, chases "asked for time", ignores contact
        # rules and now and then the opt-out list. Assumption (the pattern ops must catch).
        PartnerProfile(
            partner_id="P-03",
            campaigns_per_year=10,
            purposes={"upgrade": 0.6, "reactivation": 0.2, "other": 0.2},
            target_share=0.12,
            campaign_days=(10, 28),
            dinner_share=0.45,
            max_attempts=8,
            retry_days=(0.2, 1.5),
            respects_opt_out=0.97,
            respects_time_request=0.0,
            respects_min_gap=0.1,
            chases_time_request=True,
            agents=15,
            strays=0.04,  # assumption: the aggressive partner strays most
        ),
        # The charity's own supporter-care desk: service and thank-you calls. Assumption.
        PartnerProfile(
            partner_id="P-04",
            campaigns_per_year=6,
            purposes={"service": 0.6, "thank_you": 0.3, "survey": 0.1},
            target_share=0.05,
            campaign_days=(14, 28),
            dinner_share=0.05,
            max_attempts=3,
            retry_days=(1.0, 5.0),
            respects_opt_out=1.0,
            respects_time_request=1.0,
            respects_min_gap=1.0,
            chases_time_request=False,
            agents=10,
        ),
    ]


class SimulationParams(_Frozen):
    """Every parameter of ``relmon simulate``; each field says where its default comes from."""

    # --- population at the start (assumptions: a typical Dutch charity donor file) ---------
    share_donors: Probability = Field(0.75, description="assumption: supporters with a mandate")
    share_lapsed: Probability = Field(0.15, description="assumption: former donors, no mandate")
    frequency_mix: dict[Literal["monthly", "quarterly", "yearly"], float] = Field(
        default={"monthly": 0.85, "quarterly": 0.08, "yearly": 0.07},
        description="assumption: mandates are mostly monthly",
    )
    monthly_amounts_cents: list[int] = Field(
        default=[500, 750, 1000, 1250, 1500, 2000, 2500],
        description="assumption; Rapidata/Bacs 2010 report an average monthly gift of £12.86",
    )
    monthly_amount_weights: list[float] = Field(
        default=[20.0, 10.0, 30.0, 10.0, 15.0, 10.0, 5.0], description="assumption"
    )
    share_new_donors: Probability = Field(
        0.30, description="assumption: share of mandates in their first year at the start"
    )
    loyal_extra_tenure_mean_months: Positive = Field(
        48.0, description="assumption: tenure beyond 12 months is 12 + Exp(mean)"
    )
    share_with_email: Probability = Field(0.80, description="assumption")
    share_with_phone: Probability = Field(0.92, description="assumption")
    share_phone_opted_out: Probability = Field(0.04, description="assumption, at the start")
    share_email_opted_out: Probability = Field(0.05, description="assumption, at the start")
    reachability: tuple[Probability, Probability] = Field(
        (0.20, 0.55), description="assumption: P(answer) per dial attempt, uniform range"
    )
    evening_reach_boost: Positive = Field(
        1.3, description="assumption: people answer more after 17:00 (why partners call then)"
    )
    irritability_beta: tuple[Positive, Positive] = Field(
        (2.0, 4.0), description="assumption: Beta(a, b) of P(an intrusive call irritates)"
    )
    backfill_history: bool = Field(
        True,
        description="emit, before --start, a `started` event at mandate_started_at for every "
        "mandate active at the start and the opt-outs already on file, so a replay knows them",
    )

    # --- churn (calibrated to the published figures) ---------------------------------------
    first_year_monthly_attrition: MonthlyRate = Field(
        0.040,
        description="base monthly cancellation hazard in a mandate's first 12 months. With the "
        "irritation effect on top the observed first-year loss is about 41 % "
        "(PFRA Attrition Survey 2008: 41 % of door-to-door sign-ups gone within 12 months)",
    )
    established_monthly_attrition: MonthlyRate = Field(
        0.031,
        description="base monthly cancellation hazard after 12 months. The whole file then "
        "loses 3–4.5 % a month (Rapidata: 3.05–4.64 % a month, UK 2006–2010)",
    )
    irritation_hazard_multiplier: Annotated[float, Field(ge=1.0)] = Field(
        2.5,
        description="ASSUMPTION: churn hazard multiplier for irritation_window_days after an "
        "irritating reached call (1.0 = irritation never causes churn)",
    )
    irritation_window_days: Positive = Field(30.0, description="assumption")
    irritation_cancel_on_call: Probability = Field(
        0.015, description="assumption: P(a donor cancels on the irritating call itself)"
    )
    irritation_phone_opt_out: Probability = Field(
        0.04, description="assumption: P(opting out of phone within a week of an irritating call)"
    )
    cancel_channel_mix: dict[Literal["bank", "web", "post", "phone"], float] = Field(
        default={"bank": 0.5, "web": 0.15, "post": 0.05, "phone": 0.30},
        description="assumption; `phone` = the supporter calls in (an inbound call)",
    )
    share_cancel_after_failed_payment: Probability = Field(
        0.15, description="assumption: cancellations preceded by a payment_failed"
    )

    # --- calls -------------------------------------------------------------------------------
    partners: list[PartnerProfile] = Field(default_factory=_default_partners)
    acceptance_rate: Probability = Field(
        0.18,
        description="P(converted | reached, asking call) — DDMA Telemarketing Benchmark 2023: "
        "18 % of consumers called accept the offer",
    )
    objection_rate: Probability = Field(
        0.066,
        description="P(objects | reached, asking call) — DDMA Telemarketing Benchmark 2023: "
        "6.6 % lodge a right of objection after the call. Emitted as outcome do_not_call, "
        "half of them also as a consent_change objection on channel all",
    )
    objection_rate_non_ask: Probability = Field(
        0.01, description="assumption: objections after thank-you/service/survey calls"
    )
    share_objection_as_consent: Probability = Field(0.5, description="assumption")
    ask_outcome_weights: dict[str, float] = Field(
        default={
            "declined": 0.55,
            "info_requested": 0.17,
            "callback_requested": 0.08,
            "hung_up": 0.15,
            "complaint": 0.05,
        },
        description="assumption: how the remaining reached asking calls end",
    )
    non_ask_outcome_weights: dict[str, float] = Field(
        default={
            "declined": 0.80,
            "info_requested": 0.05,
            "callback_requested": 0.08,
            "hung_up": 0.06,
            "complaint": 0.01,
        },
        description="assumption; `declined` = talked, nothing changed",
    )
    attempt_weights: dict[Literal["no_answer", "busy", "voicemail"], float] = Field(
        default={"no_answer": 0.6, "busy": 0.1, "voicemail": 0.3},
        description="assumption",
    )
    wrong_number_rate: Probability = Field(0.015, description="assumption, per attempt")
    intrusive_irritation_boost: Probability = Field(
        0.5,
        description="assumption: when an intrusive call irritates, P(a `declined` becomes "
        "`hung_up`/`complaint`)",
    )
    sentiment_share: Probability = Field(
        0.3, description="assumption: reached calls scored by quality monitoring"
    )
    trigger_share: Probability = Field(0.15, description="assumption: calls with a trigger")
    upgrade_deltas_cents: list[int] = Field(default=[200, 250, 300, 500], description="assumption")

    # --- other contacts and changes, monthly rates per supporter (assumptions) ---------------
    inbound_call_rate: MonthlyRate = Field(0.015, description="assumption: service calls in")
    one_off_gift_rate: MonthlyRate = Field(0.02, description="assumption")
    organic_signup_rate: MonthlyRate = Field(
        0.004, description="assumption: non-donors starting a mandate on the web"
    )
    phone_opt_out_rate: MonthlyRate = Field(0.001, description="assumption: unprompted")
    opt_in_after_opt_out: Probability = Field(
        0.05, description="assumption: opt-outs later reversed by an opt_in"
    )
    reversal_rate: MonthlyRate = Field(
        0.004, description="assumption: SEPA reversals (storno) per active mandate"
    )
    failed_payment_rate: MonthlyRate = Field(0.008, description="assumption, recovered later")
    pause_rate: MonthlyRate = Field(0.002, description="assumption")
    downgrade_rate: MonthlyRate = Field(0.003, description="assumption")
    self_upgrade_rate: MonthlyRate = Field(0.002, description="assumption")

    # --- e-mail ------------------------------------------------------------------------------
    email_interval_days: Positive = Field(14.0, description="assumption: a mailing each 2 weeks")
    email_open_rate_beta: tuple[Positive, Positive] = Field(
        (2.0, 5.0),
        description="Beta(a, b) of a supporter's open propensity; mean 0.29 ≈ M+R Benchmarks' "
        "nonprofit open rate of 28.59 %",
    )
    email_click_given_open: Probability = Field(0.10, description="assumption")
    email_bounce_rate: Probability = Field(0.01, description="assumption: hard bounces")
    email_unsubscribe_rate: Probability = Field(
        0.002, description="assumption: per delivered e-mail"
    )
    email_spam_rate: Probability = Field(0.0003, description="assumption: per delivered e-mail")

    @model_validator(mode="after")
    def _consistent(self) -> SimulationParams:
        if self.share_donors + self.share_lapsed > 1.0:
            raise ValueError("share_donors + share_lapsed must be at most 1")
        if len(self.monthly_amounts_cents) != len(self.monthly_amount_weights):
            raise ValueError("monthly_amounts_cents and monthly_amount_weights differ in length")
        if not self.partners:
            raise ValueError("at least one partner is needed")
        ids = [p.partner_id for p in self.partners]
        if len(set(ids)) != len(ids):
            raise ValueError(f"partner_id values must be unique, got {ids}")
        allowed = {"declined", "info_requested", "callback_requested", "hung_up", "complaint"}
        for name in ("ask_outcome_weights", "non_ask_outcome_weights"):
            unknown = set(getattr(self, name)) - allowed
            if unknown:
                raise ValueError(f"{name}: unknown outcomes {sorted(unknown)}; use {allowed}")
        if self.acceptance_rate + self.objection_rate > 1.0:
            raise ValueError("acceptance_rate + objection_rate must be at most 1")
        return self


def load_params(path: str | Path | None) -> SimulationParams:
    """The defaults, overridden by the TOML file at ``path`` when given."""
    if path is None:
        return SimulationParams()
    try:
        data: dict[str, Any] = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read --params {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--params {path} is not valid TOML: {exc}") from None
    try:
        return SimulationParams.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"--params {path}: {problems}") from None


def params_as_toml(params: SimulationParams) -> str:
    """The parameters as a commented TOML file (what ``--show-params`` prints)."""
    lines = [
        "# relmon simulate parameters: defaults with their sources. Edit and pass --params.",
        "# Sources are cited in relmon/simulation/params.py.",
        "",
    ]
    fields = SimulationParams.model_fields
    for name, info in fields.items():
        if name == "partners":
            continue
        if info.description:
            lines.append(f"# {info.description}")
        lines.append(f"{name} = {_toml_value(getattr(params, name))}")
    for partner in params.partners:
        lines += ["", "[[partners]]"]
        for name in PartnerProfile.model_fields:
            lines.append(f"{name} = {_toml_value(getattr(partner, name))}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
