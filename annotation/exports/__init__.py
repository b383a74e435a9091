"""Dataset exports: the archive writer and the exporters tasks name (`LabelTask.exporter()`).

The job that writes an export is `annotation.services.exports`; the format is described in README.md
("Dataset exports"). The task exporters (`vessel`, `oct`, `spect`) are imported by their tasks when asked for,
so highdicom loads only where an export runs.
"""

from annotation.exports.base import ExportFile, PayloadExporter, TaskExporter

__all__ = ["ExportFile", "PayloadExporter", "TaskExporter"]
