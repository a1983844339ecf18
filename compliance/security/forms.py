from django import forms
from django.utils.translation import gettext_lazy as _

from .services import TOKEN_MAX_LENGTH


class SignInForm(forms.Form):
    """One form for everyone: end users leave the code empty; officers, reviewers and
    staff give the code from their app or a backup code."""

    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        widget=forms.TextInput(
            attrs={"autocomplete": "username", "autocapitalize": "none", "autofocus": True}
        ),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    otp_token = forms.CharField(
        label=_("Authentication code (officers and reviewers)"),
        required=False,
        max_length=TOKEN_MAX_LENGTH + 8,  # room for the spaces people type
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "aria-describedby": "otp-token-hint",
            }
        ),
    )
