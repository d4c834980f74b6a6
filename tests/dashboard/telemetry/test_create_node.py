"""`manage.py create_node` registers a node and prints its token as the last line."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from dashboard.projects.models import Project
from dashboard.telemetry.models import Node
from wattwise_agent.wire import signing_key

pytestmark = pytest.mark.django_db


def create(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_node", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_create_node_prints_a_token_whose_key_is_stored_and_not_the_token():
    token = create("gpu-01", "--project", "vision").strip().splitlines()[-1]
    node = Node.objects.get(name="gpu-01")
    assert node.project == Project.objects.get(name="vision")
    assert node.signing_key_hex == signing_key(token).hex()
    assert token not in node.signing_key_hex


def test_registering_an_existing_node_again_is_an_error_that_changes_nothing():
    create("gpu-01", "--project", "vision")
    key = Node.objects.get().signing_key_hex
    with pytest.raises(CommandError, match="already exists"):
        create("gpu-01", "--project", "vision")
    assert Node.objects.get().signing_key_hex == key


def test_rotate_issues_a_new_token():
    first = create("gpu-01", "--project", "vision").strip()
    second = create("gpu-01", "--project", "vision", "--rotate").strip()
    assert first != second
    assert Node.objects.get().signing_key_hex == signing_key(second).hex()


def test_node_names_with_spaces_are_refused():
    with pytest.raises(CommandError, match="invalid node name"):
        create("gpu 01", "--project", "vision")
    assert not Node.objects.exists() and not Project.objects.exists()


def test_without_a_name_the_node_is_named_after_this_host():
    import socket

    create("--project", "vision")
    assert Node.objects.get().name == socket.gethostname()
