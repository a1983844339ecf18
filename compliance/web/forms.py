"""Forms of the pages: they parse what a browser sends; the services decide what is valid
in the domain, and `wording.apply_refusal` puts their refusal back on the form."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms

from compliance.accounts.models import RetentionChoice
from compliance.consent.models import Purpose
from compliance.core.fields import OUT_OF_RANGE_MESSAGE, year_in_range
from compliance.recordings.models import Category
from compliance.retention.models import AppliesTo

# What each retention choice means, in plain words (the privacy page shows these).
RETENTION_MEANING: dict[str, str] = {
    RetentionChoice.THREE_MONTHS: (
        "Recordings are deleted automatically three months after they were made."
    ),
    RetentionChoice.EIGHTEEN_MONTHS: (
        "Recordings are deleted automatically eighteen months after they were made."
    ),
    RetentionChoice.UNTIL_DELETED: (
        "Recordings are kept until you delete them here, unless the rules for your "
        "country set a shorter limit."
    ),
    RetentionChoice.DONT_SAVE: (
        "Recordings are deleted as soon as your request has been processed. "
        "Nothing is kept for people to review or to improve the service."
    ),
}

# Keyed by the stored value: forms and templates look labels up with plain strings.
RETENTION_LABELS: dict[str, str] = {
    RetentionChoice.THREE_MONTHS: "3 months",
    RetentionChoice.EIGHTEEN_MONTHS: "18 months",
    RetentionChoice.UNTIL_DELETED: "Until I delete them",
    RetentionChoice.DONT_SAVE: "Don't save my recordings",
}

PURPOSE_LABELS: dict[str, str] = {
    Purpose.HUMAN_REVIEW: "People may listen to my recordings",
    Purpose.MODEL_TRAINING: "My recordings may be used to train speech recognition",
}

PURPOSE_EXPLANATIONS: dict[str, str] = {
    Purpose.HUMAN_REVIEW: (
        "A small number of clips are heard by trained reviewers, who write down what was "
        "said to check and improve recognition. Reviewers never learn who spoke."
    ),
    Purpose.MODEL_TRAINING: (
        "Recordings and their transcripts are used by computers, without anyone listening, "
        "to make speech recognition better."
    ),
}

PURPOSE_SHORT: dict[str, str] = {
    Purpose.HUMAN_REVIEW: "human review",
    Purpose.MODEL_TRAINING: "model training",
}

# Services name some fields as the API does; the forms name them for people.

NOTICE_VERSION = "web-2026-01"

# A hold's reason is free text that the model does not bound; a page must not accept
# a book. The same limit as a ledger acknowledgement's reason.
HOLD_REASON_MAX = 2000
HOLD_CASE_REFERENCE_MAX = 200  # LegalHold.case_reference's column


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

    default_error_messages = {"out_of_range": OUT_OF_RANGE_MESSAGE}

    def to_python(self, value: Any) -> date | None:
        parsed = super().to_python(value)
        if parsed is not None and not year_in_range(parsed):
            raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range")
        return parsed


class BoundedDateTimeField(forms.DateTimeField):
    default_error_messages = {"out_of_range": OUT_OF_RANGE_MESSAGE}

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is not None and not year_in_range(parsed):
            raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range")
        return parsed


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class ConsentForm(forms.Form):
    granted = forms.TypedChoiceField(
        choices=[("true", "grant"), ("false", "withdraw")],
        coerce=lambda v: v == "true",
    )


class RetentionForm(forms.Form):
    choice = forms.ChoiceField(
        choices=[(c, RETENTION_LABELS[c]) for c in RetentionChoice.values],
        widget=forms.RadioSelect,
        label="How long should your recordings be kept?",
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class DeletionForm(forms.Form):
    SCOPES = [("one", "one recording"), ("range", "a date range"), ("all", "everything")]

    scope = forms.ChoiceField(choices=SCOPES, widget=forms.HiddenInput)
    recording = forms.CharField(required=False, max_length=128, widget=forms.HiddenInput)
    date_from = BoundedDateField(required=False, label="From", widget=DateInput())
    date_to = BoundedDateField(required=False, label="To (inclusive)", widget=DateInput())
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        scope = data.get("scope")
        if scope == "one" and not data.get("recording"):
            self.add_error(None, "Choose the recording to delete.")
        if scope == "range":
            start, end = data.get("date_from"), data.get("date_to")
            if start is None and end is None:
                self.add_error("date_from", "Give a first day, a last day, or both.")
            elif start and end and start > end:
                self.add_error("date_to", "The last day must not lie before the first.")
        return data


class PolicyForm(forms.Form):
    jurisdiction = forms.CharField(
        max_length=8,
        help_text="A country code (DE), a group (EU, EEA) or * for everywhere.",
    )
    category = forms.ChoiceField(choices=[(c, c) for c in Category.values])
    applies_to = forms.ChoiceField(
        choices=[(a, a) for a in AppliesTo.values], label="Applies to", initial=AppliesTo.ALL
    )
    retention_days = forms.IntegerField(label="Keep for (days)", min_value=0, max_value=36_500)
    effective_from = BoundedDateTimeField(
        required=False,
        label="In force from (UTC)",
        help_text="Leave empty for now.",
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
    jurisdiction = forms.CharField(max_length=2, help_text="A country code, e.g. US.")
    purpose = forms.ChoiceField(choices=[(p, PURPOSE_SHORT[p]) for p in Purpose.values])
    granted = forms.TypedChoiceField(
        label="Without an answer from the user",
        choices=[("true", "granted (opt-out)"), ("false", "not granted (opt-in)")],
        coerce=lambda v: v == "true",
    )

    def clean_jurisdiction(self) -> str:
        return self.cleaned_data["jurisdiction"].strip().upper()


class TransferRuleForm(forms.Form):
    jurisdiction = forms.CharField(
        max_length=2, label="Recordings from", help_text="Country code of the recordings."
    )
    reviewer_location = forms.CharField(
        max_length=2, label="May be reviewed in", help_text="Country code of the reviewers."
    )

    def clean_jurisdiction(self) -> str:
        return self.cleaned_data["jurisdiction"].strip().upper()

    def clean_reviewer_location(self) -> str:
        return self.cleaned_data["reviewer_location"].strip().upper()


class LegalHoldForm(forms.Form):
    scope = forms.ChoiceField(
        choices=[("account", "an account"), ("profile", "a voice profile")],
        widget=forms.RadioSelect,
        initial="account",
        label="Hold",
    )
    target = forms.CharField(
        max_length=128,
        label="Account or profile id",
        help_text="The external id; find it by id or email with the search above.",
    )
    date_from = BoundedDateField(required=False, label="Recorded from", widget=DateInput())
    date_to = BoundedDateField(required=False, label="Recorded to (inclusive)", widget=DateInput())
    case_reference = forms.CharField(
        max_length=HOLD_CASE_REFERENCE_MAX,
        label="Case reference",
        help_text="The court's or the investigation's reference.",
    )
    reason = forms.CharField(
        max_length=HOLD_REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the recordings must be kept.",
    )
