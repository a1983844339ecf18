"""What per-profile parts cost a purge batch's ledger append.

A purge batch's entry once listed every purged recording inline
(`purged_recordings: [[profile, recording, reason], ...]`); it now commits to salted
per-profile parts by `parts_root` and stores the parts beside it
(compliance/ledger/parts.py). This times both appends for the same batch, in the same
run, each in a transaction that is rolled back (nothing stays): the inline payload is
the baseline, the parts the figure, as a ratio.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<a database of yours> \\
        .venv/bin/python bench/parts.py [--profiles 1000,5000] [--per-profile 2] [--runs 7]

The database is migrated first; the appends are rolled back, so it is left as found.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from compliance.ledger.services import ledger_append  # noqa: E402


class _Rollback(Exception):
    pass


def _timed(append) -> float:
    started = time.perf_counter()
    try:
        with transaction.atomic():
            append()
            raise _Rollback
    except _Rollback:
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", default="1000,5000")
    parser.add_argument("--per-profile", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"runs: {args.runs} each, median; recordings per profile: {args.per_profile}")
    for profiles in (int(n) for n in args.profiles.split(",")):
        purged = {
            f"prof-{p:07d}": [
                {"recording": f"rec-{p:07d}-{r}", "reason": "retention_policy"}
                for r in range(args.per_profile)
            ]
            for p in range(profiles)
        }
        inline = [
            [profile, row["recording"], row["reason"]]
            for profile, rows in purged.items()
            for row in rows
        ]
        base = {"artefacts": len(inline) * 2, "recordings": len(inline)}

        def old(base=base, inline=inline) -> None:
            ledger_append(
                kind="purge.batch",
                subject="purge",
                actor="bench",
                payload={**base, "purged_recordings": inline},
            )

        def new(base=base, purged=purged) -> None:
            ledger_append(
                kind="purge.batch",
                subject="purge",
                actor="bench",
                payload=base,
                parts={profile: {"recordings": rows} for profile, rows in purged.items()},
            )

        _timed(old), _timed(new)  # warm up
        olds, news = [], []
        for _ in range(args.runs):
            olds.append(_timed(old))
            news.append(_timed(new))
        o, n = statistics.median(olds), statistics.median(news)
        print(
            f"{profiles:>6} profiles, {len(inline):>6} recordings: inline payload "
            f"{o * 1000:7.1f} ms (baseline), per-profile parts {n * 1000:7.1f} ms: "
            f"{n / o:.2f}x"
        )


if __name__ == "__main__":
    main()
