"""Import from a PACS over DICOMweb, against a real Orthanc with its DICOMweb plugin started on loopback.

A lead sets the server (the password stored encrypted, never shown), checks it, searches its studies (QIDO-RS) and
imports some: the import worker retrieves each instance (WADO-RS) and imports it exactly as an upload of the same
file, with the same de-identification, duplicates and per-file outcomes.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from annotation.credentials import credential_decrypt
from annotation.ingest.dicomweb import DicomWebConnection, DicomWebError, _copy_dicom
from annotation.ingest.results import Reason, Rejection
from annotation.ingest.store import media_path
from annotation.models import ExternalServer, ImportFile, Instance, Item, Job, JobKind, JobStatus, Role, ServerKind
from annotation.services.dicomweb import dicomweb_job_list, dicomweb_server_for
from annotation.services.imports import import_jobs_run_pending, import_reports_forget_names, import_run
from annotation.services.jobs import job_claim
from tests import dicom_samples as samples
from tests.annotation.test_ingest import source
from tests.factories import MembershipFactory, ProjectFactory
from tests.orthanc_server import GeneratedStudy, Orthanc, cine_study, free_port, into_study, orthanc_running

pytestmark = pytest.mark.django_db


@dataclass
class Pacs:
    server: Orthanc
    studies: dict[str, GeneratedStudy]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory) -> Pacs:
    """One Orthanc for this module, loaded with generated studies that name their patients."""
    with orthanc_running(tmp_path_factory.mktemp("orthanc")) as server:
        studies = {
            "alice": cine_study(
                patient_id="PACS-001",
                patient_name="ALPHA^ALICE",
                accession="ACC-A1",
                description="LEFT CORONARY ANGIO",
                date="20240301",
                runs=2,
                seed=100,
            ),
            "bob": cine_study(
                patient_id="PACS-002",
                patient_name="BRAVO^BOB",
                accession="ACC-B1",
                description="RIGHT CORONARY",
                date="20240615",
                runs=1,
                seed=200,
            ),
            "carol": cine_study(
                patient_id="PACS-003",
                patient_name="CHARLIE^CAROL",
                accession="ACC-C1",
                description="CORONARY FOLLOW UP",
                date="20241120",
                runs=1,
                seed=300,
            ),
            "erin": cine_study(
                patient_id="PACS-005",
                patient_name="ECHO^ERIN",
                accession="ACC-E1",
                description="ECHO",
                date="20230110",
                runs=1,
                seed=500,
                modality="US",
            ),
        }
        carol = studies["carol"]
        # A file without pixel data (not an image) and one whose pixel data stops short of its declared frames:
        # Orthanc stores both, the import must reject each on its own.
        lying = samples.dataset(seed=301)
        lying.NumberOfFrames = 8
        carol.files += [into_study(carol, samples.no_pixels_bytes()), into_study(carol, samples.to_bytes(lying))]
        for study in studies.values():
            for data in study.files:
                server.store(data)
        yield Pacs(server, studies)


@pytest.fixture(autouse=True)
def no_environment_server(settings):
    settings.LUMEN_DICOMWEB_URL = ""
    settings.LUMEN_DICOMWEB_USERNAME = ""
    settings.LUMEN_DICOMWEB_PASSWORD = ""


def api(project, name: str = "dicomweb") -> str:
    return reverse(f"api:{name}", args=[project.slug])


def connect(client, project, pacs: Pacs, **changes) -> dict:
    body = {"url": pacs.server.dicomweb, "username": pacs.server.username, "password": pacs.server.password}
    response = client.put(api(project), {**body, **changes}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def search(client, project, **filters) -> dict:
    response = client.get(api(project, "dicomweb-studies"), filters)
    assert response.status_code == 200, response.content
    return response.json()


def import_studies(client, project, *studies: GeneratedStudy) -> dict:
    response = client.post(api(project, "dicomweb-imports"), {"studies": [s.uid for s in studies]}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def job_files(client, project, job_id: int) -> list[dict]:
    answer = client.get(f"{reverse('api:import-list', args=[project.slug])}{job_id}/files/")
    return answer.json()["files"]


def staged_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "imports"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_lead_sets_the_server_its_password_is_encrypted_and_never_shown(vessel_project, client_for, lead, pacs):
    client = client_for(lead)
    assert client.get(api(vessel_project)).json()["source"] == "none"
    answers = [connect(client, vessel_project, pacs, url=f"{pacs.server.dicomweb}/")]
    assert answers[0] == {
        "source": "project",
        "url": pacs.server.dicomweb,
        "username": pacs.server.username,
        "has_password": True,
        "updated_at": answers[0]["updated_at"],
    }
    stored = ExternalServer.objects.get(project=vessel_project, kind=ServerKind.DICOMWEB)
    assert pacs.server.password not in stored.secret and credential_decrypt(stored.secret) == pacs.server.password
    check = client.post(api(vessel_project, "dicomweb-check"))
    assert check.status_code == 200 and check.json()["detail"].startswith(f"Connected to {pacs.server.root[7:]}")
    answers.append(client.get(api(vessel_project)).json())
    # Leaving the password out keeps it, for the same server.
    answers.append(connect(client, vessel_project, pacs, password=None))
    assert answers[-1]["has_password"] and client.post(api(vessel_project, "dicomweb-check")).status_code == 200
    # Moved to another host or port, a kept password would be sent to a server it was never entered for: it goes.
    answers.append(
        connect(client, vessel_project, pacs, url=f"http://127.0.0.1:{free_port()}/dicom-web", password=None)
    )
    assert answers[-1]["has_password"] is False
    assert ExternalServer.objects.get(project=vessel_project).secret == ""
    for answer in answers:
        assert pacs.server.password not in json.dumps(answer)
    removed = client.delete(api(vessel_project))
    assert removed.status_code == 200 and removed.json()["source"] == "none"
    assert not ExternalServer.objects.filter(project=vessel_project).exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://pacs.example/dicom-web", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("pacs.example/dicom-web", "must start with http:// or https://"),
        ("http://user:pw@pacs.example/dicom-web", "in their own fields"),
        ("http://pacs.example/dicom-web?x=1", "no query"),
        ("http://pacs.example:99999/dicom-web", "port"),
        ("http://pacs example/dicom-web", "spaces"),
        ("http:///dicom-web", "no host"),
    ],
)
def test_a_bad_url_is_a_400_naming_the_field(vessel_project, client_for, lead, url, message):
    response = client_for(lead).put(api(vessel_project), {"url": url, "username": "u"}, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["url"])
    assert not ExternalServer.objects.exists()


def test_without_a_server_search_check_and_import_say_so(vessel_project, client_for, lead):
    client = client_for(lead)
    for response in (
        client.post(api(vessel_project, "dicomweb-check")),
        client.get(api(vessel_project, "dicomweb-studies")),
        client.post(api(vessel_project, "dicomweb-imports"), {"studies": ["1.2.3"]}, format="json"),
    ):
        assert response.status_code == 409
        assert response.json()["detail"].startswith("This project has no DICOMweb server")
    assert not Job.objects.exists()


@pytest.fixture
def web_page():
    """A web server that answers every path with an HTML page (a PACS's viewer, say, instead of its DICOMweb)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>PACS viewer</title><p>Welcome"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/viewer"
    server.shutdown()
    server.server_close()


def test_wrong_password_unreachable_and_not_dicomweb_are_named_never_a_500(
    vessel_project, client_for, lead, pacs, web_page
):
    client = client_for(lead)
    problems = {
        "wrong password": (
            {"password": "not-the-password"},
            "refused the user name or password (401 Unauthorized)",
        ),
        "nothing listening": (
            {"url": f"http://127.0.0.1:{free_port()}/dicom-web"},
            "could not reach 127.0.0.1:",
        ),
        "Orthanc's own REST API": ({"url": pacs.server.root}, "refused a QIDO-RS study search (400 Bad Request)"),
        "a web page": ({"url": web_page}, "not DICOM JSON"),
        "no such path": ({"url": f"{pacs.server.root}/no-dicomweb-here"}, "no DICOMweb service at this URL"),
    }
    for case, (changes, message) in problems.items():
        connect(client, vessel_project, pacs, **changes)
        for response in (
            client.post(api(vessel_project, "dicomweb-check")),
            client.get(api(vessel_project, "dicomweb-studies"), {"patient_id": "PACS-001"}),
        ):
            assert response.status_code == 502, (case, response.content)
            detail = response.json()["detail"]
            assert detail.startswith("The DICOMweb server: ") and message in detail, (case, detail)
            assert "PACS-001" not in detail and pacs.server.password not in detail


def test_the_search_finds_the_studies_and_each_filter_narrows_it(vessel_project, client_for, lead, pacs):
    client = client_for(lead)
    connect(client, vessel_project, pacs)
    studies = pacs.studies

    def found(**filters) -> set[str]:
        return {row["study_uid"] for row in search(client, vessel_project, **filters)["results"]}

    assert found() == {s.uid for s in studies.values()}
    page = search(client, vessel_project, patient_id="PACS-002")
    assert page["results"] == [
        {
            "study_uid": studies["bob"].uid,
            "date": "2024-06-15",
            "time": "",
            "description": "RIGHT CORONARY",
            "accession": "ACC-B1",
            "patient_id": "PACS-002",
            "patient_name": "BRAVO^BOB",
            "modalities": ["XA"],
            "series": 1,
            "instances": 1,
        }
    ]
    assert page["more"] is False
    assert found(patient_name="ALP") == {studies["alice"].uid}  # a name without wildcards is a prefix
    assert found(patient_name="*CAROL") == {studies["carol"].uid}
    assert found(date_from="2024-06-01", date_to="2024-12-31") == {studies["bob"].uid, studies["carol"].uid}
    assert found(date_to="2023-12-31") == {studies["erin"].uid}
    assert found(modality="US") == {studies["erin"].uid}
    assert found(accession="ACC-A1") == {studies["alice"].uid}
    assert found(description="CORONARY") == {studies[n].uid for n in ("alice", "bob", "carol")}
    assert found(description="coronary", modality="XA", date_from="2024-10-01") == {studies["carol"].uid}
    carol = search(client, vessel_project, accession="ACC-C1")["results"][0]
    assert (carol["series"], carol["instances"]) == (3, 3)
    # Paging: limit and offset walk the whole list once; `more` says when to stop.
    first, second = search(client, vessel_project, limit=3), search(client, vessel_project, limit=3, offset=3)
    assert (len(first["results"]), first["more"], len(second["results"]), second["more"]) == (3, True, 1, False)
    assert {r["study_uid"] for r in first["results"] + second["results"]} == found()
    response = client.get(api(vessel_project, "dicomweb-studies"), {"patient_id": "PACS-002"})
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"date_from": "2024-02-01", "date_to": "2024-01-01"}, "date_to"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"modality": "X A"}, "modality"),
        ({"patient_id": "A\\B"}, "patient_id"),
        ({"patient_name": "x" * 65}, "patient_name"),
    ],
)
def test_a_bad_search_filter_is_a_400_naming_it(vessel_project, client_for, lead, pacs, query, field):
    client = client_for(lead)
    connect(client, vessel_project, pacs)
    response = client.get(api(vessel_project, "dicomweb-studies"), query)
    assert response.status_code == 400 and field in response.json(), response.content


