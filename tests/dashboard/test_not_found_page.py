"""Unknown pages show the app's own 404 page, also with DEBUG on (as `make run` runs)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import member

pytestmark = pytest.mark.django_db


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    settings.WATTWISE_TECHNICAL_404 = False
    return settings


@pytest.mark.parametrize("path", ["/no-such-page/", "/runs/999999/"])
def test_an_unknown_page_shows_the_apps_404_page_with_debug_on(client, debug, path):
    client.force_login(member("ana", "nlp"))
    response = client.get(path)
    html = response.content.decode()
    assert response.status_code == 404
    assert 'id="not-found"' in html and "⚡ Wattwise" in html and "Back to the runs" in html
    assert "URLconf" not in html and "DEBUG = True" not in html


def test_a_missing_slash_still_redirects(client, debug):
    client.force_login(member("ana", "nlp"))
    assert client.get("/runs").status_code == 301


def test_the_technical_404_comes_back_when_asked(client, debug):
    debug.WATTWISE_TECHNICAL_404 = True
    client.force_login(member("ana", "nlp"))
    assert "URLconf" in client.get("/no-such-page/").content.decode()


def test_without_debug_the_404_page_is_the_apps_too(client):
    response = client.get(reverse("runs") + "nothing-here/")
    assert response.status_code == 404 and 'id="not-found"' in response.content.decode()
