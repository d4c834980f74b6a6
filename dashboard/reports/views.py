"""Pages and downloads: thin views over dashboard.reports.model_card and dashboard.reports.period."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from dashboard.reports.model_card import NotReady, model_card_yaml
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
    response["Content-Disposition"] = f'attachment; filename="{run.project.name}-{run.name}-model-card.yaml"'
    return response
