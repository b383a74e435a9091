from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Lumen annotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import pydicom.config

        from annotation import checks  # noqa: F401  (registers the checks of Lumen's settings)
        from annotation.api import auth  # noqa: F401  (connects: a password change revokes the user's tokens)

        # pydicom's reading validation warns with the offending value (UIDs, names) quoted: uploaded values must
        # never reach the logs. The ingest checks what it needs itself and says so per file.
        pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