def _item_facts(project) -> list[tuple]:
    items = Item.objects.filter(project=project).select_related("instance", "patient")
    return sorted(
        (
            item.kind,
            item.title.split(" · ", 1)[1],  # "Run <instance id> · <view>"
            item.patient.pseudonym,
            item.instance.sop_instance_uid,
            item.instance.sha256,
            item.instance.number_of_frames,
        )
        for item in items
    )


def test_imported_studies_become_items_exactly_as_an_upload_of_the_same_files(
    vessel_project, client_for, lead, annotator, pacs
):
    client = client_for(lead)
    connect(client, vessel_project, pacs)
    alice, bob = pacs.studies["alice"], pacs.studies["bob"]
    job = import_studies(client, vessel_project, alice, bob)
    assert (job["kind"], job["status"], job["params"]["source"]) == ("import", "queued", "dicomweb")
    assert job["detail"]["phase"] == "listing" and job["detail"]["studies"] == 2
    assert Instance.objects.count() == 0  # nothing is retrieved inside the request
    assert import_jobs_run_pending() == 1

    done = client.get(f"{reverse('api:import-list', args=[vessel_project.slug])}{job['id']}/").json()
    assert done["status"] == "succeeded", done
    assert done["result"]["summary"] == {"stored": 3, "duplicates": 0, "rejected": 0, "items_created": 3}
    assert (done["progress"], done["detail"]["done"], done["detail"]["total"]) == (1.0, 3, 3)
    rows = job_files(client, vessel_project, job["id"])
    assert [row["outcome"] for row in rows] == ["stored"] * 3
    assert {row["name"].split("/")[0] for row in rows} == {alice.uid, bob.uid}
    assert staged_files() == []  # each retrieved file went once the import was done with it

    # The same files uploaded into another project make the same items: same pseudonyms, remapped UIDs, bytes.
    other = ProjectFactory(task_type=vessel_project.task_type, slug="vessel-upload")
    MembershipFactory(project=other, user=lead, role=Role.LEAD)
    uploaded = [source(f"f{i}.dcm", data) for i, data in enumerate(alice.files + bob.files)]
    assert import_run(project=other, sources=uploaded).summary()["stored"] == 3
    assert _item_facts(vessel_project) == _item_facts(other)

    # The stored copies are de-identified: no name, ID or accession number of the PACS survives in them.
    for instance in Instance.objects.filter(project=vessel_project):
        raw = media_path(instance.file_path).read_bytes()
        for original in (b"ALPHA", b"ALICE", b"BRAVO", b"PACS-001", b"PACS-002", b"ACC-A1", b"ACC-B1"):
            assert original not in raw
        ds = pydicom.dcmread(io.BytesIO(raw))
        assert str(ds.PatientID).startswith("P-") and str(ds.PatientName).startswith("P-")
        assert ds.StudyInstanceUID not in (alice.uid, bob.uid)

    # Imported again, from the PACS or as an upload of the originals: duplicates, nothing stored twice.
    again = import_studies(client, vessel_project, alice, bob)
    import_jobs_run_pending()
    assert Job.objects.get(pk=again["id"]).result["summary"] == {
        "stored": 0,
        "duplicates": 3,
        "rejected": 0,
        "items_created": 0,
    }
    assert import_run(project=vessel_project, sources=uploaded).summary()["duplicates"] == 3
    assert Item.objects.filter(project=vessel_project).count() == 3
    # Annotators see pseudonyms only.
    names = [item["patient"] for item in client_for(annotator).get(reverse("api:item-list")).json()["results"]]
    assert names and all(name.startswith("P-") for name in names)


def test_a_non_image_and_a_corrupt_instance_are_rejected_each_on_its_own(vessel_project, client_for, lead, pacs):
    client = client_for(lead)
    connect(client, vessel_project, pacs)
    job = import_studies(client, vessel_project, pacs.studies["carol"])
    import_jobs_run_pending()
    rows = job_files(client, vessel_project, job["id"])
    assert sorted((row["outcome"], row["reason"]) for row in rows) == [
        ("rejected", "no_pixel_data"),
        ("rejected", "undecodable"),  # its pixel data stops short of the frames it declares
        ("stored", ""),
    ]
    assert Job.objects.get(pk=job["id"]).status == JobStatus.SUCCEEDED
    assert Item.objects.filter(project=vessel_project).count() == 1


def test_an_instance_the_pacs_no_longer_holds_is_that_files_rejection(vessel_project, client_for, lead, pacs):
    client = client_for(lead)
    connect(client, vessel_project, pacs)
    frank = cine_study(
        patient_id="PACS-006", patient_name="FOXTROT^FRANK", accession="ACC-F1", description="", date="20240202",
        runs=2, seed=600,
    )  # fmt: skip
    ids = [pacs.server.store(data) for data in frank.files]
    response = client.post(
        api(vessel_project, "dicomweb-imports"), {"studies": [frank.uid, "1.2.3.4.5.999"]}, format="json"
    )
    job = job_claim(kinds=(JobKind.IMPORT,))
    assert job is not None and job.pk == response.json()["id"]
    # The worker lists the instances, then stops; the second run is deleted from the PACS before the job resumes.
    with DicomWebConnection(dicomweb_server_for(vessel_project)) as connection:
        listed = dicomweb_job_list(job=job, connection=connection)
    assert len(listed) == 3
    pacs.server.delete(ids[1])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)  # as a stale job is queued again
    assert import_jobs_run_pending() == 1
    rows = {row.name.split("/")[-1]: row for row in ImportFile.objects.filter(job=job)}
    gone = pydicom.dcmread(io.BytesIO(frank.files[1])).SOPInstanceUID
    kept = pydicom.dcmread(io.BytesIO(frank.files[0])).SOPInstanceUID
    assert rows[kept].outcome == "stored"
    assert (rows[gone].outcome, rows[gone].reason) == ("rejected", Reason.NOT_RETRIEVED)
    assert "no longer holds this instance (404 Not Found)" in rows[gone].message
    unknown = rows["1.2.3.4.5.999"]
    assert (unknown.outcome, unknown.reason) == ("rejected", Reason.NOT_RETRIEVED)
    assert "holds no instance of this study" in unknown.message
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_a_changed_server_fails_the_queued_job_with_the_reason(vessel_project, client_for, lead, pacs):
    client = client_for(lead)
    connect(client, vessel_project, pacs)
    job = import_studies(client, vessel_project, pacs.studies["bob"])
    connect(client, vessel_project, pacs, url=f"{pacs.server.root}/other-dicom-web")
    import_jobs_run_pending()
    failed = Job.objects.get(pk=job["id"])
    assert failed.status == JobStatus.FAILED and "server changed after this import was queued" in failed.error
    assert Instance.objects.count() == 0 and staged_files() == []


