"""The project's URLs with GET /api/v1/_bench/floor resolved right after the
eligibility endpoints, as early as they are."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.clients.authentication import ApiKeyAuthentication
from compliance.edge.permissions import ScopeRequired
from compliance.eligibility.apis import SCOPE
from config import urls as project


class BenchmarkFloorApi(APIView):
    """The floor that bench/eligibility.py compares against: DRF, the same
    authentication and permission as the eligibility endpoints, a constant answer, no
    query. Like the eligibility endpoints it is not throttled, so that the two are
    compared like for like (and the benchmark's load is not answered with 429s)."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [ScopeRequired]
    throttle_classes: list[type] = []
    required_scopes = {"GET": SCOPE}
    schema = None

    def get(self, request: HttpRequest) -> HttpResponse:
        return Response(
            {"recording": "floor", "purpose": "human_review", "eligible": True, "reasons": []}
        )


urlpatterns = list(project.urlpatterns)
urlpatterns.insert(len(project.hot_paths), path("api/v1/_bench/floor", BenchmarkFloorApi.as_view()))

handler400 = project.handler400
handler404 = project.handler404
handler500 = project.handler500
