"""DICOM (and PNG + CSV manifest) ingest: validate, de-identify, render once, store, make items."""
