"""The members page: anyone who sees a project reads its members; its admins and superusers add, promote,
demote and remove them, each change a POST with CSRF; refusals say why and change nothing."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.projects.models import Membership, Project
from tests.factories import member

pytestmark = pytest.mark.django_db


def roles(project: str = "vision") -> dict[str, str]:
    return dict(Membership.objects.filter(project__name=project).values_list("user__username", "role"))


def make_admin(username: str, project: str = "vision") -> None:
    Membership.objects.filter(user__username=username, project__name=project).update(role=Membership.Role.ADMIN)


def page(pk: int) -> str:
    return reverse("projects:members", args=[pk])


@pytest.fixture
def vision():
    """ana admins vision, bob is a member of it, carl of another project only; zoe has an account."""
    member("ana", "vision")
    member("bob", "vision")
    member("carl", "speech")
    member("zoe")
    make_admin("ana")
    return Project.objects.get(name="vision")


def signed_in(username: str, django_user_model, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(django_user_model.objects.get(username=username))
    return client


def test_an_admin_adds_a_member_by_username(vision, django_user_model):
    ana = signed_in("ana", django_user_model)
    response = ana.post(reverse("projects:member_add", args=[vision.pk]), {"username": "zoe", "role": "member"},
                        follow=True)
    assert response.redirect_chain[-1] == (page(vision.pk), 302)
    assert "added &#x27;zoe&#x27; to &#x27;vision&#x27; as a member" in response.content.decode()
    assert roles() == {"ana": "admin", "bob": "member", "zoe": "member"}


def test_an_unknown_username_is_refused_and_changes_nothing(vision, django_user_model):
    ana = signed_in("ana", django_user_model)
    response = ana.post(reverse("projects:member_add", args=[vision.pk]), {"username": "nobody", "role": "admin"})
    assert response.status_code == 400
    assert "no user named &#x27;nobody&#x27;" in response.content.decode()
    assert 'value="nobody"' in response.content.decode()  # the form keeps what was typed
    assert roles() == {"ana": "admin", "bob": "member"}


def test_an_unknown_role_is_refused(vision, django_user_model):
    ana = signed_in("ana", django_user_model)
    bob = django_user_model.objects.get(username="bob")
    response = ana.post(reverse("projects:member_role", args=[vision.pk, bob.pk]), {"role": "owner"})
    assert response.status_code == 400
    assert "role: Select a valid choice" in response.content.decode()
    assert roles()["bob"] == "member"


def test_an_admin_promotes_demotes_and_removes(vision, django_user_model):
    ana = signed_in("ana", django_user_model)
    bob = django_user_model.objects.get(username="bob")
    ana.post(reverse("projects:member_role", args=[vision.pk, bob.pk]), {"role": "admin"})
    assert roles()["bob"] == "admin"
    ana.post(reverse("projects:member_role", args=[vision.pk, bob.pk]), {"role": "member"})
    assert roles()["bob"] == "member"
    response = ana.post(reverse("projects:member_remove", args=[vision.pk, bob.pk]))
    assert response.status_code == 302
    assert roles() == {"ana": "admin"}


def test_the_only_admin_cannot_be_demoted_or_removed(vision, django_user_model):
    ana = signed_in("ana", django_user_model)
    ana_user = django_user_model.objects.get(username="ana")
    for response in (
        ana.post(reverse("projects:member_role", args=[vision.pk, ana_user.pk]), {"role": "member"}),
        ana.post(reverse("projects:member_remove", args=[vision.pk, ana_user.pk])),
    ):
        assert response.status_code == 400
        assert "the only admin of &#x27;vision&#x27;" in response.content.decode()
        assert "Make another member admin first" in response.content.decode()
    assert roles() == {"ana": "admin", "bob": "member"}
    # The page does not offer what would be refused.
    html = ana.get(page(vision.pk)).content.decode()
    assert html.count("make another member admin first") == 2


def test_an_admin_who_leaves_goes_to_the_projects_list(vision, django_user_model):
    make_admin("bob")
    ana = signed_in("ana", django_user_model)
    ana_user = django_user_model.objects.get(username="ana")
    response = ana.post(reverse("projects:member_remove", args=[vision.pk, ana_user.pk]))
    assert response["Location"] == reverse("projects:index")
    assert roles() == {"bob": "admin"}


def test_a_plain_member_reads_the_list_but_cannot_change_it(vision, django_user_model):
    bob = signed_in("bob", django_user_model)
    html = bob.get(page(vision.pk)).content.decode()
    assert "ana" in html and 'id="add-member-form"' not in html and "member_role" not in html
    assert "Only the project's admins (ana)" in html
    zoe = django_user_model.objects.get(username="zoe")
    bob_user = django_user_model.objects.get(username="bob")
    for path, data in (
        (reverse("projects:member_add", args=[vision.pk]), {"username": "zoe", "role": "admin"}),
        (reverse("projects:member_role", args=[vision.pk, bob_user.pk]), {"role": "admin"}),
        (reverse("projects:member_remove", args=[vision.pk, zoe.pk]), {}),
    ):
        assert bob.post(path, data).status_code == 403
    assert roles() == {"ana": "admin", "bob": "member"}


def test_someone_outside_the_project_gets_404(vision, django_user_model):
    carl = signed_in("carl", django_user_model)
    assert carl.get(page(vision.pk)).status_code == 404
    response = carl.post(reverse("projects:member_add", args=[vision.pk]), {"username": "carl", "role": "admin"})
    assert response.status_code == 404
    assert roles() == {"ana": "admin", "bob": "member"}


def test_a_change_without_the_csrf_token_is_refused(vision, django_user_model):
    ana = signed_in("ana", django_user_model, csrf=True)
    response = ana.post(reverse("projects:member_add", args=[vision.pk]), {"username": "zoe", "role": "member"})
    assert response.status_code == 403
    assert roles() == {"ana": "admin", "bob": "member"}
    # Every form of the page carries the token (add, and a role and a remove form per member; log out).
    html = ana.get(page(vision.pk)).content.decode()
    assert html.count('method="post"') == html.count('name="csrfmiddlewaretoken"') == 6


def test_changes_are_posts_only(vision, django_user_model):
    ana = signed_in("ana", django_user_model)
    bob = django_user_model.objects.get(username="bob")
    assert ana.get(reverse("projects:member_add", args=[vision.pk])).status_code == 405
    assert ana.get(reverse("projects:member_remove", args=[vision.pk, bob.pk])).status_code == 405


def test_a_superuser_gives_a_project_without_an_admin_its_first(django_user_model):
    member("bob", "speech")
    speech = Project.objects.get(name="speech")
    django_user_model.objects.create_superuser("root", password="pw", email="root@example.org")
    bob = signed_in("bob", django_user_model)
    html = bob.get(page(speech.pk)).content.decode()
    assert "This project has no admin yet. A site administrator" in html and "(root)" in html
    assert "python manage.py add_member USERNAME speech --admin" in html

    root = signed_in("root", django_user_model)
    bob_user = django_user_model.objects.get(username="bob")
    root.post(reverse("projects:member_role", args=[speech.pk, bob_user.pk]), {"role": "admin"})
    assert roles("speech") == {"bob": "admin"}  # the superuser did not join it


def test_the_projects_list_shows_roles_admins_and_where_to_manage(vision, django_user_model):
    html = signed_in("ana", django_user_model).get(reverse("projects:index")).content.decode()
    assert "vision" in html and "manage members" in html and "speech" not in html
    assert '<td class="num">2</td>' in html  # ana and bob, though the rule joins on ana's membership
    html = signed_in("bob", django_user_model).get(reverse("projects:index")).content.decode()
    assert "<td>member</td>" in html and "<td>ana</td>" in html and "manage members" not in html
    html = signed_in("zoe", django_user_model).get(reverse("projects:index")).content.decode()
    assert "You are not in any project yet" in html


def test_the_django_admin_edits_memberships_inline(vision, django_user_model, admin_client):
    html = admin_client.get(reverse("admin:projects_project_change", args=[vision.pk])).content.decode()
    assert 'name="memberships-0-role"' in html and 'name="memberships-1-role"' in html
