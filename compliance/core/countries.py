"""ISO 3166-1 alpha-2 country codes (officially assigned), and the jurisdiction groups
that retention policies may name."""

from typing import Any

from .errors import ApplicationError, field_error

ISO_3166_ALPHA2: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL
    GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM
    JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP
    NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD
    SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()
)

JURISDICTION_GROUPS: dict[str, frozenset[str]] = {
    "EU": frozenset(
        """
    AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE
    """.split()
    ),
    "EEA": frozenset(
        """
    AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO
    """.split()
    ),
}


def is_country(code: str) -> bool:
    return code in ISO_3166_ALPHA2


COUNTRY_FIELD_MESSAGE = "Must be a two-letter country code, such as DE."


def require_country(value: Any, *, field: str, code: str) -> str:
    """`value`, if it is a country code; else the refusal (400 `code`, the value's repr,
    `{field: ["unknown"]}`) that accounts, consent defaults and transfer rules give.

    Sampling and eligibility word theirs differently, and the wording is part of the
    API, so they keep their own (tests/core/test_countries.py pins all of them).
    """
    if not isinstance(value, str) or not is_country(value):
        raise ApplicationError(
            code,
            f"{value!r} is not an ISO 3166-1 alpha-2 country code.",
            fields=field_error(field, "unknown", COUNTRY_FIELD_MESSAGE),
        )
    return value
