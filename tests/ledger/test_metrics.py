import pytest
from django.test import Client

from tests.ledger.conftest import append, edit_payload, verify_in_full

pytestmark = pytest.mark.django_db


def _gauges(client: Client) -> dict[str, float]:
    text = client.get("/metrics").content.decode()
    return {
        name: float(value)
        for name, value in (line.split() for line in text.splitlines() if line[:1] != "#")
        if name.startswith("earshot_ledger_")
    }


def test_the_metrics_say_when_the_ledger_was_last_verified_and_whether_it_broke(client):
    append(3)
    never = _gauges(client)
    intact = verify_in_full()
    after_intact = _gauges(client)
    edit_payload(2, {"i": 9})
    verify_in_full()
    after_broken = _gauges(client)

    assert never["earshot_ledger_entries"] == 3
    assert never["earshot_ledger_verification_finished_timestamp_seconds"] == 0
    assert after_intact["earshot_ledger_verification_finished_timestamp_seconds"] == (
        pytest.approx(intact.finished_at.timestamp())
    )
    assert (after_intact["earshot_ledger_broken"], after_broken["earshot_ledger_broken"]) == (0, 1)
