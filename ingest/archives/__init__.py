"""Archive reading: every shape in which users keep Kubernetes audit logs, normalised to audit.k8s.io/v1 Events.

Files, directories (rotated logs in time order) and stdin, plain or gzip (told by magic bytes, not by name;
gzip inside gzip inflated again, up to 3 layers); no network. `read_archives` is the way in. Each record
reader turns one record (a line, or a JSON document, read a record of its record array at a time) into
`AuditEvent`s with an origin `file:line` (`file:line#n` for the n-th event of a record, counted from 0) and
`Rejected` items for what cannot be read; a bad record never stops a read.

Formats (`FORMATS`), auto-detected per file from its first bytes (after gzip), or forced:

- `apiserver`: the kube-apiserver log backend, one Event (or EventList) per line; also a JSON document.
- `cloudwatch`: EKS via CloudWatch Logs, FilterLogEvents / `aws logs` JSON `{"events": [...]}`.
- `cloudwatch-s3`: a CloudWatch Logs export to S3, lines `<ISO timestamp> <message>`.
- `cloudwatch-subscription`: subscription batches (Kinesis/Firehose/Lambda), base64+gzip or plain JSON
  `{"messageType": "DATA_MESSAGE", ..., "logEvents": [...]}`; CONTROL_MESSAGE is dropped.
- `cloudwatch-insights`: a Logs Insights CSV export with `@timestamp,@message` columns.
- `gke`: Cloud Audit Logs LogEntry (`protoPayload`), mapped field by field to an Event.
- `aks`: Azure diagnostic records (`{"records": [...]}` or one record per line), kube-audit categories only.
- `elastic`: Elastic stored documents: `event.original`, else rebuilt from `kubernetes.audit.*`.
"""

from __future__ import annotations

from ingest.archives.files import input_files, input_problem, order_files, passed_over
from ingest.archives.formats import FORMATS, detect_format
from ingest.archives.reader import ArchiveStats, read_archives

__all__ = [
    "FORMATS",
    "ArchiveStats",
    "detect_format",
    "input_files",
    "input_problem",
    "order_files",
    "passed_over",
    "read_archives",
]
