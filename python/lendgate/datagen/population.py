"""Synthetic people, employers, devices and fraud rings, derived from (seed, index).

Nothing here is stored: the applicant with index 1234 is regenerated identically whenever
it is needed (a repeat application, an identity-theft victim), so the generator's memory
does not grow with the population.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

LAST_NAMES = (
    "Ivanov", "Petrov", "Sidorov", "Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Sokolov",
    "Mikhailov", "Novikov", "Fedorov", "Morozov", "Volkov", "Alekseev", "Lebedev", "Semenov",
    "Egorov", "Pavlov", "Kozlov", "Stepanov", "Nikolaev", "Orlov", "Andreev", "Makarov",
    "Zakharov", "Zaitsev", "Soloviev", "Borisov", "Yakovlev", "Grigoriev", "Romanov",
    "Vorobiev", "Sergeev", "Kovalenko", "Bondarenko", "Shevchenko", "Tkachenko", "Kravchenko",
    "Melnyk", "Boyko",
)  # fmt: skip
FIRST_NAMES = (
    "Alexander", "Dmitry", "Maxim", "Sergey", "Andrey", "Alexey", "Artem", "Ilya", "Kirill",
    "Mikhail", "Nikita", "Matvey", "Roman", "Egor", "Ivan", "Anna", "Maria", "Elena", "Olga",
    "Natalia", "Tatiana", "Irina", "Ekaterina", "Svetlana", "Yulia", "Daria", "Anastasia",
    "Oksana", "Victoria", "Polina",
)  # fmt: skip
MIDDLE_NAMES = (
    "Alexandrovich", "Dmitrievich", "Sergeevich", "Andreevich", "Ivanovich", "Petrovna",
    "Sergeevna", "Ivanovna", "Nikolaevna", "Olegovna", "",
)  # fmt: skip
REGIONS = (
    "RU-MOW", "RU-SPE", "RU-NVS", "RU-SVE", "RU-TA", "RU-NIZ", "RU-KDA", "RU-ROS", "RU-BA",
    "RU-SAM", "UA-30", "UA-32", "UA-46", "UA-51", "UA-63",
)  # fmt: skip
CITIES = ("Moscow", "Saint Petersburg", "Novosibirsk", "Yekaterinburg", "Kazan", "Kyiv")
STREETS = ("Lenina", "Mira", "Sadovaya", "Shevchenka", "Gagarina", "Pushkina", "Lesnaya")
MODELS_ANDROID = ("SM-G991B", "SM-A525F", "Redmi Note 10", "Pixel 7", "M2101K6G", "CPH2211")
MODELS_IOS = ("iPhone14,2", "iPhone13,1", "iPhone15,3", "iPhone12,1")
INDUSTRIES = ("62.01", "47.11", "49.41", "86.10", "85.14", "41.20", "56.10", "64.19")

# Age at which a domestic passport is issued or must be replaced (seed 003 rule 8).
PASSPORT_AGES = (14, 20, 45)


def rng_for(seed: int, *parts: object) -> random.Random:
    """A random generator determined by the seed and the parts (stable across runs)."""
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def digits(rng: random.Random, n: int) -> str:
    """``n`` random decimal digits."""
    return "".join(rng.choice("0123456789") for _ in range(n))


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` plus whole years (29 February maps to 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass
class PassportData:
    """An identity document as the generator knows it."""

    series: str
    number: str
    issue_date: dt.date
    region: str


@dataclass
class PersonData:
    """One synthetic person (the applicant's identity and habits)."""

    index: int
    last_name: str
    first_name: str
    middle_name: str
    birth_date: dt.date
    phone: str
    email: str
    passport: PassportData
    previous_passports: list[PassportData]
    region: str
    city: str
    street: str
    house: str
    flat: str
    employer: int
    employment_start: dt.date
    monthly_income_minor: int
    device_id: str
    platform: int  # DevicePlatform value
    model: str
    remote_app_hours: int  # -1 when no remote-control app is installed
    extra: dict[str, object] = field(default_factory=dict)


def passport_for(rng: random.Random, birth: dt.date, today: dt.date, region: str) -> PassportData:
    """A passport issued by the rules: shortly after the last of the 14/20/45 birthdays."""
    age = (today - birth).days // 365
    milestone = max(a for a in PASSPORT_AGES if a <= max(age, 14))
    issue = add_years(birth, milestone) + dt.timedelta(days=rng.randint(3, 60))
    issue = min(issue, today - dt.timedelta(days=1))
    return PassportData(digits(rng, 4), digits(rng, 6), issue, region)


def make_person(seed: int, index: int, today: dt.date, n_employers: int) -> PersonData:
    """The legitimate person with this index, as of ``today``."""
    rng = rng_for(seed, "person", index)
    birth = today - dt.timedelta(days=rng.randint(18 * 365 + 5, 70 * 365))
    region = rng.choice(REGIONS)
    female = rng.random() < 0.5
    last = rng.choice(LAST_NAMES)
    first = rng.choice(FIRST_NAMES[15:] if female else FIRST_NAMES[:15])
    if female and last.endswith(("ov", "ev", "in")):
        last += "a"
    passport = passport_for(rng, birth, today, region)
    previous: list[PassportData] = []
    if rng.random() < 0.02:
        # A legitimate replacement after a loss: an unusual issue age, an unrelated number.
        previous = [passport]
        passport = PassportData(
            digits(rng, 4), digits(rng, 6), today - dt.timedelta(days=rng.randint(30, 2000)), region
        )
        passport.issue_date = max(passport.issue_date, add_years(birth, 14))
    android = rng.random() < 0.7
    return PersonData(
        index=index,
        last_name=last,
        first_name=first,
        middle_name=rng.choice(MIDDLE_NAMES),
        birth_date=birth,
        phone="+79" + digits(rng, 9),
        email=f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com",
        passport=passport,
        previous_passports=previous,
        region=region,
        city=rng.choice(CITIES),
        street=rng.choice(STREETS),
        house=str(rng.randint(1, 200)),
        flat=str(rng.randint(1, 400)),
        employer=rng.randrange(n_employers),
        employment_start=today - dt.timedelta(days=rng.randint(90, 6000)),
        monthly_income_minor=int(rng.lognormvariate(11.0, 0.5)) * 100,
        device_id=f"dev-{seed}-{index}",
        platform=1 if android else 2,
        model=rng.choice(MODELS_ANDROID if android else MODELS_IOS),
        remote_app_hours=rng.randint(100, 20000) if rng.random() < 0.03 else -1,
    )


@dataclass
class EmployerData:
    """An employer (legal entity)."""

    tax_id: str
    name: str
    employee_count: int
    industry: str


def make_employer(seed: int, index: int) -> EmployerData:
    """The legitimate employer with this index; sizes follow a heavy tail."""
    rng = rng_for(seed, "employer", index)
    return EmployerData(
        tax_id=digits(rng, 10),
        name=f"{rng.choice(LAST_NAMES)} {rng.choice(('LLC', 'JSC', 'Group', 'Trade'))}",
        employee_count=min(int(rng.paretovariate(0.8) * 20), 50000),
        industry=rng.choice(INDUSTRIES),
    )


def make_firm(seed: int, pattern: str, index: int) -> EmployerData:
    """A fresh employer created by a fraud pattern (one-day firm, ring's employer)."""
    rng = rng_for(seed, pattern, "firm", index)
    return EmployerData(
        tax_id=digits(rng, 10),
        name=f"{rng.choice(('Alfa', 'Vega', 'Orion', 'Delta'))} {rng.choice(('Trade', 'Invest'))}",
        employee_count=rng.randint(1, 15),
        industry=rng.choice(INDUSTRIES),
    )


def ip_address(rng: random.Random) -> str:
    """A random public-looking IPv4 address."""
    return (
        f"{rng.randint(5, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )
