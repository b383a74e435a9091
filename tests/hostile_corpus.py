"""A corpus of valid, malformed and hostile uploads, generated at test time; each case says what must happen to it.

Every case is one uploaded file. `expected` maps each result line the import must report (the file itself, or the
members of an archive) to its (outcome, reason).
"""

from __future__ import annotations

import copy
import io
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from pydicom import Dataset, Sequence
from pydicom.dataelem import DataElement
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from tests import dicom_samples as samples

STORED = ("stored", "")


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expected: dict[str, tuple[str, str]]


def _rejected(reason: str) -> tuple[str, str]:
    return ("rejected", reason)


def _xa(seed: int, change: Callable[[Dataset], None] | None = None, **kwargs) -> bytes:
    ds = samples.dataset(seed=seed, frames=3, size=16, patient_id=f"MRN-H{seed}", **kwargs)
    if change is not None:
        change(ds)
    return samples.to_bytes(ds)


def _set(keyword_values: dict) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        for keyword, value in keyword_values.items():
            setattr(ds, keyword, value)

    return change


def _raw(tag: int, vr: str, value: bytes) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        ds[tag] = DataElement(tag, vr, value)

    return change


def _zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for member, data in members:
            archive.writestr(member, data)
    return out.getvalue()


def _patch_member(data: bytes, member: str, offset: int, value: bytes) -> bytes:
    """Overwrite a field of the member's local header (at `offset`) and the same field of its central entry."""
    patched = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    patched[info.header_offset + offset : info.header_offset + offset + len(value)] = value
    name = member.encode()
    central = next(
        pos
        for pos in range(len(patched) - 46)
        if patched[pos : pos + 4] == b"PK\x01\x02" and patched[pos + 46 : pos + 46 + len(name)] == name
    )
    central_offset = offset + 2  # central entries carry "version made by" before the fields they share
    patched[central + central_offset : central + central_offset + len(value)] = value
    return bytes(patched)


def _nested(depth: int) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        inner = Dataset()
        inner.CodeValue = "X"
        for _ in range(depth):
            outer = Dataset()
            outer.ConceptNameCodeSequence = Sequence([inner])
            inner = outer
        ds.ContentSequence = Sequence([inner])

    return change


def _implicit(seed: int, change: Callable[[Dataset], None]) -> bytes:
    ds = samples.dataset(seed=seed, frames=3, size=16, patient_id=f"MRN-H{seed}")
    change(ds)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return samples.to_bytes(ds)


def _with_transfer_syntax(seed: int, uid: str) -> bytes:
    """Native (explicit VR little endian) data whose file meta claims another transfer syntax of the same length."""
    data = _xa(seed)
    native = str(ExplicitVRLittleEndian).encode()
    assert len(uid) == len(native) and data.count(native) == 1
    return data.replace(native, uid.encode())


def _rle_under_native(seed: int) -> bytes:
    """RLE-compressed (encapsulated) pixel data in a file whose meta says explicit VR little endian."""
    ds = samples.dataset(seed=seed, frames=3, size=16, patient_id=f"MRN-H{seed}")
    ds.compress(RLELossless)
    data = samples.to_bytes(ds)
    return data.replace(str(RLELossless).encode(), str(ExplicitVRLittleEndian).encode())


def _symlink_member() -> bytes:
    info = zipfile.ZipInfo("link.dcm")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _zip([(info, b"/etc/passwd"), ("ok.dcm", _xa(90))])


def _truncated_meta() -> bytes:
    return b"\x00" * 128 + b"DICM" + struct.pack("<HH", 0x0002, 0x0000)


def corpus() -> list[Case]:
    """Return the cases, each with a unique file name (the name is the report's key)."""
    nul = "ID\x00WITH\x00NUL"
    cases: list[Case] = [
        Case("valid.dcm", _xa(1), {"valid.dcm": STORED}),
        # NUL and control bytes in every kind of text value: stored, the characters dropped.
        Case("nul-patient-id.dcm", _xa(2, _set({"PatientID": nul})), {"nul-patient-id.dcm": STORED}),
        Case("nul-pn.dcm", _xa(3, _set({"PatientName": "DOE\x00^JANE"})), {"nul-pn.dcm": STORED}),
        Case("nul-lo.dcm", _xa(4, _set({"StudyDescription": "CORONARY\x00ANGIO"})), {"nul-lo.dcm": STORED}),
        Case("nul-sh.dcm", _xa(5, _set({"StationName": "ROOM\x001"})), {"nul-sh.dcm": STORED}),
        Case("nul-lt.dcm", _xa(6, _set({"ImageComments": "free\x00text"})), {"nul-lt.dcm": STORED}),
        Case("nul-st.dcm", _xa(7, _set({"InstitutionAddress": "1\x00Main St"})), {"nul-st.dcm": STORED}),
        Case("nul-ut.dcm", _xa(8, _raw(0x00400280, "ST", b"note\x00x")), {"nul-ut.dcm": STORED}),
        Case("nul-cs.dcm", _xa(9, _set({"BodyPartExamined": "HEART\x00"})), {"nul-cs.dcm": STORED}),
        Case("nul-series.dcm", _xa(10, _set({"SeriesDescription": "LAO\x00CRAN"})), {"nul-series.dcm": STORED}),
        Case("control-bytes.dcm", _xa(11, _set({"PatientID": "MRN\x01\x02\x1b[31m"})), {"control-bytes.dcm": STORED}),
        Case("nul-implicit.dcm", _implicit(12, _set({"PatientID": nul})), {"nul-implicit.dcm": STORED}),
        Case("overlong-id.dcm", _xa(13, _set({"PatientID": "M" * 10000})), {"overlong-id.dcm": STORED}),
        Case("overlong-desc.dcm", _xa(14, _set({"SeriesDescription": "S" * 100000})), {"overlong-desc.dcm": STORED}),
        Case("bad-utf8.dcm", _xa(15, _raw(0x00100010, "PN", b"DOE^\xff\xfe\xc3")), {"bad-utf8.dcm": STORED}),
        Case(
            "bad-charset.dcm",
            _xa(16, _set({"SpecificCharacterSet": "ISO_IR 999", "PatientName": "X"})),
            {"bad-charset.dcm": STORED},
        ),
        Case("deep-nesting.dcm", _xa(17, _nested(200)), {"deep-nesting.dcm": STORED}),
        # Identifiers that look like paths stay data: UIDs are remapped, names are values.
        Case("uid-path.dcm", _xa(18, _set({"StudyInstanceUID": "../../../etc/passwd"})), {"uid-path.dcm": STORED}),
        Case(
            "name-path.dcm",
            _xa(19, _set({"PatientName": "../../x/..^..", "PatientID": "../../x"})),
            {"name-path.dcm": STORED},
        ),
        # Files that are not (whole) DICOM.
        Case("empty.dcm", b"", {"empty.dcm": _rejected("not_dicom")}),
        Case("text.dcm", b"hello, not an image\n" * 20, {"text.dcm": _rejected("not_dicom")}),
        Case("truncated.dcm", _xa(20)[:-300], {"truncated.dcm": _rejected("truncated")}),
        Case("meta-only.dcm", _truncated_meta(), {"meta-only.dcm": _rejected("truncated")}),
        Case("header-cut.dcm", _xa(21)[:200], {"header-cut.dcm": _rejected("truncated")}),
        # Transfer-syntax lies and unknown syntaxes.
        Case("rle-lie.dcm", _with_transfer_syntax(22, RLELossless), {"rle-lie.dcm": _rejected("undecodable")}),
        Case("rle-under-native.dcm", _rle_under_native(41), {"rle-under-native.dcm": _rejected("undecodable")}),
        Case(
            "unknown-ts.dcm",
            _with_transfer_syntax(23, "1.2.840.99999.1.2.1"),
            {"unknown-ts.dcm": _rejected("unsupported_transfer_syntax")},
        ),
        Case("mpeg4.dcm", samples.mpeg4_bytes(), {"mpeg4.dcm": _rejected("unsupported_transfer_syntax")}),
        Case("no-pixels.dcm", samples.no_pixels_bytes(), {"no-pixels.dcm": _rejected("no_pixel_data")}),
        Case("frames-zero.dcm", _xa(24, _set({"NumberOfFrames": 0})), {"frames-zero.dcm": _rejected("not_multiframe")}),
        Case(
            "frames-huge.dcm", _xa(25, _set({"NumberOfFrames": 2**31 - 1})), {"frames-huge.dcm": _rejected("too_large")}
        ),
        Case("rows-zero.dcm", _xa(26, _set({"Rows": 0})), {"rows-zero.dcm": _rejected("missing_attribute")}),
        Case("bits-odd.dcm", _xa(27, _set({"BitsAllocated": 3})), {"bits-odd.dcm": _rejected("undecodable")}),
        Case("wrong-modality.dcm", _xa(28, modality="CT"), {"wrong-modality.dcm": _rejected("modality_mismatch")}),
        # Archives and their tricks: every member accounted for.
        Case(
            "runs.zip",
            _zip([("a/one.dcm", _xa(30)), ("b/two.dcm", _xa(31))]),
            {"runs.zip/a/one.dcm": STORED, "runs.zip/b/two.dcm": STORED},
        ),
        Case(
            "climb.zip",
            _zip([("../../escape.dcm", _xa(32)), ("ok.dcm", _xa(33))]),
            {"climb.zip/../../escape.dcm": _rejected("bad_archive"), "climb.zip/ok.dcm": STORED},
        ),
        Case(
            "absolute.zip", _zip([("/etc/abs.dcm", _xa(34))]), {"absolute.zip//etc/abs.dcm": _rejected("bad_archive")}
        ),
        Case(
            "symlink.zip",
            _symlink_member(),
            {"symlink.zip/link.dcm": _rejected("bad_archive"), "symlink.zip/ok.dcm": STORED},
        ),
        Case(
            "bad-crc.zip",
            _patch_member(_zip([("crc.dcm", _xa(35))]), "crc.dcm", 14, b"\x00\x00\x00\x00"),
            {"bad-crc.zip/crc.dcm": _rejected("bad_archive")},
        ),
        Case(
            "method.zip",
            _patch_member(_zip([("m.dcm", _xa(36))]), "m.dcm", 8, struct.pack("<H", 97)),
            {"method.zip/m.dcm": _rejected("bad_archive")},
        ),
        Case(
            "size-lie.zip",
            _patch_member(_zip([("lie.dcm", _xa(37))]), "lie.dcm", 22, struct.pack("<I", 100)),
            {"size-lie.zip/lie.dcm": _rejected("bad_archive")},
        ),
        Case(
            "ratio-bomb.zip",
            _zip([("bomb.dcm", bytes(40 * 1024**2))]),
            {"ratio-bomb.zip/bomb.dcm": _rejected("bad_archive")},
        ),
        Case(
            "declared-bomb.zip",
            _patch_member(_zip([("big.dcm", _xa(38))]), "big.dcm", 22, struct.pack("<I", 0xFFFFFFFE)),
            {"declared-bomb.zip/big.dcm": _rejected("bad_archive")},
        ),
        Case("not-a.zip", b"PK\x03\x04 this is not really an archive", {"not-a.zip": _rejected("bad_archive")}),
        Case(
            "nested.zip",
            _zip([("inner.zip", _zip([("deep.dcm", _xa(39))]))]),
            {"nested.zip/inner.zip": _rejected("not_dicom")},
        ),
        Case("empty.zip", _zip([]), {}),
        Case(
            "stored.zip",
            _zip([("plain.dcm", _xa(40))], compression=zipfile.ZIP_STORED),
            {"stored.zip/plain.dcm": STORED},
        ),
    ]
    # The same SOPInstanceUID twice: once the same bytes (a duplicate), once other pixels (a conflict).
    twin = samples.dataset(seed=50, frames=3, size=16, patient_id="MRN-TWIN")
    first = samples.to_bytes(twin)
    changed = copy.deepcopy(twin)
    changed.PixelData = bytes(len(changed.PixelData))
    cases += [
        Case("twin-a.dcm", first, {"twin-a.dcm": STORED}),
        Case("twin-b.dcm", first, {"twin-b.dcm": ("duplicate", "duplicate")}),
        Case("twin-c.dcm", samples.to_bytes(changed), {"twin-c.dcm": _rejected("uid_conflict")}),
    ]
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases
