"""A real Orthanc with its DICOMweb plugin on loopback, for the DICOMweb import tests, and the studies loaded into it.

Debian's `orthanc` and `orthanc-dicomweb` (`make test` installs them). Orthanc gets a generated configuration in a
temporary folder (its storage there too), free ports for HTTP and DICOM, no remote access, and HTTP basic
authentication with a test user. If it cannot start, the tests that use it fail: they are never skipped.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from tests import dicom_samples as samples

ORTHANC = Path(os.environ.get("LUMEN_ORTHANC", "/usr/sbin/Orthanc"))
PLUGINS = Path(os.environ.get("LUMEN_ORTHANC_PLUGINS", "/usr/share/orthanc/plugins"))
DICOMWEB_PLUGIN = PLUGINS / "libOrthancDicomWeb.so"
USERNAME = "lumen-tests"
PASSWORD = "pacs-secret-7f3a9c1e"  # noqa: S105 — the test server's only user
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Orthanc:
    """A running Orthanc: its REST root, its DICOMweb base URL and the test user."""

    root: str
    username: str = USERNAME
    password: str = field(default=PASSWORD, repr=False)

    @property
    def dicomweb(self) -> str:
        return f"{self.root}/dicom-web"

    def _auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def store(self, data: bytes) -> str:
        """Store one DICOM file through the REST API (`POST /instances`); return Orthanc's id of the instance."""
        answer = requests.post(f"{self.root}/instances", data=data, auth=self._auth(), timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["ID"]

    def delete(self, instance_id: str) -> None:
        answer = requests.delete(f"{self.root}/instances/{instance_id}", auth=self._auth(), timeout=30)
        assert answer.status_code == 200, answer.text


@contextmanager
def orthanc_running(directory: Path) -> Iterator[Orthanc]:
    """Start Orthanc with a configuration written into `directory`, wait until it answers, stop it afterwards."""
    for needed, package in ((ORTHANC, "orthanc"), (DICOMWEB_PLUGIN, "orthanc-dicomweb")):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: install the Debian package {package} (`make test` does)")
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "LumenTestPACS",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "LUMENTEST",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USERNAME: PASSWORD},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "SaveJobs": False,
    }
    path = directory / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    log = directory / "orthanc.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(ORTHANC), str(path)], stdout=output, stderr=subprocess.STDOUT)
    server = Orthanc(root=f"http://127.0.0.1:{http_port}")
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"Orthanc exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                answer = requests.get(f"{server.dicomweb}/studies", auth=(USERNAME, PASSWORD), timeout=2)
                if answer.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Orthanc did not answer within {START_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class GeneratedStudy:
    """A study loaded into the PACS: its UIDs, who it names, and the bytes of each of its files."""

    uid: str
    patient_id: str
    patient_name: str
    accession: str
    description: str
    date: str
    files: list[bytes]


def cine_study(
    *,
    patient_id: str,
    patient_name: str,
    accession: str,
    description: str,
    date: str,
    runs: int,
    seed: int,
    modality: str = "XA",
) -> GeneratedStudy:
    """Return a study of XA cine runs (one series) carrying the patient's identity, as files to store."""
    uid, series = generate_uid(), generate_uid()
    files = []
    for index in range(runs):
        ds = samples.dataset(
            modality=modality,
            frames=4,
            size=32,
            patient_id=patient_id,
            patient_name=patient_name,
            seed=seed + index,
            series_description="LCA RUN",
        )
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid, series
        ds.InstanceNumber = index + 1
        ds.AccessionNumber, ds.StudyDescription, ds.StudyDate = accession, description, date
        files.append(samples.to_bytes(ds))
    return GeneratedStudy(uid, patient_id, patient_name, accession, description, date, files)


def into_study(study: GeneratedStudy, data: bytes) -> bytes:
    """Return a file of `samples` moved into the study (same patient, UIDs and dates)."""
    ds = pydicom.dcmread(BytesIO(data))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study.uid, generate_uid()
    ds.PatientID, ds.PatientName = study.patient_id, study.patient_name
    ds.AccessionNumber, ds.StudyDescription, ds.StudyDate = study.accession, study.description, study.date
    return samples.to_bytes(ds)
