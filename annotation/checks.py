"""System checks of Lumen's own settings: a bad value is named at start-up, not at the first import."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from annotation.ingest.render import DEFAULT_QUALITY, FRAME_FORMATS


@register()
def frame_cache_settings(app_configs, **kwargs) -> list[Error]:
    errors = []
    if settings.LUMEN_FRAME_FORMAT not in FRAME_FORMATS:
        errors.append(
            Error(
                f"LUMEN_FRAME_FORMAT is {settings.LUMEN_FRAME_FORMAT!r}; use one of {', '.join(FRAME_FORMATS)}.",
                id="lumen.E001",
            )
        )
    if not 0 <= settings.LUMEN_FRAME_QUALITY <= 100:
        errors.append(
            Error(
                f"LUMEN_FRAME_QUALITY is {settings.LUMEN_FRAME_QUALITY}; use 1-100, or 0 for the codec's default "
                f"({', '.join(f'{fmt} {quality}' for fmt, quality in DEFAULT_QUALITY.items())}).",
                id="lumen.E002",
            )
        )
    return errors