def test_file_names_and_study_uids_are_forgotten_with_the_reports(vessel_project, client_for, lead, pacs):
    client = client_for(lead)
    connect(client, vessel_project, pacs)
    bob = pacs.studies["bob"]
    job = import_studies(client, vessel_project, bob)
    import_jobs_run_pending()
    Job.objects.filter(pk=job["id"]).update(finished_at=timezone.now() - timedelta(days=30))
    assert import_reports_forget_names(older_than=timedelta(days=7)) == 1
    forgotten = Job.objects.get(pk=job["id"])
    assert forgotten.params["files"] == 1 and forgotten.params["studies"] == 1
    text = json.dumps([forgotten.params, forgotten.result, list(ImportFile.objects.values("name", "message"))])
    assert bob.uid not in text


@pytest.mark.parametrize(
    ("studies", "message"),
    [([], "at least 1"), (["1.2.abc"], "not a DICOM UID"), (["1." + "2" * 70], "no more than 64"), ("1.2.3", "list")],
)
def test_a_bad_study_list_is_a_400(vessel_project, client_for, lead, pacs, studies, message):
    client = client_for(lead)
    connect(client, vessel_project, pacs)
    response = client.post(api(vessel_project, "dicomweb-imports"), {"studies": studies}, format="json")
    assert response.status_code == 400 and message in json.dumps(response.json()["studies"])
    assert not Job.objects.exists()


