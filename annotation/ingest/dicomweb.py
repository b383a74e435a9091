"""A DICOMweb server (a PACS) as a source of files: QIDO-RS searches and WADO-RS retrieval, with dicomweb-client.

Searches and instance lists go through dicomweb-client. An instance is retrieved as the file the server stores
(`transfer-syntax=*`, so its bytes are the ones an upload of it would carry), its multipart answer streamed into
a staging file in 1 MiB pieces: neither a study nor an instance is ever held in memory, and the import pipeline
reads the file from disk like an upload. Every failure is a `DicomWebError` whose message names the server's
problem, never the answer's body nor the request's query (a search's query carries the patient searched for).
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import requests
from dicomweb_client import DICOMwebClient
from dicomweb_client.session_utils import create_session
from dicomweb_client.uri import URI
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth

from annotation.ingest.results import Reason, Rejection
from annotation.ingest.sources import SourceFile

CONNECT_SECONDS = 5
SEARCH_SECONDS = 30  # a lead waits for a search or a connection check
RETRIEVE_SECONDS = 120  # the import worker waits this long for each piece of an instance
CHUNK_BYTES = 1024 * 1024
INSTANCE_PAGE = 1000  # instances listed per QIDO-RS request
MAX_PART_HEADERS = 64 * 1024
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
NO_SERVICE = "no DICOMweb service at this URL: check its path (…/dicom-web?)"
STUDY_FIELDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "PatientID",
    "PatientName",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
INSTANCE_FIELDS = ("SeriesInstanceUID", "SOPInstanceUID", "SeriesNumber", "InstanceNumber")
TAGS = {
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "SOPInstanceUID": "00080018",
    "StudyDate": "00080020",
    "StudyTime": "00080030",
    "StudyDescription": "00081030",
    "AccessionNumber": "00080050",
    "PatientID": "00100020",
    "PatientName": "00100010",
    "ModalitiesInStudy": "00080061",
    "NumberOfStudyRelatedSeries": "00201206",
    "NumberOfStudyRelatedInstances": "00201208",
    "SeriesNumber": "00200011",
    "InstanceNumber": "00200013",
}


class DicomWebError(Exception):
    """The DICOMweb server could not be reached, refused us, or did not answer as a DICOMweb server."""


def url_normalized(url: str) -> str:
    """Return the service's base URL without a trailing slash; raise ValueError naming what is wrong with it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.username or parts.password:
        raise ValueError("put the user name and password in their own fields, not in the URL")
    if parts.query or parts.fragment:
        raise ValueError("the URL of a DICOMweb service has no query (?…) or fragment (#…)")
    try:
        parts.port  # noqa: B018 — a port out of range raises here
    except ValueError:
        raise ValueError("the URL's port is not a number from 1 to 65535") from None
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class DicomWebServer:
    """Where the PACS is and who we are to it (the password is the decrypted one: never log or return it)."""

    url: str
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def host(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


@dataclass(frozen=True)
class StudySearch:
    """A QIDO-RS study search: every filter left empty matches all; a name without wildcards matches as a prefix."""

    patient_id: str = ""
    patient_name: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str = ""
    accession: str = ""
    description: str = ""
    limit: int = 25
    offset: int = 0

    def filters(self) -> dict[str, str]:
        filters = {
            "PatientID": self.patient_id,
            "PatientName": _wildcard(self.patient_name, prefix=True),
            "ModalitiesInStudy": self.modality.upper(),
            "AccessionNumber": self.accession,
            "StudyDescription": _wildcard(self.description, prefix=False),
        }
        if self.date_from or self.date_to:
            start = self.date_from.strftime("%Y%m%d") if self.date_from else ""
            end = self.date_to.strftime("%Y%m%d") if self.date_to else ""
            filters["StudyDate"] = f"{start}-{end}"
        return {key: value for key, value in filters.items() if value}


def _wildcard(text: str, *, prefix: bool) -> str:
    if not text or "*" in text or "?" in text:
        return text
    return f"{text}*" if prefix else f"*{text}*"


@dataclass(frozen=True)
class StudyRow:
    """One study as the search found it (for the lead's browser only: it names the patient)."""

    study_uid: str
    date: str
    time: str
    description: str
    accession: str
    patient_id: str
    patient_name: str
    modalities: list[str]
    series: int | None
    instances: int | None


@dataclass(frozen=True)
class InstanceRef:
    """Where one instance lies on the server."""

    study: str
    series: str
    sop: str

    @property
    def name(self) -> str:
        """How the import reports it: its study, series and instance UIDs, as in its WADO-RS path."""
        return f"{self.study}/{self.series}/{self.sop}"


def _values(row: Any, keyword: str) -> list[Any]:
    """The values of one attribute of a DICOM JSON object; DicomWebError when the answer is not DICOM JSON."""
    if not isinstance(row, dict):
        raise DicomWebError("its answer is not DICOM JSON (not a list of attribute objects): is this a DICOMweb URL?")
    attribute = row.get(TAGS[keyword], {})
    values = attribute.get("Value", []) if isinstance(attribute, dict) else None
    if not isinstance(values, list):
        raise DicomWebError("its answer is not DICOM JSON (an attribute has no value list): is this a DICOMweb URL?")
    return values


def _text(row: Any, keyword: str) -> str:
    values = _values(row, keyword)
    if not values:
        return ""
    value = values[0]
    if isinstance(value, dict):  # a person name: its alphabetic form
        value = value.get("Alphabetic", "")
    return str(value)


def _number(row: Any, keyword: str) -> int | None:
    try:
        return int(_text(row, keyword))
    except ValueError:
        return None


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def _study_row(row: Any) -> StudyRow:
    uid = _text(row, "StudyInstanceUID")
    if not uid:
        raise DicomWebError("a study in its answer has no StudyInstanceUID: is this a DICOMweb URL?")
    time = _text(row, "StudyTime")
    return StudyRow(
        study_uid=uid,
        date=_date(_text(row, "StudyDate")),
        time=f"{time[:2]}:{time[2:4]}" if len(time) >= 4 and time[:4].isdigit() else time,
        description=_text(row, "StudyDescription"),
        accession=_text(row, "AccessionNumber"),
        patient_id=_text(row, "PatientID"),
        patient_name=_text(row, "PatientName"),
        modalities=[str(value) for value in _values(row, "ModalitiesInStudy")],
        series=_number(row, "NumberOfStudyRelatedSeries"),
        instances=_number(row, "NumberOfStudyRelatedInstances"),
    )


def _status_problem(response: requests.Response, *, missing: str, searching: bool) -> str:
    code = response.status_code
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "an unknown status"
    if code == 401:
        return "it refused the user name or password (401 Unauthorized)"
    if code == 403:
        return "it refused this user access (403 Forbidden)"
    if code == 404:
        return f"{missing} (404 Not Found)"
    if code >= 500:
        return f"it failed with {code} {phrase}"
    if searching:  # a study search any DICOMweb service answers: another 4xx is a server of another kind
        return f"it refused a QIDO-RS study search ({code} {phrase}): is this the URL of a DICOMweb service?"
    return f"it answered {code} {phrase}"


@contextmanager
def server_errors(server: DicomWebServer, *, missing: str, searching: bool = False) -> Iterator[None]:
    """Turn what the HTTP client raises into a DicomWebError naming the server's problem.

    `missing` says what a 404 means where it is used (no service at the URL, or an instance gone); `searching`,
    that the request is a plain study search, which only a server of another kind refuses.
    """
    try:
        yield
    except requests.exceptions.SSLError:
        raise DicomWebError(f"the TLS connection to {server.host} failed (its certificate or protocol)") from None
    except requests.exceptions.ConnectTimeout:
        raise DicomWebError(f"{server.host} did not accept a connection within {CONNECT_SECONDS} s") from None
    except requests.exceptions.Timeout:
        raise DicomWebError(f"{server.host} stopped answering (no data for too long)") from None
    except requests.exceptions.ConnectionError:
        raise DicomWebError(
            f"could not reach {server.host} (nothing answers there, or the name does not resolve)"
        ) from None
    except requests.exceptions.HTTPError as error:
        if error.response is None:
            raise DicomWebError(f"the request to {server.host} failed (an HTTP error without an answer)") from None
        raise DicomWebError(_status_problem(error.response, missing=missing, searching=searching)) from None
    except ValueError:  # a body that is not JSON (requests' JSONDecodeError is a ValueError too)
        raise DicomWebError("its answer is not DICOM JSON: is this the URL of a DICOMweb service?") from None
    except requests.exceptions.RequestException as error:
        raise DicomWebError(f"the request to {server.host} failed ({type(error).__name__})") from None


class _LiteralWildcards(HTTPAdapter):
    """Send a query's wildcards `*` and `?` as themselves, not escaped as dicomweb-client writes them (`%2A`).

    RFC 3986 lets them stand in a query, and makes an escaped one a different URI; some servers (Orthanc 1.10, the
    one the tests run) do not decode escapes in a query, so a search for `DOE*` sent as `DOE%2A` would find nothing.
    """

    def send(self, request, *args, **kwargs):
        url, mark, query = (request.url or "").partition("?")
        if mark:
            request.url = url + mark + re.sub(r"%(2A|3F)", lambda m: chr(int(m.group(1), 16)), query, flags=re.I)
        return super().send(request, *args, **kwargs)


class DicomWebConnection:
    """One HTTP session with a DICOMweb server: searches through dicomweb-client, retrieval streamed to disk."""

    def __init__(self, server: DicomWebServer, *, read_seconds: float = SEARCH_SECONDS) -> None:
        self.server = server
        self.timeout = (CONNECT_SECONDS, read_seconds)
        self.session = create_session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, _LiteralWildcards())
        if server.username or server.password:
            # As UTF-8 bytes (RFC 7617): requests would encode text as latin-1, which not every name fits.
            self.session.auth = HTTPBasicAuth(server.username.encode(), server.password.encode())
        try:
            self.client = DICOMwebClient(url=server.url, session=self.session, timeout=self.timeout)
        except ValueError as error:
            raise DicomWebError(f"the URL cannot be used: {error}") from None
        # One try per request: a lead waits for searches, and a failed instance is reported, not retried blindly.
        self.client.set_http_retry_params(retry=False)

    def __enter__(self) -> DicomWebConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def check(self) -> int:
        """Run a one-study search; return how many studies it found (0 or 1), or raise naming the problem."""
        with server_errors(self.server, missing=NO_SERVICE, searching=True):
            found = self.client.search_for_studies(limit=1, fields=["StudyInstanceUID"])
        if not isinstance(found, list):
            raise DicomWebError("its answer is not DICOM JSON: is this the URL of a DICOMweb service?")
        for row in found:
            _study_row(row)
        return len(found)

    def studies(self, search: StudySearch) -> tuple[list[StudyRow], bool]:
        """Return the studies of one result page, and whether more follow."""
        with server_errors(self.server, missing=NO_SERVICE, searching=True):
            found = self.client.search_for_studies(
                limit=search.limit + 1, offset=search.offset, fields=list(STUDY_FIELDS), search_filters=search.filters()
            )
        if not isinstance(found, list):
            raise DicomWebError("its answer is not DICOM JSON: is this the URL of a DICOMweb service?")
        rows = [_study_row(row) for row in found]
        return rows[: search.limit], len(rows) > search.limit

    def instances(self, study_uid: str) -> list[InstanceRef]:
        """Return every instance of a study, in series and instance number order (page by page)."""
        seen: dict[str, tuple[tuple[int, str, int, str], InstanceRef]] = {}
        offset = 0
        while True:
            with server_errors(self.server, missing="the server holds no such study"):
                page = self.client.search_for_instances(
                    study_instance_uid=study_uid, limit=INSTANCE_PAGE, offset=offset, fields=list(INSTANCE_FIELDS)
                )
            if not isinstance(page, list):
                raise DicomWebError("its answer is not DICOM JSON: is this the URL of a DICOMweb service?")
            new = 0
            for row in page:
                series, sop = _text(row, "SeriesInstanceUID"), _text(row, "SOPInstanceUID")
                if not (UID.match(series) and UID.match(sop)) or sop in seen:
                    continue
                order = (_number(row, "SeriesNumber") or 0, series, _number(row, "InstanceNumber") or 0, sop)
                seen[sop] = (order, InstanceRef(study_uid, series, sop))
                new += 1
            # A short page is the last; a server that ignores `offset` repeats itself and adds nothing new.
            if len(page) < INSTANCE_PAGE or new == 0:
                break
            offset += len(page)
        return [ref for _, ref in sorted(seen.values(), key=lambda pair: pair[0])]

    def retrieve(self, ref: InstanceRef, target: IO[bytes], *, max_bytes: int) -> int:
        """Write the instance's file, as the server stores it, into `target`; return its size.

        Raises DicomWebError when the server does not send it whole, and Rejection (too large) past `max_bytes`.
        """
        try:
            url = str(URI(self.server.url, ref.study, ref.series, ref.sop))
        except ValueError as error:
            raise DicomWebError(f"its UIDs cannot form a WADO-RS URL ({error})") from None
        with server_errors(self.server, missing="the server no longer holds this instance"):
            with self.session.get(url, headers={"Accept": WADO_ACCEPT}, stream=True, timeout=self.timeout) as answer:
                answer.raise_for_status()
                chunks = answer.iter_content(CHUNK_BYTES)
                return _copy_dicom(answer.headers.get("Content-Type", ""), chunks, target, max_bytes)


