"""Pages and downloads: thin views over dashboard.reports.model_card and dashboard.reports.period."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.http import content_disposition_header

from dashboard.projects.models import Project
from dashboard.reports.model_card import NotReady, model_card_yaml
from dashboard.reports.period import period_report
from dashboard.reports.periods import BadPeriod, choices, period_from_query
from dashboard.reports.render import to_csv, to_html, to_markdown
from dashboard.telemetry.models import Run


def _text(body: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> HttpResponse:
    return HttpResponse(body, status=status, content_type=content_type)


@login_required
def run_model_card(request: HttpRequest, pk: int) -> HttpResponse:
    """The run's model-card block as a YAML download; a 409 saying why while its figures are not current."""
    run = get_object_or_404(Run.objects.for_user(request.user).select_related("project").prefetch_related("tags"),
                            pk=pk)
    try:
        body = model_card_yaml([run])
    except NotReady as error:
        return _text(f"{error}\n", status=409)
    response = _text(body, content_type="application/yaml; charset=utf-8")
    filename = f"{run.project.name}-{run.name}-model-card.yaml"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@login_required
def project_report(request: HttpRequest, pk: int) -> HttpResponse:
    """The project's period report: a page that prints cleanly, or ``format=csv`` / ``format=md``."""
    project = get_object_or_404(Project.objects.for_user(request.user), pk=pk)
    today = timezone.now().date()
    try:
        period = period_from_query(request.GET, today)
    except BadPeriod as error:
        return render(request, "runs/bad_request.html", {"message": str(error), "back": request.path}, status=400)
    report = period_report(project, period)
    fmt = request.GET.get("format", "html")
    if fmt in DOWNLOADS:
        render_as, content_type, suffix = DOWNLOADS[fmt]
        response = _text(render_as(report), content_type=content_type)
        filename = f"{project.name}-report-{period.slug}.{suffix}"
        response["Content-Disposition"] = content_disposition_header(True, filename)
        return response
    query = urlencode({"period": "custom", "from": period.first, "to": period.last} if period.kind == "custom"
                      else {"period": period.label})
    return HttpResponse(to_html(report, request=request, choices=choices(today), query=query))


DOWNLOADS = {
    "csv": (to_csv, "text/csv; charset=utf-8", "csv"),
    "md": (to_markdown, "text/markdown; charset=utf-8", "md"),
}
