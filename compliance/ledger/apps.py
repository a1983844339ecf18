from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "compliance.ledger"
    label = "ledger"

    def ready(self) -> None:
        from compliance.core.metrics import register
        from compliance.core.readiness import NotReady
        from compliance.core.readiness import register as register_readiness

        from .metrics import LedgerCollector
        from .restore import ledger_writes_paused

        register(LedgerCollector())

        def ledger_ready() -> NotReady | None:
            state = ledger_writes_paused()
            return None if state is None else NotReady(state.code, state.message)

        register_readiness("ledger", ledger_ready)