def _media_type(header: str) -> tuple[str, dict[str, str]]:
    media, *parameters = (part.strip() for part in header.split(";"))
    values = {}
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        values[key.strip().lower()] = value.strip().strip('"')
    return media.lower(), values


class _Sink:
    """Write into the staging file, refusing more than the per-file limit."""

    def __init__(self, target: IO[bytes], max_bytes: int) -> None:
        self.target = target
        self.max_bytes = max_bytes
        self.written = 0

    def write(self, data: bytes | bytearray) -> None:
        self.written += len(data)
        if self.written > self.max_bytes:
            raise Rejection(
                Reason.TOO_LARGE, f"too large: more than {self.max_bytes} bytes, the limit per file; not retrieved"
            )
        self.target.write(data)


def _copy_dicom(content_type: str, chunks: Iterator[bytes], target: IO[bytes], max_bytes: int) -> int:
    """Copy the DICOM file of a WADO-RS answer into `target`: the first part of a multipart/related body (or a
    bare application/dicom body, which some servers send), keeping only a delimiter's length in memory."""
    media, parameters = _media_type(content_type)
    sink = _Sink(target, max_bytes)
    if media == "application/dicom":
        for chunk in chunks:
            sink.write(chunk)
        return sink.written
    boundary = parameters.get("boundary", "").encode("latin-1")
    if media != "multipart/related" or not boundary:
        raise DicomWebError(f"it sent {media or 'an answer without a content type'}, not a DICOM file")
    buffer = bytearray()
    opening = b"--" + boundary
    for chunk in chunks:  # up to the end of the first part's headers
        buffer += chunk
        start = buffer.find(opening)
        end = buffer.find(b"\r\n\r\n", start) if start >= 0 else -1
        if end >= 0:
            headers = bytes(buffer[start + len(opening) : end]).decode("latin-1").lower()
            part_type = re.search(r"content-type:\s*([^;\r\n]+)", headers)
            if part_type and part_type.group(1).strip() != "application/dicom":
                raise DicomWebError(f"it sent {part_type.group(1).strip()}, not a DICOM file")
            del buffer[: end + 4]
            break
        if len(buffer) > MAX_PART_HEADERS:
            raise DicomWebError("its multipart answer has no part headers where they belong")
    else:
        raise DicomWebError("its answer holds no file")
    delimiter = b"\r\n--" + boundary
    keep = len(delimiter) - 1  # a delimiter may straddle two chunks
    while True:
        found = buffer.find(delimiter)
        if found >= 0:
            sink.write(buffer[:found])
            return sink.written
        if len(buffer) > keep:
            sink.write(buffer[:-keep])
            del buffer[:-keep]
        more = next(chunks, None)
        if more is None:
            received = sink.written + len(buffer)
            raise DicomWebError(f"the transfer broke off after {received} bytes, before the file's end")
        buffer += more


@dataclass(frozen=True)
class RetrievedInstance(SourceFile):
    """An instance on the server, retrieved (WADO-RS) into a staging file only when the import reaches it, and
    removed again once the import is done with it: one instance on disk at a time, none in memory.

    A server failure is this file's rejection (`not_retrieved`), never the job's end.
    """

    reader: Callable[[], bytes] = field(default=bytes, repr=False)  # unused: `read` and `local` retrieve
    connection: DicomWebConnection | None = field(default=None, repr=False, compare=False)
    ref: InstanceRef | None = None
    staging: Path | None = None
    max_bytes: int = 0

    def read(self) -> bytes:
        with self.local() as path:
            return path.read_bytes()

    @contextmanager
    def local(self) -> Iterator[Path]:
        if self.connection is None or self.ref is None or self.staging is None:
            raise ValueError("a retrieved instance needs its connection, reference and staging folder")
        self.staging.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.staging, prefix="instance-", suffix=".dcm") as handle:
            try:
                self.connection.retrieve(self.ref, handle, max_bytes=self.max_bytes)
            except DicomWebError as error:
                raise Rejection(Reason.NOT_RETRIEVED, f"not retrieved from the DICOMweb server: {error}") from None
            handle.flush()
            yield Path(handle.name)
