"""How the pages write dates in German: "6. Dez. 2026", "6. Dez. 2026, 14:30"."""

DATE_FORMAT = "j. M Y"
DATETIME_FORMAT = "j. M Y, H:i"
SHORT_DATETIME_FORMAT = "j. M, H:i"
TIME_FORMAT = "H:i"
MONTH_DAY_FORMAT = "j. M"
DECIMAL_SEPARATOR = ","
THOUSAND_SEPARATOR = "."
NUMBER_GROUPING = 3
