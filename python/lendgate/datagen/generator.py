"""The event stream: applications (create, bureau check, special check, result), payments
and outcomes of a synthetic population, with planted fraud patterns and their labels.

The stream is produced by a discrete-event simulation: every action (an application
arriving, its bureau check, a payment, an outcome) sits in one heap ordered by event time
and, when popped, emits its events and schedules its follow-ups. Events therefore come out
in event-time order, and memory is bounded by the actions pending in the simulation
horizon (the daily rate times the longest follow-up delay), not by the size of the output.

See docs/DATA.md for the patterns and their rates.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, cast

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from lendgate.datagen import population as pop
from lendgate.v1 import common_pb2 as c
from lendgate.v1 import scoring_pb2 as s

Kind = Literal["application", "payment", "outcome"]

# Target share of LOAN_APP_CREATE events per fraud pattern, and the fraud type reported
# when the fraud is confirmed. Burst patterns plant groups of applications (mean size).
PATTERNS: dict[str, tuple[float, int, float]] = {
    # name: (share of applications, FraudType, mean group size)
    "identity_theft": (0.010, s.FRAUD_TYPE_IDENTITY_THEFT, 1.0),
    "fraud_ring": (0.010, s.FRAUD_TYPE_FRAUD_RING, 7.0),
    "one_day_firm": (0.006, s.FRAUD_TYPE_FAKE_EMPLOYER, 5.5),
    "mass_ip": (0.006, s.FRAUD_TYPE_FIRST_PARTY, 8.5),
    "passport_tampering": (0.005, s.FRAUD_TYPE_DOCUMENT_FORGERY, 1.0),
    "mule": (0.005, s.FRAUD_TYPE_MONEY_MULE, 1.0),
}
GROUP_SIZES = {"fraud_ring": (4, 10), "one_day_firm": (3, 8), "mass_ip": (5, 12)}
GROUP_SPAN_DAYS = {"fraud_ring": 10, "one_day_firm": 7, "mass_ip": 2}
REAPPLY_P = 0.25  # a legitimate applicant applies again (another loan, another lender)
N_PARTNERS = 5
DAY = 86400


@dataclass(frozen=True)
class GenConfig:
    """What to generate: a seed, the number of applicants and the simulated period."""

    seed: int = 1
    applicants: int = 1000
    days: int = 90
    start: dt.date = dt.date(2025, 1, 1)


@dataclass(frozen=True)
class GeneratedEvent:
    """One event of the stream with its ground-truth label.

    ``message`` is an ``ApplicationEvent``, a ``PaymentEvent`` or, for outcomes, a
    ``ReportOutcomeRequest``. ``label`` is the generator's truth (never sent to the API):
    ``fraud``, ``pattern``, ``group`` and ``person``.
    """

    kind: Kind
    time: int
    message: Message
    label: dict[str, object]


@dataclass
class _App:
    """An application in flight: what its later stages need."""

    app_id: str
    partner: str
    person: pop.PersonData
    label: dict[str, object]
    amount_minor: int
    fraud_type: int
    approved: bool = False
    card_token: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def _ts(t: int) -> Timestamp:
    return Timestamp(seconds=t)


def _date(d: dt.date) -> str:
    return d.isoformat()


class Generator:
    """Iterate over it to get the events; ``day`` tells the progress."""

    def __init__(self, cfg: GenConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(f"{cfg.seed}:stream")
        self.t0 = int(dt.datetime.combine(cfg.start, dt.time(), dt.UTC).timestamp())
        self.t_end = self.t0 + cfg.days * DAY
        self.n_employers = max(20, cfg.applicants // 25)
        self.day = 0
        self._heap: list[tuple[int, int, Callable[[int], list[GeneratedEvent]]]] = []
        self._seq = 0
        self._next_person = 0  # next legitimate applicant index
        self._next_fraudster = 0  # fresh identities made by fraud patterns
        self._groups = 0
        self._apps = 0
        self._payments = 0
        self._cgnat = [pop.ip_address(pop.rng_for(cfg.seed, "cgnat", i)) for i in range(50)]
        self._triggers = self._trigger_probabilities()

    # --- the simulation loop ---------------------------------------------------------

    def __iter__(self) -> Iterator[GeneratedEvent]:
        slots = self._slots_per_day()
        for day in range(self.cfg.days):
            self.day = day
            day_start = self.t0 + day * DAY
            for _ in range(slots[day]):
                t = day_start + self.rng.randint(7 * 3600, 23 * 3600)
                self._push(t, self._arrival)
            yield from self._drain(day_start + DAY)
        self.day = self.cfg.days

    def _drain(self, until: int) -> Iterator[GeneratedEvent]:
        while self._heap and self._heap[0][0] < until:
            t, _, action = heapq.heappop(self._heap)
            yield from action(t)

    def _push(self, t: int, action: Callable[[int], list[GeneratedEvent]]) -> None:
        if t < self.t_end:
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, action))

    def _slots_per_day(self) -> list[int]:
        base, extra = divmod(self.cfg.applicants, self.cfg.days)
        return [base + (1 if d < extra else 0) for d in range(self.cfg.days)]

    def _trigger_probabilities(self) -> list[tuple[str, float]]:
        # Per arrival slot, the chance to start each pattern, chosen so that the realised
        # share of applications matches PATTERNS: a legitimate applicant makes m
        # applications on average (re-applications), a group of mean size k is k of them.
        m = 1.0 / (1.0 - REAPPLY_P)
        share = sum(v[0] for v in PATTERNS.values())
        per_group = sum(v[0] / v[2] for v in PATTERNS.values())
        apps_per_slot = m / (1.0 - share + m * per_group)
        return [(name, v[0] * apps_per_slot / v[2]) for name, v in PATTERNS.items()]

    # --- arrivals --------------------------------------------------------------------

    def _arrival(self, t: int) -> list[GeneratedEvent]:
        u = self.rng.random()
        for name, p in self._triggers:
            if u < p:
                return self._start_pattern(name, t)
            u -= p
        index = self._next_person
        self._next_person += 1
        return self._legit_application(t, index)

    def _legit_application(self, t: int, index: int) -> list[GeneratedEvent]:
        person = pop.make_person(self.cfg.seed, index, self.cfg.start, self.n_employers)
        rng = self.rng
        if rng.random() < REAPPLY_P:
            self._push(t + rng.randint(5, 120) * DAY, lambda t2: self._legit_application(t2, index))
        ip = rng.choice(self._cgnat) if rng.random() < 0.1 else pop.ip_address(rng)
        device_id = person.device_id
        if rng.random() < 0.05:  # a household device shared with relatives
            device_id = f"hh-{self.cfg.seed}-{index // 3}"
        label = {"fraud": False, "pattern": "legit", "group": "", "person": index}
        employer = pop.make_employer(self.cfg.seed, person.employer)
        return self._application(
            t,
            person,
            employer,
            ip=ip,
            device_id=device_id,
            label=label,
            fraud_type=s.FRAUD_TYPE_UNSPECIFIED,
        )

    def _fresh_person(self, young: bool = False) -> pop.PersonData:
        self._next_fraudster += 1
        person = pop.make_person(
            self.cfg.seed, -self._next_fraudster, self.cfg.start, self.n_employers
        )
        if young:
            age_days = self.rng.randint(18 * 365 + 10, 25 * 365)
            person.birth_date = self.cfg.start - dt.timedelta(days=age_days)
            person.passport = pop.passport_for(
                self.rng, person.birth_date, self.cfg.start, person.region
            )
        person.device_id = f"fdev-{self.cfg.seed}-{self._next_fraudster}"
        return person

    def _start_pattern(self, name: str, t: int) -> list[GeneratedEvent]:
        rng = self.rng
        if name in GROUP_SIZES:
            self._groups += 1
            group = self._groups
            lo, hi = GROUP_SIZES[name]
            size = rng.randint(lo, hi)
            span = GROUP_SPAN_DAYS[name] * DAY
            member_times = sorted([t] + [t + rng.randint(0, span) for _ in range(size - 1)])
            firm = pop.make_firm(self.cfg.seed, name, group)
            ips = [pop.ip_address(pop.rng_for(self.cfg.seed, name, "ip", group, j)) for j in (0, 1)]
            for mt in member_times:
                member = functools.partial(
                    self._group_member, name=name, group=group, firm=firm, ips=ips
                )
                self._push(mt, member)
            return []
        fraud_type = PATTERNS[name][1]
        label = {"fraud": True, "pattern": name, "group": "", "person": -1}
        if name == "identity_theft":
            return self._identity_theft(t, label, fraud_type)
        person = self._fresh_person(young=name == "mule")
        label["person"] = person.index
        employer = pop.make_employer(self.cfg.seed, person.employer)
        if name == "passport_tampering":
            self._tamper_passport(person)
        ip = pop.ip_address(rng)
        return self._application(
            t,
            person,
            employer,
            ip=ip,
            device_id=person.device_id,
            label=label,
            fraud_type=fraud_type,
        )

    def _identity_theft(
        self, t: int, label: dict[str, object], fraud_type: int
    ) -> list[GeneratedEvent]:
        rng = self.rng
        victim_index = rng.randrange(max(1, self._next_person))
        victim = pop.make_person(self.cfg.seed, victim_index, self.cfg.start, self.n_employers)
        thief = self._fresh_person()
        kind = rng.random()
        # Same name and phone (60%), same phone only (25%) or same name only (15%); the
        # birth date is the thief's own, never the victim's.
        if kind < 0.85:
            thief.phone = victim.phone
        if kind < 0.6 or kind >= 0.85:
            thief.last_name, thief.first_name = victim.last_name, victim.first_name
            thief.middle_name = victim.middle_name
        if thief.birth_date == victim.birth_date:
            thief.birth_date -= dt.timedelta(days=400)
        label["person"] = thief.index
        label["group"] = f"victim-{victim_index}"
        employer = pop.make_employer(self.cfg.seed, thief.employer)
        thief.extra["device_risk"] = 0.4
        ip = pop.ip_address(rng)
        return self._application(
            t, thief, employer, ip=ip, device_id=thief.device_id, label=label, fraud_type=fraud_type
        )

    def _tamper_passport(self, person: pop.PersonData) -> None:
        rng = self.rng
        old = person.passport
        age = rng.randint(21, 44)
        issue = pop.add_years(person.birth_date, age) + dt.timedelta(days=rng.randint(0, 300))
        issue = min(issue, self.cfg.start - dt.timedelta(days=10))
        number = list(old.number)
        for _ in range(rng.randint(1, 2)):
            number[rng.randrange(len(number))] = rng.choice("0123456789")
        person.passport = pop.PassportData(old.series, "".join(number), issue, old.region)
        if rng.random() < 0.7:
            person.previous_passports = [old]

    def _group_member(
        self, t: int, *, name: str, group: int, firm: pop.EmployerData, ips: list[str]
    ) -> list[GeneratedEvent]:
        rng = self.rng
        fraud_type = PATTERNS[name][1]
        person = self._fresh_person()
        label = {"fraud": True, "pattern": name, "group": f"{name}-{group}", "person": person.index}
        ip = pop.ip_address(rng)
        device_id = person.device_id
        if name == "fraud_ring":
            # Members share two devices, two IPs and two addresses, and one employer.
            device_id = f"ring-{self.cfg.seed}-{group}-{rng.randrange(2)}"
            ip = rng.choice(ips)
            arng = pop.rng_for(self.cfg.seed, "ring-address", group, rng.randrange(2))
            person.city, person.street = arng.choice(pop.CITIES), arng.choice(pop.STREETS)
            person.house, person.flat = str(arng.randint(1, 200)), str(arng.randint(1, 400))
            person.extra["device_risk"] = 0.25
        elif name == "mass_ip":
            ip = ips[0]
            firm.employee_count = 20 + group % 300
            if rng.random() < 0.5:
                device_id = f"mip-{self.cfg.seed}-{group}"
        else:  # one_day_firm: new firm, recent employment, inflated income
            person.employment_start = dt.datetime.fromtimestamp(
                t - rng.randint(20, 90) * DAY, dt.UTC
            ).date()
            person.monthly_income_minor *= 2
        person.extra["firm"] = firm
        return self._application(
            t, person, firm, ip=ip, device_id=device_id, label=label, fraud_type=fraud_type
        )

    # --- one application and its follow-ups ------------------------------------------

    def _application(
        self,
        t: int,
        person: pop.PersonData,
        employer: pop.EmployerData,
        *,
        ip: str,
        device_id: str,
        label: dict[str, object],
        fraud_type: int,
    ) -> list[GeneratedEvent]:
        rng = self.rng
        self._apps += 1
        partner = f"partner-{rng.randint(1, N_PARTNERS)}"
        app = _App(
            app_id=f"{partner}-A{self._apps:09d}",
            partner=partner,
            person=person,
            label=label,
            amount_minor=int(rng.lognormvariate(11.5, 0.8)) * 100,
            fraud_type=fraud_type,
        )
        fraud = bool(label["fraud"])
        if fraud and rng.random() < 0.5:
            app.amount_minor *= 2
        event = s.ApplicationEvent(
            application_id=app.app_id,
            subtype=s.APPLICATION_SUBTYPE_LOAN_APP_CREATE,
            event_time=_ts(t),
            partner_id=partner,
            branch_id=f"{partner}-b{rng.randint(1, 20)}",
            product=rng.choice(
                (c.LOAN_PRODUCT_CASH_LOAN, c.LOAN_PRODUCT_MICROLOAN, c.LOAN_PRODUCT_POS_LOAN)
            ),
            loan_amount=c.Money(amount_minor=app.amount_minor, currency="RUB"),
            loan_term=c.LoanTerm(count=rng.choice((3, 6, 12, 24, 36)), unit=c.TERM_UNIT_MONTHS),
            applicant=self._person_message(person, employer),
            ip_address=ip,
            session_id=f"s-{self._apps}",
        )
        channel_u = rng.random()
        if channel_u < 0.05 and not fraud:
            event.channel = c.CHANNEL_BRANCH
        else:
            event.channel = c.CHANNEL_MOBILE_APP if channel_u < 0.65 else c.CHANNEL_WEB
            event.device.CopyFrom(self._device(person, device_id, ip, event.channel, fraud))
        events = [GeneratedEvent("application", t, event, label)]
        self._push(t + rng.randint(60, 600), lambda t2: self._bureau_check(t2, app))
        return events

    def _person_message(self, p: pop.PersonData, employer: pop.EmployerData) -> c.Person:
        person = c.Person(
            client_id=f"c{p.index}",
            last_name=p.last_name,
            first_name=p.first_name,
            middle_name=p.middle_name,
            birth_date=_date(p.birth_date),
            citizenship="RU",
            passport=self._passport(p.passport),
            phones=[c.Phone(number=p.phone, kind=c.PHONE_KIND_MOBILE)],
            emails=[p.email],
            addresses=[
                c.Address(
                    kind=c.ADDRESS_KIND_REGISTRATION,
                    country="RU",
                    region=p.region,
                    city=p.city,
                    street=p.street,
                    house=p.house,
                    flat=p.flat,
                )
            ],
            employer=c.Employer(
                name=employer.name,
                tax_id=employer.tax_id,
                employee_count=employer.employee_count,
                industry_code=employer.industry,
                employment_start_date=_date(p.employment_start),
            ),
            monthly_income=c.Money(amount_minor=p.monthly_income_minor, currency="RUB"),
        )
        person.previous_passports.extend(self._passport(pp) for pp in p.previous_passports)
        return person

    @staticmethod
    def _passport(pp: pop.PassportData) -> c.Passport:
        return c.Passport(
            kind=c.PASSPORT_KIND_DOMESTIC_PASSPORT,
            series=pp.series,
            number=pp.number,
            issue_date=_date(pp.issue_date),
            issuing_region=pp.region,
            country="RU",
        )

    def _device(
        self, p: pop.PersonData, device_id: str, ip: str, channel: int, fraud: bool
    ) -> c.Device:
        rng = self.rng
        risk = float(cast(float, p.extra.get("device_risk", 0.15))) if fraud else 0.0
        if fraud and rng.random() < 0.15:
            risk = 0.0  # some fraud comes from clean-looking devices
        device = c.Device(device_id=device_id, time_zone="Europe/Moscow", reported_ip=ip)
        if channel == c.CHANNEL_WEB:
            device.platform = c.DEVICE_PLATFORM_WEB
            device.fingerprint = f"fp-{device_id}"
            device.user_agent = "Mozilla/5.0"
            return device
        device.platform = p.platform  # type: ignore[assignment]
        device.model = p.model
        device.os_name = "Android" if p.platform == c.DEVICE_PLATFORM_ANDROID else "iOS"
        device.emulator = rng.random() < (0.002 + risk * 0.4)
        device.rooted = rng.random() < (0.03 + risk)
        device.remote_control_active = rng.random() < (0.005 + risk)
        if fraud and rng.random() < risk * 1.2:
            device.hours_since_anydesk_install = rng.randint(1, 72)
        else:
            device.hours_since_anydesk_install = p.remote_app_hours
        call = rng.random() < (0.03 + risk * 0.6)
        device.phone_call_state = c.PHONE_CALL_STATE_INCOMING if call else c.PHONE_CALL_STATE_NONE
        if rng.random() < risk:
            device.reported_ip = pop.ip_address(rng)  # behind a proxy or VPN
        return device

    def _bureau_check(self, t: int, app: _App) -> list[GeneratedEvent]:
        rng = self.rng
        fraud = bool(app.label["fraud"])
        event = s.ApplicationEvent(
            application_id=app.app_id,
            subtype=s.APPLICATION_SUBTYPE_LOAN_APP_BKI_CHECK,
            event_time=_ts(t),
            partner_id=app.partner,
            bureau_check=s.BureauCheck(
                bureau="NBKI",
                score=rng.randint(300, 850),
                default_90_12_count=1 if rng.random() < (0.25 if fraud else 0.08) else 0,
                open_loans_count=rng.randint(0, 5),
                enquiries_30d_count=rng.randint(2, 12) if fraud else rng.randint(0, 3),
            ),
        )
        app.extra["bad_bureau"] = event.bureau_check.default_90_12_count > 0
        if rng.random() < 0.1:
            self._push(t + rng.randint(600, 7200), lambda t2: self._special_check(t2, app))
        else:
            self._push(t + rng.randint(600, 7200), lambda t2: self._result(t2, app))
        return [GeneratedEvent("application", t, event, app.label)]

    def _special_check(self, t: int, app: _App) -> list[GeneratedEvent]:
        rejected = bool(app.label["fraud"]) and self.rng.random() < 0.5
        app.extra["special_rejected"] = rejected
        event = s.ApplicationEvent(
            application_id=app.app_id,
            subtype=s.APPLICATION_SUBTYPE_LOAN_APP_SPECIAL_CHECK,
            event_time=_ts(t),
            partner_id=app.partner,
            special_check_result=s.CHECK_RESULT_REJECTED if rejected else s.CHECK_RESULT_APPROVED,
        )
        self._push(t + self.rng.randint(600, 7200), lambda t2: self._result(t2, app))
        return [GeneratedEvent("application", t, event, app.label)]

    def _result(self, t: int, app: _App) -> list[GeneratedEvent]:
        rng = self.rng
        fraud = bool(app.label["fraud"])
        p_approve = 0.55 if fraud else 0.7
        if app.extra.get("bad_bureau"):
            p_approve -= 0.4
        if app.label["pattern"] == "mule":
            p_approve = 0.8
        app.approved = not app.extra.get("special_rejected") and rng.random() < p_approve
        result = s.CHECK_RESULT_APPROVED if app.approved else s.CHECK_RESULT_REJECTED
        event = s.ApplicationEvent(
            application_id=app.app_id,
            subtype=s.APPLICATION_SUBTYPE_LOAN_APP_RESULT,
            event_time=_ts(t),
            partner_id=app.partner,
            result=result,
        )
        decision = (
            s.APPLICATION_DECISION_APPROVED if app.approved else s.APPLICATION_DECISION_REFUSED
        )
        out = [
            GeneratedEvent("application", t, event, app.label),
            self._outcome(t, app, s.Outcome(event_time=_ts(t), decision=decision)),
        ]
        if fraud:
            p_confirm, delay = (0.8, (30, 120)) if app.approved else (0.3, (5, 30))
            if rng.random() < p_confirm:
                confirm = s.Outcome(
                    fraud_status=s.FRAUD_STATUS_CONFIRMED,
                    fraud_type=app.fraud_type,  # type: ignore[arg-type]
                )
                self._push(
                    t + rng.randint(*delay) * DAY,
                    lambda t2: [self._outcome(t2, app, confirm)],
                )
        if app.approved:
            p_default = 0.05 if not fraud else (0.9 if app.label["pattern"] == "mule" else 0.7)
            if rng.random() < p_default:
                issue = t
                self._push(
                    t + rng.randint(120, 150) * DAY,
                    lambda t2: [self._default(t2, app, issue)],
                )
            self._push(t + rng.randint(600, 86400), lambda t2: self._disbursement(t2, app))
        return out

    def _outcome(self, t: int, app: _App, outcome: s.Outcome) -> GeneratedEvent:
        outcome.event_time.FromSeconds(t)
        request = s.ReportOutcomeRequest(
            request_id=f"o-{app.app_id}-{t}", application_id=app.app_id, outcome=outcome
        )
        return GeneratedEvent("outcome", t, request, app.label)

    def _default(self, t: int, app: _App, issue: int) -> GeneratedEvent:
        dpd = 90 + self.rng.randint(0, 30)
        perf = s.LoanPerformance(
            days_past_due=dpd,
            max_days_past_due=dpd,
            overdue_amount=c.Money(amount_minor=app.amount_minor // 3, currency="RUB"),
            issue_time=_ts(issue),
        )
        return self._outcome(t, app, s.Outcome(performance=perf))

    # --- payments --------------------------------------------------------------------

    def _payment(
        self,
        t: int,
        app: _App,
        *,
        kind: int,
        amount: int,
        recipient: s.PaymentParty,
        label: dict[str, object],
        payer: s.PaymentParty | None = None,
    ) -> GeneratedEvent:
        self._payments += 1
        person = app.person
        payment = s.PaymentEvent(
            payment_id=f"{app.partner}-P{self._payments:010d}",
            type=kind,  # type: ignore[arg-type]
            event_time=_ts(t),
            partner_id=app.partner,
            channel=c.CHANNEL_MOBILE_APP,
            amount=c.Money(amount_minor=amount, currency="RUB"),
            payer=payer
            or s.PaymentParty(
                person=c.Person(client_id=f"c{person.index}"),
                card=s.Card(token=app.card_token, bin="220220", scheme="MIR"),
            ),
            recipient=recipient,
            device=c.Device(device_id=person.device_id),
            ip_address=pop.ip_address(self.rng),
        )
        return GeneratedEvent("payment", t, payment, label)

    def _payments_at(
        self,
        t: int,
        *,
        app: _App,
        kind: int,
        amount: int,
        recipient: s.PaymentParty,
        label: dict[str, object],
    ) -> list[GeneratedEvent]:
        return [self._payment(t, app, kind=kind, amount=amount, recipient=recipient, label=label)]

    def _disbursement(self, t: int, app: _App) -> list[GeneratedEvent]:
        rng = self.rng
        app.card_token = f"tok-{app.app_id}"
        own_card = s.PaymentParty(
            person=c.Person(client_id=f"c{app.person.index}"),
            card=s.Card(token=app.card_token, bin="220220", last4=pop.digits(rng, 4), scheme="MIR"),
        )
        lender = s.PaymentParty(name=app.partner, account=s.BankAccount(number=app.partner))
        label = {**app.label}
        # The disbursement itself is the lender's own legitimate payment.
        paid_out = {**app.label, "fraud": False}
        out = [
            self._payment(
                t,
                app,
                kind=s.PAYMENT_TYPE_LOAN_DISBURSEMENT,
                amount=app.amount_minor,
                recipient=own_card,
                label=paid_out,
                payer=lender,
            )
        ]
        pattern = app.label["pattern"]
        if pattern == "mule":
            # Proceeds leave at once, split between several unrelated cards and phones.
            n = rng.randint(3, 6)
            for _ in range(n):
                recipient = s.PaymentParty(
                    card=s.Card(token=f"tok-m{rng.getrandbits(40)}", bin="427600", scheme="VISA")
                )
                kind = s.PAYMENT_TYPE_CARD_TRANSFER
                if rng.random() < 0.4:
                    recipient = s.PaymentParty(phone="+79" + pop.digits(rng, 9))
                    kind = s.PAYMENT_TYPE_PHONE_TRANSFER
                amount = int(app.amount_minor * 0.95 / n)
                later = functools.partial(
                    self._payments_at, app=app, kind=kind, amount=amount, recipient=recipient
                )
                self._push(t + rng.randint(600, 6 * 3600), functools.partial(later, label=label))
        elif bool(app.label["fraud"]):
            cash_out = functools.partial(
                self._payments_at,
                app=app,
                kind=s.PAYMENT_TYPE_CASH_WITHDRAWAL,
                amount=int(app.amount_minor * 0.9),
                recipient=s.PaymentParty(),
                label=label,
            )
            self._push(t + rng.randint(600, 86400), cash_out)
        else:
            legit = {**app.label, "fraud": False}
            for _ in range(rng.randint(0, 3)):
                kind = rng.choice((s.PAYMENT_TYPE_CARD_PURCHASE, s.PAYMENT_TYPE_BILL_PAYMENT))
                amount = max(100, int(app.amount_minor * rng.uniform(0.01, 0.3)))
                merchant = s.PaymentParty(company_tax_id=pop.digits(rng, 10))
                spend = functools.partial(
                    self._payments_at, app=app, kind=kind, amount=amount, recipient=merchant
                )
                self._push(t + rng.randint(3600, 30 * DAY), functools.partial(spend, label=legit))
        return out


def generate(cfg: GenConfig) -> Iterator[GeneratedEvent]:
    """The events of a synthetic population, in event-time order, deterministic for a seed."""
    return iter(Generator(cfg))
