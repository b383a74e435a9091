"""What the DICOMweb (PACS) endpoints take and give: the project's server, study searches, imports."""

from __future__ import annotations

from rest_framework import serializers

from annotation.ingest.dicomweb import UID, url_normalized

UID_MESSAGE = "not a DICOM UID (digits separated by dots, at most 64 characters)"


def _plain(value: str) -> str:
    """Refuse control characters and backslashes (DICOM's value separator) in a search filter."""
    if any(ord(c) < 32 or c == "\\" for c in value):
        raise serializers.ValidationError("no control characters or backslashes here")
    return value


class DicomWebServerSerializer(serializers.Serializer):
    source = serializers.ChoiceField(
        choices=["project", "environment", "none"],
        help_text="project: set by a lead here; environment: LUMEN_DICOMWEB_URL of the deployment; none: not set.",
    )
    url = serializers.CharField()
    username = serializers.CharField()
    has_password = serializers.BooleanField(help_text="Whether a password is set; the password itself is never shown.")
    updated_at = serializers.DateTimeField(allow_null=True)


class DicomWebServerWriteSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=500,
        help_text="Base URL of the DICOMweb service (http or https), e.g. https://pacs.example/dicom-web",
    )
    username = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        allow_null=True,
        default=None,
        write_only=True,
        trim_whitespace=False,
        help_text="Stored encrypted, never returned. Leave it out to keep the stored one; an empty string removes it.",
    )

    def validate_url(self, value: str) -> str:
        if any(ord(c) < 33 for c in value.strip()):
            raise serializers.ValidationError("the URL contains spaces or control characters")
        try:
            return url_normalized(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None

    def validate_username(self, value: str) -> str:
        if ":" in value:
            raise serializers.ValidationError("a user name cannot contain ':' (HTTP basic authentication)")
        return value


class DicomWebCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class StudySearchSerializer(serializers.Serializer):
    patient_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="", validators=[_plain])
    patient_name = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        validators=[_plain],
        help_text="DICOM form (FAMILY^GIVEN); * and ? are wildcards; without them, names starting with it match.",
    )
    date_from = serializers.DateField(required=False, allow_null=True, default=None, help_text="First study date.")
    date_to = serializers.DateField(required=False, allow_null=True, default=None, help_text="Last study date.")
    modality = serializers.RegexField(
        r"^[A-Za-z0-9]{0,16}$",
        required=False,
        allow_blank=True,
        default="",
        error_messages={"invalid": "a modality is a DICOM code of letters and digits, e.g. XA"},
    )
    accession = serializers.CharField(max_length=64, required=False, allow_blank=True, default="", validators=[_plain])
    description = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        validators=[_plain],
        help_text="Study descriptions containing it (or matching it, with * and ? wildcards).",
    )
    limit = serializers.IntegerField(min_value=1, max_value=200, default=25)
    offset = serializers.IntegerField(min_value=0, max_value=1_000_000, default=0)

    def validate(self, attrs):
        if attrs["date_from"] and attrs["date_to"] and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": "the end date is before the start date"})
        return attrs


class StudyRowSerializer(serializers.Serializer):
    study_uid = serializers.CharField()
    date = serializers.CharField(help_text="YYYY-MM-DD as the server has it (the original date, not yet shifted).")
    time = serializers.CharField()
    description = serializers.CharField()
    accession = serializers.CharField()
    patient_id = serializers.CharField()
    patient_name = serializers.CharField()
    modalities = serializers.ListField(child=serializers.CharField())
    series = serializers.IntegerField(allow_null=True)
    instances = serializers.IntegerField(allow_null=True)


class StudyPageSerializer(serializers.Serializer):
    results = StudyRowSerializer(many=True)
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    more = serializers.BooleanField(help_text="Whether the server has more studies after this page.")


class DicomWebImportSerializer(serializers.Serializer):
    studies = serializers.ListField(
        child=serializers.RegexField(UID.pattern, max_length=64, error_messages={"invalid": UID_MESSAGE}),
        min_length=1,
        max_length=500,
        help_text="StudyInstanceUIDs of the studies to import (as the search found them).",
    )
