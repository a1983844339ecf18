from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "compliance.ledger"
    label = "ledger"

    def ready(self) -> None:
        from compliance.core.metrics import register

        from .metrics import LedgerCollector

        register(LedgerCollector())
