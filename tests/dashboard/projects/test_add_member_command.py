"""``manage.py add_member USER PROJECT [--admin|--member]`` and ``remove_member``: they say what they did,
running them twice changes nothing, bad names are refused with what would work, and a project that has
an admin keeps one."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from dashboard.projects.models import Membership, Project
from tests.factories import member

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def roles(project: str = "vision") -> dict[str, str]:
    return dict(Membership.objects.filter(project__name=project).values_list("user__username", "role"))


@pytest.fixture
def vision():
    Project.objects.create(name="vision")
    member("ana")
    member("bob")


def test_adds_a_member_and_a_second_run_changes_nothing(vision):
    assert run("add_member", "ana", "vision") == "added 'ana' to 'vision' as a member"
    assert run("add_member", "ana", "vision") == "'ana' is already a member of 'vision': nothing changed"
    assert roles() == {"ana": "member"}
    assert Membership.objects.get().added_at is not None


def test_admin_flag_adds_an_admin_promotes_a_member_and_member_flag_demotes(vision):
    assert run("add_member", "ana", "vision", "--admin") == "added 'ana' to 'vision' as an admin"
    assert run("add_member", "bob", "vision") == "added 'bob' to 'vision' as a member"
    assert run("add_member", "bob", "vision", "--admin") == "made 'bob' an admin of 'vision'"
    assert run("add_member", "bob", "vision", "--admin") == "'bob' is already an admin of 'vision': nothing changed"
    # Without a flag an admin stays an admin: re-running the plain command never demotes anyone.
    assert run("add_member", "bob", "vision") == "'bob' is already an admin of 'vision': nothing changed"
    assert run("add_member", "bob", "vision", "--member") == "demoted 'bob' a member of 'vision'"
    assert roles() == {"ana": "admin", "bob": "member"}


def test_unknown_user_or_project_is_refused_with_what_exists(vision):
    with pytest.raises(CommandError, match=r"no user named 'zoe': they need an account first"):
        run("add_member", "zoe", "vision")
    with pytest.raises(CommandError, match=r"no project named 'speech' \(projects: vision\); projects are made by"):
        run("add_member", "ana", "speech")
    assert not Membership.objects.exists()


def test_a_deactivated_user_is_not_added_but_can_be_removed(vision, django_user_model):
    run("add_member", "bob", "vision")
    django_user_model.objects.filter(username="bob").update(is_active=False)
    with pytest.raises(CommandError, match="'bob' is deactivated"):
        run("add_member", "bob", "vision", "--admin")
    assert run("remove_member", "bob", "vision") == "removed 'bob' from 'vision'"


def test_the_only_admin_can_be_neither_demoted_nor_removed(vision):
    run("add_member", "ana", "vision", "--admin")
    run("add_member", "bob", "vision")
    for command in (("add_member", "ana", "vision", "--member"), ("remove_member", "ana", "vision")):
        with pytest.raises(CommandError, match=r"only admin of 'vision'.*Make another member admin first"):
            run(*command)
    assert roles() == {"ana": "admin", "bob": "member"}
    # With a second admin, the first may go.
    run("add_member", "bob", "vision", "--admin")
    assert run("remove_member", "ana", "vision") == "removed 'ana' from 'vision'"
    assert roles() == {"bob": "admin"}


def test_removing_someone_who_is_not_a_member_changes_nothing(vision):
    assert run("remove_member", "ana", "vision") == "'ana' is not a member of 'vision': nothing changed"


def test_admin_and_member_flags_exclude_each_other(vision):
    with pytest.raises(CommandError):
        run("add_member", "ana", "vision", "--admin", "--member")
