"""Template filters of the lesion-report card and the item browser's lesion column."""

from django import template

from annotation.models import Project
from annotation.services.lesions import reports_supported

register = template.Library()


@register.filter
def takes_lesion_reports(project: Project) -> bool:
    """Whether the project's runs get LCA / RCA vessel types, so lesion reports can be linked to them."""
    return reports_supported(project)
