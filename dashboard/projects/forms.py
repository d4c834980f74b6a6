"""The members page's forms: who to add (by username) and which role."""

from __future__ import annotations

from django import forms

from dashboard.projects.models import Membership


class AddMemberForm(forms.Form):
    username = forms.CharField(max_length=150)  # of an existing account
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)
