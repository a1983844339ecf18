"""Forms of the pages: they parse what a browser sends; the services decide what is valid
in the domain, and `wording.apply_refusal` puts their refusal back on the form."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from compliance.accounts.models import RetentionChoice
from compliance.consent.models import Purpose
from compliance.core.fields import EARLIEST_YEAR, LATEST_YEAR, year_in_range
from compliance.recordings.models import Category
from compliance.retention.models import AppliesTo

StrOrPromise = str | Promise

# What each retention choice means, in plain words (the privacy page shows these).
RETENTION_MEANING: dict[str, StrOrPromise] = {
    RetentionChoice.THREE_MONTHS: _(
        "Recordings are deleted automatically three months after they were made."
    ),
    RetentionChoice.EIGHTEEN_MONTHS: _(
        "Recordings are deleted automatically eighteen months after they were made."
    ),
    RetentionChoice.UNTIL_DELETED: _(
        "Recordings are kept until you delete them here, unless the rules for your "
        "country set a shorter limit."
    ),
    RetentionChoice.DONT_SAVE: _(
        "Recordings are deleted as soon as your request has been processed. "
        "Nothing is kept for people to review or to improve the service."
    ),
}

# Keyed by the stored value: forms and templates look labels up with plain strings.
RETENTION_LABELS: dict[str, StrOrPromise] = {
    RetentionChoice.THREE_MONTHS: _("3 months"),
    RetentionChoice.EIGHTEEN_MONTHS: _("18 months"),
    RetentionChoice.UNTIL_DELETED: _("Until I delete them"),
    RetentionChoice.DONT_SAVE: _("Don't save my recordings"),
}

PURPOSE_LABELS: dict[str, StrOrPromise] = {
    Purpose.HUMAN_REVIEW: _("People may listen to my recordings"),
    Purpose.MODEL_TRAINING: _("My recordings may be used to train speech recognition"),
}

PURPOSE_EXPLANATIONS: dict[str, StrOrPromise] = {
    Purpose.HUMAN_REVIEW: _(
        "A small number of clips are heard by trained reviewers, who write down what was "
        "said to check and improve recognition. Reviewers never learn who spoke."
    ),
    Purpose.MODEL_TRAINING: _(
        "Recordings and their transcripts are used by computers, without anyone listening, "
        "to make speech recognition better."
    ),
}

PURPOSE_SHORT: dict[str, StrOrPromise] = {
    Purpose.HUMAN_REVIEW: _("human review"),
    Purpose.MODEL_TRAINING: _("model training"),
}

# Services name some fields as the API does; the forms name them for people.

NOTICE_VERSION = "web-2026-01"

# A hold's reason is free text that the model does not bound; a page must not accept
# a book. The same limit as a ledger acknowledgement's reason.
HOLD_REASON_MAX = 2000
HOLD_CASE_REFERENCE_MAX = 200  # LegalHold.case_reference's column


# compliance.core.fields.OUT_OF_RANGE_MESSAGE, in the reader's language.
OUT_OF_RANGE = _("Must lie between the years %(earliest)s and %(latest)s.")
YEARS = {"earliest": EARLIEST_YEAR, "latest": LATEST_YEAR}


def start_of_day(value: date | None) -> datetime | None:
    return None if value is None else datetime.combine(value, time(), tzinfo=UTC)


def end_of_day(value: date | None) -> datetime | None:
    if value is None:
        return None
    return datetime.combine(value + timedelta(days=1), time(), tzinfo=UTC) - timedelta(
        microseconds=1
    )


class BoundedDateField(forms.DateField):
    """A day within the years every date in Earshot lies in: the pages add a day to an
    inclusive end, which overflows at 9999-12-31."""

    default_error_messages = {"out_of_range": OUT_OF_RANGE}

    def to_python(self, value: Any) -> date | None:
        parsed = super().to_python(value)
        if parsed is not None and not year_in_range(parsed):
            raise forms.ValidationError(
                self.error_messages["out_of_range"], code="out_of_range", params=YEARS
            )
        return parsed


class BoundedDateTimeField(forms.DateTimeField):
    default_error_messages = {"out_of_range": OUT_OF_RANGE}

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is not None and not year_in_range(parsed):
            raise forms.ValidationError(
                self.error_messages["out_of_range"], code="out_of_range", params=YEARS
            )
        return parsed


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class ConsentForm(forms.Form):
    granted = forms.TypedChoiceField(
        choices=[("true", _("grant")), ("false", _("withdraw"))],
        coerce=lambda v: v == "true",
    )


class RetentionForm(forms.Form):
    choice = forms.ChoiceField(
        choices=[(c, RETENTION_LABELS[c]) for c in RetentionChoice.values],
        widget=forms.RadioSelect,
        label=_("How long should your recordings be kept?"),
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class DeletionForm(forms.Form):
    SCOPES = [("one", _("one recording")), ("range", _("a date range")), ("all", _("everything"))]

    scope = forms.ChoiceField(choices=SCOPES, widget=forms.HiddenInput)
    recording = forms.CharField(required=False, max_length=128, widget=forms.HiddenInput)
    date_from = BoundedDateField(required=False, label=_("From"), widget=DateInput())
    date_to = BoundedDateField(required=False, label=_("To (inclusive)"), widget=DateInput())
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        scope = data.get("scope")
        if scope == "one" and not data.get("recording"):
            self.add_error(None, _("Choose the recording to delete."))
        if scope == "range":
            start, end = data.get("date_from"), data.get("date_to")
            unreadable = "date_from" in self.errors or "date_to" in self.errors
            if start is None and end is None and not unreadable:
                self.add_error("date_from", _("Give a first day, a last day, or both."))
            elif start and end and start > end:
                self.add_error("date_to", _("The last day must not lie before the first."))
        return data


class PolicyForm(forms.Form):
    jurisdiction = forms.CharField(
        max_length=8,
        help_text=_("A country code (DE), a group (EU, EEA) or * for everywhere."),
        label=_("Jurisdiction"),
    )
    category = forms.ChoiceField(choices=[(c, c) for c in Category.values], label=_("Category"))
    applies_to = forms.ChoiceField(
        choices=[(a, a) for a in AppliesTo.values], label=_("Applies to"), initial=AppliesTo.ALL
    )
    retention_days = forms.IntegerField(label=_("Keep for (days)"), min_value=0, max_value=36_500)
    effective_from = BoundedDateTimeField(
        required=False,
        label=_("In force from (UTC)"),
        help_text=_("Leave empty for now."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )

    def clean_jurisdiction(self) -> str:
        return self.cleaned_data["jurisdiction"].strip().upper()

    def clean_effective_from(self) -> datetime | None:
        value = self.cleaned_data.get("effective_from")
        # The form says UTC; the server's time zone must not reinterpret it.
        return None if value is None else value.replace(tzinfo=UTC)


class ConsentDefaultForm(forms.Form):
    jurisdiction = forms.CharField(
        max_length=2, label=_("Jurisdiction"), help_text=_("A country code, e.g. US.")
    )
    purpose = forms.ChoiceField(
        choices=[(p, PURPOSE_SHORT[p]) for p in Purpose.values], label=_("Purpose")
    )
    granted = forms.TypedChoiceField(
        label=_("Without an answer from the user"),
        choices=[("true", _("granted (opt-out)")), ("false", _("not granted (opt-in)"))],
        coerce=lambda v: v == "true",
    )

    def clean_jurisdiction(self) -> str:
        return self.cleaned_data["jurisdiction"].strip().upper()


class TransferRuleForm(forms.Form):
    jurisdiction = forms.CharField(
        max_length=2,
        label=_("Recordings from"),
        help_text=_("Country code of the recordings."),
    )
    reviewer_location = forms.CharField(
        max_length=2,
        label=_("May be reviewed in"),
        help_text=_("Country code of the reviewers."),
    )

    def clean_jurisdiction(self) -> str:
        return self.cleaned_data["jurisdiction"].strip().upper()

    def clean_reviewer_location(self) -> str:
        return self.cleaned_data["reviewer_location"].strip().upper()


class LegalHoldForm(forms.Form):
    scope = forms.ChoiceField(
        choices=[("account", _("an account")), ("profile", _("a voice profile"))],
        widget=forms.RadioSelect,
        initial="account",
        label=_("Hold"),
    )
    target = forms.CharField(
        max_length=128,
        label=_("Account or profile id"),
        help_text=_("The external id; find it by id or email with the search above."),
    )
    date_from = BoundedDateField(required=False, label=_("Recorded from"), widget=DateInput())
    date_to = BoundedDateField(
        required=False, label=_("Recorded to (inclusive)"), widget=DateInput()
    )
    case_reference = forms.CharField(
        max_length=HOLD_CASE_REFERENCE_MAX,
        label=_("Case reference"),
        help_text=_("The court's or the investigation's reference."),
    )
    reason = forms.CharField(
        max_length=HOLD_REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Why the recordings must be kept."),
        label=_("Reason"),
    )
