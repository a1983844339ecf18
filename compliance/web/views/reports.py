"""CSV exports of the dashboard's reports: /officer/reports/<name>.csv."""

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from compliance.security.decorators import officer_required

from ..dashboard import REPORTS, report_csv


@require_GET
@officer_required
def report(request: HttpRequest, name: str) -> HttpResponse:
    if name not in REPORTS:
        raise Http404("No such report.")
    now = timezone.now()
    response = HttpResponse(report_csv(name, now=now), content_type="text/csv; charset=utf-8")
    filename = f"earshot-{name}-{now:%Y%m%dT%H%MZ}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