def test_the_environment_sets_a_server_for_projects_without_their_own(vessel_project, client_for, lead, pacs, settings):
    settings.LUMEN_DICOMWEB_URL = pacs.server.dicomweb
    settings.LUMEN_DICOMWEB_USERNAME = pacs.server.username
    settings.LUMEN_DICOMWEB_PASSWORD = pacs.server.password
    client = client_for(lead)
    shown = client.get(api(vessel_project)).json()
    assert (shown["source"], shown["url"], shown["has_password"]) == ("environment", pacs.server.dicomweb, True)
    assert pacs.server.password not in json.dumps(shown)
    assert {r["study_uid"] for r in search(client, vessel_project, accession="ACC-B1")["results"]} == {
        pacs.studies["bob"].uid
    }
    assert connect(client, vessel_project, pacs, password="wrong")["source"] == "project"  # the project's own first
    assert client.post(api(vessel_project, "dicomweb-check")).status_code == 502
    assert client.delete(api(vessel_project)).json()["source"] == "environment"
    assert client.post(api(vessel_project, "dicomweb-check")).status_code == 200


def test_annotators_are_refused_and_strangers_see_nothing(vessel_project, client_for, annotator, stranger, pacs):
    calls = [
        ("get", api(vessel_project), None),
        ("put", api(vessel_project), {"url": pacs.server.dicomweb}),
        ("delete", api(vessel_project), None),
        ("post", api(vessel_project, "dicomweb-check"), None),
        ("get", api(vessel_project, "dicomweb-studies"), None),
        ("post", api(vessel_project, "dicomweb-imports"), {"studies": [pacs.studies["bob"].uid]}),
    ]
    for user, expected in ((annotator, 403), (stranger, 404), (None, 401)):
        client = client_for(user)
        for method, url, body in calls:
            response = getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
            assert response.status_code == expected, (user, method, url, response.status_code)
    assert not ExternalServer.objects.exists() and not Job.objects.exists()


