from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from compliance.api.recordings import RecordingCreateApi
from compliance.core import views as core_views
from compliance.core.metrics import metrics_view
from compliance.eligibility.apis import EligibilityApi, EligibilityBatchApi
from compliance.transfers.apis import TransferRuleDeleteApi, TransferRuleListCreateApi

api_v1 = [
    path("transfer-rules", TransferRuleListCreateApi.as_view()),
    path("transfer-rules/<int:pk>", TransferRuleDeleteApi.as_view()),
    # recordings (the single POST): in hot_paths below
    # eligibility: in hot_paths below
]

# Asked thousands of times a second: resolved first (Django tries patterns in order;
# trying the two dozen before the single POST cost it ~0.1 ms).
hot_paths = [
    path("api/v1/eligibility/batch", EligibilityBatchApi.as_view()),
    path("api/v1/eligibility/<str:recording_id>", EligibilityApi.as_view()),
    path("api/v1/recordings", RecordingCreateApi.as_view()),
]

urlpatterns = [
    *hot_paths,
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz),
    path("readyz", core_views.readyz),
    path("metrics", metrics_view),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    *[path(f"api/v1/{p.pattern}", p.callback) for p in api_v1],
    path("api/v1/", include("compliance.api.urls")),
    path("api/v1/", include("compliance.sampling.urls")),
    path("api/v1/", include("compliance.ledger.urls")),
    path("api/v1/", include("compliance.webhooks.urls")),
    path("", include("compliance.security.urls")),
    path("", include("compliance.web.urls")),
]

handler400 = core_views.bad_request
handler404 = core_views.api_not_found
handler500 = core_views.server_error
