from collections.abc import Sequence

from .rules import decide, facts_for

NOT_FOUND = "not_found"


def eligibility_check(
    *, external_ids: Sequence[str], purpose: str, reviewer_location: str | None = None
) -> list[tuple[str, bool, list[str]]]:
    """(recording, eligible, reasons) for each asked id, in the order asked.

    An id that names no recording is answered, not refused, with the reason
    `not_found`, so that one stale id does not fail a batch of ten thousand.
    """
    facts = facts_for(
        list(dict.fromkeys(external_ids)), purpose=purpose, reviewer_location=reviewer_location
    )
    results = []
    for external_id in external_ids:
        found = facts.get(external_id)
        if found is None:
            results.append((external_id, False, [NOT_FOUND]))
            continue
        reasons = decide(found, purpose=purpose, reviewer_location=reviewer_location)
        results.append((external_id, not reasons, reasons))
    return results
