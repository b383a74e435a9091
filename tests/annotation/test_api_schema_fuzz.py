"""Schemathesis over the OpenAPI schema (a bounded example budget per operation, valid and invalid inputs):
no answer is a server error, and every answer that the schema describes matches it."""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from annotation.services import import_run, label_submit
from tests import dicom_samples as samples
from tests.annotation.test_ingest import source
from tests.conftest import connection_kept
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
# Examples per operation and mode: kept small for `make test`; LUMEN_FUZZ_EXAMPLES=200 for a deeper run.
EXAMPLES = int(os.environ.get("LUMEN_FUZZ_EXAMPLES", "12"))
SCHEMA = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))


def _negatable(operation) -> bool:
    """Whether invalid input exists for the operation: a query parameter, a body, or a typed path parameter (any
    text is a valid slug or name in a path, so an operation with only those has no invalid request to make)."""
    typed_path = any(p.definition.get("schema", {}).get("type") != "string" for p in operation.path_parameters)
    return bool(list(operation.query) or list(operation.body) or typed_path)


def _cases():
    operations = [result.ok() for result in SCHEMA.get_all_operations()]
    return [(op, schemathesis.GenerationMode.POSITIVE) for op in operations] + [
        (op, schemathesis.GenerationMode.NEGATIVE) for op in operations if _negatable(op)
    ]


@pytest.fixture
def world(vessel_project, lead, annotator):
    """A project with an item, a label and a superuser's token: the requests reach past the access checks."""
    import_run(project=vessel_project, sources=[source("run.dcm", samples.xa_bytes())])
    label_submit(item=vessel_project.items.get(), author=annotator, payload={"vessel": "RCA"}, base_version=None)
    admin = UserFactory(username="fuzz-admin", is_superuser=True, is_staff=True)
    return AuthToken.objects.create(user=admin)[1]


@pytest.mark.parametrize(("operation", "mode"), _cases(), ids=lambda x: getattr(x, "label", getattr(x, "value", x)))
def test_no_server_error_and_no_schema_violation(world, operation, mode):
    app = get_wsgi_application()
    SCHEMA.app = app

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def check(case) -> None:
        with connection_kept():
            case.call_and_validate(
                app=app,
                headers={"Authorization": f"Token {world}"},
                checks=[not_a_server_error, response_schema_conformance],
            )

    check()
