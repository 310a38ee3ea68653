"""Writing a labelled stream to disk: events as JSON lines (optionally gzip), labels and campaigns as CSV."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from simulation.attacks.campaigns import Campaign

LABELS_CSV = "labels.csv"
CAMPAIGNS_CSV = "campaigns.csv"


def write_jsonl(events: Iterable[dict[str, Any]], path: Path, *, gzip_: bool = False) -> int:
    """Write one compact JSON object per line and return the count. gzip output is reproducible (mtime 0)."""
    path = Path(path)
    n = 0
    with open(path, "wb") as raw:
        if gzip_:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                for ev in events:
                    gz.write(orjson.dumps(ev) + b"\n")
                    n += 1
        else:
            buf: list[bytes] = []
            for ev in events:
                buf.append(orjson.dumps(ev))
                n += 1
                if len(buf) >= 4096:
                    raw.write(b"\n".join(buf) + b"\n")
                    buf.clear()
            if buf:
                raw.write(b"\n".join(buf) + b"\n")
    return n


def write_labels(out_dir: Path, labels: Mapping[str, str], campaigns: Sequence[Campaign]) -> tuple[Path, Path]:
    """Write ``labels.csv`` (auditID, campaign_id, technique, label) and ``campaigns.csv`` (id, technique,
    variant, actor, src_ip, start, end, events, mitre) into ``out_dir``; ``labels`` maps auditID -> campaign id."""
    out_dir.mkdir(parents=True, exist_ok=True)
    technique = {c.id: c.technique for c in campaigns}
    labels_path, campaigns_path = out_dir / LABELS_CSV, out_dir / CAMPAIGNS_CSV
    with open(labels_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["auditID", "campaign_id", "technique", "label"])
        for aid, cid in sorted(labels.items(), key=lambda kv: (kv[1], kv[0])):
            w.writerow([aid, cid, technique[cid], "attack"])
    with open(campaigns_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "technique", "variant", "actor", "src_ip", "start", "end", "events", "mitre"])
        for c in sorted(campaigns, key=lambda c: c.start_us):
            w.writerow(
                [
                    c.id,
                    c.technique,
                    c.variant,
                    c.actor,
                    c.src_ip,
                    c.start.isoformat(),
                    c.end.isoformat(),
                    len(c.audit_ids),
                    " ".join(c.mitre),
                ]
            )
    return labels_path, campaigns_path
