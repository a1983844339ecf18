"""Paths under /api/v1/ (included by config/urls.py)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("ledger/key", apis.LedgerKeyApi.as_view()),
    path("ledger/keys", apis.LedgerKeysApi.as_view()),
    path("ledger/checkpoint", apis.LedgerCheckpointApi.as_view()),
    path("ledger/proof/inclusion", apis.LedgerInclusionProofApi.as_view()),
    path("ledger/proof/consistency", apis.LedgerConsistencyProofApi.as_view()),
    path("ledger/entries/<int:seq>", apis.LedgerEntryApi.as_view()),
]