# The WADO-RS answer's multipart body is copied to disk as it streams; these check the copy on crafted bodies.

BOUNDARY = "b0undary-7e1f"
MULTIPART = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def _body(data: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _chunks(body: bytes, size: int):
    return iter([body[i : i + size] for i in range(0, len(body), size)])


@pytest.mark.parametrize("size", [1, 7, len(BOUNDARY) + 3, 4096])
def test_the_streamed_copy_is_the_file_whatever_the_chunking(size):
    data = samples.xa_bytes(seed=9) + b"\r\n--not-the-boundary\r\n"
    target = io.BytesIO()
    assert _copy_dicom(MULTIPART, _chunks(_body(data), size), target, max_bytes=10**6) == len(data)
    assert target.getvalue() == data


def test_the_streamed_copy_refuses_a_file_past_the_limit_and_a_broken_transfer():
    data = samples.xa_bytes(seed=10)
    with pytest.raises(Rejection) as refused:
        _copy_dicom(MULTIPART, _chunks(_body(data), 100), io.BytesIO(), max_bytes=len(data) - 1)
    assert refused.value.reason == Reason.TOO_LARGE
    with pytest.raises(DicomWebError, match="broke off after"):
        _copy_dicom(MULTIPART, _chunks(_body(data)[:-40], 100), io.BytesIO(), max_bytes=10**6)
    with pytest.raises(DicomWebError, match="application/json, not a DICOM file"):
        _copy_dicom("application/json", _chunks(b"[]", 10), io.BytesIO(), max_bytes=10**6)
    bare = io.BytesIO()
    assert _copy_dicom("application/dicom", _chunks(data, 333), bare, max_bytes=10**6) == len(data)
    assert bare.getvalue() == data
