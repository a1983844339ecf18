"""Paths under /api/v1/ (included by config/urls.py)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("webhooks", apis.WebhookListCreateApi.as_view()),
    path("webhooks/<str:webhook_id>", apis.WebhookDetailApi.as_view()),
    path("webhooks/<str:webhook_id>/rotate-secret", apis.WebhookRotateSecretApi.as_view()),
    path("webhooks/<str:webhook_id>/test", apis.WebhookTestApi.as_view()),
    path("webhooks/<str:webhook_id>/replay", apis.WebhookReplayApi.as_view()),
    path("webhooks/<str:webhook_id>/deliveries", apis.WebhookDeliveriesApi.as_view()),
    path("webhooks/<str:webhook_id>/confirmations", apis.WebhookConfirmationsApi.as_view()),
]
