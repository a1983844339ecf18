"""Report periods: the calendar days a chart or a report covers."""

from datetime import datetime, time, timedelta


def days_ending(now: datetime, days: int) -> list[datetime]:
    """The last `days` calendar days up to today, in `now`'s time zone, as midnights."""
    today = now.date()
    return [
        datetime.combine(today - timedelta(days=days - 1 - i), time(), tzinfo=now.tzinfo)
        for i in range(days)
    ]
